// Observable Framework configuration of the kd-gat dashboard (docs/dashboard.md).
export default {
  title: "KD-GAT",
  root: "src",
  // dist/site is the static assets; scripts/finish-build.js moves what is too large for them to dist/r2.
  output: "dist/site",
  // The dark near-midnight theme plus a few shared classes (src/style.css imports the theme).
  style: "style.css",
  // The default stylesheet pulls web fonts from a CDN; the site must build and run offline.
  globalStylesheets: [],
  // DuckDB-WASM fetches extensions from the internet; Parquet comes in through FileAttachment instead.
  duckdb: {extensions: {json: null, parquet: null}},
  pages: [
    {name: "Leaderboard", path: "/leaderboard"},
    {name: "KD transfer", path: "/kd-transfer"},
    {name: "Dataset comparison", path: "/dataset-comparison"},
    {name: "Training curves", path: "/training-curves"},
    {name: "Run timeline", path: "/timeline"},
    {name: "DQN policy", path: "/dqn-policy"},
    {name: "VGAE latent space", path: "/vgae-latent"},
    {name: "GAT state space", path: "/gat-state-space"},
    {name: "Attention heatmap", path: "/attention"},
    {name: "CAN bus graph", path: "/can-bus-graph"}
  ],
  // No favicon: an empty one keeps the browser from asking for /favicon.ico (a 404)
  head: `<link rel="icon" href="data:,">`,
  search: false,
  footer: "kd-gat: CAN-bus intrusion detection with GNNs and knowledge distillation. Built from results/*.parquet."
};
