"""The study's models (pure torch + PyG, exportable to ONNX) and builders that size them from params and
the dataset's meta.json."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from kdgat.config import GATScale, VGAEScale
from kdgat.models.gat import GAT
from kdgat.models.vgae import VGAE, VGAEOutput, anomaly_score, sample_negative_pairs, shifted_pairs, vgae_loss

__all__ = [
    "GAT",
    "VGAE",
    "VGAEOutput",
    "anomaly_score",
    "build_gat",
    "build_vgae",
    "count_parameters",
    "meta_sizes",
    "sample_negative_pairs",
    "shifted_pairs",
    "vgae_loss",
]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def meta_sizes(meta: Mapping[str, Any]) -> tuple[int, int, int]:
    """(n_vocab, n_node_features, n_edge_features) from a dataset's meta.json."""
    try:
        return int(meta["vocab_size"]), len(meta["node_features"]), len(meta["edge_features"])
    except KeyError as err:
        raise KeyError(
            f"meta.json lacks {err.args[0]!r} (needs vocab_size, node_features, edge_features)"
        ) from None


@contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    # fork_rng: a seeded build must not shift the caller's random stream
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def build_gat(scale: GATScale, meta: Mapping[str, Any], n_classes: int = 2, seed: int | None = None) -> GAT:
    """A GAT sized for the dataset; with ``seed`` its initial weights depend on the seed only."""
    n_vocab, n_feat, n_edge = meta_sizes(meta)
    # datasets made before these were recorded: no absence or unknown ID is surprising
    cooc = meta.get("id_cooccurrence")
    benign = int(meta.get("counts", {}).get("train", {}).get("benign", 0))
    with _seeded(seed):
        return GAT(
            scale, n_vocab, n_feat, n_edge, n_classes, None if cooc is None else torch.tensor(cooc), benign
        )


def build_vgae(scale: VGAEScale, meta: Mapping[str, Any], seed: int | None = None) -> VGAE:
    """A VGAE sized for the dataset; with ``seed`` its initial weights depend on the seed only."""
    n_vocab, n_feat, n_edge = meta_sizes(meta)
    with _seeded(seed):
        return VGAE(scale, n_vocab, n_feat, n_edge)
