"""W&B tracking: one run per stage execution, offline unless a key is configured.

Local files stay the source of truth (reports, epoch CSVs, metrics JSON); a run mirrors them. Its id is a
hash of project, stage, dataset and the stage's params, and it is opened with resume="allow", so a rerun
(or a resumed, killed stage) continues its run instead of starting a duplicate, online or after
`kdgat track sync`. Every W&B file (runs, staged artifacts, caches, settings) lives under <root>/wandb/
and nothing is written to $HOME. Offline W&B cannot `use_artifact`, so lineage (teacher → student →
fusion) is always written to the run config as well.

    with stage_run("train", "synth", params, ("train", "gat_train"), name="gat_small") as t:
        report = train_gat(..., callbacks=[EpochLogger(t)])   # kdgat/track/lightning.py
        t.summary(report)
        t.log_model("gat_small", Path("models/synth/gat_small.ckpt"))
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from kdgat.config import Params, TrackingParams, sections

log = logging.getLogger(__name__)

WANDB_FOLDER = "wandb"
KEY_FILE = ".env"  # git-ignored; a line `WANDB_API_KEY=...`
# W&B's own variables, pointed inside <root>/wandb/ (offline artifacts are otherwise staged in ~/.local/share)
_DIRS = {"WANDB_DATA_DIR": "data", "WANDB_CACHE_DIR": "cache", "WANDB_CONFIG_DIR": "config"}
_DIRS["WANDB_ARTIFACT_DIR"] = "artifacts"
Mode = Literal["offline", "online", "disabled"]
_MODES: dict[str, Mode] = {"offline": "offline", "dryrun": "offline", "online": "online", "run": "online"}
_MODES["disabled"] = "disabled"


class TrackingError(RuntimeError):
    """Tracking is misconfigured (e.g. online without a key); the message says what to set."""


def params_hash(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_id(project: str, name: str, dataset: str, phash: str) -> str:
    """Deterministic: the same stage with the same params maps to the same W&B run."""
    return hashlib.sha256(f"{project}\0{name}\0{dataset}\0{phash}".encode()).hexdigest()[:24]


def api_key(root: str | Path = ".") -> str | None:
    """WANDB_API_KEY from the environment, else from <root>/.env."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"]
    env_file = Path(root) / KEY_FILE
    if env_file.is_file():
        for line in env_file.read_text().splitlines():
            name, sep, value = line.removeprefix("export ").partition("=")
            if sep and name.strip() == "WANDB_API_KEY" and value.strip().strip("'\""):
                return value.strip().strip("'\"")
    return None


def resolve_mode(tracking: TrackingParams, root: str | Path = ".") -> Mode:
    """offline | online | disabled. tracking.mode wins; auto follows WANDB_MODE (the Makefile sets offline),
    then goes online only when a key is configured."""
    mode: Mode
    if tracking.mode != "auto":
        mode = tracking.mode
    else:
        env = os.environ.get("WANDB_MODE", "").strip().lower()
        if env and env not in _MODES:
            raise TrackingError(f"WANDB_MODE={env!r}: expected one of {', '.join(_MODES)}")
        mode = _MODES[env] if env else ("online" if api_key(root) else "offline")
    if mode == "online" and not api_key(root):
        raise TrackingError(
            "W&B online mode needs a key: set WANDB_API_KEY, or put `WANDB_API_KEY=...` in the git-ignored "
            f"{Path(root) / KEY_FILE} (or use tracking.mode: offline and `kdgat track sync` later)"
        )
    return mode


def git_commit(root: str | Path = ".") -> str | None:
    """HEAD of the git checkout holding ``root``; None outside one (or without git)."""
    try:
        proc = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    sha = proc.stdout.strip()
    return sha if proc.returncode == 0 and len(sha) == 40 else None


