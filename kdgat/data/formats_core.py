"""Shared machinery of the log readers: physical lines, hex decoding, and checking candidate frames.

Every reader turns a file into a *candidate* table (CANDIDATE_SCHEMA): one row per line that looked like
a frame, with the physical 1-based line number, the parsed values, and ``reason`` set where parsing
already failed. ``finish`` then applies the checks every format shares (DLC, payload length, ID range,
timestamp order), raises or drops bad rows, and returns the canonical frame table.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import polars as pl
import pyarrow as pa

from kdgat.data.formats_order import HOLD, Clock, judge
from kdgat.data.frames import BENIGN, BYTE_COLUMNS, FrameError, conform

MAX_EXAMPLES = 10
HEAD_BYTES = 1 << 16  # a text log's first bytes, where a NUL byte makes it binary: read at once
STD_MAX = 0x7FF
EXT_MAX = 0x1FFFFFFF

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "line": pl.Int64(),  # physical line (or frame number for binary logs), 1-based
    "reason": pl.String(),  # why the row is bad; null when parsing succeeded
    "non_data": pl.Boolean(),  # a remote or error frame: carries no payload, dropped and counted
    "timestamp": pl.Float64(),
    "can_id": pl.Int64(),
    "id_max": pl.Int64(),  # largest ID the notation allows (0x7FF for 11-bit, 0x1FFFFFFF for 29-bit)
    "dlc": pl.Int64(),  # the declared DLC
    "nbytes": pl.Int64(),  # payload bytes actually present
    **{c: pl.UInt8() for c in BYTE_COLUMNS},
    "label": pl.UInt8(),
    "attack_type": pl.String(),
}


@dataclass
class FileCounts:
    """What one file contributed to the ingest report."""

    frames: int = 0
    bad_lines: int = 0
    out_of_order: int = 0  # part of bad_lines: dropped for a timestamp earlier than a previous frame
    non_data: int = 0
    bad_examples: list[str] = field(default_factory=list)

    def bad(self, path: str | Path, line: int | None, reason: str) -> None:
        self.bad_lines += 1
        if len(self.bad_examples) < MAX_EXAMPLES:
            self.bad_examples.append(str(FrameError(path, reason, line)))


# --- physical lines ------------------------------------------------------------------------------------


COMPRESSED = (".gz", ".xz", ".zst")  # a capture inside one of these is read as the capture itself


def inner_suffix(path: Path) -> str:
    """The capture's own extension: '.log' for both 'a.log' and 'a.log.gz'."""
    suffix = path.suffix.lower()
    return Path(path.stem).suffix.lower() if suffix in COMPRESSED else suffix


@contextmanager
def open_capture(path: Path) -> Iterator[BinaryIO]:
    """A capture opened for reading bytes, decompressed where its extension says so; read errors (also
    while reading) are FrameErrors naming the file."""
    import gzip
    import lzma

    suffix = path.suffix.lower()
    try:
        if suffix == ".zst":
            import zstandard

            with zstandard.open(path, "rb") as f:
                yield f
        else:
            with (gzip.open if suffix == ".gz" else lzma.open if suffix == ".xz" else open)(path, "rb") as f:
                yield f  # type: ignore[misc]
    except (OSError, EOFError, lzma.LZMAError) as err:
        raise FrameError(path, f"cannot read: {getattr(err, 'strerror', None) or err}") from None
    except Exception as err:  # zstandard.ZstdError has no common base with the others
        if type(err).__name__ == "ZstdError":
            raise FrameError(path, f"cannot read: {err}") from None
        raise


def read_bytes(path: Path, limit: int = -1) -> bytes:
    """A capture's bytes (at most ``limit``), decompressed where its extension says so."""
    with open_capture(path) as f:
        return f.read(limit)


def read_lines(path: Path, fmt: str) -> pl.DataFrame:
    """Non-blank lines of a text log as (line, text, reason); reason marks lines that are not UTF-8.

    Line numbers are physical (blank lines count), built from newline positions rather than a CSV
    parser, which would merge or skip lines.
    """
    df = lines_of(_text_start(np.frombuffer(read_bytes(path), dtype=np.uint8), path, fmt), 1)
    if df.height == 0:
        raise FrameError(path, "empty file (only blank lines)")
    return df


