// The scatter of graph embeddings on their first two principal components (embeddings table), shared
// by the VGAE latent space and GAT state space pages.
import * as Plot from "npm:@observablehq/plot";

const CLASS = {0: "benign", 1: "attack"};

// The attack type's name (results' attack_type, from the graphs' meta.json); its code where the results
// predate the names.
export function attackType(d) {
  return d.attack_type ?? (d.y_type === 0 ? "none" : `type ${d.y_type}`);
}

// Benign ("none") in grey, first; the attack types in Tableau's colours, by name
function typeColors(points) {
  const types = [...new Set(points.map(attackType))].filter((t) => t !== "none").sort();
  return {domain: ["none", ...types], range: ["#8a8a8a", ...types.map((_, i) => TABLEAU[i % TABLEAU.length])]};
}
const TABLEAU = ["#4e79a7", "#f28e2c", "#e15759", "#76b7b2", "#59a14f", "#edc949", "#af7aa1", "#ff9da7", "#9c755f"];

export function embeddingPlot(points, {colorBy, width}) {
  const share = points[0] ? [points[0].pc1_share, points[0].pc2_share] : [0, 0];
  const color = colorBy === "class" ? (d) => CLASS[d.y] : attackType;
  return Plot.plot({
    width, height: 520, grid: true, inset: 8,
    x: {label: `PC1 (${(100 * share[0]).toFixed(0)} % of variance)`},
    y: {label: `PC2 (${(100 * share[1]).toFixed(0)} % of variance)`},
    color: {legend: true, label: colorBy === "class" ? "class" : "attack type", ...(colorBy === "class" ? {domain: ["benign", "attack"], range: ["#4e79a7", "#e15759"]} : typeColors(points))},
    symbol: {legend: true, label: "split"},
    marks: [
      Plot.dot(points, {x: "pc1", y: "pc2", stroke: color, symbol: "split", r: 3.5, strokeOpacity: 0.8,
        channels: {window: (d) => `${d.split} #${d.index}`, class: (d) => CLASS[d.y], "attack type": attackType}, tip: true})
    ]
  });
}
