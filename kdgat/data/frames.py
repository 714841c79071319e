"""The canonical frame table every reader produces and every later step consumes.

One row per CAN frame. Payload bytes beyond the DLC are 0 (the DLC column says how many are real), so
per-byte statistics stay vectorized without null handling.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import polars as pl

from kdgat.io import atomic_path

BYTE_COLUMNS = [f"b{i}" for i in range(8)]
BENIGN = "none"  # attack_type of a benign frame

FRAME_SCHEMA: dict[str, pl.DataType] = {
    "timestamp": pl.Float64(),  # seconds (epoch or capture-relative)
    "can_id": pl.UInt32(),  # arbitration ID, 11- or 29-bit
    "extended": pl.Boolean(),  # True for a 29-bit ID
    "dlc": pl.UInt8(),  # number of payload bytes, 0..8
    **{c: pl.UInt8() for c in BYTE_COLUMNS},
    "label": pl.UInt8(),  # 1 = injected / attack frame
    "attack_type": pl.String(),  # BENIGN for benign frames, else e.g. "dos", "fuzzy"
    "source": pl.String(),  # capture file, relative to the dataset root
}


class FrameError(ValueError):
    """Bad input in a capture: the message names the file and, where known, the line."""

    def __init__(self, path: str | Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


def empty_frames() -> pl.DataFrame:
    return pl.DataFrame(schema=FRAME_SCHEMA)


def conform(df: pl.DataFrame) -> pl.DataFrame:
    """Cast to the canonical schema and column order (raises if a column is missing)."""
    missing = [c for c in FRAME_SCHEMA if c not in df.columns]
    if missing:
        raise ValueError(f"frame table lacks columns {missing}")
    return df.select([pl.col(c).cast(t) for c, t in FRAME_SCHEMA.items()])


def write_frames(
    df: pl.DataFrame, dest: str | Path, force: bool = False, inputs: Iterable[str | Path] = ()
) -> None:
    """Write a frame table to Parquet atomically (kdgat.io.check_output says where it may not go)."""
    df = conform(df)
    with atomic_path(dest, force=force, inputs=inputs) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)


def read_frames(path: str | Path) -> pl.DataFrame:
    return conform(pl.read_parquet(path))
