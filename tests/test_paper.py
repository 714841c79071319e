"""The paper (paper/, kdgat/paper/) without Quarto: its project config, cross-references, citations and
variables resolve; no results paragraph or table holds a hand-typed number (each check also shown failing
on a broken copy); the committed variables are those of the committed metrics; changing one result
changes only the numbers that derive from it; and the `paper` stage's library writes its files."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import yaml
from support.paper_data import committed_tables, write_results

from kdgat.config import load_params, with_overrides
from kdgat.paper import check
from kdgat.paper.build import VARIABLES, build_paper, variables_yaml
from kdgat.paper.figures import FIGURE_TABLES
from kdgat.paper.variables import PaperDataError, paper_variables, span

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "paper"


@pytest.fixture(scope="module")
def doc() -> check.Document:
    return check.read_document(PAPER / "index.qmd")


def broken(tmp_path: Path, old: str, new: str) -> Path:
    """A copy of the paper with ``old`` replaced by ``new`` in index.qmd."""
    copy = tmp_path / "paper"
    shutil.copytree(PAPER, copy, ignore=shutil.ignore_patterns("data", "_site", ".quarto", "html"))
    text = (copy / "index.qmd").read_text()
    assert old in text, old
    (copy / "index.qmd").write_text(text.replace(old, new, 1))
    return copy


def test_every_check_passes_on_the_paper() -> None:
    assert check.check_paper(PAPER) == []


def test_project_config_parses_and_names_files_that_exist(tmp_path: Path) -> None:
    config = yaml.safe_load((PAPER / "_quarto.yml").read_text())
    assert config["project"]["render"] == ["index.qmd"] and config["bibliography"] == "references.bib"
    assert check.project(PAPER) == []
    copy = broken(tmp_path, "# Introduction", "# Introduction")  # a copy to break the config of
    text = (copy / "_quarto.yml").read_text()
    text = text.replace("assets/paper.css", "assets/nothing.css").replace("data/*.parquet", "data/other.csv")
    (copy / "_quarto.yml").write_text(text)
    problems = check.project(copy)
    assert any("assets/nothing.css" in p for p in problems) and any("data/other.csv" in p for p in problems)


def test_cross_references_resolve(doc: check.Document, tmp_path: Path) -> None:
    assert check.cross_refs(doc) == []
    labels = set(check.LABEL.findall(doc.body)) | set(check.CELL_LABEL.findall(doc.source))
    # the four interactive figures and both tables are labelled and referred to
    assert {"fig-kd-transfer", "fig-latent", "fig-training-curves", "fig-attention", "tbl-f1"} <= labels
    copy = broken(tmp_path, "(@tbl-f1)", "(@tbl-nothing)")
    problems = check.cross_refs(check.read_document(copy / "index.qmd"))
    assert problems == ["@tbl-nothing: no such label"]


def test_citations_resolve_and_every_entry_is_cited(doc: check.Document, tmp_path: Path) -> None:
    assert check.citations(doc, PAPER / "references.bib") == []
    copy = broken(tmp_path, "[@miller2015remote]", "[@nobody2020]")
    problems = check.citations(check.read_document(copy / "index.qmd"), copy / "references.bib")
    assert problems == [
        "@nobody2020: not in references.bib",
        "references.bib: miller2015remote is never cited",
    ]


def test_references_can_be_looked_up() -> None:
    """Each entry names a DOI or an arXiv identifier, or where it was presented."""
    text = (PAPER / "references.bib").read_text()
    entries = re.split(r"^@", text, flags=re.M)[1:]
    assert len(entries) == len(check.bib_keys(PAPER / "references.bib")) >= 15
    for entry in entries:
        key = entry.split("{", 1)[1].split(",", 1)[0]
        assert re.search(r"^\s*(doi|eprint|howpublished)\s*=", entry, re.M), key


def test_variables_resolve(doc: check.Document, tmp_path: Path) -> None:
    names = check.VAR.findall(doc.source)
    assert len(set(names)) > 100  # the tables alone hold 9 models × 8 columns
    assert check.variables(doc, PAPER / "_variables.yml") == []
    copy = broken(tmp_path, "{{< var metric.f1.known.gat_large >}}", "{{< var metric.f1.known.gat_huge >}}")
    problems = check.variables(check.read_document(copy / "index.qmd"), copy / "_variables.yml")
    assert problems == ["{{< var metric.f1.known.gat_huge >}}: no such variable in _variables.yml"]


def test_results_and_limitations_are_checked_sections(doc: check.Document) -> None:
    headings = [h for h, _ in check.result_sections(doc)]
    assert headings == ["Results", "Limitations"]
    # their subsections are inside: the generalisation paragraph is checked too
    assert any("calibration traffic" in text for _, text in check.result_sections(doc))


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ("{{< var metric.f1.known.gat_large >}}: {{", "0.989: {{", "§ Results"),  # a metric in the text
        ("(F1 {{< var range.f1.unknown_attack.all >}}", "(F1 0.000–0.087", "§ Limitations"),
        ("{{< var count.known.gat_large.fp >}} of", "19 of", "§ Results"),  # a count
        ("| {{< var params.gat_large >}} |", "| 379,610 |", "table"),  # a table cell
    ],
)
def test_a_hand_typed_number_fails(tmp_path: Path, old: str, new: str, where: str) -> None:
    copy = broken(tmp_path, old, new)
    problems = check.literal_numbers(check.read_document(copy / "index.qmd"))
    assert len(problems) == 1 and problems[0].startswith(where), problems


def test_names_with_digits_are_not_numbers() -> None:
    assert check._numbers("F1 of `gat_large`, T² and x86_64, @fig-kd-transfer [@mnih2015dqn]") == []
    assert check._numbers("F1 0.989, 1,230 windows, 5.9× fewer, −0.006") == [
        "0.989",
        "1,230",
        "5.9",
        "−0.006",
    ]


def test_figures_import_modules_and_read_stage_tables(doc: check.Document, tmp_path: Path) -> None:
    assert check.figures(doc, PAPER) == []
    copy = broken(
        tmp_path, 'FileAttachment("data/attention.parquet")', 'FileAttachment("data/other.parquet")'
    )
    problems = check.figures(check.read_document(copy / "index.qmd"), copy)
    assert problems == ["{ojs} reads data/other.parquet, which the paper stage does not write"]


def _leaves(tree: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def test_committed_variables_are_the_committed_results() -> None:
    """paper/_variables.yml holds the numbers of metrics/synth.json and reports/ as committed."""
    built = variables_yaml(paper_variables("synth", committed_tables("synth")))
    assert (REPO / VARIABLES).read_text() == built, "rerun `dvc repro paper` and commit paper/_variables.yml"


def test_changing_a_result_changes_only_its_numbers() -> None:
    tables = committed_tables("synth")
    before = _leaves(paper_variables("synth", tables))
    metrics = tables["metrics"]
    hit = (pl.col("model") == "gat_large") & (pl.col("scenario") == "known") & (pl.col("metric") == "f1")
    assert metrics.filter(hit).height == 1
    changed = {
        **tables,
        "metrics": metrics.with_columns(pl.when(hit).then(0.5).otherwise(pl.col("value")).alias("value")),
    }
    after = _leaves(paper_variables("synth", changed))
    moved = {k for k in before if before[k] != after[k]}
    assert after["metric.f1.known.gat_large"] == "0.500"
    # the value itself, ranges holding the teacher GAT, its KD comparison, the fusion verdict, the goal
    assert {"metric.f1.known.gat_large", "range.f1.known.all", "kd.gat.known.teacher"} <= moved
    allowed = re.compile(
        r"^(metric\.f1\.known\.gat_large|range\.f1\.known\.\w+|kd\.gat\.known\.\w+|"
        r"fusion\.f1\.large\.known|goal\.known\.met_by|best\.known\.\w+)$"
    )
    assert all(allowed.match(k) for k in moved), sorted(moved)


def test_span_and_formats() -> None:
    assert span([0.0, 0.0871, None, 0.019]) == "0.000–0.087" and span([1.0, 1.0]) == "1.000"
    assert span([None]) == "n/a"


@pytest.mark.slow  # UMAP compiles its numba kernels on first use (about 20 s)
def test_build_paper_writes_the_figure_tables_and_variables(tmp_path: Path) -> None:
    results = write_results(tmp_path)
    params = load_params(REPO / "params.yaml")
    rows = build_paper(params, tmp_path, results)
    assert set(rows) == {*FIGURE_TABLES, "variables"} and all(rows.values())
    files = {p.name: p.read_bytes() for p in (tmp_path / "paper" / "data").iterdir()}
    assert set(files) == {f"{t}.parquet" for t in FIGURE_TABLES}
    umap = pl.read_parquet(tmp_path / "paper" / "data" / "latent_umap.parquet")
    assert umap["umap1"].is_finite().all() and umap.schema["index"] == pl.Int32  # no BigInt in the browser
    assert (tmp_path / VARIABLES).read_text().startswith("# The paper's numbers")
    build_paper(params, tmp_path, results)  # the same results give the same bytes
    assert {p.name: p.read_bytes() for p in (tmp_path / "paper" / "data").iterdir()} == files
    with pytest.raises(PaperDataError, match=re.escape("paper.dataset is 'wrx_inject'")):
        build_paper(with_overrides(params, {"paper.dataset": "wrx_inject"}), tmp_path, results)
