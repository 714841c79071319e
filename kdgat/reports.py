"""Small JSON reports that stages write next to their outputs (DVC metrics / human reading)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import polars as pl

from kdgat.data.frames import atomic_path


def write_json(obj: Any, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(df: pl.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        df.write_parquet(tmp, compression="zstd")