def line_blocks(path: Path, fmt: str, block_bytes: int) -> Generator[pl.DataFrame]:
    """``read_lines`` a block at a time: about ``block_bytes`` of the file each, cut after a line's end (a
    longer line makes a longer block), numbered as in the whole file; blocks of blank lines are left out."""
    line, pending, seen = 1, b"", False
    with open_capture(path) as f:
        head = f.read(max(block_bytes, HEAD_BYTES))
        data = _text_start(np.frombuffer(head, dtype=np.uint8), path, fmt).tobytes()
        while True:
            buf = pending + data
            cut = buf.rfind(b"\n") + 1 if data else len(buf)
            block, pending = buf[:cut], buf[cut:]
            if block:  # a block shorter than its line holds no line's end yet: read on
                df = lines_of(np.frombuffer(block, dtype=np.uint8), line)
                line += block.count(b"\n")
                if df.height:
                    seen = True
                    yield df
            if not data:
                break
            data = f.read(block_bytes)
    if not seen:
        raise FrameError(path, "empty file (only blank lines)")


def _text_start(raw: np.ndarray, path: Path, fmt: str) -> np.ndarray:
    """The file's first bytes checked (not empty, not binary) and without a UTF-8 byte-order mark."""
    if raw.size == 0:
        raise FrameError(path, "empty file")
    if (raw[:HEAD_BYTES] == 0).any():
        raise FrameError(path, f"binary data, not a {fmt} text log")
    if raw[:3].tobytes() == b"\xef\xbb\xbf":  # a UTF-8 byte-order mark is not part of line 1
        raw = raw[3:]
    return raw


def lines_of(raw: np.ndarray, first_line: int) -> pl.DataFrame:
    """Non-blank lines of whole lines of text as (line, text, reason), numbered from ``first_line``."""
    starts = np.concatenate([[0], np.flatnonzero(raw == 10) + 1]).astype(np.int64)
    offsets = starts if starts[-1] == raw.size else np.append(starts, raw.size)
    arr = pa.LargeStringArray.from_buffers(
        len(offsets) - 1, pa.py_buffer(offsets), pa.py_buffer(raw), null_count=0
    )
    try:
        arr.validate(full=True)
        text = pl.Series("text", arr)
    except pa.ArrowInvalid:  # not UTF-8 somewhere: decode leniently, then flag the damaged lines
        lines = raw.tobytes().decode("utf-8", errors="replace").split("\n")
        text = pl.Series("text", lines[:-1] if lines[-1] == "" else lines, dtype=pl.String)
    df = pl.DataFrame(
        {"line": pl.int_range(first_line, first_line + len(text), eager=True, dtype=pl.Int64), "text": text}
    )
    df = df.with_columns(pl.col("text").str.strip_chars_end("\r\n")).filter(
        pl.col("text").str.strip_chars() != ""
    )
    return df.with_columns(
        pl.when(pl.col("text").str.contains("\ufffd", literal=True))
        .then(pl.lit("not valid UTF-8 text"))
        .otherwise(pl.lit(None, pl.String))
        .alias("reason")
    )


# --- hex fields ----------------------------------------------------------------------------------------


_SHIFT = np.array([(64 - 4 * n) % 64 for n in range(17)], dtype=np.uint64)  # by digit count


