"""Vectorized readers of the line-oriented text logs: candump, HCRL CSV and txt, can-train-and-test CSV.

Each reader turns a file's lines into candidate frames with polars string operations (one regex
extraction per format, no Python loop per line); formats_core.finish does the shared checks. The
can-train-and-test reader first tries a fast path through pl.read_csv and falls back to the line-exact
reader whenever anything in the file is off, so bad lines are always named by their physical line.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import polars as pl

from kdgat.data.formats_core import (
    COMPRESSED,
    EXT_MAX,
    STD_MAX,
    benign_labels,
    candidates,
    decode_payload,
    flagged_labels,
    float_column,
    id_columns,
    leading_plus,
    payload_frame,
    read_bytes,
    read_lines,
)
from kdgat.data.frames import BENIGN, BYTE_COLUMNS, conform

CANTT_HEADER = "timestamp,arbitration_id,data_field,attack"

# Anchored patterns; a line that does not match is "malformed" with a hint of the expected shape.
_CANDUMP = (
    r"^\s*\((?P<ts>[^)]*)\)\s+(?P<iface>\S+)\s+(?P<id>[^#\s]*)#(?P<data>\S*)(?:\s+(?P<dir>[RTrt]))?\s*$"
)
# candump's screen output: `(1498258064.346851)  can0  156   [8]  00 00 ...`; the timestamp is there
# with -ta/-td/-tz (absent without -t); -a appends the payload as text ('..'), -e details after ERRORFRAME.
_SCREEN = (
    r"^\s*(?:\((?P<ts>[^)]*)\)\s+)?(?P<iface>\S+)\s+(?P<id>\S+)\s+\[(?P<dlc>[^\]]*)\]"
    r"(?P<data>(?:\s+[0-9A-Fa-f]{2})*)(?P<remote>\s+remote request)?(?:\s+'.*'|\s+ERRORFRAME.*)?\s*$"
)
SCREEN_LINE = r"^\s*(?:\([^)]*\)\s+)?\S+\s+[0-9A-Fa-f]{3,8}\s+\[[0-9]+\]"  # what sniffing looks for
DELTA_SHARE = 0.25  # more steps than this going backwards: the timestamps are -td gaps, not times
_HCRL = r"^\s*(?P<ts>[^,]*),(?P<id>[^,]*),(?P<dlc>[^,]*),(?P<data>(?:[^,]*,)*)(?P<flag>[^,]*)$"
_HCRL_TXT = (
    r"^\s*Timestamp:\s*(?P<ts>\S+)\s+ID:\s*(?P<id>\S+)(?:\s+(?P<rtr>[0-9]+))?\s+DLC:\s*(?P<dlc>\S+)"
    r"(?P<data>(?:\s+\S+)*)\s*$"
)
_CANTT = r"^\s*(?P<ts>[^,]*),(?P<id>[^,]*),(?P<data>[^,]*),(?P<attack>[^,]*)$"
# Notation: candump writes 3 or 8 digits; the CSV datasets write 3-4 digits for 11-bit IDs.
_STD_CSV, _EXT_CSV = (1, 2, 3, 4), (5, 6, 7, 8)


def _extract(lines: pl.DataFrame, pattern: str) -> pl.DataFrame:
    return lines.select(
        "line",
        pl.col("reason").alias("text_reason"),
        pl.col("text").str.extract_groups(pattern).struct.unnest(),
    )


def _with_payload(df: pl.DataFrame, hexs: pl.Expr) -> pl.DataFrame:
    payload, reason = payload_frame(df.select(hexs).to_series())
    df = pl.concat([df, payload], how="horizontal")
    return df.with_columns((reason if reason is not None else pl.lit(None, pl.String)).alias("pay_reason"))


def _reason(*exprs: pl.Expr) -> pl.Expr:
    return pl.coalesce(pl.col("text_reason"), *exprs).alias("reason")


def _malformed(expected: str) -> pl.Expr:
    return pl.when(pl.col("id").is_null()).then(pl.lit(f"malformed line (expected {expected})"))


def read_candump(path: Path) -> pl.DataFrame:
    """`(1498258064.346851) can0 156#0000000000000028`: DLC is the payload length; remote and error
    frames are non-data; CAN FD (`ID##...`) is rejected. A file in candump's screen format (its first
    line says so) goes to read_candump_screen."""
    lines = read_lines(path, "candump")
    if is_screen(lines):
        return read_candump_screen(lines)
    return candump_candidates(lines)


def is_screen(lines: pl.DataFrame) -> bool:
    """Whether a candump file (its first lines) is candump's screen output."""
    return re.match(SCREEN_LINE, lines["text"][0]) is not None


