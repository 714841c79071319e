"""A model of the study as a release holds it: ``model.safetensors`` (its tensors, no pickle) beside a
``config.json`` with everything else the pipeline's checkpoint file holds (kind, sizes, vocabulary and
feature counts, the VGAE's score weights, a fusion's calibration and α grid), so that the checkpoint is
rebuilt exactly and loaded by the pipeline's own loaders (``load_model``, ``load_policy``): a published
model is the study's model, not a re-implementation of it.

    from kdgat.publish import from_pretrained
    gat = from_pretrained("release/synth/gat_small_kd")             # a folder of the bundle
    gat = from_pretrained("kd-gat/kd-gat-synth", "gat_small_kd")     # a Hub repo (downloaded once, cached)
    policy = from_pretrained("kd-gat/kd-gat-synth", "fusion_small_kd")  # a FusionPolicy
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from kdgat.fusion.policy import FusionPolicy, load_policy
from kdgat.io import atomic_path
from kdgat.train.weights import load_model

WEIGHTS, CONFIG = "model.safetensors", "config.json"
LOADER = "kdgat.publish.from_pretrained"


def write_pretrained(checkpoint: Path, dest: Path, stamp: dict[str, Any]) -> None:
    """The pipeline's checkpoint file as dest/model.safetensors + dest/config.json; ``stamp`` (model name,
    dataset, git commit, ...) goes into config.json under "release"."""
    blob: dict[str, Any] = torch.load(checkpoint, map_location="cpu", weights_only=True)
    # clone: safetensors refuses tensors that share storage, and a state dict may hold views
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in blob.pop("state_dict").items()}
    config = {"loader": LOADER, "release": stamp, "checkpoint": blob}
    dest.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest / WEIGHTS) as tmp:
        # one metadata entry: safetensors writes its metadata map in hash order, which differs between runs
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    with atomic_path(dest / CONFIG) as tmp:
        tmp.write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")


def checkpoint_of(folder: Path) -> dict[str, Any]:
    """The checkpoint dict the pipeline saved, rebuilt from a release folder (tensors from safetensors)."""
    config = json.loads((folder / CONFIG).read_text())
    if "checkpoint" not in config:
        raise ValueError(f"{folder / CONFIG}: not a kd-gat model config (no 'checkpoint' entry)")
    return {**config["checkpoint"], "state_dict": load_file(str(folder / WEIGHTS))}


def resolve(path_or_repo: str | Path, model: str | None = None, revision: str | None = None) -> Path:
    """The local folder holding config.json: ``path_or_repo`` itself or its ``model`` subfolder when it
    exists locally, else a Hub repo id downloaded (only that model's files) at ``revision``."""
    local = Path(path_or_repo)
    if local.exists():
        folder = local / model if model and (local / model / CONFIG).exists() else local
        if not (folder / CONFIG).exists():
            raise FileNotFoundError(
                f"{folder}: no {CONFIG} (name the model: from_pretrained(path, 'gat_small'))"
            )
        return folder
    from huggingface_hub import snapshot_download

    prefix = f"{model}/" if model else ""
    root = snapshot_download(
        str(path_or_repo),
        revision=revision,
        allow_patterns=[f"{prefix}{WEIGHTS}", f"{prefix}{CONFIG}"],
        endpoint=os.environ.get("HF_ENDPOINT") or None,  # read per call, as kdgat/publish/hub.py does
    )
    return Path(root) / model if model else Path(root)


def from_pretrained(
    path_or_repo: str | Path, model: str | None = None, revision: str | None = None
) -> nn.Module | FusionPolicy:
    """A released model in eval mode: a GAT or VGAE (torch module) or a fusion's FusionPolicy, rebuilt by
    the pipeline's own loaders from a bundle folder or a Hub repo (``model``: its subfolder)."""
    blob = checkpoint_of(resolve(path_or_repo, model, revision))
    with tempfile.TemporaryDirectory(prefix="kdgat-pretrained-") as tmp:
        ckpt = Path(tmp) / "model.ckpt"
        torch.save(blob, ckpt)
        if blob.get("kind") == "fusion":
            return load_policy(ckpt)
        module, _ = load_model(ckpt)
        return module
