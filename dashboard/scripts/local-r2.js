// Fills the local R2 bucket that `wrangler dev --persist-to .wrangler/state` serves (make preview, the
// browser tests) as `make deploy` and `make publish-results` fill the real one: dist/r2/site/** under
// public/site/, results/<dataset>/*.parquet under public/results/, and the rendered paper
// (../paper/_site/**, when `make paper` has rendered it) under public/paper/.
//   node scripts/local-r2.js RESULTS_DIR [PERSIST_DIR]
import {readdir, readFile} from "node:fs/promises";
import {dirname, join, relative, resolve} from "node:path";
import {fileURLToPath} from "node:url";
import {Miniflare} from "miniflare";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const [results = join(root, "..", "results"), persist = join(root, ".wrangler", "state")] = process.argv.slice(2);
const bucketName = /bucket_name = "([^"]+)"/.exec(await readFile(join(root, "wrangler.toml"), "utf-8"))[1];

async function* files(dir) {
  let entries;
  try {
    entries = await readdir(dir, {withFileTypes: true});
  } catch {
    return; // nothing built or published yet
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

const mf = new Miniflare({
  modules: true,
  script: "export default {fetch() { return new Response(null, {status: 204}); }}",
  r2Buckets: {BUCKET: bucketName},
  r2Persist: join(resolve(persist), "v3", "r2")
});
const bucket = await mf.getR2Bucket("BUCKET");
const uploads = [
  [join(root, "dist", "r2", "site"), "public/site/"],
  [resolve(results), "public/results/"],
  [join(root, "..", "paper", "_site"), "public/paper/"]
];
let count = 0;
for (const [dir, prefix] of uploads) {
  for await (const path of files(dir)) {
    if (prefix.endsWith("results/") && !path.endsWith(".parquet")) continue;
    // a copy: a Buffer views a shared pool, which the proxy to workerd cannot pass
    await bucket.put(prefix + relative(dir, path).replaceAll("\\", "/"), new Uint8Array(await readFile(path)));
    count++;
  }
}
await mf.dispose();
console.log(`${count} objects in the local R2 bucket ${bucketName} (${relative(root, resolve(persist))})`);
