"""Where a command's output may not go, beyond what kdgat.io.check_output refuses for every writer."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from kdgat.cli.errors import fail


def refuse_inside_inputs(dest: Path, inputs: Iterable[Path], force: bool) -> None:
    """Stop (one line, exit 2) when ``dest`` lies inside an input folder, unless ``force``: the output
    would land among the user's captures and be read as one of them next time. Links are followed, so
    data/raw/NAME and the folder it links to are the same input."""
    if force:
        return
    full = dest.resolve()
    for src in inputs:
        if src.is_dir() and src.resolve() in full.parents:
            fail(f"{dest}: is inside the input folder {src}; write it elsewhere (or pass --force)")