@contextmanager
def wandb_env(root: str | Path = ".") -> Iterator[dict[str, str]]:
    """W&B's folders (and a .env key) in os.environ for the duration, restored afterwards."""
    base = Path(root).resolve() / WANDB_FOLDER
    wanted = {"WANDB_DIR": str(base.parent)} | {k: str(base / sub) for k, sub in _DIRS.items()}
    key = api_key(root)
    if key:
        wanted["WANDB_API_KEY"] = key
    for folder in _DIRS.values():
        (base / folder).mkdir(parents=True, exist_ok=True)
    saved = {k: os.environ.get(k) for k in wanted}
    os.environ.update(wanted)
    try:
        yield wanted
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def artifact_name(model: str, dataset: str) -> str:
    return f"{model}-{dataset}"


class Tracker:
    """One stage's run. With mode disabled ``run`` is None and only the log lines remain."""

    def __init__(
        self,
        run: Any,
        tracking: TrackingParams,
        name: str,
        dataset: str,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.run, self.tracking, self.name, self.dataset = run, tracking, name, dataset
        self.meta = dict(meta or {})  # stage, dataset, params hash, commit: stamped on every artifact
        self._last: dict[str, float] = {}
        self._epoch_axis = False

    @property
    def label(self) -> str:
        return f"{self.name}@{self.dataset}"

    def alert(self, title: str, text: str) -> None:
        """A W&B alert (recorded in the run; sent by the server once synced) and always a WARNING line."""
        log.warning("%s: %s — %s", self.label, title, text)
        if self.run is not None:
            self.run.alert(title=f"{self.label}: {title}", text=text, level="WARN")

    def remember(self, row: Mapping[str, float]) -> None:
        """Take ``row``'s losses as the last epoch's without logging it (a resumed run's earlier epochs)."""
        self._last.update({k: float(v) for k, v in row.items() if k.endswith("loss")})

    def _check_losses(self, row: Mapping[str, float]) -> None:
        epoch = int(row.get("epoch", -1))
        for key, value in row.items():
            if not key.endswith("loss"):
                continue
            prev = self._last.get(key)
            if not math.isfinite(value):
                self.alert(f"{key} is {value}", f"epoch {epoch}: {key} = {value} (previous epoch: {prev})")
            elif prev is not None and prev > 0 and value > self.tracking.loss_jump * prev:
                self.alert(
                    f"{key} jumped ×{value / prev:.3g}",
                    f"epoch {epoch}: {key} {prev:.6g} → {value:.6g} (limit ×{self.tracking.loss_jump:g})",
                )
        self.remember(row)

    def log_epoch(self, row: Mapping[str, float]) -> None:
        """One epoch's metrics (a row of the epochs CSV); losses that turn NaN or jump raise an alert."""
        self._check_losses(row)
        if self.run is None:
            return
        if not self._epoch_axis:  # W&B's step counter differs across resumed sessions; epoch does not
            self.run.define_metric("epoch")
            self.run.define_metric("*", step_metric="epoch")
            self._epoch_axis = True
        self.run.log({k: int(v) if k == "epoch" else v for k, v in row.items()})

    def summary(self, data: Mapping[str, Any]) -> None:
        if self.run is not None:
            self.run.summary.update(dict(data))

    def log_artifact(
        self, name: str, kind: str, paths: Sequence[Path], metadata: Mapping[str, Any] | None = None
    ) -> None:
        """Files and folders as one W&B artifact (copied into <root>/wandb/ first when offline)."""
        if self.run is None:
            return
        import wandb

        art = wandb.Artifact(name, type=kind, metadata={**self.meta, **(metadata or {})})
        for path in paths:
            if path.is_dir():
                art.add_dir(str(path), name=path.name)
            elif path.is_file():
                art.add_file(str(path), name=path.name)
            else:
                raise FileNotFoundError(f"{path}: nothing to log as artifact {name!r} ({self.label})")
        self.run.log_artifact(art)

    def log_model(self, model: str, weights: Path, metadata: Mapping[str, Any] | None = None) -> None:
        """A checkpoint as a "model" artifact named <model>-<dataset> (unless tracking.log_models is off)."""
        if self.tracking.log_models:
            self.log_artifact(artifact_name(model, self.dataset), "model", [weights], metadata)

    def use_models(self, models: Sequence[str]) -> None:
        """Link the input models' artifacts (online only: offline W&B cannot; the config names them)."""
        if self.run is None or self.run.settings.mode != "online" or not self.tracking.log_models:
            return
        for model in models:
            try:
                self.run.use_artifact(f"{artifact_name(model, self.dataset)}:latest")
            except Exception as err:  # e.g. the teacher's run is not synced yet: lineage stays in the config
                log.warning("%s: no W&B artifact for input %s (%s)", self.label, model, err)


def _inputs(lineage: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    for value in lineage.values():
        names += [value] if isinstance(value, str) else list(value or [])
    return list(dict.fromkeys(names))


IN_USE_WAIT_S = (2, 4, 8, 16, 30)  # a requeued job can start before its killed predecessor's W&B process ends


def _init(mode: Mode, root: Path, **kwargs: Any) -> Any:
    import wandb

    settings = wandb.Settings(disable_git=True, console="off", silent=True)  # the commit is in the config
    rid = kwargs.pop("id")
    for wait in (*IN_USE_WAIT_S, None):
        try:
            return wandb.init(mode=mode, dir=str(root), resume="allow", settings=settings, id=rid, **kwargs)
        except Exception as err:
            if "in use" in str(err):
                if wait is None:  # still held: this attempt becomes a run of its own
                    log.warning("W&B run %s still in use: tracking this attempt as %s-retry", rid, rid)
                    rid = f"{rid}-retry"
                else:
                    log.warning("W&B run %s in use (a previous attempt?): retrying in %d s", rid, wait)
                    time.sleep(wait)
            elif mode == "online":
                log.warning("W&B online init failed (%s): tracking offline (`kdgat track sync` later)", err)
                mode = "offline"
            else:
                raise
    return wandb.init(mode=mode, dir=str(root), resume="allow", settings=settings, id=rid, **kwargs)


@contextmanager
def stage_run(
    job_type: str,
    dataset: str,
    params: Params,
    keys: Sequence[str] = (),
    *,
    name: str | None = None,
    lineage: Mapping[str, Any] | None = None,
    root: str | Path = ".",
) -> Iterator[Tracker]:
    """Open the W&B run of one stage execution (``name``@``dataset``, default name: the job type) whose
    config is the params under ``keys`` plus git commit, params hash and ``lineage`` (model names: teacher,
    inputs, ...). An exception inside closes the run as failed (exit code 1), alerts, and propagates."""
    name = name or job_type
    tracking, root = params.tracking, Path(root)
    mode = resolve_mode(tracking, root)
    if mode == "disabled":
        tracker = Tracker(None, tracking, name, dataset)
        try:
            yield tracker
        except BaseException as err:
            close_failed(tracker, err)
            raise
        return
    config = sections(params, keys)
    phash = params_hash(config)
    meta = {"stage": name, "dataset": dataset, "params_hash": phash, "git_commit": git_commit(root)}
    with wandb_env(root):
        run = _init(
            mode,
            root,
            project=tracking.project,
            entity=tracking.entity,
            id=run_id(tracking.project, name, dataset, phash),
            name=f"{name}@{dataset}",
            group=dataset,
            job_type=job_type,
            config={**config, **meta, **(lineage or {})},
        )
        tracker = Tracker(run, tracking, name, dataset, meta)
        try:
            tracker.use_models(_inputs(lineage or {}))
            yield tracker
        except BaseException as err:
            close_failed(tracker, err)
            raise
        run.finish(exit_code=0)


def close_failed(tracker: Tracker, err: BaseException) -> None:
    """Alert and close the run as failed, best effort: the error that ends the stage is what propagates,
    not a W&B one (a SLURM job being requeued has its W&B service killed under it)."""
    try:
        if not isinstance(err, KeyboardInterrupt):  # Ctrl-C is the user's stop, not a failure to alert on
            tracker.alert("stage failed", f"{type(err).__name__}: {err}")
        if tracker.run is not None:
            tracker.run.finish(exit_code=1)
    except Exception as wandb_err:
        log.warning("%s: W&B run not closed: %s: %s", tracker.label, type(wandb_err).__name__, wandb_err)
