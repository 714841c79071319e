"""What the Metaflow KD flow needs besides its wiring (which lives in flows/kd_flow.py alone): Metaflow's
settings, which it reads when it is imported (``metaflow_env`` sets project-local defaults first), and the
flow's table: ``split_rows`` judges a trained model on validation and every test split by the evaluation's
rule (kdgat.evaluate.report.scored_view, kdgat.metrics.binary_metrics), ``markdown`` prints the rows.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from kdgat.study import Model

# polars and the evaluation are imported inside the functions that need them: Metaflow imports the flow
# (and so this module) in every task, and its start and end tasks need none of them.

ROLES = {"large": "teacher", "small_kd": "student"}
METRICS = ("n", "f1", "precision", "recall", "fpr")


def metaflow_env(root: str | Path | None = None) -> dict[str, str]:
    """Defaults (never overriding what is set) that keep Metaflow inside the project at ``root`` (default:
    the working directory): datastore and metadata in <root>/.metaflow/, configuration read from
    <root>/.metaflowconfig/ instead of ~/.metaflowconfig, a user name (as root Metaflow will not guess
    one), and the S3 datastore whenever METAFLOW_DATASTORE_SYSROOT_S3 names one."""
    base = Path(root or os.getcwd()).resolve()
    user = os.environ.get("USER", "")
    defaults = {
        "METAFLOW_DATASTORE_SYSROOT_LOCAL": str(base),
        "METAFLOW_HOME": str(base / ".metaflowconfig"),
        "METAFLOW_USER": user if user and user != "root" else "kdgat",
    }
    if os.environ.get("METAFLOW_DATASTORE_SYSROOT_S3"):
        defaults["METAFLOW_DEFAULT_DATASTORE"] = "s3"
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
    return {k: os.environ[k] for k in defaults}


def split_rows(dataset: str, trained: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per split other than train: dataset, model, role, params, split and METRICS."""
    import polars as pl

    from kdgat.evaluate.report import scored_view
    from kdgat.metrics import binary_metrics

    name = trained["model"]
    view = scored_view(name, pl.read_parquet(trained["predictions"]))
    rows = []
    for split in view["split"].unique(maintain_order=True).to_list():
        if split == "train":
            continue
        part = view.filter(pl.col("split") == split)
        y, score, decision = (part[c].to_numpy() for c in ("y", "score", "decision"))
        m = binary_metrics(y, score, decision, f"{name}/{split}")
        rows.append(
            {
                "dataset": dataset,
                "model": name,
                "role": ROLES.get(Model.parse(name).variant, "other"),
                "params": trained["report"]["params_count"],
                "split": split,
                **{k: m[k] for k in METRICS},
            }
        )
    return rows


def markdown(rows: Sequence[Mapping[str, Any]], metric: str = "f1") -> str:
    """Dataset × model rows, one column per split (val first), ``metric`` per cell."""
    splits = list(dict.fromkeys(r["split"] for r in sorted(rows, key=lambda r: r["split"] != "val")))
    cells: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        cells.setdefault((r["dataset"], r["role"], r["model"]), {})[r["split"]] = r[metric]
    lines = [
        f"| dataset | role | model | {' | '.join(splits)} |",
        "| --- | --- | --- |" + " ---: |" * len(splits),
    ]
    for (dataset, role, model), by_split in cells.items():
        values = ["—" if by_split.get(s) is None else f"{by_split[s]:.3f}" for s in splits]
        lines.append(f"| {dataset} | {role} | {model} | " + " | ".join(values) + " |")
    return "\n".join(lines)
