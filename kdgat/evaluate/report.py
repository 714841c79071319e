"""Evaluation: metrics per model × test scenario from per-graph prediction tables, plus DVC plot data and
figure tables.

Every model is judged through the fusion module's one rule, with every threshold chosen on validation by
the same ``calibrate`` (Youden's J): a GAT is ``fuse`` at α = 1 (p_attack >= its threshold on val), a VGAE
at α = 0 (score >= its threshold on val), a fusion model's stored decisions are checked against ``fuse`` +
``decide`` before they are scored. Threshold-free metrics (ROC-AUC, PR-AUC, detection rate at a fixed FPR)
rank by the raw score; thresholded ones (F1, FPR, ...) use the decision. Metric definitions and the null
convention for undefined values (one-class scenarios): kdgat/metrics.py.

Files written by ``write_evaluation(tables, metrics_path, plots_dir)`` for dataset D (plots_dir = plots/D):
    metrics/D.json                           {model: {scenario: {metric: value | null}}}
    plots/D/roc/<scenario>/<model>.csv       fpr, tpr, threshold      (≤ 200 points, from (0, 0) up)
    plots/D/pr/<scenario>/<model>.csv        recall, precision, threshold   (≤ 200 points)
    plots/D/confusion/<scenario>/<model>.csv actual, predicted (one row per graph; "benign" | "attack")
    plots/D/figures/dqn_policy.parquet       model, split, index, y, y_type, vgae_anomaly, p_attack,
                                             gat_attack, alpha, guard, fused, decision (fusion models)
    plots/D/figures/recon_errors.parquet     model, split, index, y, y_type, score, feat_mse, id_ce,
                                             nbr_bce, kl (those present), threshold (VGAE models)
    plots/D/figures/model_sizes.csv          model, kind, parameters, state_bytes, file_bytes (weights given)
    plots/D/figures/embeddings.parquet       model, split, index, y, y_type, pc1, pc2, pc1_share, pc2_share
                                             (weights and graphs given; gat_* and vgae_* models): the graph
                                             embedding (GAT pooled, VGAE mean μ) of ≤ ``per_split`` graphs per
                                             split, the same graphs for every model, projected on the first
                                             two principal components fitted per model; *_share = their
                                             share of the variance
    plots/D/figures/latents.parquet          model, split, index, y, y_type, latent (vgae_* models, weights
                                             and graphs given): the same graphs' mean μ, whole (float32)
    plots/D/figures/attention.parquet        model, split, index, y, layer, head, src, dst (node numbers
                                             within the graph), src_id, dst_id (CAN IDs, null = unknown ID),
                                             alpha, src_attack, dst_attack (the node carried an attack
                                             frame; null without the frame table) (weights and graphs given;
                                             gat_* models): every attention weight of 2 benign and 2 attack
                                             graphs of test_known
    plots/D/figures/attack_types.csv         y_type, attack_type: the graphs' attack type codes and names
                                             (graphs given; meta.json `attack_types`, 0 = "none")
A scenario whose split is empty or absent is left out (no keys, no files).

Calibrated scenarios. When the graphs hold a ``calibration`` split (benign windows of the unknown vehicle,
recorded before deployment; docs/data.md) and ``calibration_fpr`` is given, the unknown-vehicle scenarios
are also scored as ``<scenario>_calibrated``: the same test windows, scored as the graphs stage built them
through the vehicle's ID alignment (split ``test_<scenario>_calibrated``, when ``calibration.align_ids``)
and each model's decision threshold set on that vehicle's calibration windows by ``vehicle_threshold``
instead of on validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import torch

from kdgat.evaluate.figures import EMBED_PER_SPLIT, write_graph_figures
from kdgat.fusion.policy import (
    calibrate_vgae,
    decide,
    fuse,
    gat_alone,
    gat_attack,
    gat_calibration,
    guarded,
    vehicle_threshold,
    vgae_alone,
    vgae_anomaly,
)
from kdgat.io import atomic_path, write_json
from kdgat.metrics import Curve, Metric, binary_metrics, pr_curve, roc_curve, thin
from kdgat.study import Model

SCENARIOS = ("known", "unknown_vehicle", "unknown_attack", "unknown_both")
CALIBRATED = {s: f"{s}_calibrated" for s in ("unknown_vehicle", "unknown_both")}  # the unseen vehicle's
CALIBRATION_SPLIT = "calibration"
Kind = Literal["vgae", "gat", "fusion"]
Table = pl.DataFrame | Path
Metrics = dict[str, dict[str, dict[str, Metric]]]
_LABEL = {0: "benign", 1: "attack"}


class EvaluationError(ValueError):
    """A prediction table cannot be evaluated; the message names the model and the problem."""


def model_kind(name: str) -> Kind:
    """The family of one of the study's model names (kdgat/study.py)."""
    try:
        family = Model.parse(name).family
    except KeyError as err:
        raise EvaluationError(err.args[0]) from None
    return "vgae" if family == "vgae" else "gat" if family == "gat" else "fusion"


