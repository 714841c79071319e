"""A benchmark's timed part run in a child process on one thread: the thread counts must be set before
polars and numpy load, so the figures compare across machines with different core counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

SINGLE_THREAD_ENV = {
    v: "1"
    for v in (
        "POLARS_MAX_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMEXPR_NUM_THREADS",
    )
}


def run_worker(module: str, *args: str) -> dict[str, Any]:
    """``python -m module args`` with SINGLE_THREAD_ENV; the JSON object on its last line of stdout."""
    cmd = [sys.executable, "-m", module, *args]
    done = subprocess.run(cmd, env={**os.environ, **SINGLE_THREAD_ENV}, capture_output=True, text=True)
    if done.returncode:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"benchmark worker {module} failed with exit status {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
