"""Optuna studies over one model of the study on one dataset: ``kdgat hpo gat_small_kd --dataset synth``.

A trial sets the searched keys of ``hpo.space`` (those under the params its DVC stage reads, see
``Model.param_keys``), trains the model as the same ``TrainJob`` that ``stages/train.py`` runs (a
student distils from the study's teacher in models/D/, a curriculum GAT reads predictions/D/), reports the
validation metric every epoch so that the median pruner can stop a hopeless trial, and returns the metric
at the kept (best) epoch. Every trial is a W&B run (job type "hpo").

Storage: SQLite (``sqlite:///hpo/S/study.db``) for one process; an Optuna journal file
(``journal:hpo/S/journal.log``) when several processes share the study — submitit array tasks on this
machine (LocalExecutor) or on SLURM — because SQLite locks badly under concurrent writers on shared
filesystems. ``run_worker`` is what each task runs; a task stopped at its time limit or preempted requeues
and retries the trial it was in. The best trial's values land in hpo/S/best.yaml as dotted keys, ready for
``dvc exp run -S key=value``.
"""

from __future__ import annotations

import math
import os
import shlex
import shutil
import socket
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import lightning.pytorch as pl
import optuna
import yaml
from optuna.storages.journal import JournalFileBackend
from submitit import JobEnvironment
from submitit.helpers import Checkpointable

import kdgat
from kdgat.config import HPOParam, HPOParams, Params, load_params, with_overrides
from kdgat.io import atomic_path, write_json
from kdgat.study import Model, Paths, TrainOutputs
from kdgat.track.lightning import EpochLogger
from kdgat.track.tracker import stage_run
from kdgat.train.job import TrainJob

HPO_FOLDER = "hpo"
BEST_FILE = "best.yaml"
METRICS = ("val_f1", "val_auc", "val_loss")  # what the Lightning modules log per epoch
TASK_ATTR, RETRY_ATTR = "task", "retry_of"  # trial user attributes
Executor = Literal["local", "slurm"]
LOCAL_TIMEOUT_MIN = 30 * 24 * 60


class HPOError(ValueError):
    """A study cannot run as asked; the message says what to change."""


@dataclass(frozen=True)
class HPOJob:
    """Everything a worker needs (picklable: submitit sends it to the array tasks)."""

    study: str
    storage: str  # sqlite:///... or journal:PATH
    model: str
    dataset: str
    root: Path  # the project: params, data/graphs/D, and the DVC outputs a student or curriculum needs
    params_file: Path
    metric: str

    @property
    def folder(self) -> Path:
        return self.root / HPO_FOLDER / self.study

    @property
    def direction(self) -> Literal["minimize", "maximize"]:
        return "minimize" if self.metric.endswith("loss") else "maximize"


def storage_url(folder: Path, shared: bool) -> str:
    """The default storage of a study folder: a journal file when several processes write, else SQLite."""
    folder = folder.resolve()
    return f"journal:{folder / 'journal.log'}" if shared else f"sqlite:///{folder / 'study.db'}"


def open_storage(url: str) -> str | optuna.storages.BaseStorage:
    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return url
    raise HPOError(f"storage {url!r}: expected sqlite:///PATH or journal:PATH")


def searched(space: dict[str, HPOParam], model: Model) -> dict[str, HPOParam]:
    """The entries of ``space`` that the model's training reads."""
    keys = model.param_keys
    return {k: s for k, s in space.items() if any(k == p or k.startswith(p + ".") for p in keys)}


def candidates(spec: HPOParam) -> list[Any]:
    return list(spec.choices) if spec.choices is not None else [spec.low, spec.high]


def check_space(params: Params, space: dict[str, HPOParam]) -> None:
    """Fail before the first trial if a range's ends or a choice would make params.yaml invalid."""
    for key, spec in space.items():
        for value in candidates(spec):
            with_overrides(params, {key: value}, f"hpo.space.{key} = {value!r}")


