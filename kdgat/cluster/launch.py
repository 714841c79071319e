"""Where a stage's work runs, named explicitly (never submitit's AutoExecutor, which picks SLURM as soon as
its commands are on PATH):

- ``local`` (default): in this process, as `dvc repro` has always run it;
- ``slurm``: a submitit job on a SLURM cluster with the resources of params.yaml ``launch.slurm``;
- ``debug``: submitit's DebugExecutor, in this process, with a post-mortem debugger on error.

A job runs the stage's command against a snapshot of the code and params.yaml copied at submission (on
PYTHONPATH and in KDGAT_PARAMS), so edits made while it waits in the queue do not leak into it; its working
directory stays the workspace, so outputs land where DVC expects them. Near its time limit (USR2, sent
``signal_delay_s`` before), on preemption or on ``scancel --signal=USR2`` a job requeues itself through
submitit's checkpoint hook, and the rerun stage resumes from its Lightning checkpoint (kdgat/train/run.py).
"""

from __future__ import annotations

import os
import pdb
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from submitit import DebugExecutor, LocalExecutor, SlurmExecutor
from submitit.core.core import Executor, Job
from submitit.helpers import Checkpointable
from submitit.slurm.slurm import SlurmInfoWatcher, SlurmJob

from kdgat.config import LaunchParams, SlurmParams, load_params

EXECUTOR_ENV = "KDGAT_EXECUTOR"  # overrides launch.executor; jobs get "local": a stage never resubmits itself
PARAMS_ENV = "KDGAT_PARAMS"  # kdgat.config reads params.yaml from here
# copied at submission, where present (not dvc.yaml: DVC would take the copy for a second pipeline)
SNAPSHOT = ("kdgat", "stages", "params.yaml")
# Job states that are not final although submitit's list of unfinished ones lacks them
_NOT_DONE = {"CONFIGURING", "COMPLETING", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING", "SIGNALING", "STAGE_OUT"}
_NOT_DONE |= {"SUSPENDED", "STOPPED", "RESV_DEL_HOLD", "PENDING", "RUNNING", "REQUEUED", "PREEMPTED"}


class JobFailed(RuntimeError):
    """A job ended without success; the message says why and where its log is."""


def executor_name(launch: LaunchParams) -> str:
    name = os.environ.get(EXECUTOR_ENV) or launch.executor
    if name not in ("local", "slurm", "debug"):
        raise ValueError(f"{EXECUTOR_ENV}={name!r}: expected local, slurm or debug")
    return name


def sbatch_parameters(slurm: SlurmParams, gpu: bool = True) -> dict[str, Any]:
    """SlurmExecutor.update_parameters arguments from ``launch.slurm`` (no GPU request unless ``gpu``)."""
    raw = slurm.model_dump()
    out = {"time": raw.pop("timeout_min"), "mem": f"{raw.pop('mem_gb')}GB"}
    out.update({k: v for k, v in raw.items() if v is not None})
    if not gpu or not out["gpus_per_node"]:
        del out["gpus_per_node"]  # sbatch rejects any GPU request on a cluster without GRES
    return out


# --- job states without slurmdbd ----------------------------------------------------------------------


@cache
def _accounting_enabled() -> bool:
    """False when the cluster has no accounting storage (plain `sacct` then fails)."""
    try:
        cmd = ["scontrol", "show", "config"]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return True
    found = re.search(r"^AccountingStorageType\s*=\s*(\S+)", out, re.MULTILINE)
    return not found or found.group(1) not in ("accounting_storage/none", "(null)")


class _Watcher(SlurmInfoWatcher):
    """submitit's sacct poller, made to work on a cluster without accounting storage: there `sacct
    --completion` reads finished jobs from the job completion log, and `squeue` (which keeps finished jobs
    for MinJobAge) gives the live states. Without it a job that ends without a result file (cancelled,
    killed at its time limit, never run) would look unfinished forever."""

    def is_done(self, job_id: str, mode: str = "standard") -> bool:
        return self.get_state(job_id, mode=mode).upper().split(" ")[0] not in (_NOT_DONE | {"UNKNOWN"})

    def update(self) -> None:
        ids = sorted({x.split("_")[0] for x in self._registered - self._finished})
        if not ids:
            return
        self._num_calls += 1
        sacct = ["sacct", "-o", "JobID,State,NodeList", "--parsable2", "-j", ",".join(ids)]
        commands = [sacct]
        if not _accounting_enabled():
            sacct.insert(1, "--completion")
            commands.append(["squeue", "-h", "-r", "--states=all", "-o", "%i|%T|%N|%r", "-j", ",".join(ids)])
        for cmd in commands:
            try:
                out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
            except (OSError, subprocess.SubprocessError) as err:
                print(f"warning: `{' '.join(cmd[:2])} ...` failed, states may lag: {err}", file=sys.stderr)
                continue
            if cmd[0] == "squeue":
                out = "JobID|State|NodeList|Reason\n" + out
            self._info_dict.update(self.read_info(out))  # squeue last: a requeued job's log entry is stale
        self._last_status_check = time.time()
        for job_id in self._registered - self._finished:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)


