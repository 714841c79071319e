"""`kdgat launch`: run the stale part of the DVC DAG as one job per stage, then record it in dvc.lock.

`dvc repro` runs one stage at a time and two of them cannot share a workspace (DVC's lock). Here every
stale stage (and every stage downstream of one) becomes its own job on the chosen executor, started in DAG
order: on SLURM all are queued at once with ``--dependency=afterok:<upstream jobs>``, so independent
datasets and variants run side by side; locally they start as their upstream jobs succeed, ``jobs`` at a
time. A failed job stops only its descendants (cancelled, reported). At the end (or on Ctrl-C, which
cancels the jobs still running) ``dvc commit`` records the stages that succeeded, so `dvc status` is clean
and `dvc repro` has nothing to do — unless the code or params they ran with changed meanwhile: then nothing
is recorded and the launch says which file changed.
"""

from __future__ import annotations

import contextlib
import filecmp
import fnmatch
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from submitit.core.core import Job
from submitit.slurm.slurm import SlurmJob

from kdgat.cluster.launch import (
    JobFailed,
    StageCommand,
    in_snapshot,
    job_error,
    job_parameters,
    make_executor,
    run_folder,
    snapshot_code,
)
from kdgat.config import LaunchParams, dotted

FINAL = ("COMPLETED", "FAILED", "CANCELLED")


@dataclass
class Task:
    """One stale stage: its command, the stale stages it waits for, and its job once submitted."""

    stage: str
    cmd: str
    after: list[str]
    deps: list[str]  # workspace paths its result depends on (code, data)
    gpu: bool
    params: dict[str, list[str]] = field(default_factory=dict)  # params file → keys read (empty: all)
    job: Job[Any] | None = None
    state: str = "WAITING"
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL


def plan(root: Path, targets: Sequence[str], gpu_stages: Sequence[str]) -> tuple[list[Task], list[str]]:
    """The stale stages under ``targets`` (all when empty) and those downstream of them, upstream first;
    and stale entries no job can run (`.dvc` files of changed data)."""
    from dvc.dependency.param import ParamsDependency
    from dvc.repo import Repo

    with contextlib.chdir(root), Repo(str(root)) as repo:  # DVC reads targets relative to the cwd
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        if targets:
            chosen = set()
            for target in targets:
                for stage in repo.stage.collect(target):
                    chosen |= {stage} | nx.descendants(graph, stage)
        else:
            chosen = set(graph.nodes)
        changed = set(repo.status(targets=[s.addressing for s in chosen]) if chosen else {})
        stale = {s for s in chosen if s.addressing in changed}
        for stage in list(stale):
            stale |= nx.ancestors(graph, stage) & chosen  # downstream of a stale stage: it will change
        upstream_first = nx.lexicographical_topological_sort(
            graph.reverse(copy=False), key=lambda s: s.addressing
        )
        order = [s for s in upstream_first if s in stale]
        tasks, skipped = [], []
        for stage in order:
            if not stage.cmd:
                skipped.append(stage.addressing)
                continue
            deps = [str(Path(d.def_path)) for d in stage.deps if not isinstance(d, ParamsDependency)]
            params = {
                str(Path(d.def_path)): list(d.params) for d in stage.deps if isinstance(d, ParamsDependency)
            }
            tasks.append(
                Task(
                    stage=stage.addressing,
                    cmd=stage.cmd if isinstance(stage.cmd, str) else " && ".join(stage.cmd),
                    after=[u.addressing for u in graph.successors(stage) if u in stale and u.cmd],
                    deps=sorted(set(deps)),
                    params=params,
                    gpu=any(fnmatch.fnmatchcase(stage.addressing, p) for p in gpu_stages),
                )
            )
    return tasks, skipped


