// After `observable build`, make dist/site fit Workers static assets:
// - Files over 25 MiB (the DuckDB wasm, 35 and 40 MB) are refused as assets: each moves from
//   dist/site/<path> to dist/r2/site/<path>; `make deploy` uploads those to the R2 bucket under
//   public/site/<path>, where the Worker answers a request for /<path> that no asset holds
//   (worker/index.js). The site's URLs do not change.
// - A _headers file marks what Framework names by content hash or version as immutable.
import {mkdir, readdir, rename, stat, writeFile} from "node:fs/promises";
import {dirname, join, relative} from "node:path";
import {fileURLToPath} from "node:url";

const ASSET_LIMIT = 25 * 1024 * 1024;
const HASHED = ["/_npm/*", "/_observablehq/*", "/_file/*", "/_import/*"];
const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");
const site = join(dist, "site");

async function* files(dir) {
  for (const entry of await readdir(dir, {withFileTypes: true})) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

for await (const path of files(site)) {
  if ((await stat(path)).size <= ASSET_LIMIT) continue;
  const target = join(dist, "r2", "site", relative(site, path));
  await mkdir(dirname(target), {recursive: true});
  await rename(path, target);
  console.log(`over 25 MiB, served from R2: /${relative(site, path)}`);
}
await writeFile(join(site, "_headers"), HASHED.map((p) => `${p}\n  Cache-Control: public, max-age=31536000, immutable\n`).join(""));