class _SlurmJob(SlurmJob[Any]):
    watcher = _Watcher(delay_s=60)


class _SlurmExecutor(SlurmExecutor):
    job_class = _SlurmJob


# --- snapshots and stage commands -----------------------------------------------------------------------


def snapshot_code(root: Path, dest: Path, names: Sequence[str] = SNAPSHOT) -> Path:
    """Copy the code and params that jobs will run (``names`` under ``root``, where present) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in names:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif src.is_file():
            shutil.copy2(src, dest / name)
    return dest


def in_snapshot(cmd: str, snapshot: Path) -> str:
    """``cmd`` with its relative paths into the snapshot's folders (``python stages/x.py``) pointing there."""
    folders = sorted(p.name for p in snapshot.iterdir() if p.is_dir())
    if not folders:
        return cmd
    pattern = r"(?<![^\s'\"=])(" + "|".join(map(re.escape, folders)) + r")/"
    return re.sub(pattern, lambda m: f"{snapshot}/{m.group(1)}/", cmd)


def _ignore_usr2() -> None:
    # the job's own process requeues on USR2; the stage must not die of it first (it is killed on requeue)
    signal.signal(signal.SIGUSR2, signal.SIG_IGN)


def _run_group(cmd: str, cwd: str, env: dict[str, str]) -> int:
    """Run ``cmd`` through the shell in a process group of its own; if this process leaves first (submitit
    exits on requeue), the whole group goes with it: a shell that forks (dash) rather than execs the stage
    would otherwise leave the stage running, orphaned, beside its own requeued rerun."""
    proc = subprocess.Popen(
        cmd,
        shell=True,
        executable=os.environ.get("SHELL") or "/bin/sh",  # as DVC runs a stage's cmd
        cwd=cwd,
        env=env,
        preexec_fn=_ignore_usr2,
        start_new_session=True,
    )
    try:
        return proc.wait()
    except BaseException:
        _stop_group(proc)
        raise


def _signal_group(leader: subprocess.Popen[bytes], sig: int) -> bool:
    """Send ``sig`` (0: none, a probe) to ``leader``'s process group; False when the group is gone."""
    leader.poll()  # reap the leader: its zombie would keep the group alive
    try:
        os.killpg(leader.pid, sig)
    except ProcessLookupError:
        return False
    return True


