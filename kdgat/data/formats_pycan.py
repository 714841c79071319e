"""Readers for the logs python-can knows besides candump: asc, trc, its own csv, and binary blf.

python-can's readers are generators that die on the first line they cannot parse. So the text formats
are fed line by line through a counter (every message gets its physical line number), and in skip mode
a failure on line k restarts the reader from the top with line k left out: the header state is
rebuilt exactly, at the cost of one re-read per bad line (bounded by MAX_RESTARTS). Collected messages
become candidate frames for the shared checks in formats_core.finish.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import can
import numpy as np
import polars as pl

from kdgat.data.formats_core import EXT_MAX, STD_MAX, FileCounts, benign_labels, candidates, read_lines
from kdgat.data.frames import BYTE_COLUMNS, FrameError

MAX_RESTARTS = 50
CANLOG_CSV_HEADER = "timestamp,arbitration_id,extended,remote,error,dlc,data"
# python-can's CSVReader trusts each field (b64decode drops stray characters), so rows are checked first.
_CANLOG_CSV_ROW = (
    r"^[-+]?[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?,0[xX][0-9A-Fa-f]+,[01],[01],[01],[0-9]+,"
    r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
)

# Lines that should have given a message. TRC: any non-comment line. ASC: a line with a numeric (CAN)
# channel and a direction, or a timestamped line with a classic data marker "d <DLC>"; events,
# statistics ("D 0 R 0"), LIN and FlexRay lines are rightly passed over.
_SKIPPED = {
    "trc": re.compile(r"^\s*[^;\s]"),
    "asc": re.compile(r"^\s*\S+\s+\d+\s+.*\b(?i:rx|tx)\b|^\s*\d\S*\s.*\sd\s+[0-9A-Fa-f]+\b"),
}


class _LineFeed:
    """A text file for python-can: yields the kept lines and remembers the last one handed out."""

    def __init__(self, lines: list[str], numbers: list[int], drop: set[int]) -> None:
        self._rows = iter([(n, t) for n, t in zip(numbers, lines, strict=True) if n not in drop])
        self.lineno = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        self.lineno, text = next(self._rows)
        return text + "\n"

    def close(self) -> None:
        pass


class _Collector:
    """Columns of the messages read so far (a Python loop per message: these files are small)."""

    def __init__(self) -> None:
        self.ts: list[float] = []
        self.can_id: list[int] = []
        self.ext: list[bool] = []
        self.dlc: list[int] = []
        self.nbytes: list[int] = []
        self.non_data: list[bool] = []
        self.line: list[int] = []
        self.payload = bytearray()

    def add(self, msg: can.Message, line: int) -> None:
        data = bytes(msg.data or b"")
        self.ts.append(float(msg.timestamp))
        self.can_id.append(int(msg.arbitration_id))
        self.ext.append(bool(msg.is_extended_id))
        self.dlc.append(int(msg.dlc))
        self.nbytes.append(len(data))
        self.non_data.append(bool(msg.is_remote_frame or msg.is_error_frame))
        self.line.append(line)
        self.payload += data[:8].ljust(8, b"\0")

    def frame(self) -> pl.DataFrame:
        n = len(self.ts)
        payload = np.frombuffer(bytes(self.payload), dtype=np.uint8).reshape(n, 8)
        df = pl.DataFrame(
            {
                "line": np.asarray(self.line, dtype=np.int64),
                "reason": pl.Series([None] * n, dtype=pl.String),
                "non_data": np.asarray(self.non_data, dtype=bool),
                "timestamp": np.asarray(self.ts, dtype=np.float64),
                "can_id": np.asarray(self.can_id, dtype=np.int64),
                "id_max": np.where(np.asarray(self.ext, dtype=bool), EXT_MAX, STD_MAX).astype(np.int64),
                "dlc": np.asarray(self.dlc, dtype=np.int64),
                "nbytes": np.asarray(self.nbytes, dtype=np.int64),
                **{c: payload[:, i] for i, c in enumerate(BYTE_COLUMNS)},
            }
        )
        return candidates(df.with_columns(*benign_labels()))


def _text_reader(fmt: str) -> Callable[[Any], can.io.generic.MessageReader]:
    if fmt == "asc":
        # Absolute times when the header has a date (ASCWriter writes one), so captures line up.
        return lambda f: can.ASCReader(f, relative_timestamp=False)
    return {"trc": can.TRCReader, "canlog_csv": can.CSVReader}[fmt]


def read_pycan_text(path: Path, fmt: str, on_bad_line: str, counts: FileCounts) -> pl.DataFrame:
    lines = read_lines(path, fmt)
    texts, numbers = lines["text"].to_list(), lines["line"].to_list()
    pre = _prechecks(lines, fmt, path)
    drop: set[int] = set()
    for line, reason in pre:
        if on_bad_line == "error":
            raise FrameError(path, reason, line)
        counts.bad(path, line, reason)
        drop.add(line)
    factory = _text_reader(fmt)
    for _ in range(MAX_RESTARTS + 1):
        feed, got = _LineFeed(texts, numbers, drop), _Collector()
        try:
            for msg in factory(feed):
                got.add(msg, feed.lineno)
            if fmt in _SKIPPED:
                _check_skips(fmt, path, texts, numbers, drop, got, on_bad_line, counts)
            return got.frame()
        except FrameError:
            raise
        except Exception as err:  # python-can raises whatever its parsing hits; name it with the line
            reason = f"python-can {fmt} reader: {type(err).__name__}: {err}"
            if on_bad_line == "error" or feed.lineno in drop:
                raise FrameError(path, reason, feed.lineno or None) from err
            counts.bad(path, feed.lineno, reason)
            drop.add(feed.lineno)
    raise FrameError(path, f"more than {MAX_RESTARTS} lines python-can cannot parse; giving up")


def _check_skips(
    fmt: str,
    path: Path,
    texts: list[str],
    numbers: list[int],
    drop: set[int],
    got: _Collector,
    on_bad_line: str,
    counts: FileCounts,
) -> None:
    """python-can's TRC and ASC readers pass over lines they cannot parse without a word; a line that
    looks like a CAN frame (_SKIPPED) but gave no message is a bad line."""
    produced, looks_like_frame = set(got.line), _SKIPPED[fmt]
    for number, text in zip(numbers, texts, strict=True):
        if number in drop or number in produced or not looks_like_frame.search(text):
            continue
        reason = f"python-can {fmt} reader skipped this line (malformed or unsupported record)"
        if on_bad_line == "error":
            raise FrameError(path, reason, number)
        counts.bad(path, number, reason)


def _prechecks(lines: pl.DataFrame, fmt: str, path: Path) -> list[tuple[int, str]]:
    """Bad lines found before python-can sees the file: not UTF-8, and (canlog_csv) malformed rows."""
    reason = pl.col("reason")
    if fmt == "canlog_csv":
        head_line, head = lines["line"][0], lines["text"][0]
        if head.strip().lower() != CANLOG_CSV_HEADER:
            raise FrameError(path, f"missing columns: expected the header '{CANLOG_CSV_HEADER}'", head_line)
        row_ok = pl.col("text").str.strip_chars().str.contains(_CANLOG_CSV_ROW)
        reason = pl.coalesce(
            reason,
            pl.when((pl.col("line") > head_line) & ~row_ok).then(
                pl.format("malformed row (expected {} fields: {})", pl.lit(7), pl.lit(CANLOG_CSV_HEADER))
            ),
        )
    bad = lines.select("line", reason.alias("reason")).filter(pl.col("reason").is_not_null())
    return [(int(a), str(b)) for a, b in bad.iter_rows()]


def read_blf(path: Path, on_bad_line: str, counts: FileCounts) -> pl.DataFrame:
    """Binary BLF: no lines, so problems are named by frame number. python-can stops quietly at a
    truncated tail, so the size recorded in the header is compared with the file's; skip mode keeps
    the frames before the damage and counts it as one bad entry."""
    with open(path, "rb") as f:
        if f.read(4) != b"LOGG":
            raise FrameError(path, "not a BLF file (no 'LOGG' signature)")
    got = _Collector()
    damage = None
    try:
        with can.BLFReader(str(path)) as reader:
            expected = int(reader.file_size)
            for i, msg in enumerate(reader, start=1):
                got.add(msg, i)
        actual = path.stat().st_size
        if 0 < actual < expected:  # 0: a writer that never finalised its header
            damage = f"truncated BLF file ({actual} of {expected} bytes) after frame {len(got.ts)}"
    except Exception as err:  # python-can raises struct/zlib/value errors on damaged containers
        damage = f"frame {len(got.ts) + 1}: unreadable BLF data ({type(err).__name__}: {err})"
        if on_bad_line == "error":
            raise FrameError(path, damage) from err
    if damage is not None:
        if on_bad_line == "error":
            raise FrameError(path, damage)
        counts.bad(path, None, damage)
    if not got.ts:
        raise FrameError(path, "no CAN frames in BLF file")
    return got.frame()
