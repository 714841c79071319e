// GAT attention as a heatmap: for one sample graph, one cell per edge from source CAN ID to destination
// CAN ID, the weight of one head of a layer, or the mean over the layer's heads when no head is chosen.
// IDs that carried attack frames in the window are marked (•) on both axes.
import {choice, unique} from "./common.js";

const idName = (v) => v ?? "unknown";
export const graphName = (d) => `${d.split} #${d.index} (${Number(d.y) ? "attack" : "benign"})`;

export const figure = {
  id: "attention",
  table: "attention",
  title: "GAT attention by layer",
  controls(rows) {
    const layers = unique(rows.map((d) => Number(d.layer)), true);
    return [
      choice(rows, "dataset", "Dataset", "synth"),
      choice(rows, "model", "Model", "gat_large"),
      {name: "layer", label: "Layer", type: "select", options: layers, value: layers[0]}
    ];
  },
  // graph: a graphName (default: the first attack graph of the model); head: null averages the heads
  render(Plot, rows, {dataset, model, layer, head = null, graph = null, width = 720}) {
    const ofModel = rows.filter((d) => (dataset == null || d.dataset === dataset) && d.model === model);
    const graphs = unique(ofModel.map(graphName));
    const picked = graph ?? graphs.find((g) => g.endsWith("(attack)")) ?? graphs[0];
    const edges = ofModel.filter((d) => graphName(d) === picked && Number(d.layer) === Number(layer) && (head == null || Number(d.head) === Number(head)));
    // one cell per (source, destination): the head's weight, or the mean over heads
    const cells = new Map();
    for (const d of edges) {
      const key = `${idName(d.src_id)}→${idName(d.dst_id)}`;
      const cell = cells.get(key) ?? {src: idName(d.src_id), dst: idName(d.dst_id), sum: 0, n: 0, attack: Boolean(d.src_attack || d.dst_attack)};
      cell.sum += Number(d.alpha);
      cell.n += 1;
      cells.set(key, cell);
    }
    const data = [...cells.values()].map((c) => ({...c, alpha: c.sum / c.n}));
    const attacked = new Set(edges.flatMap((d) => [d.src_attack ? idName(d.src_id) : null, d.dst_attack ? idName(d.dst_id) : null]).filter(Boolean));
    const ids = unique(data.flatMap((d) => [d.src, d.dst]), true);
    const tick = (id) => (attacked.has(id) ? `• ${id}` : id);
    const side = 100 + 18 * ids.length;
    return Plot.plot({
      width: Math.max(420, Math.min(width, side + 60)), height: side, marginLeft: 70, marginBottom: 70,
      x: {domain: ids, label: "destination CAN ID", tickRotate: -90, tickFormat: tick},
      y: {domain: ids, label: "source CAN ID", tickFormat: tick},
      color: {scheme: "magma", legend: true, label: head == null ? "attention (mean over heads)" : "attention weight", domain: [0, 1]},
      marks: [
        Plot.cell(data, {x: "dst", y: "src", fill: "alpha", tip: true, channels: {"edge carries attack ID": (d) => (d.attack ? "yes" : "no")}}),
        Plot.frame({strokeOpacity: 0.2})
      ]
    });
  }
};
