// The paper's figures as self-contained HTML files (TMLR "Beyond PDF": the submission's assets/html/):
// each figure module of paper/figures, Observable Plot and the figure's rows in one file that opens from
// file:// with no network. Built with the dashboard's toolchain (esbuild and Plot from
// dashboard/node_modules, installed by `npm ci` from its lock), so it needs no Quarto.
//   node paper/scripts/bundle-figures.js MANIFEST.json
// MANIFEST: [{"module": "kd-transfer.js", "data": "rows.json", "out": "assets/html/kd-transfer.html",
//            "title": "...", "caption": "..."}], paths relative to the manifest's folder or absolute.
import {readFile, rename, writeFile} from "node:fs/promises";
import {createRequire} from "node:module";
import {dirname, join, resolve} from "node:path";
import {fileURLToPath} from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const figures = join(here, "..", "figures");
const dashboard = join(here, "..", "..", "dashboard");
const esbuild = createRequire(join(dashboard, "package.json"))("esbuild");

const [manifestPath] = process.argv.slice(2);
if (!manifestPath) {
  console.error("usage: node paper/scripts/bundle-figures.js MANIFEST.json");
  process.exit(2);
}
const base = dirname(resolve(manifestPath));
const manifest = JSON.parse(await readFile(manifestPath, "utf-8"));

// Inside <script>, "</script" would end the element early and "<!--" could start a comment. In JSON such
// text lies only inside strings, where "<\/" and "<\u0021--" read back unchanged; the code goes in as a
// base64 data: URL instead, which no byte of it can break.
const inlineJson = (text) => text.replaceAll("</", "<\\/").replaceAll("<!--", "<\\u0021--");
const escape = (text) => text.replace(/[&<>"]/g, (c) => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"})[c]);

for (const figure of manifest) {
  const entry = [
    `import * as Plot from "@observablehq/plot";`,
    `import {mount} from "./host.js";`,
    `import {figure} from ${JSON.stringify(`./${figure.module}`)};`,
    `const rows = JSON.parse(document.getElementById("figure-data").textContent);`,
    `mount(document.getElementById("figure"), Plot, figure, rows, {width: 760});`
  ].join("\n");
  const built = await esbuild.build({
    stdin: {contents: entry, resolveDir: figures, loader: "js"},
    nodePaths: [join(dashboard, "node_modules")],
    bundle: true, format: "iife", minify: true, write: false, platform: "browser", target: "es2020",
    legalComments: "none", logLevel: "error"
  });
  const rows = await readFile(resolve(base, figure.data), "utf-8");
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(figure.title)}</title>
<style>
  body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem auto; max-width: 800px; padding: 0 1rem; color: #1b1e23; }
  h1 { font-size: 1.15rem; margin: 0 0 .4rem; }
  .figure-controls { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; margin: .6rem 0; }
  .figure-controls label { display: flex; align-items: center; gap: .35rem; }
  figcaption { color: #555; margin-top: .6rem; }
</style>
</head>
<body>
<figure>
<h1>${escape(figure.title)}</h1>
<div id="figure"></div>
<figcaption>${escape(figure.caption ?? "")}</figcaption>
</figure>
<script type="application/json" id="figure-data">${inlineJson(rows)}</script>
<script src="data:text/javascript;base64,${Buffer.from(built.outputFiles[0].contents).toString("base64")}"></script>
</body>
</html>
`;
  const out = resolve(base, figure.out);
  await writeFile(`${out}.tmp`, html);
  await rename(`${out}.tmp`, out); // atomic: a reader sees the old file or the new one
  console.log(`${figure.out}: ${(html.length / 1024).toFixed(0)} KiB`);
}
