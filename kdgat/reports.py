"""Atomic writers for what stages leave beside their outputs: JSON reports, CSV logs, Parquet tables."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from kdgat.data.frames import atomic_path


def write_json(obj: Any, dest: str | Path, force: bool = False, inputs: Iterable[str | Path] = ()) -> None:
    with atomic_path(dest, force=force, inputs=inputs) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(df: pl.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        df.write_parquet(tmp, compression="zstd")


def write_csv(df: pl.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        df.write_csv(tmp)
