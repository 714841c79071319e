"""Atomic writes, the ground floor every module that leaves a file stands on: ``atomic_path`` (a file or a
folder appears whole or not at all), and the writers for JSON reports, CSV logs and Parquet tables."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl


@contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    Works for files and directories; an existing ``dest`` stays intact until the new one is complete.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    target = tmp / dest.name
    try:
        yield target
        if dest.is_dir() and not dest.is_symlink():
            old = tmp / (dest.name + ".old")
            os.replace(dest, old)
            os.replace(target, dest)
        else:
            os.replace(target, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(obj: Any, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(df: pl.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        df.write_parquet(tmp, compression="zstd")


def write_csv(df: pl.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        df.write_csv(tmp)
