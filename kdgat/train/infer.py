"""Inference of a trained model over every split of a graph folder, and small figure artifacts.

``predict`` gives one row per graph and split, the table the fusion and the evaluation read:
  gat:  p_attack, logit (margin of the attack logit over the benign one), confidence = |p − 0.5|,
        entropy, emb_norm / emb_mean / emb_std of the pooled graph embedding;
  vgae: score (anomaly score, no KL), feat_mse, id_ce, nbr_bce, kl, latent_mean / latent_std (over the
        graph's μ entries), latent_norm (mean ‖μ_i‖ over its nodes).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import Tensor
from torch_geometric.utils import scatter

from kdgat.data.shards import load_meta
from kdgat.models import GAT, VGAE, anomaly_score
from kdgat.train.data import Batch, GraphSet, collate, load_graphs
from kdgat.train.kd import entropy
from kdgat.train.torch_setup import deterministic, device_of
from kdgat.train.weights import load_model, vgae_weights

BATCH = 512


def splits_of(graphs_dir: str | Path) -> list[str]:
    """The splits of a graph folder, in the order meta.json lists them."""
    return [s for s in load_meta(graphs_dir)["counts"] if (Path(graphs_dir) / s).is_dir()]


def _stats(v: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Row-wise norm, mean and (population) std."""
    return v.norm(dim=-1), v.mean(dim=-1), v.std(dim=-1, unbiased=False)


def _gat_rows(model: GAT, b: Batch) -> dict[str, Tensor]:
    emb = model.embed(*b.inputs(), num_graphs=b.num_graphs)
    logits = model.head(emb)
    p = torch.softmax(logits, dim=-1)
    norm, mean, std = _stats(emb)
    return {
        "p_attack": p[:, 1],
        "logit": logits[:, 1] - logits[:, 0],
        "confidence": (p[:, 1] - 0.5).abs(),
        "entropy": entropy(p),
        "emb_norm": norm,
        "emb_mean": mean,
        "emb_std": std,
    }


def _vgae_rows(model: torch.nn.Module, b: Batch, blob: dict[str, Any]) -> dict[str, Tensor]:
    assert isinstance(model, VGAE)
    x, vocab, ei, ea, batch = b.inputs()
    out = model(x, vocab, ei, ea)
    errors = model.graph_errors(out, x, vocab, ei, batch, b.num_graphs)
    G = b.num_graphs
    mean = scatter(out.mu.mean(-1), batch, 0, dim_size=G, reduce="mean")
    sq = scatter(out.mu.pow(2).mean(-1), batch, 0, dim_size=G, reduce="mean")
    return {
        "score": anomaly_score(errors, vgae_weights(blob)),
        **{k: errors[k] for k in ("feat_mse", "id_ce", "nbr_bce", "kl")},
        "latent_mean": mean,
        "latent_std": (sq - mean.pow(2)).clamp(min=0).sqrt(),
        "latent_norm": scatter(out.mu.norm(dim=-1), batch, 0, dim_size=G, reduce="mean"),
    }


def _batches(graphs: GraphSet, indices: np.ndarray, batch_size: int) -> Iterator[tuple[Tensor, Batch]]:
    """(graph indices, batch) in the order given."""
    for start in range(0, len(indices), batch_size):
        idx = torch.from_numpy(indices[start : start + batch_size])
        yield idx, collate(graphs, idx)


@torch.inference_mode()
def predict(
    model_file: str | Path,
    graphs_dir: str | Path,
    splits: Sequence[str] | None = None,
    batch_size: int = BATCH,
    accelerator: str = "auto",
) -> pl.DataFrame:
    """One row per graph of each split (all of them by default): split, index, y, y_type, outputs; computed
    on the device ``accelerator`` names (train.accelerator)."""
    deterministic()
    device = device_of(accelerator)
    model, blob = load_model(model_file)
    model.to(device)
    frames = []
    for split in splits if splits is not None else splits_of(graphs_dir):
        graphs = load_graphs(graphs_dir, split)
        parts: dict[str, list[Tensor]] = {}
        for idx, b in _batches(graphs, np.arange(len(graphs)), batch_size):
            b = b.to(device)
            rows = _gat_rows(model, b) if isinstance(model, GAT) else _vgae_rows(model, b, blob)
            for k, v in {"index": idx, "y": b.y, "y_type": b.y_type, **rows}.items():
                parts.setdefault(k, []).append(v.cpu())
        cols = {k: torch.cat(v).numpy() for k, v in parts.items()}
        df = pl.DataFrame(cols) if cols else _empty(model)
        frames.append(df.select(pl.lit(split).alias("split"), pl.all()))
    return pl.concat(frames, how="vertical_relaxed") if frames else _empty(model)


