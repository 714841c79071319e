"""Train one model end to end: ``train_vgae`` and ``train_gat`` are what the DVC stages (and any other
launcher) call.

Outputs (``TrainOutputs``): the final weights file (best epoch, with what is needed to rebuild the model),
a folder of Lightning checkpoints (``last.ckpt`` every epoch, ``best.ckpt``), a JSON report and a
per-epoch CSV. A run whose checkpoint folder holds an unfinished ``last.ckpt`` *for the same inputs*
(params, graphs, teacher, scores, the kdgat source: hashed into ``run.json``) resumes from it; one that
finished with the same inputs and still has all its outputs is not trained again; anything else starts
over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from lightning.pytorch import Trainer, seed_everything
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.plugins.environments import LightningEnvironment
from pydantic import BaseModel

from kdgat.closure import import_closure
from kdgat.config import Params, TrainParams
from kdgat.data.shards import META_FILE, load_meta
from kdgat.io import write_csv, write_json
from kdgat.models import count_parameters
from kdgat.models.gat import GAT, build_gat
from kdgat.models.vgae import VGAE, build_vgae
from kdgat.study import TrainOutputs
from kdgat.train.curriculum import EpochSampler, train_scores
from kdgat.train.data import GraphSet, load_graphs
from kdgat.train.lit import EpochBoundedEMA, EpochHistory, LitBase, WarmupCheckpoint, WarmupEarlyStopping
from kdgat.train.lit_gat import LitGAT
from kdgat.train.lit_vgae import LitVGAE
from kdgat.train.torch_setup import deterministic, device_of
from kdgat.train.weights import load_model, save_model

RUN_FILE = "run.json"


def _outputs(out: str | Path | TrainOutputs) -> TrainOutputs:
    return out if isinstance(out, TrainOutputs) else TrainOutputs.in_folder(out)


def _file_hash(path: Path | None) -> str | None:
    return None if path is None else hashlib.sha256(Path(path).read_bytes()).hexdigest()


@cache
def code_hash() -> str:
    """The training code (what kdgat/train/job.py imports, the same closure dvc.yaml's training stages
    declare, less the launch, tracking and CLI plumbing): a checkpoint left by other training code is not
    resumed (a killed run, then an edit); an edit elsewhere in kdgat/ keeps it."""
    root = Path(__file__).resolve().parents[2]
    job = Path(__file__).with_name("job.py")
    h = hashlib.sha256()
    for f in sorted(import_closure(job, root) | {job}):
        h.update(f"{f.relative_to(root)}\0".encode() + f.read_bytes())
    return h.hexdigest()


def _fingerprint(what: dict[str, Any], graphs_dir: Path, files: Sequence[Path | None]) -> str:
    blob = {
        "what": what,
        "code": code_hash(),
        "meta": _file_hash(graphs_dir / META_FILE),
        "files": [_file_hash(f) for f in files],
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def _same_inputs(ckpt_dir: Path, fingerprint: str) -> dict[str, Any]:
    """run.json of the run left in ``ckpt_dir`` if it had the same inputs, else {}."""
    run_file = ckpt_dir / RUN_FILE
    state: dict[str, Any] = json.loads(run_file.read_text()) if run_file.is_file() else {}
    return state if state.get("fingerprint") == fingerprint else {}


def _resume_point(ckpt_dir: Path, state: dict[str, Any]) -> Path | None:
    """last.ckpt of an unfinished run with the same inputs (``state``), else None (and a clean folder)."""
    last = ckpt_dir / "last.ckpt"
    if state and not state.get("done") and last.is_file():
        return last
    if ckpt_dir.exists():
        shutil.rmtree(ckpt_dir)
    ckpt_dir.mkdir(parents=True)
    return None


def _finished(outs: TrainOutputs, state: dict[str, Any]) -> dict[str, Any] | None:
    """The report of a run that finished with the same inputs (``state``) and whose outputs are all still in
    place (a SLURM job requeued while it scored); None otherwise. DVC deletes a stage's outputs before it
    runs it, so `dvc repro` always trains."""
    # run.json holds the weights' hash once the run is done
    if "weights" not in state or not all(f.is_file() for f in (outs.weights, outs.report, outs.epochs)):
        return None
    if state["weights"] != _file_hash(outs.weights):
        return None
    report: dict[str, Any] = json.loads(outs.report.read_text())
    return report


def _averaging(p: TrainParams) -> list[Callback]:
    # the average is what validation sees and what every checkpoint holds as its weights (the raw weights
    # ride along in the checkpoint, so a resumed run continues both)
    return [EpochBoundedEMA(p.ema_decay)] if p.ema_decay > 0 else []


@contextmanager
def _quiet() -> Iterator[None]:
    """Hide Lightning's start-up banner (accelerator lines, adverts) and warnings that do not apply: the
    checkpoint folder holds run.json by design, train_loss is logged per epoch, not per step,
    Lightning's own use of a torch API deprecated in torch 2.13 (LeafSpec), and its hint to use srun on a
    machine with SLURM installed (its checkpoint-path lookup still probes for SLURM; the stage is one
    process, never started by srun)."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*exists and is not empty")
            warnings.filterwarnings("ignore", message=r".*smaller than the logging interval")
            warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")
            warnings.filterwarnings("ignore", message=r"The `srun` command is available")
            yield
    finally:
        log.setLevel(level)


