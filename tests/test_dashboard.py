"""The dashboard in a real browser and its Worker over HTTP: the tiny study's DAG run to its end (results
→ `dashboard` stage) in a temporary copy of the repository, the site served by `wrangler dev` (workerd)
with a local R2 bucket, every page opened in headless Debian chromium. Each page must load with no
console error and no failed request, draw marks in every chart, and the Leaderboard must show the rows
of `kdgat results leaderboard`, number for number, for every scenario. A screenshot of each page is
written to dashboard/screenshots/ (git-ignored): look at them."""

from __future__ import annotations

import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from support.apt import ensure_packages
from support.dashboard_site import CHROMIUM_PACKAGES, WorkerSite, missing_chromium
from support.tiny_project import copy_dashboard, run_in, study_repo

from kdgat.bench.dashboard import CHROMIUM, CHROMIUM_FLAGS, PAGES, visit

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "dashboard" / "screenshots"
# The fixture runs the whole tiny DAG (about 3 minutes on a quiet machine, far longer on a loaded one)
pytestmark = [pytest.mark.system, pytest.mark.timeout(2400)]
TINY: dict[str, dict] = {
    "synth": {"minutes": 0.5, "vehicles": 2},
    # two epochs, so the Training curves' "Up to epoch" slider has two values to choose between
    "train": {"max_epochs": 2, "patience": 2, "warmup_epochs": 0},
    "fusion": {"epochs": 2},
}
DUCKDB_PAGES = {"/leaderboard", "/kd-transfer"}
LITE = "synth_lite"  # the second dataset (lite_dataset)
LITE_LACKS = "attention"  # a table lite_dataset leaves out: the pages reading it must say so for LITE
# Per page, every selector besides the dataset (by label): each must change what is drawn. The Overview and
# KD transfer pages have only the dataset selector; the Dataset comparison page shows every dataset.
SELECTORS = {
    "/leaderboard": ["Scenario"],
    "/dataset-comparison": ["Scenario"],
    "/training-curves": ["Model", "Quantities", "Family", "Quantity", "Up to epoch"],
    "/timeline": ["Families"],
    "/dqn-policy": ["Fusion model", "Split"],
    "/vgae-latent": ["Model", "Colour by"],
    "/gat-state-space": ["Model", "Splits", "Colour by"],
    "/attention": ["Model", "Graph", "Layer", "Head"],
    "/can-bus-graph": ["Window"],
}
# The pages with a dataset selector: choosing LITE must change what is drawn, or, where LITE lacks the
# page's table (the value), draw that table's notice instead
DATASET_PAGES: dict[str, str | None] = {
    "/": None,
    "/leaderboard": None,
    "/kd-transfer": None,
    "/training-curves": None,
    "/timeline": None,
    "/dqn-policy": None,
    "/vgae-latent": None,
    "/gat-state-space": None,
    "/attention": LITE_LACKS,
    "/can-bus-graph": LITE_LACKS,
}
# Plot's mark groups that are scaffolding, not data
CHART = "#observablehq-main svg g[aria-label]"
SCAFFOLD = re.compile(r"axis|grid|frame|rule|tick")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("npm") is None:
        pytest.fail("npm not found: the dashboard needs Node.js 20 (.ci/run installs it)")
    if reuse := os.environ.get("KDGAT_DASHBOARD_STUDY"):
        # while iterating on the pages: a study copy made earlier, its dashboard sources refreshed
        repo = Path(reuse)
        copy_dashboard(repo)
    else:
        repo = study_repo(tmp_path_factory.mktemp("dash"), TINY)
    run_in(repo, ["dvc", "repro", "results"], timeout_s=1500)
    lite_dataset(repo / "results")
    run_in(repo, ["dvc", "repro", "dashboard"], timeout_s=1500)
    return repo


def lite_dataset(results: Path) -> None:
    """results/LITE: synth's tables without the plain students (`*_small`) and, per graph, only the even
    graphs (`index`), a second dataset whose every page differs from synth's, for the dataset selectors;
    and without the LITE_LACKS table, as results from before that table was written are."""
    (results / LITE).mkdir(exist_ok=True)
    for table in (results / "synth").glob("*.parquet"):
        if table.stem == LITE_LACKS:
            continue
        df = pl.read_parquet(table).with_columns(pl.lit(LITE).alias("dataset"))
        if "model" in df.columns:
            df = df.filter(~pl.col("model").str.ends_with("_small"))
        if "index" in df.columns:
            df = df.filter(pl.col("index") % 2 == 0)
        df.write_parquet(results / LITE / table.name)