def suggest(trial: optuna.Trial, key: str, spec: HPOParam) -> Any:
    if spec.type == "categorical":
        assert spec.choices is not None
        return trial.suggest_categorical(key, spec.choices)
    assert spec.low is not None and spec.high is not None
    if spec.type == "int":
        return trial.suggest_int(key, int(spec.low), int(spec.high), log=spec.log)
    return trial.suggest_float(key, float(spec.low), float(spec.high), log=spec.log)


class ReportAndPrune(pl.Callback):
    """Report the validation metric after every epoch; stop the trial when the pruner says so."""

    def __init__(self, trial: optuna.Trial, metric: str) -> None:
        self.trial, self.metric = trial, metric

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.metric)
        if value is None:
            return
        epoch, v = trainer.current_epoch, float(value)
        self.trial.report(v, epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(f"pruned at epoch {epoch}: {self.metric} = {v:.4g}")


def train_job(job: HPOJob, params: Params, trial: int) -> TrainJob:
    """The trial's training: the study's teacher and curriculum scores (the DVC pipeline's outputs) as
    inputs, its files in the study's trials/NNNN/ (no predictions)."""
    paths = Paths(job.dataset, job.root)
    outs = TrainOutputs.in_folder(job.folder / "trials" / f"{trial:04d}")
    train = TrainJob.of(job.model, params, paths, outs)
    for path, stage in [(paths.graphs, "graphs"), *train.inputs().items()]:
        if not path.exists():
            raise HPOError(f"{path}: not found; {job.model} needs it: run `dvc repro {stage}@{job.dataset}`")
    return train


def objective(trial: optuna.Trial, job: HPOJob, base: Params, space: dict[str, HPOParam]) -> float:
    params = with_overrides(
        base, {k: suggest(trial, k, s) for k, s in space.items()}, f"trial {trial.number}"
    )
    train = train_job(job, params, trial.number)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
    name, pruned, value = f"hpo-{job.study}-{trial.number}", None, None
    with stage_run(
        "hpo", job.dataset, params, train.param_keys, name=name, lineage=train.lineage, root=job.root
    ) as t:
        if t.run is not None:
            t.run.config.update({"hpo_study": job.study, "hpo_trial": trial.number, "hpo_metric": job.metric})
        try:
            report = train.run([EpochLogger(t), ReportAndPrune(trial, job.metric)], progress=False)
        except optuna.TrialPruned as err:  # not a failure: the run closes normally, marked pruned
            pruned = err
            t.summary({"hpo_state": "pruned", "hpo_reason": str(err)})
        else:
            value = report["best_row"].get(job.metric)
            t.summary({"hpo_state": "complete", "hpo_value": value, **report})
        finally:
            shutil.rmtree(train.outs.ckpt_dir, ignore_errors=True)  # model.ckpt, report and epochs stay
    if pruned is not None:
        raise pruned
    return math.nan if value is None else float(value)


def _load(job: HPOJob, hpo: HPOParams, worker: int) -> optuna.Study:
    sampler = optuna.samplers.TPESampler(seed=hpo.seed + worker, n_startup_trials=hpo.startup_trials)
    pruner = optuna.pruners.MedianPruner(
        n_startup_trials=hpo.startup_trials, n_warmup_steps=hpo.warmup_epochs
    )
    return optuna.load_study(
        study_name=job.study, storage=open_storage(job.storage), sampler=sampler, pruner=pruner
    )


def retry_interrupted(study: optuna.Study, task: str) -> int:
    """Before a requeued task carries on: the trials it left running when it was stopped (time limit,
    preemption, a lost node) fail, and their values are queued again for the study's next trial. Returns
    how many trials of the task ended otherwise (what counts towards its share)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_ATTR) for t in trials}
    ended = 0
    for t in trials:
        if t.user_attrs.get(TASK_ATTR) != task or t.number in retried:
            continue
        if t.state == optuna.trial.TrialState.RUNNING:
            study.tell(t.number, state=optuna.trial.TrialState.FAIL)
            study.enqueue_trial(t.params, user_attrs={RETRY_ATTR: t.number})
        elif t.state.is_finished():
            ended += 1
    return ended


class RequeueableWorker(Checkpointable):
    """``run_worker`` as a submitit task that SLURM requeues at its time limit or on preemption; the rerun
    retries the trial it was stopped in (``retry_interrupted``), then runs the rest of its share."""

    def __call__(self, job: HPOJob, n_trials: int, worker: int = 0) -> dict[str, Any]:
        task = str(JobEnvironment().paths.submitted_pickle)  # one per task and submission, kept on requeue
        return run_worker(job, n_trials, worker, task)


def run_worker(job: HPOJob, n_trials: int, worker: int = 0, task: str | None = None) -> dict[str, Any]:
    """Run ``n_trials`` trials against the shared study (one array task, or the whole study in-process);
    ``task`` names a submitit task whose trials a requeued rerun retries or counts."""
    base = load_params(job.params_file)
    space = searched(base.hpo.space, Model.parse(job.model))
    study = _load(job, base.hpo, worker)
    if task is not None:
        n_trials -= retry_interrupted(study, task)
    ran: list[int] = []

    def run(trial: optuna.Trial) -> float:
        ran.append(trial.number)
        if task is not None:
            trial.set_user_attr(TASK_ATTR, task)
        return objective(trial, job, base, space)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study.optimize(run, n_trials=max(n_trials, 0))
    where = {"host": socket.gethostname(), "pid": os.getpid(), "slurm_job": os.environ.get("SLURM_JOB_ID")}
    return {"worker": worker, **where, "code": str(Path(kdgat.__file__).resolve().parent), "trials": ran}


def create_study(job: HPOJob, params: Params) -> optuna.Study:
    """Create the study (or load it: the same name must mean the same model, dataset and metric)."""
    model = Model.parse(job.model)
    if job.metric not in METRICS:
        raise HPOError(f"metric {job.metric!r}: expected one of {', '.join(METRICS)}")
    if model.family == "fusion":
        raise HPOError(f"{job.model}: hpo trains vgae_* and gat_* models (the DQN fusion has no val metric)")
    if model.family == "vgae" and job.metric == "val_f1":
        raise HPOError(
            f"{job.model}: the VGAE is unsupervised and logs no val_f1; use --metric val_loss or val_auc"
        )
    space = searched(params.hpo.space, model)
    if not space:
        raise HPOError(f"hpo.space has no key that {job.model} reads ({', '.join(model.param_keys)})")
    check_space(params, space)
    train_job(job, params, 0)  # its inputs exist before any trial starts
    study = optuna.create_study(
        study_name=job.study, storage=open_storage(job.storage), direction=job.direction, load_if_exists=True
    )
    identity = {"model": job.model, "dataset": job.dataset, "metric": job.metric}
    for key, value in identity.items():
        old = study.user_attrs.get(key)
        if old is None:
            study.set_user_attr(key, value)
        elif old != value:
            raise HPOError(f"study {job.study!r} ({job.storage}) is for {key} {old!r}, not {value!r}")
    return study


def yaml_scalar(value: Any) -> str:
    """``value`` as YAML reads it back (how `dvc exp run -S key=value` parses the value)."""
    return yaml.safe_dump(value).strip().removesuffix("...").strip()


def dvc_command(best: dict[str, Any]) -> str:
    return "dvc exp run " + " ".join(
        f"-S {shlex.quote(f'{k}={yaml_scalar(v)}')}" for k, v in sorted(best.items())
    )


def write_best(job: HPOJob, params: Params) -> dict[str, Any]:
    """hpo/S/best.yaml (the best complete trial's values, dotted keys) and hpo/S/summary.json."""
    study = optuna.load_study(study_name=job.study, storage=open_storage(job.storage))
    states = {s.name.lower(): 0 for s in optuna.trial.TrialState}
    for t in study.trials:
        states[t.state.name.lower()] += 1
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise HPOError(
            f"study {job.study!r}: no trial completed ({states}); see the W&B runs and {job.folder}/trials"
        )
    best = study.best_trial
    with_overrides(params, best.params, f"{job.folder / BEST_FILE}")  # what `dvc exp run -S` will apply
    command = dvc_command(best.params)
    head = f"# {job.study}: trial {best.number} of {len(done)} complete, {job.metric} = {best.value:.6g}\n"
    dest = job.folder / BEST_FILE
    with atomic_path(dest) as tmp:
        tmp.write_text(f"{head}# {command}\n{yaml.safe_dump(best.params, sort_keys=True)}")
    summary = {
        "study": job.study,
        "model": job.model,
        "dataset": job.dataset,
        "metric": job.metric,
        "direction": job.direction,
        "best_trial": best.number,
        "best_value": best.value,
        "best_params": best.params,
        "states": states,
        "dvc_command": command,
        "best_file": str(dest),
    }
    write_json(summary, job.folder / "summary.json")
    return summary


def split_trials(trials: int, tasks: int) -> list[int]:
    """``trials`` spread over ``tasks`` as evenly as possible (tasks without a trial are dropped)."""
    counts = [trials // tasks + (i < trials % tasks) for i in range(tasks)]
    return [c for c in counts if c]


def _array(
    job: HPOJob, params: Params, counts: list[int], kind: Executor, parallel: int, first: int
) -> list[Any]:
    """One task per entry of ``counts`` as a submitit array (a SLURM job array `--array=0-N%parallel`, or
    processes on this machine), each running that many trials; waits for all and returns their results."""
    from kdgat.cluster.launch import JobFailed, job_parameters, make_executor, snapshot_code, wait

    folder = job.folder / "jobs" / time.strftime("%Y%m%d-%H%M%S")
    snapshot = None
    if kind == "slurm":  # queued tasks run the code and params of submission time, not of their start
        snapshot = snapshot_code(Path(kdgat.__file__).resolve().parents[1], folder / "snapshot", ("kdgat",))
        shutil.copy2(job.params_file, snapshot / "params.yaml")
        job = replace(job, params_file=snapshot / "params.yaml")
    executor = make_executor(kind, params.launch, folder)
    job_parameters(executor, params.launch, f"hpo-{job.study}", snapshot, gpu=True)
    if kind == "slurm":
        executor.update_parameters(array_parallelism=parallel)
    else:
        executor.update_parameters(timeout_min=LOCAL_TIMEOUT_MIN)  # local tasks run until their trials end
    workers = range(first, first + len(counts))
    jobs = executor.map_array(RequeueableWorker(), [job] * len(counts), counts, workers)
    print(f"study {job.study}: {len(jobs)} {kind} tasks, logs in {folder}", file=sys.stderr, flush=True)
    try:
        return [wait(j) for j in jobs]
    except JobFailed as err:
        raise HPOError(f"an HPO task failed: {err}") from None


def run_study(
    job: HPOJob,
    params: Params,
    trials: int,
    *,
    workers: int = 1,
    tasks: int | None = None,
    executor: Executor = "local",
    worker_offset: int = 0,
) -> dict[str, Any]:
    """Create the study, run ``trials`` trials in this process (local, one task) or as a submitit array of
    ``tasks`` tasks, ``workers`` at a time, then write best.yaml. Returns the summary."""
    tasks = tasks or workers
    if executor == "local" and tasks > workers:
        raise HPOError(f"--tasks {tasks} > --workers {workers}: the local executor starts every task at once")
    create_study(job, params)
    counts = split_trials(trials, tasks)
    if executor == "local" and len(counts) == 1:
        runs = [run_worker(job, counts[0], worker_offset)]
    else:
        runs = _array(job, params, counts, executor, workers, worker_offset)
    summary = write_best(job, params)
    summary["workers"] = list(runs)
    return summary