def candump_candidates(lines: pl.DataFrame) -> pl.DataFrame:
    """Candidate frames of candump log lines (any consecutive lines of a file)."""
    df = _extract(lines, _CANDUMP)
    ts, ts_reason = float_column(pl.col("ts"), "timestamp")
    data = pl.col("data").fill_null("")
    fd, remote = data.str.starts_with("#"), data.str.to_lowercase().str.starts_with("r")
    df = df.with_columns(
        ts.alias("timestamp"),
        ts_reason.alias("ts_reason"),
        fd.alias("fd"),
        remote.alias("remote"),
        *id_columns(pl.col("id"), (3,), (8,)),
    )
    df = _with_payload(df, pl.when(fd | remote).then(pl.lit("")).otherwise(data))
    error_frame = (pl.col("id_max") == EXT_MAX) & ((pl.col("can_id") & 0x20000000) != 0)
    return candidates(
        df.with_columns(
            _reason(
                _malformed("'(timestamp) interface ID#DATA'"),
                pl.col("ts_reason"),
                pl.col("id_reason"),
                pl.when(pl.col("fd")).then(pl.lit("CAN FD frames are not supported")),
                pl.col("pay_reason"),
            ),
            (pl.col("remote") | error_frame.fill_null(False)).alias("non_data"),
            pl.col("nbytes").alias("dlc"),
            *benign_labels(),
        )
    )


def read_candump_screen(lines: pl.DataFrame) -> pl.DataFrame:
    """candump's screen output, one frame a line: `(000.000000)  can0  18FCF200   [8]  E1 FF 00 ...`.

    Timestamps: -ta and -tz print times (kept as they are); -td prints the gap since the previous frame,
    recognised by its steps going backwards more than DELTA_SHARE of the time and summed into times; with
    no timestamp at all the frame number stands in (timing features then count frames, not seconds).
    """
    df = _extract(lines, _SCREEN)
    ts, ts_reason = float_column(pl.col("ts"), "timestamp")
    data = pl.col("data").fill_null("")
    df = df.with_columns(
        ts.alias("timestamp"),
        pl.when(pl.col("ts").is_not_null()).then(ts_reason).alias("ts_reason"),
        pl.col("remote").is_not_null().alias("remote"),
        pl.col("dlc").cast(pl.Int64, strict=False).alias("dlc"),
        *id_columns(pl.col("id"), (3,), (8,)),
    )
    times = _screen_times(df["timestamp"], df["ts"].is_null(), df["id"].is_null())
    df = df.with_columns(times.alias("timestamp"))
    df = _with_payload(df, data.str.replace_all(r"\s+", ""))
    error_frame = (pl.col("id_max") == EXT_MAX) & ((pl.col("can_id") & 0x20000000) != 0)
    return candidates(
        df.with_columns(
            _reason(
                _malformed("candump's screen format '(timestamp)  interface  ID   [DLC]  XX XX ...'"),
                pl.col("ts_reason"),
                pl.col("id_reason"),
                pl.when(pl.col("dlc").is_null()).then(pl.lit("DLC is not a number")),
                pl.when(pl.col("dlc") > 8).then(pl.lit("CAN FD frames are not supported")),
                pl.col("pay_reason"),
            ),
            (pl.col("remote") | error_frame.fill_null(False)).alias("non_data"),
            pl.when(pl.col("remote")).then(pl.col("nbytes")).otherwise(pl.col("dlc")).alias("dlc"),
            *benign_labels(),
        )
    )


def _screen_times(ts: pl.Series, missing: pl.Series, malformed: pl.Series) -> pl.Series:
    """Times of a screen-format file: as printed (-ta, -tz), summed gaps (-td), or frame numbers.
    Malformed lines (reported elsewhere) take no part in deciding which."""
    ok = ~malformed.to_numpy()
    if missing.filter(~malformed).all():
        return pl.Series(np.cumsum(ok) - 1.0)
    values = ts.to_numpy()
    steps = np.diff(values[ok & ~np.isnan(values)])
    if steps.size and (steps < 0).mean() > DELTA_SHARE and (values[ok] >= 0).all():
        return pl.Series(np.cumsum(np.where(ok, np.nan_to_num(values), 0.0)))
    return ts


