"""The paper's interactive figures as self-contained HTML files for the submission's assets/html/ (TMLR
"Beyond PDF"): chart module + Observable Plot + the figure's rows in one file that opens from file:// with
no network. The rows come from the paper stage's tables (paper/data/); paper/scripts/bundle-figures.js
bundles with the dashboard's esbuild, so this needs Node.js and dashboard/node_modules, not Quarto.

    bundle_figures(Path("paper"))   # → [paper/assets/html/kd-transfer.html, ...]
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from kdgat.dashboard import install
from kdgat.io import DataError, check_output


@dataclass(frozen=True)
class Figure:
    module: str  # in paper/figures/
    table: str  # paper/data/<table>.parquet
    title: str
    caption: str


FIGURES = (
    Figure(
        "kd-transfer.js",
        "kd_transfer",
        "Knowledge distillation: student vs teacher F1",
        "Per model family and test scenario, the F1 of a student (distilled, or trained alone) against its "
        "teacher's; on the diagonal the student matches the teacher.",
    ),
    Figure(
        "latent-space.js",
        "latent_umap",
        "VGAE latent space (UMAP)",
        "Each graph's mean VGAE latent on two UMAP coordinates, coloured by attack type; hover a point for "
        "its window (split and graph number).",
    ),
    Figure(
        "training-curves.js",
        "training_curves",
        "Training curves: teacher vs students",
        "One logged quantity per epoch for the teacher, the distilled student and the student trained alone; "
        "the slider stops the curves at an epoch, the dashed lines mark the epoch each run kept.",
    ),
    Figure(
        "attention.js",
        "attention",
        "GAT attention by layer",
        "Attention from source to destination CAN ID on a sample window, averaged over the heads of the "
        "chosen layer; • marks the IDs that carried attack frames.",
    ),
)


class BundleError(DataError):
    """A bundle could not be built; the message says why."""


def _clean(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def figure_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise BundleError(f"{path}: not found; `dvc repro paper` writes it")
    return [{k: _clean(v) for k, v in row.items()} for row in pl.read_parquet(path).to_dicts()]


def bundle_figures(
    paper: Path = Path("paper"), out: Path | None = None, data: Path | None = None
) -> list[Path]:
    """One HTML file per figure of FIGURES in ``out`` (default paper/assets/html) from the tables in
    ``data`` (default paper/data, as the paper stage writes them)."""
    out = out if out is not None else paper / "assets" / "html"
    for fig in FIGURES:  # a bad --out (a file, or a folder where a page goes) fails before Node is asked
        check_output(out / fig.module.replace(".js", ".html"))
    node = shutil.which("node")
    if node is None:
        raise BundleError("node not found: the figure bundles need Node.js 20 or later (docs/paper.md)")
    data = data if data is not None else paper / "data"
    out.mkdir(parents=True, exist_ok=True)
    install(paper.resolve().parent / "dashboard")  # esbuild and Plot, from the dashboard's lock file
    with tempfile.TemporaryDirectory(prefix="kdgat-bundles-") as tmp:
        manifest = []
        for fig in FIGURES:
            rows = Path(tmp) / f"{fig.table}.json"
            rows.write_text(json.dumps(figure_rows(data / f"{fig.table}.parquet"), allow_nan=False))
            target = (out / fig.module.replace(".js", ".html")).resolve()
            manifest.append({**fig.__dict__, "data": str(rows), "out": str(target)})
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest))
        script = paper / "scripts" / "bundle-figures.js"
        done = subprocess.run(
            [node, str(script), str(Path(tmp) / "manifest.json")], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise BundleError(f"{script} failed:\n{done.stderr.strip()}")
    return [out / f.module.replace(".js", ".html") for f in FIGURES]
