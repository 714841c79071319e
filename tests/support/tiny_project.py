"""Tiny test data: a graph folder cut down to a few dozen graphs per split (training, tracking, flow and
HPO tests), a project folder of such datasets, and the study's params (the repository's params.yaml, the
one place a value is set) made tiny: small models, a few epochs, one thread."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from functools import cache
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
TINY_GAT = {**TINY_SIZES, "mlp_hidden": 16, "pooling": ["mean", "max"], "id_profile": 0, "byte_ranges": True}
TINY_VGAE = {**TINY_SIZES, "latent": 8, "absent_ids": False}


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
    """A few seconds of synthetic traffic (work/raw) → its full graph folder work/full → a subset at
    ``dest`` (default work/graphs), returned."""
    made = _made(seed)
    for name in ("raw", "full"):
        shutil.copytree(made / name, work / name)
    dest = dest or work / "graphs"
    shutil.copytree(made / "graphs", dest)
    return dest


@cache
def _made(seed: int) -> Path:
    """``tiny_graphs``' three folders, made once per test process and seed: generating and cutting them
    takes seconds, and several test modules want the same ones (each gets a copy it may change)."""
    work = Path(tempfile.mkdtemp(prefix=f"kdgat-tiny-graphs-{seed}-"))
    atexit.register(shutil.rmtree, work, True)
    p = study_params()
    generate(work / "raw", p.synth.model_copy(update={"minutes": 0.05, "seed": seed}))
    frames, _ = read_dataset(work / "raw", progress=False)
    build_graphs(
        frames, p.windows, p.split, p.vocab, work / "full", progress=False, calibration=p.calibration
    )
    _subset(work / "full", work / "graphs")
    return work


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
    "train": {
        "batch_size": 16,
        "max_epochs": 2,
        "patience": 5,
        "warmup_epochs": 0,
        "seed": 3,
        "threads": 1,
        "ema_decay": 0.0,
    },
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


def run_in(repo: Path, args: list[str], timeout_s: float = 900) -> str:
    """A command in a study_repo copy, with that copy's kdgat first; its output (stdout + stderr)."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(repo),  # run the copied library, the one whose files DVC hashes
        "DVC_NO_ANALYTICS": "1",
    }
    proc = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=timeout_s)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def set_params(repo: Path, sections: dict[str, dict[str, Any]]) -> None:
    """Merge each of ``sections`` into its section of repo/params.yaml."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for name, values in sections.items():
        params[name].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


# What the dashboard build makes or installs; node_modules is linked from the repository when installed
DASHBOARD_BUILT = ("node_modules", "dist", ".observablehq", ".wrangler", "screenshots")


def copy_dashboard(dst: Path) -> None:
    """The repository's dashboard sources into dst/dashboard (over what is there)."""
    ignore = shutil.ignore_patterns(*DASHBOARD_BUILT)
    shutil.copytree(REPO / "dashboard", dst / "dashboard", ignore=ignore, dirs_exist_ok=True)
    modules = dst / "dashboard" / "node_modules"
    if (REPO / "dashboard" / "node_modules").is_dir() and not modules.exists():
        modules.symlink_to(REPO / "dashboard" / "node_modules")


def study_repo(dst: Path, sections: dict[str, dict[str, Any]]) -> Path:
    """A copy of the pipeline (kdgat, stages, the dashboard, the paper, dvc.yaml, params.yaml with
    ``sections`` merged) at ``dst``, under git and DVC, ready for `dvc repro`."""
    for name in ("kdgat", "stages"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    copy_dashboard(dst)
    # the paper's sources (the dashboard imports its figure modules); not what `make paper` builds
    paper_built = shutil.ignore_patterns("data", "_site", ".quarto", "html", "screenshots")
    shutil.copytree(REPO / "paper", dst / "paper", ignore=paper_built)
    for name in ("dvc.yaml", "params.yaml", "datasets.yaml", ".gitignore", "CITATION.cff", ".zenodo.json"):
        shutil.copy(REPO / name, dst / name)
    run_in(dst, ["git", "init", "-q"])
    run_in(dst, ["dvc", "init", "-q"])
    shutil.copy(REPO / ".dvcignore", dst / ".dvcignore")  # kdgat/ folders are deps: not their __pycache__
    set_params(dst, sections)
    run_in(dst, ["git", "add", "-A"])
    run_in(dst, ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"])
    return dst
