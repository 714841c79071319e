"""`dvc repro`, timed: what `make run` calls. A run that executed EVERY stage of dvc.yaml is recorded.

    python -m kdgat.bench.repro_timer [--record bench/last_repro.json] [dvc repro arguments, e.g. -f]

DVC runs in this process through its Python API: the arguments are read by DVC's own parser, the stages
come from the repository's index, and which stages ran from what ``Repo.reproduce`` returns, less those
it restored from the run cache (a skipped stage is not returned; a run-cache hit runs nothing). Only a full
run writes the record {wall_s, stages, finished_at, dvc_args}, because the wall time of a partial run says
nothing about the pipeline's cost. The benchmark (kdgat.bench.speed) reports the recorded wall time as
last_repro_s. The exit status is 0, or 1 when DVC failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdgat.io import write_json

RECORD = Path("bench") / "last_repro.json"


def is_full_run(ran: Sequence[str], all_stages: Sequence[str]) -> bool:
    return bool(all_stages) and set(all_stages) <= set(ran)


def read_record(path: str | Path = RECORD) -> dict[str, Any] | None:
    """The last full run's record, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("wall_s"), int | float) else None


def reproduce(dvc_args: Sequence[str]) -> tuple[list[str], list[str]]:
    """`dvc repro *dvc_args` in this process: (every stage of the pipeline, the stages that ran, in order)."""
    from dvc.cli import parse_args  # importing dvc sets up its console logging, as its command line has it

    args = parse_args(["repro", *dvc_args])
    cmd = args.func(args)
    repo = cmd.repo
    all_stages = [s.addressing for s in repo.index.stages]
    restored: set[str] = set()
    restore = repo.stage_cache.restore

    def noting(stage: Any, *args: Any, **kwargs: Any) -> Any:
        done = restore(stage, *args, **kwargs)  # raises when the run cache has no entry
        restored.add(stage.addressing)
        return done

    repo.stage_cache.restore = noting
    try:
        result = repo.reproduce(**cmd._common_kwargs, **cmd._repro_kwargs)
    finally:
        repo.close()
    return all_stages, [s.addressing for s in result if s.addressing not in restored]


def timed_repro(dvc_args: Sequence[str], record: Path = RECORD) -> int:
    """Run `dvc repro *dvc_args`; write ``record`` if every stage ran. Returns 0, or 1 if DVC failed."""
    os.environ["PYTHONUNBUFFERED"] = "1"  # stage scripts' output arrives as it is written
    t0 = time.perf_counter()
    try:
        all_stages, ran = reproduce(dvc_args)
    except Exception as err:  # DVC's errors (a failed stage, a bad target) end the run, as `dvc repro`
        wall = time.perf_counter() - t0
        print(f"ERROR: {err}", file=sys.stderr)
        print(f"repro_timer: dvc failed after {wall:.1f} s, nothing recorded", file=sys.stderr)
        return 1
    wall = time.perf_counter() - t0
    summary = f"repro_timer: {len(ran)} of {len(all_stages)} stages ran in {wall:.1f} s"
    if is_full_run(ran, all_stages):
        finished = datetime.now(UTC).isoformat(timespec="seconds")
        write_json(
            {"wall_s": round(wall, 2), "stages": ran, "finished_at": finished, "dvc_args": list(dvc_args)},
            record,
        )
        print(f"{summary}: a full run, recorded in {record}", file=sys.stderr)
    else:
        print(
            f"{summary}: not a full run, {record} left as it was (`dvc repro -f` reruns all)", file=sys.stderr
        )
    return 0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", type=Path, default=RECORD, help="where a full run is recorded")
    args, dvc_args = ap.parse_known_args(argv)
    raise SystemExit(timed_repro(dvc_args, args.record))


if __name__ == "__main__":
    main()
