"""Small CAN logs made at test time, and the `kdgat` command run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import chdir, contextmanager
from pathlib import Path

from typer.testing import CliRunner

from kdgat.cli.main import main

# four frames of candump -l: 11-bit, 29-bit (18FCF200) and an empty payload
LOG = """(1498256920.791686) can0 371#FFFF0000802D0000
(1498256920.793720) can0 140#0000004000001600
(1498256920.793734) can0 18FCF200#E1FF00
(1498256920.795000) can0 0D1#
"""


def screen(log_text: str, stamp: str = "ta") -> str:
    """candump -l lines → what candump prints on screen with -t<stamp> ('' for no timestamp)."""
    out, prev = [], None
    for line in log_text.splitlines():
        ts, iface, frame = line.split()
        t = float(ts.strip("()"))
        can_id, data = frame.split("#")
        pairs = " ".join(data[i : i + 2] for i in range(0, len(data), 2))
        shown = {"ta": t, "td": 0.0 if prev is None else t - prev, "tz": t - 1498256920.791686}.get(stamp)
        prev = t
        head = "" if shown is None else f" ({shown:010.6f}) "
        out.append(f"{head} {iface}  {can_id:>8}   [{len(data) // 2}]  {pairs}".rstrip())
    return "\n".join(out) + "\n"


def kdgat_process(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`kdgat ARGS` in a fresh process (exit code, stdout and stderr as a user sees them)."""
    cmd = [sys.executable, "-m", "kdgat.cli.main", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, timeout=300)


def kdgat(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """`kdgat ARGS` as ``kdgat_process`` runs it, but in this process: the same ``main`` (its error
    handling included) on the same argv, its exit code, stdout and stderr; a fresh interpreter costs seconds
    of imports per call. An exception that escapes ``main`` (a user would see a traceback) is raised here."""
    argv = ["kdgat", *map(str, args)]
    with CliRunner().isolation() as (out, err, _), chdir(cwd or Path.cwd()), _argv(argv):
        try:
            main()
            code: object = 0
        except SystemExit as leaving:
            code = leaving.code
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    returncode = code if isinstance(code, int) else 0 if code is None else 1  # as sys.exit maps it
    return subprocess.CompletedProcess(argv, returncode, stdout, stderr)


@contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    before = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = before