def _empty(model: torch.nn.Module) -> pl.DataFrame:
    """The columns of a split with no graphs (keeps the schema of the Parquet stable)."""
    names = ["p_attack", "logit", "confidence", "entropy", "emb_norm", "emb_mean", "emb_std"]
    if isinstance(model, VGAE):
        names = ["score", "feat_mse", "id_ce", "nbr_bce", "kl", "latent_mean", "latent_std", "latent_norm"]
    schema = {"index": pl.Int64, "y": pl.Int64, "y_type": pl.Int64, **dict.fromkeys(names, pl.Float32)}
    return pl.DataFrame(schema=schema)


def _sample(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    picks = [
        rng.choice(np.flatnonzero(y == c), min(per_class, int((y == c).sum())), replace=False) for c in (0, 1)
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64)


@torch.inference_mode()
def attention_samples(
    model_file: str | Path,
    graphs_dir: str | Path,
    split: str = "test_known",
    per_class: int = 2,
    seed: int = 0,
) -> pl.DataFrame:
    """Attention weights of a few graphs (``per_class`` benign and attack ones) of a GAT, one row per
    (graph, layer, edge, head): split, index, y, layer, head, src, dst (local node numbers), src_id,
    dst_id (vocabulary rows), alpha."""
    model, _ = load_model(model_file)
    if not isinstance(model, GAT):
        raise ValueError(f"{model_file}: attention weights need a GAT model")
    graphs = load_graphs(graphs_dir, split)
    picks = _sample(graphs.y.numpy(), per_class, seed)
    b = collate(graphs, picks)
    first = torch.cumsum(torch.bincount(b.batch, minlength=b.num_graphs), 0)
    first = torch.cat([first.new_zeros(1), first[:-1]])  # first node of each graph in the batch
    frames = []
    for layer, (ei, alpha) in enumerate(model.attention(*b.inputs())):
        g = b.batch[ei[0]]
        E, H = alpha.shape
        frames.append(
            pl.DataFrame(
                {
                    "index": torch.from_numpy(picks)[g].repeat_interleave(H).numpy(),
                    "y": b.y[g].repeat_interleave(H).numpy(),
                    "layer": np.full(E * H, layer, np.int64),
                    "head": np.tile(np.arange(H), E),
                    "src": (ei[0] - first[g]).repeat_interleave(H).numpy(),
                    "dst": (ei[1] - first[g]).repeat_interleave(H).numpy(),
                    "src_id": b.node_vocab[ei[0]].repeat_interleave(H).numpy(),
                    "dst_id": b.node_vocab[ei[1]].repeat_interleave(H).numpy(),
                    "alpha": alpha.reshape(-1).numpy(),
                }
            )
        )
    return pl.concat(frames).select(pl.lit(split).alias("split"), pl.all())


@torch.inference_mode()
def embeddings(
    model_file: str | Path,
    graphs_dir: str | Path,
    splits: Sequence[str] | None = None,
    per_split: int | None = 500,
    seed: int = 0,
    batch_size: int = BATCH,
) -> pl.DataFrame:
    """Per-graph embeddings for a 2-D projection: the GAT's pooled embedding or the VGAE's mean μ, for at
    most ``per_split`` random graphs of each split. Columns split, index, y, y_type, embedding (array)."""
    model, _ = load_model(model_file)
    frames = []
    for split in splits if splits is not None else splits_of(graphs_dir):
        graphs = load_graphs(graphs_dir, split)
        idx = np.arange(len(graphs))
        if per_split is not None and len(idx) > per_split:
            idx = np.sort(np.random.default_rng(seed).choice(idx, per_split, replace=False))
        if len(idx) == 0:
            continue
        parts = []
        for _, b in _batches(graphs, idx, batch_size):
            if isinstance(model, GAT):
                parts.append(model.embed(*b.inputs()))
            elif isinstance(model, VGAE):
                mu, _ = model.encode(b.x, b.node_vocab, b.edge_index, b.edge_attr)
                parts.append(scatter(mu, b.batch, 0, dim_size=b.num_graphs, reduce="mean"))
        y = graphs.y[torch.from_numpy(idx)].numpy()
        y_type = graphs.y_type[torch.from_numpy(idx)].numpy()
        emb = torch.cat(parts).numpy()
        frames.append(
            pl.DataFrame({"index": idx, "y": y, "y_type": y_type, "embedding": emb}).select(
                pl.lit(split).alias("split"), pl.all()
            )
        )
    return pl.concat(frames) if frames else pl.DataFrame()
