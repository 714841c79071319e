"""The README and docs/ against the project: metric tables are what `kdgat metrics` prints from the
committed metrics/*.json, relative links and the source files they name exist, every docs page is linked
from the README, and the README's layout table names every folder of the tree and nothing else."""

from __future__ import annotations

import json
import re
import subprocess
from itertools import takewhile
from pathlib import Path

import pytest

from kdgat.results.tables import metrics_table

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
# the line above a generated table: <!-- kdgat metrics DATASET [--metric NAME] [--scenarios A,B] -->
GENERATED = re.compile(r"^<!-- kdgat metrics (\S+)(?: --metric (\S+))?(?: --scenarios (\S+))? -->$", re.M)


def _table_after(text: str, pos: int) -> str:
    return "\n".join(takewhile(lambda line: line.startswith("|"), text[pos:].splitlines()))


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_metric_tables_are_the_committed_metrics(page: Path) -> None:
    text = page.read_text()
    for m in GENERATED.finditer(text):
        dataset, metric = m.group(1), m.group(2) or "f1"
        scenarios = m.group(3).split(",") if m.group(3) else None
        metrics = json.loads((REPO / "metrics" / f"{dataset}.json").read_text())
        expected = metrics_table(metrics, metric, scenarios)
        assert _table_after(text, m.end() + 1) == expected, f"{page.name}: rerun `{m.group(0)[5:-4]}`"


def test_the_readme_shows_the_headline_table() -> None:
    assert re.search(r"^<!-- kdgat metrics synth(?: --scenarios known,\S*)? -->$", README.read_text(), re.M)


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
        if "://" not in target:
            assert (page.parent / target).exists(), f"{page.name}: broken link {target}"


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_source_files_named_exist(page: Path) -> None:
    # code moves; the pages must follow (outputs such as flows/out/ are not source, so not checked)
    for path in re.findall(r"`((?:kdgat|stages|tests|container)/[^`<> ]*)`", page.read_text()):
        assert list(REPO.glob(path)), f"{page.name}: {path} does not exist"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = set(re.findall(r"\]\(docs/([^)#]+)", README.read_text()))
    assert {p.name for p in PAGES[1:]} - linked == set()


def _layout_paths() -> set[str]:
    section = README.read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    first_cells = re.findall(r"^\| ([^|]+) \|", section, flags=re.M)
    return {p.rstrip("/") for cell in first_cells for p in re.findall(r"`([^`]+)`", cell)}


def test_layout_table_names_every_folder_and_only_those() -> None:
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    files = tracked.stdout.splitlines()
    if not files:
        pytest.skip("not a git checkout")
    folders = {f.split("/")[0] for f in files if "/" in f and not f.startswith(".")}
    packages = {str(Path(f).parent) for f in files if f.startswith("kdgat/") and f.endswith("/__init__.py")}
    listed = _layout_paths()
    assert folders | (packages - {"kdgat"}) <= listed, "folders missing from README's layout table"
    assert all((REPO / p).exists() for p in listed), "README's layout table names what is not there"


def test_parity_figures_are_the_export_report() -> None:
    """docs/edge.md's parity and int8 tables and the README's sentence are reports/export/synth.json's."""
    from kdgat.edge.parity import int8_table, table

    report = json.loads((REPO / "reports" / "export" / "synth.json").read_text())
    edge_md = (REPO / "docs" / "edge.md").read_text()
    assert table(report) in edge_md and int8_table(report) in edge_md
    models = report["models"].values()
    outputs = max(v for m in models for k, v in m["max_abs_diff"].items() if k != "decision")
    metrics = max(m["metrics_max_abs_diff"] for m in models)
    flips = sum(m["decision_flips_test"] for m in models)
    sentence = f"{flips} decisions flip, outputs within {outputs:.1e}, metrics within {metrics:.1e}"
    assert sentence in README.read_text().replace("\n", " ")


def test_worked_example_selects_a_dataset_before_running_its_stages() -> None:
    """A `dvc repro STAGE@NAME` of docs/data.md exists only once params.yaml lists NAME: the page must
    say so above it, or a reader copying the commands meets DVC's 'Stage not found'."""
    text = (REPO / "docs" / "data.md").read_text()
    for m in re.finditer(r"dvc repro \w+@(\w+)", text):
        name = m.group(1)
        edit = re.compile(rf"^datasets: \[{name}\]$|datasets=\[{name}\]", re.M)  # the edit, not a mention
        assert edit.search(text[: m.start()]), f"data.md: select {name} before `{m.group(0)}`"


def test_the_readme_says_how_to_bring_your_own_data() -> None:
    """The front door names the three steps and links the step-by-step page (issue 16, done means)."""
    section = README.read_text().split("## Your own data", 1)[1].split("\n## ", 1)[0]
    for step in (
        "kdgat datasets add",
        "datasets: [",
        "synthetic: []",
        "dvc repro",
        "(docs/data.md#step-by-step)",
    ):
        assert step in section, step
    assert "## Step by step" in (REPO / "docs" / "data.md").read_text()  # the anchor the link names
