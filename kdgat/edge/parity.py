"""Does the ONNX file decide as the study did? Its prediction table over the val and test graphs is put
through the evaluation's own code (kdgat/evaluate/report.py: thresholds chosen on val, decisions, metrics)
and compared with the PyTorch table and metrics/<dataset>.json: max |Δ| per column, decisions that flip
(the goal is 0) and every metric recomputed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import polars as pl
from tqdm import tqdm

from kdgat.edge.export import GRAPH_INPUTS
from kdgat.edge.runtime import run_rows
from kdgat.evaluate.report import evaluate, scored_view
from kdgat.fusion.policy import KEY
from kdgat.train.data import load_graphs

# graph batches in index order: the same cut the PyTorch predictions used
from kdgat.train.infer import _batches


def onnx_predictions(
    sess: ort.InferenceSession, graphs_dir: Path, splits: Sequence[str], batch_size: int, what: str
) -> pl.DataFrame:
    """The prediction table (split, index, y, y_type, the model's columns) computed by ONNX Runtime."""
    frames = []
    for split in splits:
        graphs = load_graphs(graphs_dir, split)
        parts: dict[str, list[np.ndarray]] = {}
        batches = _batches(graphs, np.arange(len(graphs)), batch_size)
        total = -(-len(graphs) // batch_size)
        for idx, b in tqdm(batches, total=total, desc=f"{what} {split}", unit="batch", leave=False):
            out = run_rows(sess, {k: t.numpy() for k, t in zip(GRAPH_INPUTS, b.inputs(), strict=True)})
            for k, v in {"index": idx.numpy(), "y": b.y.numpy(), "y_type": b.y_type.numpy(), **out}.items():
                parts.setdefault(k, []).append(v)
        if parts:
            cols = {k: np.concatenate(v) for k, v in parts.items()}
            frames.append(pl.DataFrame(cols).select(pl.lit(split).alias("split"), pl.all()))
    return pl.concat(frames)


def _max_abs(onnx: pl.DataFrame, study: pl.DataFrame, columns: Sequence[str]) -> dict[str, float]:
    both = onnx.join(study, on=list(KEY), suffix="_study")
    if both.height != onnx.height:
        raise ValueError(f"{onnx.height - both.height} ONNX rows have no PyTorch row (same graphs expected)")
    return {
        c: float((both[c].cast(pl.Float64) - both[f"{c}_study"].cast(pl.Float64)).abs().max() or 0.0)  # type: ignore[arg-type]
        for c in columns
    }


def parity(
    name: str,
    onnx: pl.DataFrame,
    study: pl.DataFrame,
    metrics: dict[str, Any],
    calibration_fpr: float | None = None,
) -> dict[str, Any]:
    """The report of one model: ``onnx`` and ``study`` are its prediction tables (``study`` may hold more
    splits), ``metrics`` its entry of metrics/<dataset>.json (the calibrated scenarios too, given the
    evaluation's ``calibration_fpr`` and a calibration split)."""
    study = study.filter(pl.col("split").is_in(onnx["split"].unique().to_list()))
    columns = [c for c in onnx.columns if c not in (*KEY, "y", "y_type") and c in study.columns]
    mine, theirs = scored_view(name, onnx), scored_view(name, study)
    both = mine.select(*KEY, "decision").join(theirs.select(*KEY, "decision"), on=list(KEY), suffix="_study")
    test = both.filter(pl.col("split").str.starts_with("test_"))
    flips = int((test["decision"] != test["decision_study"]).sum())
    recomputed = evaluate({name: onnx}, calibration_fpr)[name]
    deltas = [
        abs(float(v) - float(metrics[s][k]))
        for s, row in recomputed.items()
        for k, v in row.items()
        if v is not None and metrics.get(s, {}).get(k) is not None
    ]
    return {
        "graphs": {"test": test.height, "val": both.height - test.height},
        "max_abs_diff": _max_abs(onnx, study, columns),
        "decision_flips_test": flips,
        "decision_flips_val": int((both["decision"] != both["decision_study"]).sum()) - flips,
        "f1": {
            s: {"onnx": row["f1"], "study": metrics.get(s, {}).get("f1")} for s, row in recomputed.items()
        },
        "metrics_max_abs_diff": max(deltas, default=0.0),
        "metrics_equal": recomputed == {s: metrics[s] for s in recomputed if s in metrics},
    }


def table(report: dict[str, Any], top: int = 3) -> str:
    """The parity table of docs/edge.md from the export stage's report (reports/export/<dataset>.json):
    per file, decisions flipped, how far the metrics recomputed from ONNX lie from the study's, and the
    outputs that differ most (a decision column is counted in the flips, not here)."""
    lines = [
        "| model | file | flips test / val | metrics vs study (max \\|Δ\\|) "
        "| largest max \\|Δ\\| of the outputs |",
        "| --- | ---: | ---: | --- | --- |",
    ]
    for name, m in report["models"].items():
        diffs = sorted(
            ((v, k) for k, v in m["max_abs_diff"].items() if k != "decision" and v > 0), reverse=True
        )
        largest = ", ".join(f"{k} {v:.1e}" for v, k in diffs[:top]) or "exact"
        metrics = "identical" if m["metrics_max_abs_diff"] == 0 else f"{m['metrics_max_abs_diff']:.1e}"
        flips = f"{m['decision_flips_test']} / {m['decision_flips_val']}"
        lines.append(f"| {name} | {m['file_bytes'] / 1024:,.0f} KiB | {flips} | {metrics} | {largest} |")
    return "\n".join(lines)


def int8_table(report: dict[str, Any], scenario: str = "known") -> str:
    """The int8 table of docs/edge.md from the export stage's report: per graph model quantized, its size
    against the float file, the single-graph latency the export measured, flips and the F1 change."""
    graphs = max(m["graphs"]["test"] for m in report["models"].values())
    lines = [
        f"| model | size vs float | p50, float → int8 (one graph) | decisions flipped "
        f"({graphs:,} test graphs) | {scenario} F1, study → int8 |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name, m in report["models"].items():
        if "int8" not in m:
            continue
        q = m["int8"]
        ms, f1 = q["single_graph_ms"], q["f1"][scenario]
        lines.append(
            f"| {name} | {q['size_ratio']:.2f} | {ms['float']:.2f} → {ms['int8']:.2f} ms "
            f"| {q['decision_flips_test']} | {f1['study']:.4f} → {f1['int8']:.4f} |"
        )
    return "\n".join(lines)
