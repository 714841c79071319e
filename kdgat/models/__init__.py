"""The study's models (pure torch + PyG, exportable to ONNX) and builders that size them from params and
the dataset's meta.json."""

from __future__ import annotations

from torch import nn

from kdgat.models.gat import GAT, build_gat
from kdgat.models.vgae import (
    VGAE,
    VGAEOutput,
    anomaly_score,
    build_vgae,
    sample_negative_pairs,
    shifted_pairs,
    vgae_loss,
)

__all__ = [
    "GAT",
    "VGAE",
    "VGAEOutput",
    "anomaly_score",
    "build_gat",
    "build_vgae",
    "count_parameters",
    "sample_negative_pairs",
    "shifted_pairs",
    "vgae_loss",
]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)
