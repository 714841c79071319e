// What the paper's figure modules share. Every module here is plain ES with no imports from packages:
// the host passes Plot in (Quarto's OJS stdlib, the dashboard's npm:@observablehq/plot, or the copy that
// scripts/bundle-figures.js inlines), so one file draws in all three.

// Distinct values in first-seen order, or sorted when `sort` is given.
export function unique(values, sort = false) {
  const out = [...new Set(values)];
  return sort ? out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)) : out;
}

// The attack type's name (results' attack_type, from the graphs' meta.json); its code where the results
// predate the names.
export function attackType(d) {
  return d.attack_type ?? (Number(d.y_type) === 0 ? "none" : `type ${d.y_type}`);
}

export const CLASS_NAMES = {0: "benign", 1: "attack"};
export const CLASS_COLORS = {domain: ["benign", "attack"], range: ["#4e79a7", "#e15759"]};
const TABLEAU = ["#4e79a7", "#f28e2c", "#e15759", "#76b7b2", "#59a14f", "#edc949", "#af7aa1", "#ff9da7", "#9c755f"];

// Benign ("none") in grey, first; the attack types in Tableau's colours, by name, so a type keeps its
// colour whichever model or dataset is shown.
export function typeColors(points) {
  const types = unique(points.map(attackType)).filter((t) => t !== "none").sort();
  return {domain: ["none", ...types], range: ["#8a8a8a", ...types.map((_, i) => TABLEAU[i % TABLEAU.length])]};
}

// One colour per model family wherever a chart shows families (the paper's figures and every dashboard
// page), so a family reads the same from one chart to the next.
export const FAMILY_COLORS = {domain: ["vgae", "gat", "fusion"], range: ["#6cc5b0", "#4e79a7", "#efb118"]};

// The teacher and its two students, named as the text names them.
export const VARIANT_NAMES = {large: "teacher", small_kd: "student (KD)", small: "student alone"};
export const VARIANT_COLORS = {domain: Object.values(VARIANT_NAMES), range: ["#e15759", "#4e79a7", "#59a14f"]};

// A select control over the distinct values of `key`, starting at `preferred` when present.
export function choice(rows, key, label, preferred) {
  const options = unique(rows.map((d) => d[key]), true);
  return {name: key, label, type: "select", options, value: options.includes(preferred) ? preferred : options[0]};
}
