"""The figure tables that need the weights and the graphs, not only the predictions: graph embeddings on
their first two principal components (and the VGAEs' mean latents whole, for a projection fitted
later: the paper's UMAP), the attention weights of a few test graphs (with, given the frame
table, which of their nodes carried attack frames) and the attack types' names (their columns: the
docstring of kdgat/evaluate/report.py)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import polars as pl
from numpy.typing import NDArray
from sklearn.decomposition import PCA

from kdgat.data.shards import load_meta, load_split
from kdgat.data.vocab import id_keys
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


def embedding_tables(
    model_files: Mapping[str, Path], graphs_dir: Path, per_split: int
) -> tuple[pl.DataFrame | None, pl.DataFrame | None]:
    """The embeddings figure table (module docstring) of the gat_* and vgae_* models among ``model_files``,
    and the latents table: the VGAEs' mean latents of the same graphs, unprojected (list<float32>)."""
    parts, latents = [], []
    for name, path in model_files.items():
        family = Model.parse(name).family
        if family == "fusion":
            continue
        emb = embeddings(path, graphs_dir, per_split=per_split)
        if emb.height == 0:
            continue
        keys = emb.select(pl.lit(name).alias("model"), "split", "index", "y", "y_type")
        coords, share = pca_2d(emb["embedding"].to_numpy())
        parts.append(
            keys.with_columns(
                pl.Series("pc1", coords[:, 0]),
                pl.Series("pc2", coords[:, 1]),
                pl.lit(share[0]).alias("pc1_share"),
                pl.lit(share[1]).alias("pc2_share"),
            )
        )
        if family == "vgae":
            # a list, not a fixed-width array: the teacher's and the students' latents differ in width
            vectors = np.asarray(emb["embedding"].to_numpy(), np.float32).tolist()
            latents.append(keys.with_columns(pl.Series("latent", vectors, pl.List(pl.Float32))))
    return (pl.concat(parts) if parts else None), (pl.concat(latents) if latents else None)


def node_attack(graphs_dir: Path, frames: Path, split: str, indices: list[int]) -> pl.DataFrame | None:
    """Which nodes of the graphs ``indices`` of ``split`` carried an attack frame: columns index, node (the
    graph's local node number), attack (bool). A node is a CAN ID of the window (graphs.py numbers them in
    ascending ID order), so the window's frames, read back from the frame table the graphs were cut from,
    give each node's frames. None when the frames do not match the graphs (another frame table, or a
    graph folder not cut from it): the window's node count or its label disagree."""
    meta, graphs = load_meta(graphs_dir), load_split(graphs_dir, split)
    size = int(meta["params"]["windows"]["size"])
    parts = []
    for i in indices:
        source = meta["files"][int(graphs.file_idx[i])]["source"]
        start = int(graphs.start_row[i])
        window = (
            pl.scan_parquet(frames)
            .filter(pl.col("source") == source)
            .select("can_id", "extended", "label")
            .slice(start, size)
            .collect()
        )
        key = id_keys(window["can_id"].to_numpy(), window["extended"].to_numpy())
        ids, node = np.unique(key, return_inverse=True)
        attack = np.bincount(node, window["label"].to_numpy() != 0, len(ids)) > 0
        n_nodes = int(graphs.node_ptr[i + 1] - graphs.node_ptr[i])
        if len(window) != size or len(ids) != n_nodes or bool(attack.any()) != bool(graphs.y[i]):
            return None
        parts.append(
            pl.DataFrame({"index": np.full(len(ids), i), "node": np.arange(len(ids)), "attack": attack})
        )
    return pl.concat(parts) if parts else None


def attention_table(
    model_files: Mapping[str, Path], graphs_dir: Path, frames: Path | None = None
) -> pl.DataFrame | None:
    """The attention figure table (module docstring) of the gat_* models among ``model_files``; None when
    there is no GAT or ``ATTENTION_SPLIT`` has no graphs. Given the ``frames`` table the graphs were cut
    from, src_attack / dst_attack say whether the node carried an attack frame (else, or when the frames do
    not match the graphs, they are null)."""
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
    if not parts:
        return None
    table = pl.concat(parts)
    flags = None
    if frames is not None and frames.exists():
        flags = node_attack(graphs_dir, frames, ATTENTION_SPLIT, sorted(set(table["index"].to_list())))
    if flags is None:
        return table.with_columns(pl.lit(None, pl.Boolean).alias(c) for c in ("src_attack", "dst_attack"))
    for end in ("src", "dst"):
        named = flags.rename({"node": end, "attack": f"{end}_attack"})
        table = table.join(named, on=["index", end], how="left", maintain_order="left")
    return table


def attack_type_names(graphs_dir: Path) -> pl.DataFrame:
    """y_type code → attack type name (meta.json `attack_types`; code 0 is the benign "none")."""
    names = load_meta(graphs_dir)["attack_types"]
    return pl.DataFrame(
        {"y_type": range(len(names)), "attack_type": names},
        schema={"y_type": pl.Int64, "attack_type": pl.String},
    )


def write_graph_figures(
    model_files: Mapping[str, Path], graphs_dir: Path, dest: Path, per_split: int, frames: Path | None = None
) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    embedded, latents = embedding_tables(model_files, graphs_dir, per_split)
    for file, table in (
        ("embeddings", embedded),
        ("latents", latents),
        ("attention", attention_table(model_files, graphs_dir, frames)),
    ):
        if table is not None:
            table.write_parquet(dest / f"{file}.parquet", compression="zstd")
    attack_type_names(graphs_dir).write_csv(dest / "attack_types.csv")
