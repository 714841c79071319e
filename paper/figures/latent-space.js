// The VGAE latent space: each graph's mean latent on two coordinates (the paper's UMAP, or the
// dashboard's principal components), coloured by attack type or class; hover a point for its window.
import {CLASS_COLORS, CLASS_NAMES, attackType, choice, typeColors, unique} from "./common.js";

export const figure = {
  id: "latent-space",
  table: "latent_umap",
  title: "VGAE latent space (UMAP), by attack type",
  controls(rows) {
    return [
      choice(rows, "dataset", "Dataset", "synth"),
      choice(rows, "model", "Model", "vgae_large"),
      {name: "colorBy", label: "Colour by", type: "select", options: ["attack type", "class"], value: "attack type"}
    ];
  },
  // x, y: the coordinate columns and their axis labels (default the UMAP the paper stage writes)
  render(Plot, rows, {dataset, model, colorBy = "attack type", width = 720, x = "umap1", y = "umap2", xLabel = "UMAP 1", yLabel = "UMAP 2"}) {
    const points = rows.filter((d) => (dataset == null || d.dataset === dataset) && (model == null || d.model === model));
    const byClass = colorBy === "class";
    return Plot.plot({
      width, height: Math.round(Math.min(width, 760) * 0.72), grid: true, inset: 8,
      x: {label: xLabel}, y: {label: yLabel},
      color: {legend: true, label: byClass ? "class" : "attack type", ...(byClass ? CLASS_COLORS : typeColors(points))},
      symbol: {legend: true, label: "split", domain: unique(points.map((d) => d.split))},
      marks: [
        Plot.dot(points, {
          x, y, stroke: byClass ? (d) => CLASS_NAMES[Number(d.y)] : attackType, symbol: "split", r: 3.5,
          strokeOpacity: 0.8, tip: true,
          channels: {window: (d) => `${d.split} #${d.index}`, class: (d) => CLASS_NAMES[Number(d.y)], "attack type": attackType}
        })
      ]
    });
  }
};