def read_hcrl(path: Path, attack_type: str) -> pl.DataFrame:
    """`1478198376.389427,0316,8,05,21,68,09,21,21,00,6f,R`: DLC data fields, then the flag R or T."""
    return hcrl_candidates(read_lines(path, "hcrl"), attack_type)


def hcrl_candidates(lines: pl.DataFrame, attack_type: str, first: bool = True) -> pl.DataFrame:
    """Candidate frames of HCRL CSV lines (any consecutive lines of a file; ``first``: they begin it)."""
    head = lines["text"][0].strip().lower()
    if first and head.startswith("timestamp,"):  # tolerate a header row, which some copies of the data add
        lines = lines.slice(1)
    df = _extract(lines, _HCRL)
    ts, ts_reason = float_column(pl.col("ts"), "timestamp")
    data, flag = pl.col("data").fill_null(""), pl.col("flag").str.strip_chars()
    df = df.with_columns(
        ts.alias("timestamp"),
        ts_reason.alias("ts_reason"),
        pl.col("dlc").str.strip_chars().cast(pl.Int64, strict=False).alias("dlc"),
        data.str.count_matches(",").alias("n_fields"),
        data.str.contains(r"^(?:[0-9A-Fa-f]{2},)*$").alias("bytes_ok"),
        *id_columns(pl.col("id").str.strip_chars(), _STD_CSV, _EXT_CSV),
    )
    df = _with_payload(df, pl.when(pl.col("bytes_ok")).then(data.str.replace_all(",", "", literal=True)))
    return candidates(
        df.with_columns(
            _reason(
                _malformed("'timestamp,ID,DLC,DATA0,...,R|T'"),
                pl.col("ts_reason"),
                pl.col("id_reason"),
                pl.when(pl.col("dlc").is_null()).then(pl.lit("DLC is not a number")),
                pl.when(~flag.is_in(["R", "T"])).then(
                    pl.format("last field must be the flag R or T, got '{}'", flag)
                ),
                pl.when(~pl.col("bytes_ok")).then(pl.lit("payload bytes must be two hex digits each")),
                pl.col("pay_reason"),
            ),
            *flagged_labels(flag == "T", attack_type),
        )
    )


def read_hcrl_txt(path: Path) -> pl.DataFrame:
    """`Timestamp: 1479121434.850202   ID: 0350    000    DLC: 8    05 28 84 66 6d 00 00 a2` (benign)."""
    return hcrl_txt_candidates(read_lines(path, "hcrl_txt"))


def hcrl_txt_candidates(lines: pl.DataFrame) -> pl.DataFrame:
    """Candidate frames of HCRL txt lines (any consecutive lines of a file)."""
    df = _extract(lines, _HCRL_TXT)
    ts, ts_reason = float_column(pl.col("ts"), "timestamp")
    data = pl.col("data").fill_null("")
    df = df.with_columns(
        ts.alias("timestamp"),
        ts_reason.alias("ts_reason"),
        pl.col("dlc").cast(pl.Int64, strict=False).alias("dlc"),
        data.str.contains(r"^(?:\s+[0-9A-Fa-f]{2})*$").alias("bytes_ok"),
        *id_columns(pl.col("id"), _STD_CSV, _EXT_CSV),
    )
    df = _with_payload(df, pl.when(pl.col("bytes_ok")).then(data.str.replace_all(r"\s+", "")))
    return candidates(
        df.with_columns(
            _reason(
                _malformed("'Timestamp: T  ID: XXXX  000  DLC: N  XX XX ...'"),
                pl.col("ts_reason"),
                pl.col("id_reason"),
                pl.when(pl.col("dlc").is_null()).then(pl.lit("DLC is not a number")),
                pl.when(~pl.col("bytes_ok")).then(pl.lit("payload bytes must be two hex digits each")),
                pl.col("pay_reason"),
            ),
            *benign_labels(),
        )
    )