@pytest.fixture(scope="module")
def site(study: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerSite]:
    with WorkerSite(study / "dashboard", study / "results", tmp_path_factory.mktemp("wrangler")) as running:
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = ensure_packages(CHROMIUM_PACKAGES, missing_chromium)
    if reason:
        pytest.fail(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield launched
        launched.close()


class Visit:
    """One page opened and left to finish: its console errors, failed requests and URLs fetched."""

    def __init__(self, browser: Any, url: str) -> None:
        self.errors: list[str] = []
        self.failed: list[str] = []
        self.fetched: list[str] = []
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("requestfailed", lambda r: self.failed.append(f"{r.url}: {r.failure}"))
        self.page.on("response", self._response)
        self.page.on("request", lambda r: self.fetched.append(r.url))
        self.page.goto(url, wait_until="load")
        self.settle()

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self.failed.append(f"{response.url}: {response.status}")

    def settle(self) -> None:
        """Until a chart or a missing-table notice is drawn and no cell is computing (Framework shows
        <observablehq-loading> while one is; a cell awaiting DuckDB shows nothing)."""
        self.page.wait_for_selector(f"{CHART}, [data-missing]", state="attached", timeout=120_000)
        self.page.wait_for_load_state("networkidle")
        self.page.wait_for_function("document.querySelectorAll('observablehq-loading').length === 0")
        self.page.wait_for_timeout(300)

    def marks(self) -> list[int]:
        """Per chart (a Plot SVG), how many data marks it drew (bars, dots, cells, lines, labels)."""
        return self.page.evaluate(
            """(scaffold) => [...document.querySelectorAll('#observablehq-main svg')]
                .filter((svg) => svg.querySelector('g[aria-label]'))
                .map((svg) => [...svg.querySelectorAll(':scope > g[aria-label]')]
                    .filter((g) => !new RegExp(scaffold).test(g.getAttribute('aria-label')))
                    .reduce((n, g) => n + g.childElementCount, 0))""",
            SCAFFOLD.pattern,
        )


@pytest.mark.parametrize("path", PAGES)
def test_page_loads_clean_and_draws(site: WorkerSite, browser: Any, path: str) -> None:
    visit = Visit(browser, site.url(path))
    SHOTS.mkdir(parents=True, exist_ok=True)
    visit.page.screenshot(path=str(SHOTS / f"{path.strip('/') or 'overview'}.png"), full_page=True)
    assert visit.errors == [] and visit.failed == []
    assert visit.page.locator(".observablehq--error").count() == 0
    assert visit.page.locator("[data-missing]").count() == 0  # every table this page reads is there
    # every selector on the page is one the selector tests below change
    labels = visit.page.locator("#observablehq-main form > label").all_inner_texts()
    tested = (["Dataset"] if path in DATASET_PAGES else []) + SELECTORS.get(path, [])
    assert sorted(labels) == sorted(tested), f"{path}: selectors {labels}, tested {tested}"
    marks = visit.marks()
    assert marks and all(n > 0 for n in marks), f"charts with no marks: {marks}"
    # Only pages that query with DuckDB download its wasm
    wasm = [u for u in visit.fetched if "duckdb" in u and u.endswith(".wasm")]
    assert bool(wasm) == (path in DUCKDB_PAGES), wasm
    visit.page.close()


def _drawn(visit: Visit) -> str:
    """Every chart of the page as drawn (the SVGs' markup)."""
    return visit.page.evaluate(
        "() => [...document.querySelectorAll('#observablehq-main svg')].map((svg) => svg.outerHTML).join('')"
    )


def _change(visit: Visit, label: str) -> None:
    """Pick another value of the input labelled ``label``: the next option of a select, an unchosen radio
    button, the first checkbox ticked (unticked), a slider's other end."""
    form = visit.page.locator("#observablehq-main form").filter(has=visit.page.get_by_text(label, exact=True))
    assert form.count() == 1, f"no single input labelled {label!r}"
    select = form.locator("select")
    if select.count():
        n, now = select.evaluate("(s) => [s.options.length, s.selectedIndex]")
        assert n > 1, f"{label}: one option only"
        select.select_option(index=(now + 1) % n)
    elif form.locator("input[type=radio]").count():
        form.locator("input[type=radio]:not(:checked)").first.check()
    elif form.locator("input[type=range]").count():
        moved = form.locator("input[type=range]").evaluate(
            """(r) => {
                const was = r.value;
                r.value = r.value === r.min ? r.max : r.min;
                r.dispatchEvent(new Event("input", {bubbles: true}));
                return r.value !== was;
            }"""
        )
        assert moved, f"{label}: one value only"
    else:
        form.locator("input[type=checkbox]:checked").first.uncheck()
    visit.settle()


@pytest.mark.parametrize(
    ("path", "label"), [(p, label) for p, labels in SELECTORS.items() for label in labels]
)
def test_selectors_change_what_is_drawn(site: WorkerSite, browser: Any, path: str, label: str) -> None:
    """Each selector besides the dataset; a screenshot after the change: screenshots/PAGE-LABEL.png."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    visit = Visit(browser, site.url(path))
    before = _drawn(visit)
    _change(visit, label)
    name = f"{path.strip('/')}-{label.lower().replace(' ', '-')}"
    visit.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    assert _drawn(visit) != before, f"{path}: choosing another {label} drew the same"
    assert visit.errors == [] and visit.page.locator(".observablehq--error").count() == 0
    visit.page.close()


def _choose_lite(visit: Visit) -> None:
    select = (
        visit.page.locator("#observablehq-main form")
        .filter(has=visit.page.get_by_text("Dataset", exact=True))
        .locator("select")
    )
    assert select.locator("option").all_inner_texts() == ["synth", LITE]
    select.select_option(label=LITE)
    visit.settle()


@pytest.mark.parametrize("path", [p for p, lacks in DATASET_PAGES.items() if lacks is None])
def test_dataset_selector_changes_what_is_drawn(site: WorkerSite, browser: Any, path: str) -> None:
    visit = Visit(browser, site.url(path))
    before = _drawn(visit)
    _choose_lite(visit)
    assert visit.page.locator("[data-missing]").count() == 0
    assert _drawn(visit) != before, f"{path}: choosing {LITE} drew the same"
    assert visit.errors == [] and visit.page.locator(".observablehq--error").count() == 0
    visit.page.close()


@pytest.mark.parametrize("path", [p for p, lacks in DATASET_PAGES.items() if lacks is not None])
def test_a_dataset_lacking_a_table_gets_its_notice(site: WorkerSite, browser: Any, path: str) -> None:
    """LITE has no attention table: the page still lists it and, chosen, says which table is missing
    instead of drawing an empty frame."""
    visit = Visit(browser, site.url(path))
    assert visit.page.locator("[data-missing]").count() == 0
    _choose_lite(visit)
    notice = visit.page.locator(f"[data-missing='{DATASET_PAGES[path]}']")
    assert notice.count() == 1 and LITE in notice.inner_text()
    assert visit.marks() == [] and visit.errors == []  # no chart left from synth
    assert visit.page.locator(".observablehq--error").count() == 0
    SHOTS.mkdir(parents=True, exist_ok=True)
    visit.page.screenshot(path=str(SHOTS / f"{path.strip('/')}-missing.png"), full_page=True)
    visit.page.close()


def test_bench_counts_what_duckdbs_worker_downloads(site: WorkerSite, browser: Any) -> None:
    """`make bench-dashboard`'s bytes include the wasm DuckDB's web worker fetches, on DuckDB's pages only."""
    _, total, wasm = visit(browser, site.url("/leaderboard"))
    assert wasm > 1_000_000 and total > wasm  # the compressed duckdb-eh.wasm, and the page's own files
    _, total, wasm = visit(browser, site.url("/"))
    assert wasm == 0 and total > 0


def test_alpha_histogram_counts_every_graph(site: WorkerSite, browser: Any, study: Path) -> None:
    """Each bar's title says how many graphs it holds; together they are the split's graphs, α = 1 (a fusion
    held to its fallback, the GAT alone) included."""
    visit = Visit(browser, site.url("/dqn-policy"))
    titles = visit.page.locator("#observablehq-main svg g[aria-label='rect'] title").all_text_contents()
    policy = pl.read_parquet(study / "results" / "synth" / "dqn_policy.parquet")
    model = sorted(policy["model"].unique())[0]
    shown = policy.filter((pl.col("model") == model) & (pl.col("split") == "test_known"))
    assert sum(int(t.split()[0]) for t in titles) == shown.height
    assert visit.errors == []
    visit.page.close()


def _cli_leaderboard(study: Path, scenario: str) -> list[list[str]]:
    out = run_in(
        study,
        [sys.executable, "-m", "kdgat.cli.main", "results", "leaderboard", "-d", "synth", "-s", scenario],
    )
    lines = [line for line in out.splitlines() if line.startswith("|")]
    head = [c.strip() for c in lines[0].strip("|").split("|")]
    keep = [
        head.index(c)
        for c in (
            "rank",
            "model",
            "f1",
            "precision",
            "recall",
            "fpr",
            "roc_auc",
            "mcc",
            "params",
            "params_total",
        )
    ]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    # Inputs.table leaves a null cell empty where the CLI prints —
    return [["" if row[i] == "—" else row[i] for i in keep] for row in rows]


def test_leaderboard_rows_equal_the_cli(site: WorkerSite, browser: Any, study: Path) -> None:
    visit = Visit(browser, site.url("/leaderboard"))
    scenario_select = visit.page.locator("form select").nth(1)
    scenarios = scenario_select.locator("option").all_inner_texts()
    scored = pl.read_parquet(study / "results" / "synth" / "metrics.parquet")["scenario"].unique()
    assert scenarios[0] == "known" and sorted(scenarios) == sorted(scored)  # the calibrated ones too
    drawn = set()
    for scenario in scenarios:
        scenario_select.select_option(label=scenario)
        visit.settle()
        # the first cell of a row is Inputs.table's selection column, empty here
        shown = visit.page.locator("table tbody tr").evaluate_all(
            "(trs) => trs.map((tr) => [...tr.querySelectorAll('td')].slice(1)"
            ".map((td) => td.textContent.trim()))"
        )
        assert shown == _cli_leaderboard(study, scenario), scenario
        drawn.add(visit.page.locator("#observablehq-main svg:has(g[aria-label='bar'])").inner_html())
    assert len(drawn) == len(scenarios)  # the chart follows the selector
    visit.page.close()


def _get(site: WorkerSite, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(site.url(path), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_worker_answers_ranges_on_r2_objects(site: WorkerSite, study: Path) -> None:
    data = (study / "results" / "synth" / "metrics.parquet").read_bytes()
    status, headers, body = _get(site, "/data/results/synth/metrics.parquet", Range="bytes=4-103")
    assert status == 206 and body == data[4:104]
    assert headers["content-range"] == f"bytes 4-103/{len(data)}" and headers["accept-ranges"] == "bytes"
    status, _, body = _get(site, "/data/results/synth/metrics.parquet", Range="bytes=-8")
    assert status == 206 and body == data[-8:]  # the Parquet footer, DuckDB's first read
    status, headers, body = _get(site, "/data/results/synth/metrics.parquet")
    assert status == 200 and body == data and "max-age=300" in headers["cache-control"]
    status, _, _ = _get(site, "/data/results/synth/metrics.parquet", **{"If-None-Match": headers["etag"]})
    assert status == 304


def test_worker_serves_the_large_wasm_from_r2_immutable(site: WorkerSite) -> None:
    wasm = "/_npm/@duckdb/duckdb-wasm@1.29.0/dist/duckdb-eh.wasm"
    status, headers, body = _get(site, wasm, Range="bytes=0-3")
    assert status == 206 and body == b"\0asm" and headers["content-type"] == "application/wasm"
    assert "immutable" in headers["cache-control"] and headers["etag"]


def test_worker_static_assets_carry_cache_headers(site: WorkerSite) -> None:
    status, headers, body = _get(site, "/leaderboard")
    assert status == 200 and b"Leaderboard" in body and headers["etag"]
    hashed = re.search(rb'href="(\./_observablehq/[^"]+\.css)"', body) or re.search(
        rb'src="(\./_observablehq/[^"]+)"', body
    )
    assert hashed
    status, headers, _ = _get(site, hashed.group(1).decode()[1:])
    assert status == 200 and "immutable" in headers["cache-control"]


@pytest.mark.parametrize(
    "path",
    [
        "/data/",  # no listing
        "/data/results/",
        "/data/nothing.parquet",
        "/data/..%2fsite%2f_npm",  # encoded traversal out of public/results
        "/data/%2e%2e/%2e%2e/secret",
        "/data/results%5c..%5csecret",  # backslashes
        "/paper/",  # reserved for the paper
        "/not-a-page",
    ],
)
def test_worker_refuses_what_is_not_public(site: WorkerSite, path: str) -> None:
    status, _, _ = _get(site, path)
    assert status in (400, 404)


def test_worker_refuses_writes(site: WorkerSite) -> None:
    request = urllib.request.Request(site.url("/data/results/synth/metrics.parquet"), data=b"x", method="PUT")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=30)
    assert err.value.code == 405
