"""What every stage script shares: expected failures end in one readable line, not a traceback."""

from __future__ import annotations

import sys
from collections.abc import Callable

from kdgat.config import ParamsError
from kdgat.data.frames import FrameError
from kdgat.io import DataError


def run_stage(main: Callable[..., None], *args: str) -> None:
    try:
        main(*args)
    except (ParamsError, FrameError, DataError, KeyError, FileNotFoundError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {msg}", file=sys.stderr)
        sys.exit(2)
