// Draws one figure module ({controls, render}) with plain DOM controls: what the self-contained HTML
// bundles (paper/assets/html/) and the browser tests run, and what the paper's OJS cells call. A control
// spec is {name, label, type: "select" | "range", options | min/max/step, value}; changing one redraws.
export function mount(root, Plot, figure, rows, {width} = {}) {
  const state = {};
  const form = document.createElement("form");
  form.className = "figure-controls";
  form.addEventListener("submit", (event) => event.preventDefault());
  const chart = document.createElement("div");
  chart.className = "figure-chart";
  const draw = () => {
    chart.replaceChildren(figure.render(Plot, rows, {...state, width: width ?? (root.clientWidth || 720)}));
  };
  for (const spec of figure.controls(rows)) {
    state[spec.name] = spec.value;
    const label = document.createElement("label");
    label.textContent = `${spec.label} `;
    let input;
    if (spec.type === "range") {
      input = document.createElement("input");
      Object.assign(input, {type: "range", min: spec.min, max: spec.max, step: spec.step ?? 1, value: spec.value});
      const shown = document.createElement("output");
      shown.textContent = String(spec.value);
      input.addEventListener("input", () => {
        state[spec.name] = Number(input.value);
        shown.textContent = input.value;
        draw();
      });
      label.append(input, " ", shown);
    } else {
      input = document.createElement("select");
      for (const option of spec.options) input.append(new Option(String(option), String(option)));
      input.value = String(spec.value);
      input.addEventListener("change", () => {
        const picked = spec.options.find((o) => String(o) === input.value);
        state[spec.name] = picked;
        draw();
      });
      label.append(input);
    }
    input.name = spec.name;
    form.append(label);
  }
  root.replaceChildren(form, chart);
  draw();
  return root;
}