def _need(df: pl.DataFrame, name: str, cols: tuple[str, ...]) -> None:
    missing = [c for c in ("split", "index", "y", *cols) if c not in df.columns]
    if missing:
        raise EvaluationError(f"{name}: prediction table lacks {missing}; has {df.columns}")


def scored_view(name: str, table: Table) -> pl.DataFrame:
    """split, index, y, score (ranking, for the curves), decision (0/1) of one model, plus its own columns."""
    df = pl.read_parquet(table) if isinstance(table, Path) else table
    kind = model_kind(name)
    if kind == "gat":
        _need(df, name, ("p_attack",))
        p = df["p_attack"].to_numpy().astype(np.float64)
        val = _val_rows(name, df)
        threshold = gat_calibration(val["p_attack"].to_numpy(), val["y"].to_numpy())
        return df.with_columns(
            pl.Series("score", p),
            pl.Series("decision", decide(gat_alone(gat_attack(p, threshold))).astype(np.int8)),
            pl.lit(threshold).alias("threshold"),
        )
    if kind == "vgae":
        _need(df, name, ("score",))
        val = _val_rows(name, df)
        cal = calibrate_vgae(val["score"].to_numpy(), val["y"].to_numpy())
        # the raw score ranks the graphs: its logistic image saturates to ties at 1.0 for large errors
        anomaly = vgae_anomaly(df["score"].to_numpy(), cal.threshold, cal.scale)
        return df.with_columns(
            pl.Series("decision", decide(vgae_alone(anomaly)).astype(np.int8)),
            pl.lit(cal.threshold).alias("threshold"),
        )
    _need(df, name, ("vgae_anomaly", "gat_attack", "alpha", "fused", "decision"))
    fused = df["fused"].to_numpy()
    again = fuse(df["vgae_anomaly"].to_numpy(), df["gat_attack"].to_numpy(), df["alpha"].to_numpy())
    again = guarded(again, df["guard"].to_numpy() if "guard" in df.columns else None)
    stored = (df["decision"] == 1).to_numpy()
    if not np.allclose(fused, again, rtol=0, atol=1e-6) or not np.array_equal(decide(fused), stored):
        raise EvaluationError(f"{name}: stored fused scores/decisions disagree with the fusion rule")
    return df.with_columns(pl.col("fused").alias("score"))


def _val_rows(name: str, df: pl.DataFrame) -> pl.DataFrame:
    val = df.filter(pl.col("split") == "val")
    if val.height == 0:
        raise EvaluationError(f"{name}: no 'val' rows to choose the decision threshold on")
    return val


def _scenarios(view: pl.DataFrame, calibration_fpr: float | None = None) -> dict[str, pl.DataFrame]:
    parts = {s: view.filter(pl.col("split") == f"test_{s}") for s in SCENARIOS}
    calibration = view.filter(pl.col("split") == CALIBRATION_SPLIT)
    if calibration_fpr is not None and calibration.height:
        threshold = vehicle_threshold(calibration["score"].to_numpy(), calibration_fpr)
        for s, name in CALIBRATED.items():
            # the graphs stage's aligned copy of the scenario (calibration.align_ids), else the same rows
            aligned = view.filter(pl.col("split") == f"test_{name}")
            parts[name] = (aligned if aligned.height else parts[s]).with_columns(
                (pl.col("score") >= threshold).cast(pl.Int8).alias("decision"),
                pl.lit(threshold).alias("threshold"),
            )
    return {s: part for s, part in parts.items() if part.height}


def evaluate(pred_tables: Mapping[str, Table], calibration_fpr: float | None = None) -> Metrics:
    """{model: {scenario: {metric: value}}} for every model and every non-empty test scenario (and the
    calibrated ones, given ``calibration_fpr``)."""
    return {
        name: _metrics_of(name, scored_view(name, table), calibration_fpr)
        for name, table in pred_tables.items()
    }


def _metrics_of(name: str, view: pl.DataFrame, calibration_fpr: float | None) -> dict[str, dict[str, Metric]]:
    return {
        s: binary_metrics(
            part["y"].to_numpy(), part["score"].to_numpy(), part["decision"].to_numpy(), f"{name}/{s}"
        )
        for s, part in _scenarios(view, calibration_fpr).items()
    }


# --- files ----------------------------------------------------------------------------------------


