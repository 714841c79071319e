"""The tables the paper's four interactive figures read (paper/data/<table>.parquet), cut from the results
tables of every dataset so that the paper's figures and the dashboard show the same rows:

    kd_transfer       the kd_transfer view (the CLI's and the dashboard's SQL): teacher, distilled and
                      plain student F1 per dataset × family × scenario
    latent_umap       each VGAE's mean latents (results `latents`) on two UMAP coordinates, fitted per
                      dataset and model: dataset, model, split, index, y, y_type, attack_type, umap1, umap2
    training_curves   epoch_metrics of the VGAEs and GATs with their family, variant and kept epoch
    attention         the GATs' attention on the sample graphs (results `attention`), averaged over each
                      layer's heads: one row per dataset × model × graph × layer × edge

Integer columns are written as int32 (int64 would reach the browser as BigInt, which Plot cannot scale).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import polars as pl

from kdgat.config import UMAPParams
from kdgat.paper.variables import PaperDataError, kd_rows

FIGURE_TABLES = ("kd_transfer", "latent_umap", "training_curves", "attention")
# The results tables the figures (and the variables) are cut from
SOURCES = ("metrics", "runs", "datasets", "epoch_metrics", "latents", "attention")
CURVE_FAMILIES = ("vgae", "gat")  # the fusion's DQN logs rewards, not a teacher-vs-student curve
CURVE_METRICS = ("train_loss", "val_loss", "val_auc", "val_f1")


def js_friendly(df: pl.DataFrame) -> pl.DataFrame:
    """int64 columns as int32 where every value fits, else float64."""
    casts = []
    for name, dtype in df.schema.items():
        if dtype == pl.Int64:
            col = df[name]
            low, high = col.min(), col.max()
            fits = low is None or (int(low) >= -(2**31) and int(high) < 2**31)  # type: ignore[arg-type]
            casts.append(pl.col(name).cast(pl.Int32 if fits else pl.Float64))
    return df.with_columns(casts) if casts else df


def umap_2d(latents: np.ndarray, params: UMAPParams) -> np.ndarray:
    """Rows of ``latents`` on two UMAP coordinates, deterministic for a seed."""
    n = len(latents)
    if n < 4:
        raise PaperDataError(f"UMAP needs at least 4 graphs, got {n}")
    import umap  # imported here: umap-learn (numba) takes seconds to import, and only this needs it

    with warnings.catch_warnings():  # a seed makes umap-learn single-threaded, and it says so every call
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        return _fit(umap, latents, params, n)


def _fit(umap: Any, latents: np.ndarray, params: UMAPParams, n: int) -> np.ndarray:
    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=min(params.n_neighbors, n - 1),
        min_dist=params.min_dist,
        random_state=params.seed,
    )
    return np.asarray(reducer.fit_transform(np.asarray(latents, np.float32)), np.float64)


def latent_umap(latents: pl.DataFrame, params: UMAPParams) -> pl.DataFrame:
    parts = []
    for _, group in latents.group_by("dataset", "model", maintain_order=True):
        coords = umap_2d(np.asarray(group["latent"].to_list(), np.float32), params)
        parts.append(
            group.drop("latent").with_columns(
                pl.Series("umap1", coords[:, 0]), pl.Series("umap2", coords[:, 1])
            )
        )
    if not parts:
        raise PaperDataError(
            "results/*/latents.parquet: no rows; the evaluate stage writes them (`make run`)"
        )
    return pl.concat(parts)


def training_curves(epochs: pl.DataFrame, runs: pl.DataFrame) -> pl.DataFrame:
    info = runs.select("dataset", "model", "family", "variant", "best_epoch")
    return (
        epochs.join(info, on=["dataset", "model"], how="inner", maintain_order="left")
        .filter(pl.col("family").is_in(CURVE_FAMILIES), pl.col("metric").is_in(CURVE_METRICS))
        .select("dataset", "family", "model", "variant", "epoch", "metric", "value", "best_epoch")
    )


def head_mean(attention: pl.DataFrame) -> pl.DataFrame:
    """Attention weights averaged over the heads of each layer (a tenth of the rows for the paper's files)."""
    keys = [c for c in attention.columns if c not in ("head", "alpha")]
    return attention.group_by(keys, maintain_order=True).agg(pl.col("alpha").mean())


def figure_tables(tables: Mapping[str, pl.DataFrame], umap: UMAPParams) -> dict[str, pl.DataFrame]:
    """Every figure table (module docstring) from the results ``tables`` (all datasets)."""
    built = {
        "kd_transfer": kd_rows(tables["metrics"], tables["runs"]),
        "latent_umap": latent_umap(tables["latents"], umap),
        "training_curves": training_curves(tables["epoch_metrics"], tables["runs"]),
        "attention": head_mean(tables["attention"].filter(pl.col("model").str.starts_with("gat_"))),
    }
    return {name: js_friendly(built[name]) for name in FIGURE_TABLES}
