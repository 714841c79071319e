"""Bad input in every text format: error mode names file and physical line; skip mode drops and counts.

Each case writes a file of good rows with one bad line in the middle (after a header and a blank
line where the format has them, so the line number counts both), then checks both modes.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable
from pathlib import Path

import can
import polars as pl
import pytest

from kdgat.data.formats import FrameError, read_capture
from kdgat.data.formats_core import FileCounts, finish
from kdgat.data.formats_text import read_cantt_fast, read_cantt_lines
from kdgat.data.frames import FRAME_SCHEMA

Row = Callable[[float, int, str], str]  # (timestamp, ID, payload hex) → one line


def _hcrl(t: float, i: int, d: str) -> str:
    return ",".join(
        [f"{t:.6f}", f"{i:04x}", str(len(d) // 2), *(d[k : k + 2] for k in range(0, len(d), 2)), "R"]
    )


def _hcrl_txt(t: float, i: int, d: str) -> str:
    data = " ".join(d[k : k + 2] for k in range(0, len(d), 2))
    return f"Timestamp: {t:.6f}        ID: {i:04x}    000    DLC: {len(d) // 2}    {data}"


def _canlog(t: float, i: int, d: str) -> str:
    return f"{t!r},{hex(i)},0,0,0,{len(d) // 2},{base64.b64encode(bytes.fromhex(d)).decode()}"


# format → (file name, header lines, good row)
FORMATS: dict[str, tuple[str, list[str], Row]] = {
    "candump": ("drive.log", [], lambda t, i, d: f"({t:.6f}) can0 {i:03X}#{d}"),
    "hcrl": ("DoS_dataset.csv", [], _hcrl),
    "hcrl_txt": ("normal_run_data.txt", [], _hcrl_txt),
    "cantt": (
        "DoS-1.csv",
        ["timestamp,arbitration_id,data_field,attack"],
        lambda t, i, d: f"{t:.6f},{i:03X},{d},0",
    ),
    "canlog_csv": ("log.csv", ["timestamp,arbitration_id,extended,remote,error,dlc,data"], _canlog),
}

# case → format → (bad line, expected reason); None: the case does not apply to that format
CASES: dict[str, dict[str, tuple[str, str]]] = {
    "truncated": {
        "candump": ("(1.000250) can0 1A", "malformed line"),
        "hcrl": ("1.000250,0316,8,05,21", "last field must be the flag R or T"),
        "hcrl_txt": ("Timestamp: 1.000250        ID: 0316    000", "malformed line"),
        "cantt": ("1.000250,0C1", "expected 4 comma-separated fields, found 2"),
        "canlog_csv": ("1.000250,0x1a0,0,0", "malformed row"),
    },
    "non_hex_payload": {
        "candump": ("(1.000250) can0 1A0#00GG", "payload is not hex"),
        "hcrl": ("1.000250,0316,2,05,zz,R", "two hex digits"),
        "hcrl_txt": ("Timestamp: 1.000250  ID: 0316  000  DLC: 2  05 zz", "two hex digits"),
        "cantt": ("1.000250,0C1,00ZZ,0", "payload is not hex"),
        "canlog_csv": ("1.000250,0x1a0,0,0,0,2,AA*=", "malformed row"),
    },
    "non_hex_id": {
        "candump": ("(1.000250) can0 1G0#00", "CAN ID is not hex"),
        "hcrl": ("1.000250,03x6,1,05,R", "CAN ID is not hex"),
        "hcrl_txt": ("Timestamp: 1.000250  ID: 03x6  000  DLC: 1  05", "CAN ID is not hex"),
        "cantt": ("1.000250,+C1,00,0", "CAN ID is not hex"),
        "canlog_csv": ("1.000250,0x1g0,0,0,0,1,AA==", "malformed row"),
    },
    "dlc_disagrees": {
        "candump": ("(1.000250) can0 1A0#000", "odd number of hex digits"),
        "hcrl": ("1.000250,0316,8,05,21,R", "DLC 8 disagrees with the 2 payload bytes"),
        "hcrl_txt": ("Timestamp: 1.000250  ID: 0316  000  DLC: 8  05 21 22", "DLC 8 disagrees with the 3"),
        "cantt": ("1.000250,0C1,123,0", "odd number of hex digits"),
        "canlog_csv": ("1.000250,0x1a0,0,0,0,8,AAE=", "DLC 8 disagrees with the 2 payload bytes"),
    },
    "payload_too_long": {
        "candump": ("(1.000250) can0 1A0#000000000000000000", "longer than 8 bytes"),
        "hcrl": ("1.000250,0316,9,00,00,00,00,00,00,00,00,00,R", "payload longer than 8 bytes"),
        "cantt": ("1.000250,0C1,000000000000000000,0", "longer than 8 bytes"),
    },
    "bad_timestamp": {
        "candump": ("(1.0x0250) can0 1A0#00", "bad timestamp"),
        "hcrl": ("abc,0316,1,05,R", "bad timestamp"),
        "hcrl_txt": ("Timestamp: 1.0.2  ID: 0316  000  DLC: 1  05", "bad timestamp"),
        "cantt": ("nan,0C1,00,0", "bad timestamp"),
    },
    "id_above_11_bit": {
        "candump": ("(1.000250) can0 800#00", "CAN ID above 0x7FF in 11-bit notation"),
        "hcrl": ("1.000250,0800,1,05,R", "CAN ID above 0x7FF"),
        "hcrl_txt": ("Timestamp: 1.000250  ID: 0fff  000  DLC: 1  05", "CAN ID above 0x7FF"),
        "cantt": ("1.000250,800,00,0", "CAN ID above 0x7FF"),
        "canlog_csv": ("1.000250,0x800,0,0,0,1,AA==", "CAN ID above 0x7FF"),
    },
    "id_above_29_bit": {
        "candump": ("(1.000250) can0 40000000#00", "CAN ID above 0x1FFFFFFF"),
        "hcrl": ("1.000250,40000000,1,05,R", "CAN ID above 0x1FFFFFFF"),
        "cantt": ("1.000250,FFFFFFFF,00,0", "CAN ID above 0x1FFFFFFF"),
    },
    "id_digits": {
        "candump": ("(1.000250) can0 1A0B#00", "CAN ID must have 3 (11-bit) or 8 (29-bit) hex digits"),
        "cantt": ("1.000250,123456789,00,0", "CAN ID must have 1-4 (11-bit) or 5-8 (29-bit) hex digits"),
    },
    "bad_flag": {
        "hcrl": ("1.000250,0316,1,05,X", "last field must be the flag R or T, got 'X'"),
        "cantt": ("1.000250,0C1,00,2", "attack must be 0 or 1, got '2'"),
    },
    "too_many_fields": {
        "cantt": ("1.000250,0C1,00,0,7", "expected 4 comma-separated fields, found 5"),
    },
    "not_utf8": {fmt: ("\udcff\udcfe(1.0)", "not valid UTF-8 text") for fmt in FORMATS},
}

PARAMS = [(case, fmt) for case, by_fmt in CASES.items() for fmt in by_fmt]


def write(
    tmp_path: Path, fmt: str, bad: str | None = None, stamps: tuple[float, ...] = (1.0, 1.0001, 1.0005)
) -> Path:
    """Header, a blank line, good rows at ``stamps``, and ``bad`` inserted after the second row."""
    name, header, row = FORMATS[fmt]
    rows = [row(t, 0x1A0 + k, "0011223344"[: 2 * (k + 1)]) for k, t in enumerate(stamps)]
    if bad is not None:
        rows.insert(2, bad)
    path = tmp_path / name
    text = "\n".join([*header, "", *rows]) + "\n"
    path.write_bytes(text.encode("utf-8", errors="surrogateescape"))
    return path


def bad_line_number(fmt: str) -> int:
    return len(FORMATS[fmt][1]) + 1 + 3  # header, blank line, two good rows, then the bad one


@pytest.mark.parametrize(("case", "fmt"), PARAMS)
def test_error_mode_names_file_and_line(tmp_path: Path, case: str, fmt: str) -> None:
    bad, reason = CASES[case][fmt]
    path = write(tmp_path, fmt, bad)
    where = f"{path.name}:{bad_line_number(fmt)}: "
    with pytest.raises(FrameError, match=re.escape(where) + ".*" + re.escape(reason)):
        read_capture(path, fmt=fmt)
    with pytest.raises(FrameError, match=re.escape(where)):
        read_capture(path)  # auto-detected: the same verdict


@pytest.mark.parametrize(("case", "fmt"), PARAMS)
def test_skip_mode_drops_and_counts(tmp_path: Path, case: str, fmt: str) -> None:
    bad, reason = CASES[case][fmt]
    path = write(tmp_path, fmt, bad)
    df, report = read_capture(path, fmt=fmt, on_bad_line="skip")
    clean = tmp_path / "clean"
    clean.mkdir()
    assert df.equals(read_capture(write(clean, fmt), fmt=fmt)[0])
    assert report.bad_lines == 1 and report.frames == 3
    (example,) = report.bad_examples
    assert example.startswith(f"{path}:{bad_line_number(fmt)}: ") and reason in example


@pytest.mark.parametrize("fmt", FORMATS)
def test_out_of_order_timestamps(tmp_path: Path, fmt: str) -> None:
    path = write(tmp_path, fmt, stamps=(1.0, 1.2, 1.1, 1.3))
    line = bad_line_number(fmt)  # the third row goes back in time
    with pytest.raises(FrameError, match=re.escape(f"{path.name}:{line}: timestamp 1.100000 is earlier")):
        read_capture(path, fmt=fmt)
    df, report = read_capture(path, fmt=fmt, on_bad_line="skip")
    assert df["timestamp"].to_list() == [1.0, 1.2, 1.3]
    assert report.out_of_order == report.bad_lines == 1
    assert "goes backwards" in report.bad_examples[0]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("mode", ["error", "skip"])
def test_empty_and_blank_files_are_errors(tmp_path: Path, fmt: str, mode: str) -> None:
    path = tmp_path / FORMATS[fmt][0]
    path.write_text("")
    with pytest.raises(FrameError, match=re.escape(f"{path}: empty file")):
        read_capture(path, fmt=fmt, on_bad_line=mode)
    path.write_text("\n \n")
    with pytest.raises(FrameError, match="empty file"):
        read_capture(path, fmt=fmt, on_bad_line=mode)


@pytest.mark.parametrize("fmt", [*FORMATS, "asc", "trc"])
@pytest.mark.parametrize("mode", ["error", "skip"])
def test_binary_file_given_as_text(tmp_path: Path, fmt: str, mode: str) -> None:
    path = tmp_path / "capture.bin"
    path.write_bytes(b"LOGG" + bytes(range(256)) * 8)
    with pytest.raises(FrameError, match=f"binary data, not a {fmt} text log"):
        read_capture(path, fmt=fmt, on_bad_line=mode)


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_bad_lines_is_an_error_in_skip_mode(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / FORMATS[fmt][0]
    path.write_text("\n".join([*FORMATS[fmt][1], "garbage", "more garbage"]) + "\n")
    with pytest.raises(FrameError, match=r"no CAN data frames \(2 bad lines skipped\)"):
        read_capture(path, fmt=fmt, on_bad_line="skip")


@pytest.mark.parametrize(
    ("fmt", "header"),
    [
        ("cantt", "timestamp,arbitration_id,data_field"),
        ("cantt", "1.0,0C1,00,0"),
        ("canlog_csv", "timestamp,arbitration_id,dlc,data"),
    ],
)
@pytest.mark.parametrize("mode", ["error", "skip"])
def test_missing_header_columns(tmp_path: Path, fmt: str, header: str, mode: str) -> None:
    path = tmp_path / "x.csv"
    path.write_text(f"{header}\n1.0,0C1,00,0\n")
    with pytest.raises(FrameError, match=re.escape(f"{path}:1: missing columns")):
        read_capture(path, fmt=fmt, on_bad_line=mode)


def test_many_bad_lines_keep_ten_examples(tmp_path: Path) -> None:
    rows = [f"({1 + k / 100:.6f}) can0 {'1A0' if k % 2 else 'XYZ'}#00" for k in range(40)]
    path = tmp_path / "x.log"
    path.write_text("\n".join(rows) + "\n")
    df, report = read_capture(path, on_bad_line="skip")
    assert df.height == 20 and report.bad_lines == 20 and len(report.bad_examples) == 10
    assert report.bad_examples[0] == f"{path}:1: CAN ID is not hex"


# --- formats python-can parses: its failures are still named by line ------------------------------


def _asc_and_trc(tmp_path: Path) -> dict[str, Path]:
    msgs = [
        can.Message(
            timestamp=100.0 + k * 0.01,
            arbitration_id=0x1A0 + k,
            is_extended_id=False,
            dlc=3,
            data=b"\x01\x02\x03",
        )
        for k in range(4)
    ]
    out = {}
    for fmt, writer in (("asc", can.ASCWriter), ("trc", can.TRCWriter)):
        path = tmp_path / f"x.{fmt}"
        with writer(path) as w:
            for m in msgs:
                w.on_message_received(m)
        out[fmt] = path
    return out


@pytest.mark.parametrize("fmt", ["asc", "trc"])
def test_python_can_parse_failure_names_line(tmp_path: Path, fmt: str) -> None:
    path = _asc_and_trc(tmp_path)[fmt]
    lines = path.read_text().splitlines()
    k = next(i for i, s in enumerate(lines) if "1A2" in s)
    lines[k] = lines[k].replace("1A2", "1G2")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FrameError, match=re.escape(f"{path}:{k + 1}: python-can {fmt} reader")):
        read_capture(path)
    df, report = read_capture(path, on_bad_line="skip")
    assert df["can_id"].to_list() == [0x1A0, 0x1A1, 0x1A3]
    assert report.bad_lines == 1 and report.bad_examples[0].startswith(f"{path}:{k + 1}: ")


@pytest.mark.parametrize("mode", ["error", "skip"])
def test_trc_line_python_can_skips_is_reported(tmp_path: Path, mode: str) -> None:
    path = _asc_and_trc(tmp_path)["trc"]
    lines = path.read_text().splitlines()
    k = next(i for i, s in enumerate(lines) if "1A2" in s)
    lines[k] = lines[k].split("1A2")[0]  # truncated: python-can would drop it with only a log message
    path.write_text("\n".join(lines) + "\n")
    if mode == "error":
        with pytest.raises(FrameError, match=re.escape(f"{path}:{k + 1}: python-can trc reader skipped")):
            read_capture(path)
        return
    df, report = read_capture(path, on_bad_line=mode)
    assert df["can_id"].to_list() == [0x1A0, 0x1A1, 0x1A3] and report.bad_lines == 1


@pytest.mark.parametrize("fmt", ["asc", "trc"])
def test_python_can_dlc_disagreement(tmp_path: Path, fmt: str) -> None:
    path = _asc_and_trc(tmp_path)[fmt]
    lines = path.read_text().splitlines()
    k = next(i for i, s in enumerate(lines) if "1A1" in s)
    lines[k] = re.sub(r"01 02 03\s*$", "01 02", lines[k].rstrip())
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        FrameError, match=re.escape(f"{path}:{k + 1}: DLC 3 disagrees with the 2 payload bytes")
    ):
        read_capture(path)


def test_truncated_blf(tmp_path: Path) -> None:
    """python-can stops quietly at a cut-off BLF file; the reader must notice."""
    path = tmp_path / "x.blf"
    with can.BLFWriter(path) as w:
        for k in range(2000):
            w.on_message_received(
                can.Message(timestamp=1.0 + k / 1000, arbitration_id=k % 0x7FF, data=b"\x01" * 8)
            )
    assert read_capture(path)[0].height == 2000
    cut = tmp_path / "cut.blf"
    cut.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(FrameError, match=r"cut\.blf: truncated BLF file"):
        read_capture(cut)
    df, report = read_capture(cut, on_bad_line="skip")
    assert 0 < df.height < 2000 and report.bad_lines == 1 and "truncated" in report.bad_examples[0]
    cut.write_bytes(path.read_bytes()[:100])
    with pytest.raises(FrameError, match=r"cut\.blf"):
        read_capture(cut, on_bad_line="skip")


# --- random damage ---------------------------------------------------------------------------------------

CANTT_SAMPLE = (
    "timestamp,arbitration_id,data_field,attack\n1.000000,0C1,0011,0\n1.100000,1F1,,1\n"
    "1.200000,18FEF100,0102030405060708,0\n1.300000,7FF,AABBCCDDEEFF0011,1\n"
)
_NOISE = [*"0123456789abcdefABCDEFxgRT#()+-., \t\r;:\"'", "\u00e9", "\n", ",,"]


def _damage(text: str, rng: random.Random, edits: int) -> str:
    for _ in range(edits):
        k, op = rng.randrange(len(text) + 1), rng.random()
        if op < 0.4:
            text = text[:k] + rng.choice(_NOISE) + text[k:]
        elif op < 0.7:
            text = text[:k] + text[k + 1 :]
        else:
            text = text[:k] + rng.choice(_NOISE) + text[k + 1 :]
    return text


def test_damaged_logs_give_a_table_or_a_frame_error(tmp_path: Path) -> None:
    """Whatever the damage: a sorted canonical table, or FrameError — never another exception."""
    rng = random.Random(0)
    for _ in range(150):
        fmt = rng.choice(list(FORMATS))
        path = write(tmp_path, fmt, stamps=(1.0, 1.0001, 1.0005, 1.0007))
        path.write_text(_damage(path.read_text(), rng, rng.randint(1, 3)))
        for mode in ("error", "skip"):
            try:
                df, report = read_capture(path, fmt=rng.choice([fmt, "auto"]), on_bad_line=mode)
            except FrameError:
                continue
            assert df.schema == pl.Schema(FRAME_SCHEMA) and report.frames == df.height
            assert df["timestamp"].is_sorted()


def test_cantt_fast_path_never_disagrees_with_line_reader(tmp_path: Path) -> None:
    """Whenever the pl.read_csv fast path accepts a damaged file, the line-exact reader agrees."""
    rng = random.Random(1)
    path = tmp_path / "DoS-1.csv"
    accepted = 0
    for _ in range(300):
        path.write_text(_damage(CANTT_SAMPLE, rng, rng.randint(1, 3)))
        fast = read_cantt_fast(path, "dos", "s")
        if fast is None:
            continue
        accepted += 1
        assert fast.equals(finish(read_cantt_lines(path, "dos"), path, "error", FileCounts(), "s"))
    assert accepted > 20  # damage that leaves valid rows (changed digits) exercises the comparison
