"""The dashboard's Worker serves the published paper under /paper/: the Worker itself (worker/index.js)
under Miniflare (workerd) with an R2 bucket holding a rendered paper at public/paper/, as `make deploy`
uploads paper/_site. Lighter than tests/test_dashboard.py's site (no study, no build)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.system  # starts workerd

# Puts a two-file paper in the bucket, then fetches each path and prints status, type, cache, body
# (run from a file: under `node -e` Miniflare never finishes starting)
SCRIPT = """
import {createRequire} from "node:module";
import {join} from "node:path";
import {pathToFileURL} from "node:url";
const dashboard = process.cwd();
const entry = createRequire(join(dashboard, "package.json")).resolve("miniflare");
const {Miniflare} = await import(pathToFileURL(entry).href);
const worker = join(dashboard, "worker/index.js");
const mf = new Miniflare({modules: true, scriptPath: worker, r2Buckets: ["BUCKET"]});
const bucket = await mf.getR2Bucket("BUCKET");
await bucket.put("public/paper/index.html", "<!doctype html><title>paper</title>");
await bucket.put("public/paper/figures/kd-transfer.js", "export const figure = {};");
const out = {};
for (const path of PATHS) {
  const r = await mf.dispatchFetch(`http://localhost${path}`, {redirect: "manual"});
  const h = (name) => r.headers.get(name);
  out[path] = [r.status, h("content-type"), h("cache-control"), h("location"), await r.text()];
}
await mf.dispose();
console.log(JSON.stringify(out));
"""
PATHS = ["/paper", "/paper/", "/paper/figures/kd-transfer.js", "/paper/nothing.html", "/paper/figures/"]


@pytest.fixture(scope="module")
def answers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list]:
    node = shutil.which("node")
    if node is None or not (REPO / "dashboard" / "node_modules" / "miniflare").is_dir():
        pytest.fail("node and dashboard/node_modules (npm ci) are needed: .ci/run installs them")
    script = tmp_path_factory.mktemp("worker") / "paper-route.mjs"
    script.write_text(SCRIPT.replace("PATHS", json.dumps(PATHS)))
    done = subprocess.run(
        [node, str(script)],
        cwd=REPO / "dashboard",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_paper_index_and_files_are_served(answers: dict[str, list]) -> None:
    status, kind, cache, _, body = answers["/paper/"]
    assert status == 200 and kind.startswith("text/html") and "<title>paper</title>" in body
    assert "max-age=300" in cache  # republished papers are revalidated, never immutable
    status, kind, _, _, body = answers["/paper/figures/kd-transfer.js"]
    assert status == 200 and kind == "text/javascript" and "figure" in body


def test_paper_without_slash_redirects(answers: dict[str, list]) -> None:
    status, _, _, location, _ = answers["/paper"]
    assert status == 301 and location == "/paper/"


def test_missing_paper_files_and_listings_are_404(answers: dict[str, list]) -> None:
    assert answers["/paper/nothing.html"][0] == 404
    assert answers["/paper/figures/"][0] == 404  # a folder without index.html: no listing