def _stop_group(leader: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM to ``leader``'s group, SIGKILL to whatever of it is left after ``grace_s``."""
    if not _signal_group(leader, signal.SIGTERM):
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        time.sleep(0.1)
        if not _signal_group(leader, 0):
            return
    _signal_group(leader, signal.SIGKILL)


@dataclass
class StageCommand(Checkpointable):
    """One stage command as a job: a shell command run in ``workspace`` with the code of ``snapshot``.
    Requeued as it is (submitit's default checkpoint); the stage itself resumes from its checkpoints."""

    cmd: str
    workspace: str
    snapshot: str | None = None

    def __call__(self) -> dict[str, Any]:
        # the stage runs as it would outside SLURM (Lightning, for one, changes course inside a SLURM job)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SUBMITIT_"))}
        if "SLURM_CONF" in os.environ:
            env["SLURM_CONF"] = os.environ["SLURM_CONF"]
        env[EXECUTOR_ENV] = "local"
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        if self.snapshot:
            env["PYTHONPATH"] = self.snapshot
            if (Path(self.snapshot) / "params.yaml").exists():
                env[PARAMS_ENV] = str(Path(self.snapshot) / "params.yaml")
        start = time.time()
        returncode = _run_group(self.cmd, self.workspace, env)
        if returncode != 0:
            raise JobFailed(f"`{self.cmd}` exited with status {returncode}")
        job = os.environ.get("SLURM_JOB_ID")
        return {"start": start, "end": time.time(), "host": socket.gethostname(), "slurm_job": job}


def make_executor(name: str, launch: LaunchParams, folder: Path) -> Executor:
    """The executor ``name`` with jobs in ``folder``; a job run there imports the snapshot's kdgat
    (set it with ``job_parameters``)."""
    if name == "slurm":
        # -P: `python -m` would put the workspace first on sys.path, ahead of the snapshot
        python = f"{sys.executable} -P"
        return _SlurmExecutor(folder=folder, max_num_timeout=launch.max_timeouts, python=python)
    if name == "debug":
        return DebugExecutor(folder=folder)
    if name == "local":
        return LocalExecutor(folder=folder, max_num_timeout=launch.max_timeouts)
    raise ValueError(f"unknown executor {name!r}: expected local, slurm or debug")


def job_parameters(
    executor: Executor,
    launch: LaunchParams,
    name: str,
    snapshot: Path | None,
    gpu: bool,
    after: Sequence[str] = (),
) -> None:
    """Resources and name of the next job; ``after``: SLURM job ids that must succeed first."""
    if isinstance(executor, SlurmExecutor):
        # the job's own process imports kdgat (to unpickle StageCommand): from the snapshot too
        setup = [f"export PYTHONPATH={snapshot}"] if snapshot and (snapshot / "kdgat").is_dir() else []
        executor.update_parameters(
            job_name=name,
            setup=setup,
            dependency=f"afterok:{':'.join(after)}" if after else None,
            # a job whose upstream failed is cancelled, not left pending forever
            additional_parameters={"kill-on-invalid-dep": "yes"} if after else {},
            **sbatch_parameters(launch.slurm, gpu),
        )
    elif isinstance(executor, LocalExecutor):
        executor.update_parameters(timeout_min=launch.slurm.timeout_min, name=name)


def run_folder(launch: LaunchParams, label: str, root: Path | None = None) -> Path:
    """A fresh folder under ``launch.folder`` for one submission (job ids restart on a new cluster)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    base = Path(launch.folder) if Path(launch.folder).is_absolute() else (root or Path.cwd()) / launch.folder
    base.mkdir(parents=True, exist_ok=True)
    # DVC would otherwise walk every job folder (and hash what it finds there) on each status
    (base / ".dvcignore").write_text("# job folders of kdgat.cluster.launch\n/*\n")
    return (base / f"{stamp}-{uuid.uuid4().hex[:6]}-{label}").resolve()


def job_error(job: Job[Any]) -> str | None:
    """None when ``job`` (finished) succeeded, else why not in one line, with its state and log file."""
    exc: BaseException | None
    try:
        exc = job.exception()
    except Exception as err:  # the job left no result at all
        exc = err
    if exc is None:
        return None
    # a failed job's message holds its traceback: keep the exception line
    raised = [ln for ln in str(exc).splitlines() if re.match(r"[\w.]+(Error|Exception|Failed)\b", ln)]
    reason = raised[-1] if raised else f"{type(exc).__name__}: {str(exc).strip().splitlines()[0]}"
    return f"{reason.strip()}; log {job.paths.stderr}"


def wait(job: Job[Any]) -> Any:
    """Block until ``job`` ends; its result, or JobFailed with the reason and the log. Interrupted (Ctrl-C,
    or DVC stopping the stage), it cancels the job."""
    try:
        job.wait()
    except KeyboardInterrupt:
        job.cancel(check=False)
        raise
    error = job_error(job)
    if error:
        raise JobFailed(f"job {job.job_id} failed: {error}")
    return job.result()


def submitted(script: str, *args: str) -> bool:
    """Where a stage script's work runs (launch.executor): False when it is to run here, in this process
    (local; debug, with pdb opened on an uncaught error); True once ``python SCRIPT ARGS`` has run as a SLURM
    job on a code snapshot, waited for (slurm)."""
    launch = load_params().launch
    name = executor_name(launch)
    if name == "debug":
        sys.excepthook = lambda kind, err, tb: pdb.post_mortem(tb)
    if name != "slurm":
        return False
    root = Path.cwd()
    rel = Path(script).resolve().relative_to(root.resolve())
    label = "-".join([rel.stem, *args])
    folder = run_folder(launch, label, root)
    snapshot = snapshot_code(root, folder / "snapshot")
    cmd = in_snapshot(shlex.join(["python", str(rel), *args]), snapshot)
    executor = make_executor(name, launch, folder)
    job_parameters(executor, launch, label, snapshot, gpu=True)
    job = executor.submit(StageCommand(cmd, str(root), str(snapshot)))
    print(f"{label}: SLURM job {job.job_id}, log {job.paths.stdout}", file=sys.stderr, flush=True)
    try:
        result = wait(job)
    except JobFailed as err:
        print(f"error: {label}: {err}", file=sys.stderr)
        sys.exit(1)
    print(f"{label}: job {job.job_id} done on {result['host']} in {result['end'] - result['start']:.0f} s")
    return True
