"""The `paper` DVC stage's work: read the results tables of every dataset, write the figures' tables to
paper/data/ and the text's numbers to paper/_variables.yml.

    build_paper(load_params())   # → {"kd_transfer": rows, ..., "variables": count}

Nothing is written unless everything could be computed; each file is replaced atomically, and the same
results give the same bytes (rows in input order, a seeded UMAP, no timestamps).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from kdgat.config import Params
from kdgat.io import atomic_path
from kdgat.paper.figures import FIGURE_TABLES, SOURCES, figure_tables
from kdgat.paper.variables import PaperDataError, paper_variables

PAPER = Path("paper")
DATA = PAPER / "data"
VARIABLES = PAPER / "_variables.yml"
HEADER = (
    "# The paper's numbers, written by the `paper` DVC stage (kdgat/paper/variables.py) from results/;\n"
    "# do not edit: `dvc repro paper` rewrites it. The text reads them as {{< var key.path >}}.\n"
)


def read_results(
    results: Path, datasets: Sequence[str], names: Sequence[str] = SOURCES
) -> dict[str, pl.DataFrame]:
    """The union over ``datasets`` of each results table in ``names``."""
    out = {}
    for name in names:
        parts = []
        for dataset in datasets:
            path = results / dataset / f"{name}.parquet"
            if not path.exists():
                raise PaperDataError(
                    f"{path}: not found; the results stage writes it (`dvc repro results@{dataset}`)"
                )
            parts.append(pl.read_parquet(path))
        out[name] = pl.concat(parts, how="diagonal_relaxed")
    return out


def count_leaves(tree: Any) -> int:
    return sum(count_leaves(v) for v in tree.values()) if isinstance(tree, dict) else 1


def variables_yaml(variables: dict[str, Any]) -> str:
    return HEADER + yaml.safe_dump(variables, sort_keys=False, allow_unicode=True, width=10_000)


def build_paper(params: Params, root: Path = Path(), results: Path | None = None) -> dict[str, int]:
    """Write paper/data/<table>.parquet and paper/_variables.yml under ``root`` from ``results`` (default
    root/results); returns the rows per figure table and the number of variables."""
    if params.paper.dataset not in params.datasets:
        raise PaperDataError(
            f"paper.dataset is {params.paper.dataset!r}, which params.yaml `datasets` does not list "
            f"({', '.join(params.datasets)}): the paper states the results of a dataset the study ran"
        )
    tables = read_results(results if results is not None else root / "results", params.datasets)
    variables = paper_variables(params.paper.dataset, tables)
    figures = figure_tables(tables, params.paper.umap)
    for name, df in figures.items():
        with atomic_path(root / DATA / f"{name}.parquet") as tmp:
            df.write_parquet(tmp, compression="zstd", statistics=False)
    with atomic_path(root / VARIABLES) as tmp:
        tmp.write_text(variables_yaml(variables))
    return {**{name: figures[name].height for name in FIGURE_TABLES}, "variables": count_leaves(variables)}
