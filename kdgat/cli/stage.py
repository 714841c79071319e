"""What every stage script shares: its arguments parsed by the same CLI library as `kdgat` (typer: a wrong
argument count is a usage message, `--help` prints the script's docstring), and expected failures ending
in one readable line, not a traceback."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

import typer

from kdgat.config import ParamsError
from kdgat.data.frames import FrameError
from kdgat.io import DataError


def run_stage(main: Callable[..., None], doc: str | None = None) -> None:
    """Parse sys.argv into ``main``'s parameters (each a positional argument, as DVC's `cmd:` passes them)
    and run it; ``doc`` (the script's docstring) is its --help."""

    @functools.wraps(main)
    def guarded(*args: object, **kwargs: object) -> None:
        try:
            main(*args, **kwargs)
        except (ParamsError, FrameError, DataError, KeyError, FileNotFoundError) as err:
            msg = err.args[0] if isinstance(err, KeyError) and err.args else err
            print(f"error: {msg}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt as err:  # training says where it resumes; elsewhere a rerun starts over
            print(str(err) or "interrupted; rerun to resume", file=sys.stderr)
            sys.exit(130)

    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False, help=doc)
    app.command(help=doc)(guarded)
    app()
