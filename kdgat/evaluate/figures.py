"""The figure tables that need the weights and the graphs, not only the predictions: graph embeddings on
their first two principal components, and the attention weights of a few test graphs (their columns: the
docstring of kdgat/evaluate/report.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray
from sklearn.decomposition import PCA

from kdgat.data.shards import load_meta
from kdgat.study import Model
from kdgat.train.infer import attention_samples, embeddings

EMBED_PER_SPLIT = 200  # graphs per split in the embedding figure: enough for a scatter, fast to compute
ATTENTION_SPLIT, ATTENTION_PER_CLASS = "test_known", 2


def pca_2d(x: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Rows of ``x`` on their first two principal components ([n, 2], zero-padded when x has fewer than two
    dimensions or rows) and each component's share of the variance ([2]); signs as scikit-learn fixes them,
    so the same input gives the same picture."""
    x = np.asarray(x, np.float64)
    coords, share = np.zeros((len(x), 2)), np.zeros(2)
    k = min(2, *x.shape) if x.ndim == 2 and len(x) > 1 else 0
    if k and np.ptp(x, axis=0).any():
        pca = PCA(n_components=k, svd_solver="full")
        coords[:, :k] = pca.fit_transform(x)
        share[:k] = pca.explained_variance_ratio_
    return coords, share


def embedding_table(model_files: Mapping[str, Path], graphs_dir: Path, per_split: int) -> pl.DataFrame | None:
    """The embeddings figure table (module docstring) of the gat_* and vgae_* models among ``model_files``."""
    parts = []
    for name, path in model_files.items():
        if Model.parse(name).family == "fusion":
            continue
        emb = embeddings(path, graphs_dir, per_split=per_split)
        if emb.height == 0:
            continue
        coords, share = pca_2d(emb["embedding"].to_numpy())
        parts.append(
            emb.select(pl.lit(name).alias("model"), "split", "index", "y", "y_type").with_columns(
                pl.Series("pc1", coords[:, 0]),
                pl.Series("pc2", coords[:, 1]),
                pl.lit(share[0]).alias("pc1_share"),
                pl.lit(share[1]).alias("pc2_share"),
            )
        )
    return pl.concat(parts) if parts else None


def attention_table(model_files: Mapping[str, Path], graphs_dir: Path) -> pl.DataFrame | None:
    """The attention figure table (module docstring) of the gat_* models among ``model_files``; None when
    there is no GAT or ``ATTENTION_SPLIT`` has no graphs."""
    meta = load_meta(graphs_dir)
    if not meta["counts"].get(ATTENTION_SPLIT, {}).get("graphs"):
        return None
    # vocabulary row i > 0 is ids[i − 1]; row 0 is the unknown-ID slot
    can_id = pl.Series("can_id", [None, *meta["vocab"]["ids"]], dtype=pl.String)
    parts = []
    for name, path in model_files.items():
        if Model.parse(name).family != "gat":
            continue
        att = attention_samples(path, graphs_dir, split=ATTENTION_SPLIT, per_class=ATTENTION_PER_CLASS)
        parts.append(
            att.with_columns(
                can_id.gather(att["src_id"]).alias("src_id"), can_id.gather(att["dst_id"]).alias("dst_id")
            ).select(pl.lit(name).alias("model"), pl.all())
        )
    return pl.concat(parts) if parts else None


def write_graph_figures(
    model_files: Mapping[str, Path], graphs_dir: Path, dest: Path, per_split: int
) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for file, table in (
        ("embeddings", embedding_table(model_files, graphs_dir, per_split)),
        ("attention", attention_table(model_files, graphs_dir)),
    ):
        if table is not None:
            table.write_parquet(dest / f"{file}.parquet", compression="zstd")
