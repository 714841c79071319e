"""Atomic writes, the ground floor every module that leaves a file stands on: ``atomic_path`` (a file or a
folder appears whole or not at all, and never where it would lose data: ``check_output``), and the writers
for JSON reports, CSV logs and Parquet tables."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl

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
        shutil.rmtree(tmp, ignore_errors=True)


def write_json(obj: Any, dest: str | Path, force: bool = False, inputs: Iterable[str | Path] = ()) -> None:
    with atomic_path(dest, force=force, inputs=inputs) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def write_parquet(df: pl.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        df.write_parquet(tmp, compression="zstd")


def write_csv(df: pl.DataFrame, dest: str | Path) -> None:
    with atomic_path(dest) as tmp:
        df.write_csv(tmp)