class Launch:
    """Submit ``tasks`` on executor ``name``, follow them to the end, print what happens."""

    def __init__(
        self,
        root: Path,
        tasks: list[Task],
        name: str,
        launch: LaunchParams,
        jobs: int = 1,
        echo: Callable[[str], None] = print,
    ) -> None:
        self.root, self.tasks, self.name, self.launch = root, tasks, name, launch
        self.jobs, self.echo = max(jobs, 1), echo
        self.by_stage = {t.stage: t for t in tasks}
        self.folder = run_folder(launch, "launch", root)
        self.snapshot = snapshot_code(root, self.folder / "snapshot")
        self.executor = make_executor(name, launch, self.folder / "jobs")
        self.t0 = time.monotonic()
        self.stop = threading.Event()  # set by Ctrl-C (run)

    def say(self, task: Task, what: str) -> None:
        job = f"job {task.job.job_id}" if task.job is not None else "-"
        self.echo(f"[{time.monotonic() - self.t0:6.0f}s] {task.stage:<28} {job:<12} {what}")

    def _ready(self, task: Task) -> bool:
        ups = [self.by_stage[u] for u in task.after]
        if self.name == "slurm":  # SLURM holds it until they succeed
            return all(u.job is not None for u in ups)
        running = sum(1 for t in self.tasks if t.job is not None and not t.finished)
        return all(u.state == "COMPLETED" for u in ups) and running < self.jobs

    def _submit(self, task: Task) -> None:
        after = [self.by_stage[u].job.job_id for u in task.after]  # type: ignore[union-attr]
        self.executor.folder = (self.folder / "jobs" / task.stage).resolve()
        job_parameters(self.executor, self.launch, task.stage, self.snapshot, task.gpu, after)
        cmd = in_snapshot(task.cmd, self.snapshot)
        task.job = self.executor.submit(StageCommand(cmd, str(self.root), str(self.snapshot)))
        task.state = "SUBMITTED"
        needs = (
            f" after {', '.join(f'{u} ({j})' for u, j in zip(task.after, after, strict=True))}"
            if after
            else ""
        )
        self.say(task, f"submitted{needs}")

    def _cancel_below(self, failed: Task) -> None:
        below = {t.stage for t in self.tasks if failed.stage in self._upstream(t)}
        for task in self.tasks:  # upstream first: messages in DAG order
            if task.stage in below and not task.finished:
                if task.job is not None:
                    task.job.cancel(check=False)
                task.state, task.error = "CANCELLED", f"upstream {failed.stage} failed"
                self.say(task, f"cancelled: {task.error}")

    def _upstream(self, task: Task) -> set[str]:
        seen, todo = set(), list(task.after)
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(self.by_stage[name].after)
        return seen

    def _state(self, task: Task) -> str:
        """The job's state as printed: PENDING shows SLURM's reason unless it is the expected one."""
        job = task.job
        assert job is not None
        if not isinstance(job, SlurmJob):
            return "RUNNING"
        info = job.watcher.get_info(job.job_id, mode="cache")
        state = (info.get("State") or "PENDING").split(" ")[0]
        reason = info.get("Reason", "None")
        if state == "PENDING" and reason not in ("None", "Dependency", "Priority", "BeginTime"):
            return f"PENDING ({reason})"  # e.g. Resources, ReqNodeNotAvail, PartitionTimeLimit
        return state

    def _finish(self, task: Task, error: str | None = None) -> None:
        assert task.job is not None
        task.error = error or job_error(task.job)
        if task.error is None:
            task.state, task.result = "COMPLETED", task.job.result()
            self.say(task, f"COMPLETED in {task.result['end'] - task.result['start']:.0f} s")
            return
        task.state = "FAILED"
        self.say(task, f"FAILED: {task.error}")
        self._cancel_below(task)

    def run(self) -> list[Task]:
        """Ctrl-C only sets a flag, read between steps: raised as KeyboardInterrupt at any bytecode, it
        could land in library code that swallows it (a __del__, a broad except in submitit or DVC) and
        be lost; the launch then ran every stage to the end (seen on a loaded machine after a submission)."""
        self.echo(f"{len(self.tasks)} stage(s) to run on {self.name}; jobs in {self.folder}")
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda *_: self.stop.set()) if main else None
        try:
            while not all(t.finished for t in self.tasks):
                self._step()
                if self.stop.is_set():
                    raise KeyboardInterrupt
        except KeyboardInterrupt:
            for task in self.tasks:
                if task.job is not None and not task.finished:
                    task.job.cancel(check=False)
                    task.state, task.error = "CANCELLED", "interrupted"
            self.echo("interrupted: cancelled the jobs still queued or running")
            raise
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return self.tasks

    def _step(self) -> None:
        for task in self.tasks:
            if task.state == "WAITING" and self._ready(task) and not self.stop.is_set():
                self._submit(task)
        for watcher in {
            id(t.job.watcher): t.job.watcher for t in self.tasks if isinstance(t.job, SlurmJob)
        }.values():
            watcher.update()  # one sacct (and squeue) call for every job
        for task in self.tasks:  # upstream first, so a failure cancels its descendants before they report
            if task.job is None or task.finished:
                continue
            try:
                done = task.job.done()
            except Exception as err:  # the debug executor raises the stage's own error
                self._finish(task, f"{type(err).__name__}: {err}; log {task.job.paths.stderr}")
                continue
            if done:
                self._finish(task)
                continue
            state = self._state(task)
            if state != task.state and state not in ("UNKNOWN", *FINAL):
                if not (task.state == "SUBMITTED" and state == "PENDING"):  # the expected start: no news
                    self.say(task, state)
                task.state = state
        if not all(t.finished for t in self.tasks):
            self.stop.wait(self.launch.poll_s)  # a Ctrl-C ends the wait at once


