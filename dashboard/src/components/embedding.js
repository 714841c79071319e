// The scatter of graph embeddings on their first two principal components (embeddings table), shared
// by the VGAE latent space and GAT state space pages. It is the paper's latent-space figure
// (paper/figures/latent-space.js, linked here as src/figures) drawn on the principal components.
import * as Plot from "npm:@observablehq/plot";
import {figure as latentSpace} from "../figures/latent-space.js";

export {attackType} from "../figures/common.js";

export function embeddingPlot(points, {colorBy, width}) {
  const share = points[0] ? [points[0].pc1_share, points[0].pc2_share] : [0, 0];
  return latentSpace.render(Plot, points, {
    colorBy, width, x: "pc1", y: "pc2",
    xLabel: `PC1 (${(100 * share[0]).toFixed(0)} % of variance)`,
    yLabel: `PC2 (${(100 * share[1]).toFixed(0)} % of variance)`
  });
}
