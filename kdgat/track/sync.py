"""The W&B runs kept under <root>/wandb/: read back from their transaction logs (`.wandb` files), listed,
and uploaded (`wandb sync`). What `kdgat track list` and `kdgat track sync` call.

wandb 0.31 has no Python reader for its log; its own `wandb-core leet inspect --json` prints every record
as one JSON line, which is what ``read_records`` parses.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kdgat.config import TrackingParams
from kdgat.track.tracker import WANDB_FOLDER, TrackingError, api_key, wandb_env


@dataclass(frozen=True)
class LocalRun:
    id: str
    name: str
    job_type: str
    group: str  # the dataset
    state: str  # finished | failed | unfinished (running, or killed before it closed)
    offline: bool
    synced: bool
    path: Path  # the .wandb file


# [offline-]run-<start time>-<run id>[-<n>]: W&B appends -1, -2, ... when a run starts in the same second
# as an earlier one with that id (a rerun); a run id may hold "-" itself (kdgat.track.tracker's "<id>-retry")
_RUN_FOLDER = re.compile(r"run-(\d{8}_\d{6})-.+?(?:-(\d+))?$")


def _started(path: Path) -> tuple[str, int]:
    m = _RUN_FOLDER.search(path.parent.name)
    return (m[1], int(m[2] or 0)) if m else ("", 0)


def run_files(root: str | Path = ".") -> list[Path]:
    """Transaction logs of every local run, oldest first (by the start time in the folder name)."""
    return sorted((Path(root) / WANDB_FOLDER).glob("*run-*/run-*.wandb"), key=_started)


def read_records(path: Path, root: str | Path = ".") -> list[dict[str, Any]]:
    """Every record of a run's .wandb file (header, run, history, summary, alert, artifact, exit, ...)."""
    from wandb.util import get_core_path

    cmd = [get_core_path(), "leet", "inspect", "--json", "--no-observability", "--run-file", str(path)]
    with wandb_env(root):
        proc = subprocess.run([*cmd, str(path.parent.parent)], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise TrackingError(
            f"{path}: cannot read this W&B run log: {proc.stderr.strip() or proc.stdout.strip()}"
        )
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def describe(path: Path, root: str | Path = ".") -> LocalRun:
    records = read_records(path, root)
    run: dict[str, Any] = next((r["run"] for r in records if r["type"] == "run"), {})
    exits = [r["exit"] for r in records if r["type"] == "exit"]
    code = exits[-1].get("exit_code", 0) if exits else None
    return LocalRun(
        id=run.get("run_id", "?"),
        name=run.get("display_name", "?"),
        job_type=run.get("job_type", ""),
        group=run.get("run_group", ""),
        state="unfinished" if code is None else "finished" if code == 0 else "failed",
        offline=path.parent.name.startswith("offline-"),
        synced=path.with_suffix(".wandb.synced").exists(),
        path=path,
    )


def local_runs(root: str | Path = ".") -> list[LocalRun]:
    return [describe(p, root) for p in run_files(root)]


def sync_runs(root: str | Path, tracking: TrackingParams, *, dry_run: bool = False) -> tuple[list[Path], str]:
    """Upload the offline runs not yet synced (`wandb sync`; reruns of a stage land in the same run, since
    they share its id). Returns their folders and wandb's output; raises TrackingError without a key or
    when wandb fails."""
    runs = [p.parent for p in run_files(root) if p.parent.name.startswith("offline-")]
    todo = [r for r in runs if not any(r.glob("*.wandb.synced"))]
    if not todo:
        return [], ""
    if not dry_run and not api_key(root):
        raise TrackingError(
            f"{len(todo)} offline run(s) in {Path(root) / WANDB_FOLDER} to upload, but no W&B key: run "
            "`WANDB_API_KEY=... kdgat track sync`, or put `WANDB_API_KEY=...` in the git-ignored .env"
        )
    cmd = [sys.executable, "-m", "wandb", "sync", *(["--dry-run"] if dry_run else [])]
    cmd += ["--entity", tracking.entity] if tracking.entity else []
    with wandb_env(root):
        proc = subprocess.run([*cmd, *map(str, todo)], capture_output=True, text=True)
    if proc.returncode != 0:
        raise TrackingError(f"wandb sync failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}".rstrip())
    return todo, (proc.stdout + proc.stderr).strip()