def changed_since(
    snapshot: Path, root: Path, paths: Sequence[str], params: dict[str, list[str]] | None = None
) -> list[str]:
    """Those of ``paths`` (workspace-relative) inside the snapshot whose workspace copy differs from it, and
    the ``params`` (file → keys; no keys: the whole file) whose values differ (as ``file:key``)."""
    tops = {p.name for p in snapshot.iterdir()} if snapshot.exists() else set()
    changed = []
    for rel in paths:
        if Path(rel).parts and Path(rel).parts[0] in tops and not _same(snapshot / rel, root / rel):
            changed.append(rel)
    for rel, keys in (params or {}).items():
        if not (snapshot / rel).is_file():
            continue
        if not keys:
            changed += [] if _same(snapshot / rel, root / rel) else [rel]
            continue
        old, new = (yaml.safe_load((base / rel).read_text()) or {} for base in (snapshot, root))
        changed += [f"{rel}:{k}" for k in keys if dotted(old, k, None) != dotted(new, k, None)]
    return changed


def _same(a: Path, b: Path) -> bool:
    if a.is_file() or b.is_file():
        return a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)
    files = {p.relative_to(a) for p in a.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    other = {p.relative_to(b) for p in b.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    return files == other and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files)


def record(root: Path, tasks: Sequence[Task], snapshot: Path, dvc_yaml: bytes) -> tuple[list[str], list[str]]:
    """`dvc commit` the completed stages (upstream first); returns them, and the files that changed since
    submission (then nothing is recorded: their outputs came from the older version)."""
    done = [t for t in tasks if t.state == "COMPLETED"]
    changed = sorted({p for t in done for p in changed_since(snapshot, root, t.deps, t.params)})
    if (root / "dvc.yaml").read_bytes() != dvc_yaml:
        changed.append("dvc.yaml")
    if not done or changed:
        return [], changed
    names = [t.stage for t in done]
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "commit", "--force", "--quiet", *names],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise JobFailed(f"dvc commit {' '.join(names)} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return names, []


def describe(tasks: Sequence[Task], skipped: Sequence[str], name: str, launch: LaunchParams) -> list[str]:
    """The plan: where it runs, then one line per stage (upstream first) with the stages it waits for."""
    s = launch.slurm
    where = name
    if name == "slurm":
        gpus = f"{s.gpus_per_node} GPU(s) for {', '.join(launch.gpu_stages)}" if s.gpus_per_node else "no GPU"
        where += (
            f" (partition {s.partition or 'default'}, {s.cpus_per_task} CPUs, {s.mem_gb} GB,"
            f" {s.timeout_min} min per job, {gpus})"
        )
    lines = [f"{len(tasks)} stage(s) to run on {where}:"] if tasks else []
    for t in tasks:
        lines.append(f"  {t.stage:<24} {'gpu' if t.gpu else 'cpu'}  {t.cmd}")
        if t.after:
            lines.append(f"  {'':<24}      after: {', '.join(t.after)}")
    lines += [f"  {name:<24} changed, but has no command: `dvc commit` or `dvc add` it" for name in skipped]
    return lines


def _record(
    root: Path, tasks: Sequence[Task], snapshot: Path, dvc_yaml: bytes, echo: Callable[[str], None]
) -> list[str]:
    """``record`` and say what it did; the files that changed since submission."""
    recorded, changed = record(root, tasks, snapshot, dvc_yaml)
    if changed:
        echo(f"not recorded in dvc.lock: {', '.join(changed)} changed since submission; run the stages again")
    elif recorded:
        echo(f"recorded in dvc.lock: {', '.join(recorded)}")
    return changed


def launch_dag(
    root: Path,
    name: str,
    launch: LaunchParams,
    targets: Sequence[str] = (),
    *,
    dry_run: bool = False,
    jobs: int = 1,
    echo: Callable[[str], None] = print,
) -> int:
    """Plan, run and record; the exit status (0: everything ran and is recorded in dvc.lock)."""
    tasks, skipped = plan(root, targets, launch.gpu_stages)
    if dry_run or not tasks:
        for line in describe(tasks, skipped, name, launch) or ["nothing to run: everything is up to date"]:
            echo(line)
        return 0
    dvc_yaml = (root / "dvc.yaml").read_bytes()
    run = Launch(root, tasks, name, launch, jobs, echo)
    try:
        run.run()
    except KeyboardInterrupt:  # the stages that finished before it still count: `dvc repro` skips them
        _record(root, tasks, run.snapshot, dvc_yaml, echo)
        raise
    changed = _record(root, tasks, run.snapshot, dvc_yaml, echo)
    failed = [t for t in tasks if t.state == "FAILED"]
    for task in failed:
        echo(f"failed: {task.stage} (job {task.job.job_id if task.job else '-'}): {task.error}")
    cancelled = [t.stage for t in tasks if t.state == "CANCELLED"]
    if cancelled:
        echo(f"not run: {', '.join(cancelled)}")
    return 1 if failed or cancelled or changed else 0
