// Training curves, teacher against its students: one logged quantity per epoch for the three variants of
// a model family, drawn up to the epoch the slider picks (the values there marked), with the epoch each
// run kept (best_epoch) dashed once the slider has passed it.
import {VARIANT_COLORS, VARIANT_NAMES, choice, unique} from "./common.js";

// The quantities offered: those every family shown logs, losses first
function quantities(rows) {
  const families = unique(rows.map((d) => d.family));
  const common = unique(rows.map((d) => d.metric), true).filter((q) =>
    families.every((f) => rows.some((d) => d.family === f && d.metric === q))
  );
  return common.sort((a, b) => Number(!/loss/.test(a)) - Number(!/loss/.test(b)) || (a < b ? -1 : 1));
}

export const figure = {
  id: "training-curves",
  table: "training_curves",
  title: "Training curves: teacher vs students",
  controls(rows) {
    const qs = quantities(rows);
    const last = Math.max(0, ...rows.map((d) => Number(d.epoch)));
    return [
      choice(rows, "dataset", "Dataset", "synth"),
      choice(rows, "family", "Family", "gat"),
      {name: "quantity", label: "Quantity", type: "select", options: qs, value: qs.includes("val_loss") ? "val_loss" : qs[0]},
      {name: "epoch", label: "Up to epoch", type: "range", min: 0, max: last, step: 1, value: last}
    ];
  },
  render(Plot, rows, {dataset, family, quantity, epoch = Infinity, width = 720}) {
    const mine = rows
      .filter((d) => d.dataset === dataset && d.family === family && d.metric === quantity && d.value != null)
      .map((d) => ({...d, epoch: Number(d.epoch), who: VARIANT_NAMES[d.variant] ?? d.variant}));
    const shown = mine.filter((d) => d.epoch <= epoch);
    const at = shown.filter((d) => d.epoch === Math.min(epoch, Math.max(...mine.filter((e) => e.model === d.model).map((e) => e.epoch))));
    const kept = unique(mine.map((d) => d.model)).map((m) => mine.find((d) => d.model === m))
      .filter((d) => d.best_epoch != null && Number(d.best_epoch) <= epoch);
    const last = Math.max(0, ...mine.map((d) => d.epoch));
    return Plot.plot({
      width, height: 340, grid: true,
      x: {label: "epoch", domain: [0, Math.max(1, last)], ticks: Math.min(Math.max(1, last), 10), tickFormat: "d"},
      // the whole run's range: the frame stays put while the slider grows the curves into it
      y: {label: quantity, domain: mine.length ? [Math.min(...mine.map((d) => d.value)), Math.max(...mine.map((d) => d.value))] : undefined, nice: true},
      color: {legend: true, label: "model", ...VARIANT_COLORS},
      marks: [
        Plot.ruleX(kept, {x: (d) => Number(d.best_epoch), stroke: "who", strokeDasharray: "4,3", strokeOpacity: 0.7}),
        Plot.lineY(shown, {x: "epoch", y: "value", stroke: "who", z: "model", strokeWidth: 2}),
        Plot.dot(at, {x: "epoch", y: "value", fill: "who", r: 4, tip: true, channels: {model: "model"}})
      ]
    });
  }
};
