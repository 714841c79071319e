"""The final weights file of a trained model: its state dict plus everything needed to rebuild it
(kind, scale sizes, vocabulary and feature counts, the VGAE's score weights). Plain tensors and
primitives only, so it loads with ``torch.load(weights_only=True)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdgat.config import GATScale, VGAEScale, VGAETrainParams
from kdgat.io import atomic_path
from kdgat.models import GAT, VGAE

FORMAT = 1


def save_model(
    model: GAT | VGAE, dest: str | Path, info: dict[str, Any], vgae_train: VGAETrainParams | None = None
) -> None:
    """Write ``model`` atomically; ``info`` (name, dataset, scale, ...) is stored alongside as is."""
    kind = "gat" if isinstance(model, GAT) else "vgae"
    blob: dict[str, Any] = {
        "format": FORMAT,
        "kind": kind,
        "scale": model.scale.model_dump(),
        "n_vocab": model.n_vocab,
        "n_node_features": model.n_node_features,
        "n_edge_features": model.n_edge_features,
        "n_classes": getattr(model, "n_classes", 0),
        "n_inputs": getattr(model, "n_inputs", None),  # VGAE: the node feature columns it reads
        "skip": list(getattr(model, "skip", ())),  # GAT: the node feature columns it does not read
        "vgae_train": vgae_train.model_dump() if vgae_train is not None else None,
        "info": info,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    with atomic_path(dest) as tmp:
        torch.save(blob, tmp)


def load_model(path: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """Rebuild a model saved by ``save_model``, in eval mode; returns (model, the file's other entries)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such model file")
    blob: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("format") != FORMAT:
        raise ValueError(f"{path}: model file format {blob.get('format')!r}, this code reads {FORMAT}")
    sizes = (blob["n_vocab"], blob["n_node_features"], blob["n_edge_features"])
    model: nn.Module
    if blob["kind"] == "gat":
        model = GAT(
            GATScale(**blob["scale"]),
            *sizes,
            n_classes=blob["n_classes"],
            skip=tuple(blob.get("skip") or (0, 0)),
        )
    elif blob["kind"] == "vgae":
        model = VGAE(VGAEScale(**blob["scale"]), *sizes, n_inputs=blob.get("n_inputs"))
    else:
        raise ValueError(f"{path}: unknown model kind {blob['kind']!r}")
    model.load_state_dict(blob.pop("state_dict"))
    return model.eval(), blob


def vgae_weights(blob: dict[str, Any]) -> VGAETrainParams:
    """The score weights a VGAE was trained with (stored in its model file)."""
    if not blob.get("vgae_train"):
        raise ValueError("a VGAE model file without the score weights it was trained with (vgae_train)")
    return VGAETrainParams(**blob["vgae_train"])
