"""The paper's four interactive figures in a real browser: each chart module of paper/figures, bundled
with Observable Plot and its rows into one self-contained HTML file (kdgat.paper.bundle, the submission's
assets/html/), opened from file:// in Debian's headless chromium with every network request refused. Each
must load without an error or a request beyond its own file, draw marks, and redraw differently when any
of its controls changes. The rows are the paper stage's own output (build_paper) over two datasets'
committed results (tests/support/paper_data.py). Screenshots land in paper/screenshots/ (git-ignored).
The dashboard's pages import the same modules; tests/test_dashboard.py drives them there."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.apt import ensure_packages
from support.dashboard_site import CHROMIUM_PACKAGES, missing_chromium
from support.paper_data import write_results

from kdgat.bench.dashboard import CHROMIUM, CHROMIUM_FLAGS
from kdgat.config import load_params, with_overrides
from kdgat.paper.build import build_paper
from kdgat.paper.bundle import FIGURES, bundle_figures

REPO = Path(__file__).resolve().parents[1]
SHOTS = REPO / "paper" / "screenshots"
DATASETS = ["synth", "wrx_inject"]  # both have committed results: the dataset selectors have a choice
# Plot's mark groups that are scaffolding, not data (as in tests/test_dashboard.py)
SCAFFOLD = re.compile(r"axis|grid|frame|rule|tick")
pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("node") is None:
        pytest.fail("node not found: the figure bundles need Node.js 20 (.ci/run has it)")
    root = tmp_path_factory.mktemp("paper")
    for dataset in DATASETS:
        results = write_results(root, dataset)
    params = with_overrides(
        load_params(REPO / "params.yaml"), {"datasets": DATASETS, "injected": ["wrx_inject"]}
    )
    build_paper(params, root, results)
    written = bundle_figures(REPO / "paper", root / "html", root / "paper" / "data")
    return {path.stem: path for path in written}


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


class Opened:
    """A bundle opened from file:// with the network cut: errors and requests recorded."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.context = browser.new_context(viewport={"width": 900, "height": 900}, offline=True)
        self.context.route(re.compile(r"^(?!file:|data:).*"), lambda route: route.abort())
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(path.as_uri(), wait_until="load")
        self.page.wait_for_selector("#figure svg", state="attached", timeout=30_000)

    def marks(self) -> list[int]:
        """Per chart, how many data marks it drew."""
        return self.page.evaluate(
            """(scaffold) => [...document.querySelectorAll('#figure svg')]
                .filter((svg) => svg.querySelector('g[aria-label]'))
                .map((svg) => [...svg.querySelectorAll(':scope > g[aria-label]')]
                    .filter((g) => !new RegExp(scaffold).test(g.getAttribute('aria-label')))
                    .reduce((n, g) => n + g.childElementCount, 0))""",
            SCAFFOLD.pattern,
        )

    def drawn(self) -> str:
        return self.page.evaluate("() => document.querySelector('#figure .figure-chart').innerHTML")

    def controls(self) -> list[str]:
        return self.page.evaluate(
            "() => [...document.querySelectorAll('#figure form [name]')].map((e) => e.name)"
        )

    def change(self, name: str) -> None:
        """Another value of the control ``name``: the next option of a select, the range's minimum."""
        self.page.evaluate(
            """(name) => {
                const input = document.querySelector(`#figure form [name="${name}"]`);
                if (input.tagName === 'SELECT') {
                    if (input.options.length < 2) throw new Error(`${name}: one option only`);
                    input.selectedIndex = (input.selectedIndex + 1) % input.options.length;
                    input.dispatchEvent(new Event('change'));
                } else {
                    input.value = input.min;
                    input.dispatchEvent(new Event('input'));
                }
            }""",
            name,
        )

    def close(self) -> None:
        self.context.close()


@pytest.mark.parametrize("figure", [f.module.removesuffix(".js") for f in FIGURES])
def test_bundle_opens_offline_and_draws(bundles: dict[str, Path], browser: Any, figure: str) -> None:
    opened = Opened(browser, bundles[figure])
    SHOTS.mkdir(parents=True, exist_ok=True)
    opened.page.screenshot(path=str(SHOTS / f"{figure}.png"), full_page=True)
    assert opened.errors == []
    assert [u for u in opened.requests if not u.startswith("data:")] == [bundles[figure].as_uri()]
    marks = opened.marks()
    assert marks and all(n > 0 for n in marks), f"charts with no marks: {marks}"
    opened.close()


CONTROLS = {
    "kd-transfer": ["dataset", "student"],
    "latent-space": ["dataset", "model", "colorBy"],
    "training-curves": ["dataset", "family", "quantity", "epoch"],
    "attention": ["dataset", "model", "layer"],
}


@pytest.mark.parametrize(("figure", "control"), [(f, c) for f, cs in CONTROLS.items() for c in cs])
def test_each_control_changes_the_figure(
    bundles: dict[str, Path], browser: Any, figure: str, control: str
) -> None:
    opened = Opened(browser, bundles[figure])
    assert opened.controls() == CONTROLS[figure]
    before = opened.drawn()
    opened.change(control)
    opened.page.wait_for_timeout(100)
    opened.page.screenshot(path=str(SHOTS / f"{figure}-{control}.png"), full_page=True)
    assert opened.drawn() != before, f"{figure}: another {control} drew the same"
    assert opened.errors == [] and all(n > 0 for n in opened.marks())
    opened.close()


def test_bundles_are_self_contained(bundles: dict[str, Path]) -> None:
    """No script, stylesheet or image is fetched from anywhere: everything is inline."""
    for path in bundles.values():
        html = path.read_text()
        assert not re.search(r"""(src|href)=["'](?!data:)""", html), path.name
