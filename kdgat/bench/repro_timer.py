"""`dvc repro`, timed: what `make run` calls. A run that executed EVERY stage of dvc.yaml is recorded.

    python -m kdgat.bench.repro_timer [--record bench/last_repro.json] [dvc repro arguments, e.g. -f]

DVC's output passes through unchanged. Which stages ran is read from its "Running stage '<name>':" lines
(a skipped stage says "didn't change", a run-cache hit "is cached", neither counts) and compared with
`dvc stage list`; only a full run writes the record {wall_s, stages, finished_at, dvc_args}, because
the wall time of a partial run says nothing about the pipeline's cost. The benchmark
(kdgat.bench.speed) reports the recorded wall time as last_repro_s. The exit status is dvc's.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdgat.io import write_json

RECORD = Path("bench") / "last_repro.json"
RUNNING = re.compile(r"^Running stage '([^']+)':\s*$")


def dvc_executable() -> str:
    """The dvc beside this Python (the project's venv), else the first on PATH."""
    beside = Path(sys.executable).with_name("dvc")
    found = str(beside) if beside.is_file() else shutil.which("dvc")
    if found is None:
        raise SystemExit("repro_timer: dvc not found (beside this Python or on PATH)")
    return found


def stages_ran(lines: Iterable[str]) -> list[str]:
    """Names of the stages dvc executed, in order, from its output lines."""
    return [m.group(1) for line in lines if (m := RUNNING.match(line.rstrip("\r\n")))]


def is_full_run(ran: Sequence[str], all_stages: Sequence[str]) -> bool:
    return bool(all_stages) and set(all_stages) <= set(ran)


def list_stages(dvc: str) -> list[str]:
    done = subprocess.run([dvc, "stage", "list", "--name-only"], capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(done.returncode)
    return [line.strip() for line in done.stdout.splitlines() if line.strip()]


def read_record(path: str | Path = RECORD) -> dict[str, Any] | None:
    """The last full run's record, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("wall_s"), int | float) else None


def timed_repro(dvc_args: Sequence[str], record: Path = RECORD) -> int:
    """Run `dvc repro *dvc_args`, echoing its output; write ``record`` if every stage ran. Returns the
    exit status of dvc."""
    dvc = dvc_executable()
    all_stages = list_stages(dvc)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}  # stage scripts' output arrives as it is written
    lines: list[str] = []
    t0 = time.perf_counter()
    with subprocess.Popen(
        [dvc, "repro", *dvc_args], stdout=subprocess.PIPE, text=True, bufsize=1, env=env
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line)
    wall = time.perf_counter() - t0
    ran = stages_ran(lines)
    summary = f"repro_timer: {len(ran)} of {len(all_stages)} stages ran in {wall:.1f} s"
    if proc.returncode:
        print(f"{summary}; dvc failed (exit status {proc.returncode}), nothing recorded", file=sys.stderr)
    elif is_full_run(ran, all_stages):
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
    return proc.returncode


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--record", type=Path, default=RECORD, help="where a full run is recorded")
    args, dvc_args = ap.parse_known_args(argv)
    raise SystemExit(timed_repro(dvc_args, args.record))


if __name__ == "__main__":
    main()
