"""Tiny test data: a graph folder cut down to a few dozen graphs per split (training, tracking, flow and
HPO tests), a project folder of such datasets, and the study's params (the repository's params.yaml, the
one place a value is set) made tiny: small models, a few epochs, one thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml

from kdgat.config import Params, load_params, parse_params
from kdgat.data.formats import read_dataset
from kdgat.data.graphs import build_graphs
from kdgat.data.shards import load_meta, load_split, write_meta, write_split
from kdgat.data.synth import generate

REPO = Path(__file__).resolve().parents[2]
TINY_SIZES: dict[str, Any] = {"embed_dim": 4, "hidden": 8, "heads": 2, "layers": 2, "dropout": 0.1}
TINY_GAT = {**TINY_SIZES, "mlp_hidden": 16, "pooling": ["mean", "max"], "id_profile": 0}
TINY_VGAE = {**TINY_SIZES, "latent": 8}


PER_SPLIT = {"train": 48, "val": 20}  # graphs per class kept; 8 per class in the test splits


def _subset(src: Path, dst: Path) -> None:
    """A copy of a graph folder keeping the first few benign and attack graphs of each split."""
    meta = load_meta(src)
    for split in meta["counts"]:
        s = load_split(src, split)
        k = PER_SPLIT.get(split, 8)
        keep = np.sort(np.concatenate([np.flatnonzero(s.y == c)[:k] for c in (0, 1)]))
        graphs = [s.graph(int(i)) for i in keep]
        part = {
            "n_nodes": np.array([len(g.x) for g in graphs]),
            "n_edges": np.array([g.edge_index.shape[1] for g in graphs]),
            "x": np.concatenate([g.x for g in graphs]),
            "node_vocab": np.concatenate([g.node_vocab for g in graphs]),
            "edge_index": np.concatenate([g.edge_index for g in graphs], axis=1),
            "edge_attr": np.concatenate([g.edge_attr for g in graphs]),
            **{name: np.asarray(getattr(s, name))[keep] for name in ("y", "y_type", "file_idx", "t_start")},
            "start_row": np.asarray(s.start_row)[keep],
        }
        write_split(dst / split, [part])
        y = part["y"]
        meta["counts"][split].update(graphs=len(y), benign=int((y == 0).sum()), attack=int(y.sum()))
    write_meta(dst, meta)


def tiny_graphs(work: Path, seed: int = 0, dest: Path | None = None) -> Path:
    """A few seconds of synthetic traffic → its full graph folder work/full → a subset at ``dest``
    (default work/graphs), returned."""
    p = study_params()
    generate(work / "raw", p.synth.model_copy(update={"minutes": 0.05, "seed": seed}))
    frames, _ = read_dataset(work / "raw", progress=False)
    build_graphs(frames, p.windows, p.split, p.vocab, work / "full", progress=False)
    dest = dest or work / "graphs"
    _subset(work / "full", dest)
    return dest


def build_project(root: Path, datasets: dict[str, int]) -> Path:
    """data/graphs/<name> under ``root`` for each {name: synth seed}."""
    for name, seed in datasets.items():
        tiny_graphs(root / "work" / name, seed, root / "data" / "graphs" / name)
    return root


def study_params() -> Params:
    """The repository's params.yaml, as `make run` reads it."""
    return load_params(REPO / "params.yaml")


# Tiny models, a few epochs, one thread, offline W&B; no weight averaging or label smoothing, which a
# two-epoch run on a few dozen graphs would only blur.
TINY: dict[str, dict[str, Any]] = {
    "train": {"batch_size": 16, "max_epochs": 2, "patience": 5, "seed": 3, "threads": 1, "ema_decay": 0.0},
    "gat_train": {"sampling": "undersample", "label_smoothing": 0.0},
    "models": {
        "gat": {"large": {**TINY_GAT, "hidden": 12}, "small": TINY_GAT},
        "vgae": {"large": {**TINY_VGAE, "latent": 12}, "small": TINY_VGAE},
    },
    "tracking": {"mode": "offline"},
}


def tiny_params(**sections: dict[str, Any]) -> Params:
    """The study's params made TINY, then each of ``sections`` merged into its section."""
    raw = study_params().model_dump(mode="json")
    for key, value in (*TINY.items(), *sections.items()):
        raw[key].update(value)
    return parse_params(raw, "tiny params")


def tiny_params_file(path: Path, **sections: dict[str, Any]) -> Path:
    """tiny_params(**sections) written to ``path``."""
    path.write_text(yaml.safe_dump(tiny_params(**sections).model_dump(mode="json")))
    return path
