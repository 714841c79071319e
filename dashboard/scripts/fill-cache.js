// Framework fetches every `npm:` import (its own client's too) from a CDN at build time, which these
// machines and CI cannot reach. This fills its cache, src/.observablehq/cache/_npm/<name>@<version>/,
// from node_modules (installed from package-lock.json) the way the CDN would: one ESM bundle per package
// (`_esm.js`), plus the wasm and worker files that are loaded by URL. Framework then resolves every
// version from these folder names and asks the network nothing. Run before each build; it skips what
// is already there for the same version.
// It also drops the data loaders' cached outputs: Framework reruns a loader only when the loader's own
// file changes, not when the results tables it reads do, and the build must show the current results.
import {copyFile, mkdir, readFile, rm, stat} from "node:fs/promises";
import {dirname, join, relative} from "node:path";
import {fileURLToPath} from "node:url";
import * as esbuild from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const cache = join(root, "src", ".observablehq", "cache", "_npm");
await rm(join(root, "src", ".observablehq", "cache", "data"), {recursive: true, force: true});

// name → [entry inside the package (null: its browser/module entry), files loaded by URL]
const PACKAGES = {
  "d3": [null, []],
  "htl": [null, []],
  "isoformat": [null, []], // asked for by Framework along with Inputs
  "@observablehq/plot": [null, []],
  "@observablehq/inputs": [null, []],
  "apache-arrow": ["Arrow.dom.mjs", []],
  "parquet-wasm": ["esm/parquet_wasm.js", ["esm/parquet_wasm_bg.wasm"]],
  "@duckdb/duckdb-wasm": [
    "dist/duckdb-browser.mjs",
    ["dist/duckdb-eh.wasm", "dist/duckdb-mvp.wasm", "dist/duckdb-browser-eh.worker.js", "dist/duckdb-browser-mvp.worker.js"]
  ]
};

// Libraries Framework's client (its recommended libraries, sample data sets, JSX) only asks the version of,
// to write the lazy import() these pages never call: an empty folder answers; the module is not fetched.
const VERSION_ONLY = {
  "@observablehq/sample-datasets": "1.0.1",
  "arquero": "8.0.3",
  "d3-dsv": "3.0.1",
  "echarts": "5.6.0",
  "leaflet": "1.9.4",
  "lodash": "4.17.21",
  "mapbox-gl": "3.9.0",
  "react": "19.1.0",
  "react-dom": "19.1.0",
  "topojson-client": "3.1.0"
};

const version = async (name) => JSON.parse(await readFile(join(root, "node_modules", name, "package.json"), "utf-8")).version;
const folder = async (name) => join(cache, `${name}@${await version(name)}`);
const exists = (path) => stat(path).then(() => true, () => false);

// A dependency that is itself in PACKAGES stays a separate module (one apache-arrow for DuckDB and
// FileAttachment.parquet(), whose Arrow tables DuckDB must recognise), imported by relative path.
function siblings(self) {
  return {
    name: "siblings",
    setup(build) {
      build.onResolve({filter: /^[^./]/}, async ({path}) => {
        const name = Object.keys(PACKAGES).find((p) => p !== self && (path === p || path.startsWith(`${p}/`)));
        if (!name || path !== name) return undefined;
        const target = join(await folder(name), "_esm.js");
        return {path: relative(await folder(self), target).replaceAll("\\", "/"), external: true};
      });
    }
  };
}

for (const [name, [entry, files]] of Object.entries(PACKAGES)) {
  const out = await folder(name);
  const pkg = join(root, "node_modules", name);
  if (!(await exists(join(out, "_esm.js")))) {
    await esbuild.build({
      entryPoints: [entry ? join(pkg, entry) : name],
      absWorkingDir: root,
      outfile: join(out, "_esm.js"),
      bundle: true,
      format: "esm",
      platform: "browser",
      mainFields: ["browser", "module", "main"],
      minify: true,
      logLevel: "warning",
      plugins: [siblings(name)]
    });
  }
  for (const file of files) {
    await mkdir(dirname(join(out, file)), {recursive: true});
    if (!(await exists(join(out, file)))) await copyFile(join(pkg, file), join(out, file));
  }
}
for (const [name, v] of Object.entries(VERSION_ONLY)) await mkdir(join(cache, `${name}@${v}`), {recursive: true});