def _write_csv(df: pl.DataFrame, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    df.write_csv(dest)


def _curve_frame(curve: Curve, x: str, y: str) -> pl.DataFrame:
    c = thin(curve)
    # +inf marks the "nothing flagged" end; CSV readers (DVC's Vega) want an empty cell, not "inf"
    thr = np.where(np.isfinite(c.threshold), c.threshold, np.nan)
    return pl.DataFrame({x: c.x, y: c.y, "threshold": thr}).with_columns(pl.col("threshold").fill_nan(None))


def model_size(path: Path) -> dict[str, int]:
    """Parameters (floating tensors of the saved state dict, buffers too), their bytes, the file's bytes."""
    blob: Any = torch.load(path, map_location="cpu", weights_only=True)
    state = blob.get("state_dict", blob) if isinstance(blob, dict) else blob
    if isinstance(state, torch.nn.Module):
        state = state.state_dict()
    tensors = [t for t in state.values() if isinstance(t, torch.Tensor) and t.is_floating_point()]
    if not tensors:
        raise EvaluationError(f"{path}: no weight tensors found (expected a state_dict)")
    return {
        "parameters": sum(t.numel() for t in tensors),
        "state_bytes": sum(t.numel() * t.element_size() for t in tensors),
        "file_bytes": path.stat().st_size,
    }


def write_evaluation(
    pred_tables: Mapping[str, Table],
    metrics_path: Path,
    plots_dir: Path,
    model_files: Mapping[str, Path] | None = None,
    graphs_dir: Path | None = None,
    per_split: int = EMBED_PER_SPLIT,
    calibration_fpr: float | None = None,
    frames: Path | None = None,
) -> Metrics:
    """Evaluate every model and write the metrics JSON, curves, confusion rows and figure tables (layout in
    the module docstring; the embedding and attention tables need both ``model_files`` and ``graphs_dir``,
    the graph folder the models were trained on, and the attention's node attack flags the ``frames`` table
    it was cut from). ``plots_dir`` is replaced as a whole so no stale model or scenario lingers."""
    views = {name: scored_view(name, table) for name, table in pred_tables.items()}
    metrics = {name: _metrics_of(name, view, calibration_fpr) for name, view in views.items()}
    with atomic_path(plots_dir, folder=True, force=True) as fresh:  # the stage's own out
        _write_plots(views, fresh, calibration_fpr)
        _write_figures(views, fresh / "figures", model_files or {})
        if model_files and graphs_dir is not None:
            write_graph_figures(model_files, graphs_dir, fresh / "figures", per_split, frames)
    write_json(metrics, metrics_path)
    return metrics


def _write_plots(views: Mapping[str, pl.DataFrame], fresh: Path, calibration_fpr: float | None) -> None:
    for name, view in views.items():
        for s, part in _scenarios(view, calibration_fpr).items():
            y, score = part["y"].to_numpy(), part["score"].to_numpy()
            roc, pr = roc_curve(y, score), pr_curve(y, score)
            if roc is not None:
                _write_csv(_curve_frame(roc, "fpr", "tpr"), fresh / "roc" / s / f"{name}.csv")
            if pr is not None:
                _write_csv(_curve_frame(pr, "recall", "precision"), fresh / "pr" / s / f"{name}.csv")
            confusion = part.select(
                pl.col("y").replace_strict(_LABEL, return_dtype=pl.String).alias("actual"),
                pl.col("decision")
                .cast(pl.Int64)
                .replace_strict(_LABEL, return_dtype=pl.String)
                .alias("predicted"),
            )
            _write_csv(confusion, fresh / "confusion" / s / f"{name}.csv")


_POLICY_COLS = (
    "split",
    "index",
    "y",
    "y_type",
    "vgae_anomaly",
    "p_attack",
    "gat_attack",
    "alpha",
    "guard",
    "fused",
    "decision",
)
_RECON_COLS = ("split", "index", "y", "y_type", "score", "feat_mse", "id_ce", "nbr_bce", "kl", "threshold")


def _stack(views: Mapping[str, pl.DataFrame], kind: Kind, cols: tuple[str, ...]) -> pl.DataFrame | None:
    parts = [
        v.select(pl.lit(name).alias("model"), *(c for c in cols if c in v.columns))
        for name, v in views.items()
        if model_kind(name) == kind
    ]
    return pl.concat(parts, how="diagonal_relaxed") if parts else None


def _write_figures(views: Mapping[str, pl.DataFrame], dest: Path, model_files: Mapping[str, Path]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for kind, cols, file in (("fusion", _POLICY_COLS, "dqn_policy"), ("vgae", _RECON_COLS, "recon_errors")):
        table = _stack(views, kind, cols)  # type: ignore[arg-type]
        if table is not None:
            table.write_parquet(dest / f"{file}.parquet", compression="zstd")
    if model_files:
        rows = [{"model": m, "kind": model_kind(m), **model_size(Path(p))} for m, p in model_files.items()]
        pl.DataFrame(rows).write_csv(dest / "model_sizes.csv")
