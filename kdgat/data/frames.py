"""The canonical frame table every reader produces and every later step consumes.

One row per CAN frame. Payload bytes beyond the DLC are 0 (the DLC column says how many are real), so
per-byte statistics stay vectorized without null handling.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import polars as pl

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


OUTPUT_MARK = ".kdgat-output"  # left in every folder a kdgat writer makes, so a rerun may replace it


class DataError(ValueError):
    """Input data, splits or an output location the user can fix; stages print the message as one line."""


class OutputError(DataError):
    """An output path that cannot or must not be written; the message names it and what to do."""


def check_output(
    dest: str | Path, *, folder: bool = False, force: bool = False, inputs: Iterable[str | Path] = ()
) -> None:
    """Refuse, before any work, to write where the write would lose data or cannot succeed.

    A file never replaces a folder; a folder never replaces a file, nor a non-empty folder that kdgat
    did not make (no OUTPUT_MARK inside); ``force`` lifts both. An output never replaces an input or
    a folder holding one, nor the working folder or one above it (``-o .``), even with ``force``."""
    dest = Path(dest)
    here, full = Path.cwd().resolve(), dest.resolve()
    if full == here or full in here.parents:
        raise OutputError(f"{dest}: is the working folder or above it; name a new file or folder")
    for src in inputs:
        src_full = Path(src).resolve()
        if full == src_full or full in src_full.parents:
            what = "is an input" if full == src_full else f"holds an input ({src})"
            raise OutputError(f"{dest}: {what}; write the output elsewhere")
    parent = next((p for p in full.parents if p.exists()), None)
    if parent is not None and not parent.is_dir():
        raise OutputError(f"{dest}: {parent} is a file, not a folder")
    if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{dest}: no permission to write in {parent}")
    if force or not (dest.exists() or dest.is_symlink()) or dest.is_symlink():
        return
    what = "a folder" if folder else "a file"
    if dest.is_dir() and not folder:
        raise OutputError(f"{dest}: is a folder, and this writes {what}; name a file (or pass --force)")
    if not dest.is_dir() and folder:
        raise OutputError(f"{dest}: is a file, and this writes {what}; name a folder (or pass --force)")
    if folder and any(dest.iterdir()) and not (dest / OUTPUT_MARK).exists():
        raise OutputError(
            f"{dest}: is a folder that kdgat did not write and is not empty; "
            "name a new folder (or pass --force to replace it)"
        )


@contextmanager
def atomic_path(
    dest: str | Path, *, folder: bool = False, force: bool = False, inputs: Iterable[str | Path] = ()
) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` only if the block succeeds.

    ``folder``: the block makes a folder there (marked as kdgat's). check_output runs first, so an
    output that would replace a folder, a file or an input fails before any work; an existing ``dest``
    stays intact until the new one is complete.
    """
    dest = Path(dest)
    check_output(dest, folder=folder, force=force, inputs=inputs)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    except OSError as err:  # e.g. a read-only filesystem, which os.access does not see
        raise OutputError(f"{dest}: cannot write there ({err.strerror})") from None
    target = tmp / dest.name
    try:
        yield target
        if folder:
            (target / OUTPUT_MARK).write_text("written by kdgat; a rerun may replace this folder\n")
        if dest.is_dir() and not dest.is_symlink():
            old = tmp / (dest.name + ".old")
            os.replace(dest, old)
            os.replace(target, dest)
        else:
            os.replace(target, dest)
    finally:
        _rmtree(tmp)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def write_frames(
    df: pl.DataFrame, dest: str | Path, force: bool = False, inputs: Iterable[str | Path] = ()
) -> None:
    """Write a frame table to Parquet atomically (check_output says where it may not go)."""
    df = conform(df)
    with atomic_path(dest, force=force, inputs=inputs) as tmp:
        df.write_parquet(tmp, compression="zstd", statistics=True)


def read_frames(path: str | Path) -> pl.DataFrame:
    return conform(pl.read_parquet(path))
