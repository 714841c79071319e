// Workers static assets refuse files over 25 MiB; the DuckDB wasm files are 35 and 40 MB. After the
// build, each such file moves from dist/site/<path> to dist/r2/site/<path>: `make deploy` uploads those
// to the R2 bucket under public/site/<path>, where the Worker answers a request for /<path> that no asset
// holds (worker/index.js). The site's URLs do not change.
import {mkdir, readdir, rename, stat} from "node:fs/promises";
import {dirname, join, relative} from "node:path";
import {fileURLToPath} from "node:url";

const ASSET_LIMIT = 25 * 1024 * 1024;
const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");

async function* files(dir) {
  for (const entry of await readdir(dir, {withFileTypes: true})) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

for await (const path of files(join(dist, "site"))) {
  if ((await stat(path)).size <= ASSET_LIMIT) continue;
  const target = join(dist, "r2", "site", relative(join(dist, "site"), path));
  await mkdir(dirname(target), {recursive: true});
  await rename(path, target);
  console.log(`over 25 MiB, served from R2: /${relative(join(dist, "site"), path)}`);
}