def _size(group: BaseModel, scale: str) -> Any:
    if scale not in ("large", "small"):
        raise ValueError(f"scale must be 'large' or 'small', got {scale!r}")
    return getattr(group, scale)


def _setup(params: Params) -> None:
    deterministic(params.train.threads)
    seed_everything(params.train.seed, workers=True, verbose=False)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training: the last checkpoint is kept and a rerun resumes from it. A KeyboardInterrupt,
    so that tracking and stage scripts treat it as the user's stop, not as a failure."""


def _fit(
    lit: LitBase,
    params: Params,
    outs: TrainOutputs,
    fingerprint: str,
    info: dict[str, Any],
    progress: bool,
    logger: Logger | None,
    callbacks: Sequence[Callback],
) -> dict[str, Any]:
    t_start, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="milliseconds")
    if len(lit.val_set) == 0:
        raise ValueError("the val split is empty: early stopping and checkpoint selection need it")
    state = _same_inputs(outs.ckpt_dir, fingerprint)
    finished = _finished(outs, state)
    if finished is not None:
        print(f"{outs.weights}: trained already with these inputs; not trained again", file=sys.stderr)
        return finished
    resume = _resume_point(outs.ckpt_dir, state)
    write_json({"fingerprint": fingerprint, "done": False, **info}, outs.ckpt_dir / RUN_FILE)
    p = params.train
    history = EpochHistory()
    best = WarmupCheckpoint(
        p.warmup_epochs,
        dirpath=outs.ckpt_dir,
        filename="best",
        monitor=lit.monitor,
        mode=lit.monitor_mode,
        save_top_k=1,
        save_last=True,
        save_on_train_epoch_end=True,  # after EpochHistory, so last.ckpt holds its own epoch's row
        enable_version_counter=False,
    )
    stop = WarmupEarlyStopping(
        p.warmup_epochs,
        lit.monitor,
        mode=lit.monitor_mode,
        patience=p.patience,
        check_on_train_epoch_end=True,
    )
    with _quiet():
        trainer = Trainer(
            accelerator=device_of(p.accelerator).type,
            devices=1,
            precision=p.precision,
            max_epochs=p.max_epochs,
            callbacks=[history, stop, best, *_averaging(p), *callbacks],
            logger=logger if logger is not None else CSVLogger(outs.ckpt_dir, name="logs"),
            enable_model_summary=False,
            enable_progress_bar=progress,
            reload_dataloaders_every_n_epochs=1,  # a fresh sample (curriculum) and order every epoch
            num_sanity_val_steps=0,
            log_every_n_steps=1,
            default_root_dir=outs.ckpt_dir,
            # one process on one device, also inside a SLURM job (an HPO task): Lightning's SLURM mode would
            # add signal handlers of its own beside submitit's requeue and check the job's task layout
            plugins=[LightningEnvironment()],
        )
        try:
            trainer.fit(lit, ckpt_path=resume)
        except SystemExit as leaving:
            # Lightning ends a Ctrl-C with exit(1) after saving what it can: the user's stop. Any other exit
            # (submitit's on a SLURM requeue signal) leaves as it came, so the job is requeued and resumes
            if not (trainer.interrupted and isinstance(leaving.__context__, KeyboardInterrupt)):
                raise
    if trainer.interrupted:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Lightning left Ctrl-C ignored
        raise TrainingInterrupted(f"interrupted; rerun to resume from {outs.ckpt_dir / 'last.ckpt'}")
    ckpt = torch.load(best.best_model_path, map_location="cpu", weights_only=False)
    lit.load_state_dict(ckpt["state_dict"])
    model = lit.model
    assert isinstance(model, GAT | VGAE)
    save_model(model, outs.weights, info, params.vgae_train if isinstance(model, VGAE) else None)

    rows = history.rows
    row = next(r for r in rows if int(r["epoch"]) == int(ckpt["epoch"]))
    best_row = {k: (None if math.isnan(v) else v) for k, v in row.items()}  # NaN is not JSON
    report = {
        **info,
        "monitor": lit.monitor,
        "best_epoch": int(ckpt["epoch"]),
        "best_val": best_row[lit.monitor],
        "best_row": best_row,
        "epochs_run": len(rows),
        "max_epochs": p.max_epochs,
        "stopped_early": len(rows) < p.max_epochs,
        "resumed_from": str(resume) if resume else None,
        "params_count": count_parameters(model),
        "device": str(trainer.strategy.root_device),
        "train_graphs_per_s": sum(r["train_graphs_per_s"] for r in rows) / max(len(rows), 1),
        "train_seconds": sum(r["epoch_seconds"] for r in rows),  # over all sessions of the run
        "wall_seconds": time.perf_counter() - t_start,  # this session only
        "started_at": started_at,  # this session's start and end, UTC (the results' run timeline)
        "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    write_csv(pl.DataFrame(rows).with_columns(pl.col("epoch").cast(pl.Int64)), outs.epochs)
    write_json(report, outs.report)
    done = {"fingerprint": fingerprint, "done": True, "weights": _file_hash(outs.weights), **info}
    write_json(done, outs.ckpt_dir / RUN_FILE)
    return report


def load_teacher(path: Path | None, family: str, meta: dict[str, Any]) -> Any:
    """The trained ``family`` model in ``path`` (None: no teacher), checked against the graphs' vocabulary."""
    if path is None:
        return None
    model, blob = load_model(path)
    if blob["kind"] != family:
        raise ValueError(f"{path}: a {blob['kind']} model, expected a {family.upper()} teacher")
    if blob["n_vocab"] != meta["vocab_size"]:
        raise ValueError(
            f"{path}: teacher vocabulary of {blob['n_vocab']} IDs, graphs have {meta['vocab_size']}"
        )
    return model


def build_module(
    family: str,
    params: Params,
    scale: str,
    meta: dict[str, Any],
    train_set: GraphSet,
    val_set: GraphSet,
    teacher: GAT | VGAE | None = None,
    scores: np.ndarray | None = None,
) -> LitBase:
    """The Lightning module a training of ``family`` fits: a fresh model of ``scale``, distilled from
    ``teacher`` when given; a GAT's epochs drawn by gat_train.sampling (``scores``: the VGAE scores of the
    train graphs, ordering a curriculum)."""
    model, p, g = build_model(family, params, scale, meta), params.train, params.gat_train
    if isinstance(model, VGAE):
        assert teacher is None or isinstance(teacher, VGAE)  # a teacher of the student's family
        return LitVGAE(model, p, params.vgae_train, params.kd, train_set, val_set, teacher)
    assert teacher is None or isinstance(teacher, GAT)
    sampler = EpochSampler(
        train_set.y.numpy(), g.sampling, p.max_epochs, p.seed, g.benign_ratio, g.hardness, scores
    )
    return LitGAT(model, p, g, params.kd, train_set, val_set, sampler, teacher)


def build_model(family: str, params: Params, scale: str, meta: dict[str, Any]) -> GAT | VGAE:
    """A freshly initialised ``family`` model of ``scale`` (its weights depend on train.seed only)."""
    if family == "vgae":
        return build_vgae(_size(params.models.vgae, scale), meta, seed=params.train.seed)
    if family == "gat":
        return build_gat(_size(params.models.gat, scale), meta, seed=params.train.seed)
    raise KeyError(f"{family}: only vgae and gat models are trained")


def train_vgae(
    params: Params,
    graphs_dir: Path,
    scale: str,
    out: str | Path | TrainOutputs,
    teacher: Path | None = None,
    *,
    progress: bool = True,
    logger: Logger | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train a VGAE of ``scale`` (large | small) on the benign train graphs, distilled from the VGAE
    in ``teacher`` when given. Returns the report written to ``out``."""
    _setup(params)
    graphs_dir, outs = Path(graphs_dir), _outputs(out)
    meta = load_meta(graphs_dir)
    t_model = load_teacher(teacher, "vgae", meta)
    what = {"kind": "vgae", "scale": scale, "size": _size(params.models.vgae, scale), "train": params.train}
    what.update(vgae_train=params.vgae_train, kd=params.kd if teacher else None)
    info = {
        "kind": "vgae",
        "scale": scale,
        "kd": teacher is not None,
        "teacher": str(teacher) if teacher else None,
    }
    train_set, val_set = load_graphs(graphs_dir, "train"), load_graphs(graphs_dir, "val")
    lit = build_module("vgae", params, scale, meta, train_set, val_set, t_model)
    fp = _fingerprint(what, graphs_dir, [teacher])
    return _fit(lit, params, outs, fp, info, progress, logger, callbacks)


def train_gat(
    params: Params,
    graphs_dir: Path,
    scale: str,
    out: str | Path | TrainOutputs,
    teacher: Path | None = None,
    vgae_scores: Path | None = None,
    *,
    progress: bool = True,
    logger: Logger | None = None,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """Train a GAT of ``scale``; KD from the GAT in ``teacher`` when given. ``vgae_scores`` (the VGAE
    teacher's predictions Parquet) orders the benign graphs for gat_train.sampling = curriculum."""
    _setup(params)
    graphs_dir, outs, g = Path(graphs_dir), _outputs(out), params.gat_train
    meta = load_meta(graphs_dir)
    t_model = load_teacher(teacher, "gat", meta)
    train_set, val_set = load_graphs(graphs_dir, "train"), load_graphs(graphs_dir, "val")
    scores_file = vgae_scores if g.sampling == "curriculum" else None
    if g.sampling == "curriculum" and scores_file is None:
        raise ValueError("gat_train.sampling = curriculum needs the VGAE teacher's predictions (vgae_scores)")
    scores = train_scores(scores_file, len(train_set)) if scores_file is not None else None
    what = {"kind": "gat", "scale": scale, "size": _size(params.models.gat, scale), "train": params.train}
    what.update(gat_train=g, kd=params.kd if teacher else None)
    info = {
        "kind": "gat",
        "scale": scale,
        "kd": teacher is not None,
        "teacher": str(teacher) if teacher else None,
        "sampling": g.sampling,
        "vgae_scores": str(scores_file) if scores_file else None,
    }
    lit = build_module("gat", params, scale, meta, train_set, val_set, t_model, scores)
    fp = _fingerprint(what, graphs_dir, [teacher, scores_file])
    return _fit(lit, params, outs, fp, info, progress, logger, callbacks)


def train_family(
    family: str,
    params: Params,
    graphs_dir: Path,
    scale: str,
    out: str | Path | TrainOutputs,
    teacher: Path | None = None,
    vgae_scores: Path | None = None,
    *,
    progress: bool = True,
    callbacks: Sequence[Callback] = (),
) -> dict[str, Any]:
    """train_vgae or train_gat by family name, as every launcher (DVC stage, Metaflow, Optuna) calls them;
    ``vgae_scores`` orders a GAT's curriculum and does not apply to a VGAE."""
    if family == "vgae":
        return train_vgae(params, graphs_dir, scale, out, teacher, progress=progress, callbacks=callbacks)
    if family == "gat":
        return train_gat(
            params, graphs_dir, scale, out, teacher, vgae_scores, progress=progress, callbacks=callbacks
        )
    raise KeyError(f"{family}: train_family trains vgae and gat models")