def read_cantt_lines(path: Path, attack_type: str) -> pl.DataFrame:
    """The line-exact can-train-and-test reader: header check, then every row named by its line."""
    from kdgat.data.frames import FrameError

    lines = read_lines(path, "cantt")
    head_line, head = lines["line"][0], lines["text"][0]
    if head.strip().lstrip("\ufeff").lower() != CANTT_HEADER:
        raise FrameError(
            path, f"missing columns: expected the header '{CANTT_HEADER}', got '{head[:80]}'", head_line
        )
    df = _extract(lines.slice(1), _CANTT)
    ts, ts_reason = float_column(pl.col("ts"), "timestamp")
    attack_text = pl.col("attack").str.strip_chars()
    attack = attack_text.cast(pl.Int64, strict=False)  # as lenient as the fast path's integer column
    df = df.with_columns(
        ts.alias("timestamp"),
        ts_reason.alias("ts_reason"),
        *id_columns(pl.col("id").str.strip_chars(), _STD_CSV, _EXT_CSV),
    )
    df = _with_payload(df, pl.col("data").fill_null("").str.strip_chars())
    n_fields = pl.col("text_fields") + 1
    df = df.with_columns(lines.slice(1)["text"].str.count_matches(",").alias("text_fields"))
    return candidates(
        df.with_columns(
            _reason(
                pl.when(pl.col("id").is_null()).then(
                    pl.format("expected 4 comma-separated fields, found {}", n_fields)
                ),
                pl.col("ts_reason"),
                pl.col("id_reason"),
                pl.when(~attack.is_in([0, 1]).fill_null(False)).then(
                    pl.format("attack must be 0 or 1, got '{}'", attack_text)
                ),
                pl.col("pay_reason"),
            ),
            pl.col("nbytes").alias("dlc"),
            *flagged_labels((attack == 1).fill_null(False), attack_type),
        )
    )


def read_cantt_fast(path: Path, attack_type: str, source: str) -> pl.DataFrame | None:
    """The whole file through pl.read_csv plus vectorized checks; None if anything at all is off.

    This is the hot path of the preprocessing benchmark; it gives up on the first sign of trouble so
    that all diagnosis (line numbers, reasons, skip mode) lives in read_cantt_lines only.
    """
    data: bytes | None = None
    if path.suffix.lower() in COMPRESSED:
        data = read_bytes(path)
        head = data.split(b"\n", 1)[0]
    else:
        with open(path, "rb") as f:
            head = f.readline()
    if head.strip().lower() != CANTT_HEADER.encode():
        return None
    try:
        df = pl.read_csv(
            data if data is not None else path,
            has_header=False,
            skip_rows=1,
            quote_char=None,
            empty_string_is_null=False,
            schema={"timestamp": pl.Float64, "id": pl.String, "data": pl.String, "attack": pl.Int64},
        )
    except (pl.exceptions.PolarsError, UnicodeDecodeError):
        return None
    if df.height == 0 or df["timestamp"].null_count() or df["id"].null_count() or df["attack"].null_count():
        return None
    ts = df["timestamp"].to_numpy()
    if not np.isfinite(ts).all() or (ts[1:] < ts[:-1]).any():
        return None
    attack = df["attack"].to_numpy()
    if (attack.view(np.uint64) > 1).any():  # negative values wrap to huge ones
        return None
    ids = df["id"]
    digits = ids.str.len_bytes().to_numpy()
    can_id = ids.str.to_integer(base=16, strict=False)
    if can_id.null_count() or digits.max() > 8 or leading_plus(ids).any():
        return None
    can_id_np = can_id.to_numpy()
    extended = digits > _STD_CSV[-1]
    if can_id_np.min() < 0 or can_id_np.max() > (EXT_MAX if extended.any() else STD_MAX):
        return None
    if extended.any() and (can_id_np[~extended] > STD_MAX).any():
        return None
    payload, nbytes, reason = decode_payload(df["data"])
    if reason is not None:
        return None
    label = attack.astype(np.uint8)
    out = pl.DataFrame(
        {
            "timestamp": ts,
            "can_id": can_id_np.astype(np.uint32),
            "extended": extended,
            "dlc": nbytes.astype(np.uint8),
            **{c: payload[:, i] for i, c in enumerate(BYTE_COLUMNS)},
            "label": label,
            "attack_type": pl.Series([BENIGN, attack_type]).gather(label),
        }
    )
    return conform(out.with_columns(pl.lit(source).alias("source")))