def leading_plus(s: pl.Series) -> np.ndarray:
    """Rows starting with '+', which str.to_integer would accept as a sign although no hex field has one.

    Reads the first character from the Arrow string-view headers (bytes 4..7 hold the first bytes of
    every string, inline or not), which costs ~1 ms per million rows instead of a string scan.
    """
    parts = []
    for chunk in s.get_chunks():  # per chunk: rechunking would copy the strings
        arr = chunk.to_arrow(compat_level=pl.CompatLevel.newest())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if arr.type != pa.string_view():
            return s.str.starts_with("+").fill_null(False).to_numpy()
        views = np.frombuffer(arr.buffers()[1], np.uint8).reshape(-1, 16)[arr.offset : arr.offset + len(arr)]
        parts.append(views[:, 4] == ord("+"))  # an empty string's inline bytes are zero
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def decode_payload(hexs: pl.Series) -> tuple[np.ndarray, np.ndarray, pl.Series | None]:
    """Hex payload strings (up to 16 digits) → (n×8 uint8 bytes, payload byte counts, reasons or None).

    Vectorized: polars parses each string as one 64-bit integer; shifting it to the top of the word and
    viewing it big-endian gives the bytes in order, and bytes past the payload are 0. Rows that are too
    long, odd or not hex get a reason (and zero bytes).
    """
    if hexs.null_count():
        hexs = hexs.fill_null("")
    nchars = hexs.str.len_bytes().to_numpy()
    parsed = hexs.str.to_integer(base=16, dtype=pl.UInt64, strict=False)  # "" and non-hex → null
    too_long, odd = nchars > 16, (nchars & 1).astype(bool)
    empty = nchars == 0
    non_hex = leading_plus(hexs)
    if parsed.null_count() > int(empty.sum()):
        non_hex |= parsed.is_null().to_numpy() & ~empty
    bad = too_long | odd | non_hex
    words = parsed.fill_null(0).to_numpy() if parsed.null_count() else parsed.to_numpy()
    words = words << _SHIFT[np.minimum(nchars, 16)]  # left-align: the first digit pair is byte 0
    if bad.any():
        words[bad] = 0
    payload = words.astype(">u8").view(np.uint8).reshape(-1, 8)  # big-endian: first byte first
    nbytes = (nchars // 2).astype(np.int64)
    if not bad.any():
        return payload, nbytes, None
    code = np.zeros(len(hexs), dtype=np.uint32)  # later assignments take precedence
    code[non_hex], code[odd], code[too_long] = 1, 2, 3
    reasons = [
        None,
        "payload is not hex",
        "payload has an odd number of hex digits",
        "payload longer than 8 bytes",
    ]
    return payload, nbytes, pl.Series(reasons, dtype=pl.String).gather(code)


def id_columns(text: pl.Expr, std_digits: tuple[int, ...], ext_digits: tuple[int, ...]) -> list[pl.Expr]:
    """can_id, id_max and id_reason from a hex ID field; the digit count gives the notation."""
    n = text.str.len_bytes()
    is_std, is_ext = n.is_in(list(std_digits)), n.is_in(list(ext_digits))
    value = text.str.to_integer(base=16, strict=False)
    bad_digits = (
        f"CAN ID must have {_digits(std_digits)} (11-bit) or {_digits(ext_digits)} (29-bit) hex digits"
    )
    return [
        value.alias("can_id"),
        pl.when(is_ext).then(pl.lit(EXT_MAX)).otherwise(pl.lit(STD_MAX)).alias("id_max"),
        pl.when(~(is_std | is_ext))
        .then(pl.lit(bad_digits))
        .when(value.is_null() | (value < 0) | ~text.str.contains(r"^[0-9A-Fa-f]+$"))
        .then(pl.lit("CAN ID is not hex"))
        .otherwise(pl.lit(None, pl.String))
        .alias("id_reason"),
    ]


def _digits(ns: tuple[int, ...]) -> str:
    return str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"


def float_column(text: pl.Expr, what: str) -> tuple[pl.Expr, pl.Expr]:
    """(value, reason) for a decimal number field."""
    value = text.str.strip_chars().cast(pl.Float64, strict=False)
    bad = value.is_null() | value.is_nan() | value.is_infinite()
    return value, pl.when(bad).then(pl.lit(f"bad {what}")).otherwise(pl.lit(None, pl.String))


def payload_frame(hexs: pl.Series) -> tuple[pl.DataFrame, pl.Series | None]:
    """b0..b7 and nbytes as a frame, plus reasons, for a column of hex payloads."""
    values, nbytes, reason = decode_payload(hexs)
    cols = {c: values[:, i] for i, c in enumerate(BYTE_COLUMNS)}
    return pl.DataFrame({**cols, "nbytes": nbytes}), reason


# --- checks shared by all formats ----------------------------------------------------------------------


def _check_reasons() -> pl.Expr:
    dlc, nbytes, ts = pl.col("dlc"), pl.col("nbytes"), pl.col("timestamp")
    return pl.coalesce(
        pl.col("reason"),
        pl.when(ts.is_null() | ts.is_nan() | ts.is_infinite()).then(pl.lit("bad timestamp")),
        pl.when(dlc.is_null() | (dlc < 0) | (dlc > 8)).then(
            pl.format("DLC {} outside 0..8", dlc.cast(pl.String).fill_null("?"))
        ),
        pl.when(nbytes > 8).then(pl.lit("payload longer than 8 bytes (CAN FD is not supported)")),
        pl.when(nbytes != dlc).then(pl.format("DLC {} disagrees with the {} payload bytes", dlc, nbytes)),
        pl.when(pl.col("can_id").is_null() | (pl.col("can_id") < 0)).then(pl.lit("bad CAN ID")),
        pl.when(pl.col("can_id") > pl.col("id_max")).then(
            pl.when(pl.col("id_max") == STD_MAX)
            .then(pl.lit("CAN ID above 0x7FF in 11-bit notation"))
            .otherwise(pl.lit("CAN ID above 0x1FFFFFFF"))
        ),
    ).alias("reason")


def _any_problem(cand: pl.DataFrame) -> bool:
    """Cheap whole-table test, so clean files skip building per-row reasons."""
    dlc, ts = pl.col("dlc"), pl.col("timestamp")
    bad = (
        pl.col("reason").is_not_null()
        | ts.is_null()
        | ts.is_nan()
        | ts.is_infinite()
        | dlc.is_null()
        | (dlc < 0)
        | (dlc > 8)
        | (pl.col("nbytes") != dlc)
        | pl.col("can_id").is_null()
        | (pl.col("can_id") < 0)
        | (pl.col("can_id") > pl.col("id_max"))
    )
    return bool(cand.select(bad.any()).item())


def finish(
    cand: pl.DataFrame, path: Path, on_bad_line: str, counts: FileCounts, source: str, unit: str = "line"
) -> pl.DataFrame:
    """Check candidates, raise on (error mode) or drop and count (skip mode) bad rows; conform the rest."""
    checks = Finisher(path, on_bad_line, counts, source, unit)
    frames = checks.push(cand, last=True)
    checks.close()
    return frames


class Finisher:
    """``finish`` a file's candidates a part at a time (consecutive parts, in file order): each ``push``
    returns the frames decided so far, the same rows and counts as ``finish`` of the whole file. Only the
    timestamp rule looks across rows: the last HOLD candidates of a part wait for the next (a frame is
    judged by the frames on either side of it, formats_order), and the clock so far carries over."""

    def __init__(self, path: Path, on_bad_line: str, counts: FileCounts, source: str, unit: str = "line"):
        self.path, self.on_bad_line, self.unit = path, on_bad_line, unit
        self.counts, self.source = counts, source
        self.order = Clock()
        self.pending: pl.DataFrame | None = None  # candidates not decided yet
        self.frames = 0

    def push(self, cand: pl.DataFrame, last: bool = False) -> pl.DataFrame:
        path, on_bad_line, counts, unit = self.path, self.on_bad_line, self.counts, self.unit
        if cand.height and cand["non_data"].any():
            keep = ~cand["non_data"] | cand["reason"].is_not_null()
            counts.non_data += int((~keep).sum())
            cand = cand.filter(keep)
        if _any_problem(cand):
            cand = cand.with_columns(_check_reasons())
            bad = cand.filter(pl.col("reason").is_not_null()).sort("line")
            if on_bad_line == "error":
                raise _error(path, unit, bad["line"][0], bad["reason"][0])
            for line, reason in bad.select("line", "reason").head(MAX_EXAMPLES).iter_rows():
                counts.bad(path, *_where(unit, line, reason))
            counts.bad_lines += bad.height - min(bad.height, MAX_EXAMPLES)
            cand = cand.filter(pl.col("reason").is_null())
        if self.pending is not None:
            cand = pl.concat([self.pending, cand])
        decided = cand.height if last else max(cand.height - HOLD, 0)
        self.pending = None if last else cand.slice(decided)
        cand = _drop_out_of_order(cand, path, on_bad_line, counts, unit, self.order, decided)
        self.frames += cand.height
        counts.frames += cand.height
        return conform(
            cand.with_columns(
                (pl.col("id_max") == EXT_MAX).alias("extended"), pl.lit(self.source).alias("source")
            )
        )

    def close(self) -> None:
        """After the last part: a file with no frame is an error."""
        if self.frames == 0:
            skipped = f" ({self.counts.bad_lines} bad lines skipped)" if self.counts.bad_lines else ""
            raise FrameError(self.path, f"no CAN data frames{skipped}")


def _where(unit: str, line: int, reason: str) -> tuple[int | None, str]:
    """Text logs name the line; binary logs have no lines, so the frame number goes into the message."""
    return (line, reason) if unit == "line" else (None, f"{unit} {line}: {reason}")


def _error(path: Path, unit: str, line: int, reason: str) -> FrameError:
    at, message = _where(unit, line, reason)
    return FrameError(path, message, at)


def _drop_out_of_order(
    cand: pl.DataFrame,
    path: Path,
    on_bad_line: str,
    counts: FileCounts,
    unit: str,
    clock: Clock | None = None,
    decided: int | None = None,
) -> pl.DataFrame:
    """Timestamps must not go backwards within a file: the frames to blame (formats_order: a burst far in
    the future or the past, not the good frames around it; then any frame earlier than one kept before
    it) raise in error mode and are dropped in skip mode, so the result is sorted. The first ``decided``
    candidates are judged (all by default), the rest only looked at; ``clock`` carries the file's earlier
    parts and is moved on past the decided ones."""
    clock = clock or Clock()
    decided = cand.height if decided is None else decided
    ts = cand["timestamp"].to_numpy()
    lines = cand["line"].to_numpy()
    bad, ahead, why = judge(ts, lines, clock, decided, unit)
    if not bad.any():
        return cand.head(decided)
    if on_bad_line == "error":
        raise _error(path, unit, int(lines[np.argmax(bad)]), f"{why} (timestamps must not go backwards)")
    for i in np.flatnonzero(bad)[:MAX_EXAMPLES]:
        what = "jumps ahead of the frames after it" if ahead[i] else "goes backwards"
        counts.bad(path, *_where(unit, int(lines[i]), f"timestamp {ts[i]:.6f} {what}"))
    n_bad = int(bad.sum())
    counts.bad_lines += n_bad - min(n_bad, MAX_EXAMPLES)
    counts.out_of_order += n_bad
    return cand.head(decided).filter(pl.Series(~bad))


def benign_labels() -> list[pl.Expr]:
    return [pl.lit(0, pl.UInt8).alias("label"), pl.lit(BENIGN).alias("attack_type")]


def flagged_labels(is_attack: pl.Expr, attack_type: str) -> list[pl.Expr]:
    """label and attack_type from a per-row attack flag; the attack kind comes from the file name."""
    return [
        is_attack.cast(pl.UInt8).alias("label"),
        pl.when(is_attack).then(pl.lit(attack_type)).otherwise(pl.lit(BENIGN)).alias("attack_type"),
    ]


def candidates(df: pl.DataFrame) -> pl.DataFrame:
    """Select and cast a parser's columns into CANDIDATE_SCHEMA (non_data defaults to False)."""
    if "non_data" not in df.columns:
        df = df.with_columns(pl.lit(False).alias("non_data"))
    return df.select([pl.col(c).cast(t) for c, t in CANDIDATE_SCHEMA.items()])
