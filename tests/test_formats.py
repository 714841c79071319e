"""The log readers: real candump captures, python-can round trips, the HCRL and can-train-and-test
layouts, folder ingest and format detection."""

from __future__ import annotations

import json
from pathlib import Path

import can
import numpy as np
import polars as pl
import pytest

from kdgat.config import IngestParams
from kdgat.data.formats import (
    FORMATS,
    FrameError,
    IngestReport,
    capture_files,
    detect_format,
    read_any,
    read_capture,
    read_dataset,
)
from kdgat.data.formats_core import FileCounts, finish
from kdgat.data.formats_text import read_cantt_fast, read_cantt_lines
from kdgat.data.frames import BYTE_COLUMNS, FRAME_SCHEMA
from kdgat.data.layout import role_of

WRX_FRAMES = {  # from ../shared/data/can/wrx-2016/SOURCE.md
    "accessory-to-ignition.log": 8823,
    "brake-pedal.log": 20559,
    "car-running-idle.log": 24335,
    "doors-open-close.log": 3170,
    "gas-pedal.log": 35107,
    "steering-wheel.log": 22498,
}


def payload(df: pl.DataFrame) -> np.ndarray:
    return df.select(BYTE_COLUMNS).to_numpy()


def check_table(df: pl.DataFrame) -> None:
    assert df.schema == pl.Schema(FRAME_SCHEMA)
    assert (np.diff(df["timestamp"].to_numpy()) >= 0).all() or df["source"].n_unique() > 1
    # bytes past the DLC are zero
    pos = np.arange(8)[None, :]
    assert (payload(df)[pos >= df["dlc"].to_numpy()[:, None]] == 0).all()


# --- real captures -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "frames"), WRX_FRAMES.items())
def test_wrx_logs_read_as_candump(can_data: Path, name: str, frames: int) -> None:
    path = can_data / "wrx-2016" / name
    assert detect_format(path) == "candump"
    df, report = read_capture(path)
    check_table(df)
    assert df.height == frames == report.frames
    assert report.bad_lines == 0 and report.files_by_format == {"candump": 1}
    assert not df["extended"].any() and df["label"].sum() == 0
    assert set(df["attack_type"]) == {"none"} and set(df["source"]) == {name}
    # The same frames as python-can's own candump reader, bit for bit.
    msgs = list(can.CanutilsLogReader(path))
    assert [m.timestamp for m in msgs] == df["timestamp"].to_list()
    assert [m.arbitration_id for m in msgs] == df["can_id"].to_list()
    assert [m.dlc for m in msgs] == df["dlc"].to_list()
    assert [bytes(m.data).ljust(8, b"\0") for m in msgs] == [bytes(r) for r in payload(df)]


def test_wrx_folder(can_data: Path) -> None:
    df, report = read_any(can_data / "wrx-2016")
    assert report.files == 6 and report.frames == df.height == sum(WRX_FRAMES.values())
    assert df["source"].unique(maintain_order=True).to_list() == sorted(WRX_FRAMES)
    assert df.equals(df.sort("source", "timestamp", maintain_order=True))
    assert df.filter(pl.col("source") == "car-running-idle.log")["can_id"].n_unique() == 31


# --- python-can round trips ----------------------------------------------------------------------------


def sample_messages(n: int = 40) -> list[can.Message]:
    """11- and 29-bit IDs (extremes included), every DLC 0..8, increasing timestamps."""
    rng = np.random.default_rng(7)
    msgs = []
    for i in range(n):
        ext = i % 3 == 0
        cid = [0x1FFFFFFF, 0x7FF, 0][i] if i < 3 else int(rng.integers(0, 0x1FFFFFFF if ext else 0x7FF))
        dlc = i % 9
        data = bytes(rng.integers(0, 256, dlc, dtype=np.uint8))
        msgs.append(
            can.Message(
                timestamp=1498258064.25 + i * 0.0123457,
                arbitration_id=cid,
                is_extended_id=ext,
                dlc=dlc,
                data=data,
                channel=0,
            )
        )
    return msgs


@pytest.mark.parametrize(
    ("writer", "suffix", "fmt", "time_tol"),
    [
        (can.CanutilsLogWriter, ".log", "candump", 1e-6),
        (can.ASCWriter, ".asc", "asc", 1e-3),  # ASC headers keep the start time in milliseconds
        (can.BLFWriter, ".blf", "blf", 1e-6),
        (can.TRCWriter, ".trc", "trc", 1e-6),
        (can.CSVWriter, ".csv", "canlog_csv", 1e-6),
    ],
)
def test_python_can_round_trip(tmp_path: Path, writer: type, suffix: str, fmt: str, time_tol: float) -> None:
    msgs = sample_messages()
    path = tmp_path / f"capture{suffix}"
    with writer(path) as w:
        for m in msgs:
            w.on_message_received(m)
    assert detect_format(path) == fmt
    df, report = read_capture(path)
    check_table(df)
    assert report.frames == len(msgs) and report.files_by_format == {fmt: 1}
    assert df["can_id"].to_list() == [m.arbitration_id for m in msgs]
    assert df["extended"].to_list() == [m.is_extended_id for m in msgs]
    assert df["dlc"].to_list() == [m.dlc for m in msgs]
    assert [bytes(r) for r in payload(df)] == [bytes(m.data).ljust(8, b"\0") for m in msgs]
    assert np.allclose(df["timestamp"].to_numpy(), [m.timestamp for m in msgs], rtol=0, atol=time_tol)
    assert set(df["attack_type"]) == {"none"} and df["label"].sum() == 0
    # The same file read with the format named explicitly.
    assert read_capture(path, fmt=fmt)[0].equals(df)


def test_remote_and_error_frames_are_counted_not_kept(tmp_path: Path) -> None:
    path = tmp_path / "x.log"
    path.write_text(
        "(1.000000) can0 123#0102\n(1.100000) can0 123#R\n(1.200000) can0 20000080#0000000000000000\n"
        "(1.300000) can0 12345678#AA T\n"
    )
    df, report = read_capture(path)
    assert df["can_id"].to_list() == [0x123, 0x12345678] and df["extended"].to_list() == [False, True]
    assert report.non_data == 2 and report.bad_lines == 0


# --- HCRL and can-train-and-test -----------------------------------------------------------------------


def test_hcrl_csv(tmp_path: Path) -> None:
    path = tmp_path / "DoS_dataset.csv"
    path.write_text(
        "1478198376.389427,0316,8,05,21,68,09,21,21,00,6f,R\n"
        "1478198376.389636,0000,8,00,00,00,00,00,00,00,00,T\n"
        "1478198376.389864,0153,2,ff,a0,R\n"
        "1478198376.390100,02c0,0,R\n"
    )
    assert detect_format(path) == "hcrl"
    df, report = read_capture(path)
    check_table(df)
    assert df["can_id"].to_list() == [0x316, 0, 0x153, 0x2C0]
    assert df["dlc"].to_list() == [8, 8, 2, 0]
    assert payload(df)[0].tolist() == [0x05, 0x21, 0x68, 0x09, 0x21, 0x21, 0x00, 0x6F]
    assert payload(df)[2].tolist() == [0xFF, 0xA0, 0, 0, 0, 0, 0, 0]
    assert df["label"].to_list() == [0, 1, 0, 0]
    assert df["attack_type"].to_list() == ["none", "dos", "none", "none"]
    assert not df["extended"].any() and report.frames == 4


def test_hcrl_txt(tmp_path: Path) -> None:
    path = tmp_path / "normal_run_data.txt"
    path.write_text(
        "Timestamp: 1479121434.850202        ID: 0350    000    DLC: 8    05 28 84 66 6d 00 00 a2\n"
        "Timestamp: 1479121434.850423        ID: 02c0    000    DLC: 8    14 00 00 00 00 00 00 00\n"
        "Timestamp: 1479121434.850664        ID: 0430    000    DLC: 5    00 00 00 00 00\n"
    )
    assert detect_format(path) == "hcrl_txt"
    df, _ = read_capture(path)
    check_table(df)
    assert df["can_id"].to_list() == [0x350, 0x2C0, 0x430]
    assert df["dlc"].to_list() == [8, 8, 5]
    assert payload(df)[0].tolist() == [0x05, 0x28, 0x84, 0x66, 0x6D, 0x00, 0x00, 0xA2]
    assert df["timestamp"][0] == 1479121434.850202 and df["label"].sum() == 0


CANTT = (
    "timestamp,arbitration_id,data_field,attack\n"
    "1527856826.157356,0C1,0000000000000000,0\n"
    "1527856826.157600,1f1,deadbeef,1\n"
    "1527856826.157800,184,,0\n"
    "1527856826.158000,18FEF100,0102030405060708,1\n"
)


def test_cantt_csv(tmp_path: Path) -> None:
    path = tmp_path / "fuzzing-1.csv"
    path.write_text(CANTT)
    assert detect_format(path) == "cantt"
    df, report = read_capture(path)
    check_table(df)
    assert df["can_id"].to_list() == [0x0C1, 0x1F1, 0x184, 0x18FEF100]
    assert df["extended"].to_list() == [False, False, False, True]
    assert df["dlc"].to_list() == [8, 4, 0, 8]
    assert payload(df)[1].tolist() == [0xDE, 0xAD, 0xBE, 0xEF, 0, 0, 0, 0]
    assert df["label"].to_list() == [0, 1, 0, 1]
    assert df["attack_type"].to_list() == ["none", "fuzzy", "none", "fuzzy"]
    assert df["source"].to_list() == ["fuzzing-1.csv"] * 4 and report.frames == 4


def test_cantt_fast_path_equals_line_reader(tmp_path: Path) -> None:
    """The pl.read_csv fast path and the line-exact reader must give the same table."""
    rng = np.random.default_rng(3)
    n = 5000
    ts = 1.6e9 + np.cumsum(rng.exponential(1e-3, n))
    dlc = rng.integers(0, 9, n)
    ids = [f"{i:03X}" if i < 0x800 else f"{i:08X}" for i in rng.integers(0, 0x900, n)]
    data = [bytes(rng.integers(0, 256, d, dtype=np.uint8)).hex() for d in dlc]
    path = tmp_path / "rpm-2.csv"
    rows = (f"{t:.6f},{i},{d},{a}" for t, i, d, a in zip(ts, ids, data, rng.integers(0, 2, n), strict=True))
    path.write_text("timestamp,arbitration_id,data_field,attack\n" + "\n".join(rows) + "\n")
    fast = read_cantt_fast(path, "rpm", "s")
    assert fast is not None
    slow = finish(read_cantt_lines(path, "rpm"), path, "error", FileCounts(), "s")
    assert fast.equals(slow)
    assert fast["dlc"].to_list() == dlc.tolist()
    assert fast["extended"].sum() == sum(len(i) == 8 for i in ids)


def test_byte_order_mark_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text("\ufeff" + CANTT)
    assert detect_format(path) == "cantt"
    assert read_capture(path)[0].height == 4
    log = tmp_path / "a.log"
    log.write_text("\ufeff(1.000000) can0 123#01\n")
    assert read_capture(log)[0]["can_id"].to_list() == [0x123]


def test_cantt_with_blank_lines_uses_line_reader(tmp_path: Path) -> None:
    path = tmp_path / "DoS-1.csv"
    path.write_text(CANTT.replace("\n1527856826.157800", "\n\n1527856826.157800"))
    assert read_cantt_fast(path, "dos", "s") is None
    df, _ = read_capture(path)
    assert df.height == 4


# --- folders --------------------------------------------------------------------------------------------


def write_cantt(path: Path, t0: float, attack: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [f"{t0 + i * 0.01:.6f},{0x100 + i:03X},{i:02X}00,{attack if i % 2 else 0}" for i in range(5)]
    path.write_text("timestamp,arbitration_id,data_field,attack\n" + "\n".join(rows) + "\n")


def test_cantt_folder_layout(tmp_path: Path) -> None:
    write_cantt(tmp_path / "train_01_attack_free" / "attack-free-1.csv", 10.0, 0)
    write_cantt(tmp_path / "train_02_with_attacks" / "DoS-1.csv", 5.0, 1)
    write_cantt(tmp_path / "test_01_known_vehicle_known_attack" / "nested" / "rpm-1.csv", 1.0, 1)
    write_cantt(tmp_path / "test_03_known_vehicle_unknown_attack" / "force-neutral-1.csv", 2.0, 1)
    (tmp_path / "README.md").write_text("not a capture")
    (tmp_path / "train_01_attack_free" / "readme.txt").write_text("not a capture either")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.csv").write_text("junk")

    df, report = read_dataset(tmp_path, progress=False)
    check_table(df)
    sources = [
        "test_01_known_vehicle_known_attack/nested/rpm-1.csv",
        "test_03_known_vehicle_unknown_attack/force-neutral-1.csv",
        "train_01_attack_free/attack-free-1.csv",
        "train_02_with_attacks/DoS-1.csv",
    ]
    assert df["source"].unique(maintain_order=True).to_list() == sources
    assert df.equals(df.sort("source", "timestamp", maintain_order=True))
    kinds = df.filter(pl.col("label") == 1).group_by("source").agg(pl.col("attack_type").first())
    assert dict(kinds.iter_rows()) == {sources[0]: "rpm", sources[1]: "force-neutral", sources[3]: "dos"}
    assert [role_of(s) for s in sources] == ["known", "unknown_attack", "train", "train"]
    assert report.files == 4 and report.frames == 20 and report.files_by_format == {"cantt": 4}
    json.dumps(report.to_dict())
    assert read_any(tmp_path)[0].equals(df)


def test_mixed_folder_detects_each_file(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("(1.000000) can0 123#01\n(1.500000) can0 124#0203\n")
    (tmp_path / "gear_dataset.csv").write_text("1.0,0316,1,05,T\n2.0,0316,1,06,R\n")
    df, report = read_dataset(tmp_path, progress=False)
    assert report.files_by_format == {"candump": 1, "hcrl": 1}
    assert report.frames_by_format == {"candump": 2, "hcrl": 2}
    assert df["attack_type"].to_list() == ["none", "none", "gear", "none"]
    assert capture_files(tmp_path) == [tmp_path / "a.log", tmp_path / "gear_dataset.csv"]


def test_empty_folder_and_missing_path(tmp_path: Path) -> None:
    with pytest.raises(FrameError, match="no capture files"):
        read_dataset(tmp_path)
    with pytest.raises(FrameError, match="no such file or folder"):
        read_any(tmp_path / "absent")


# --- detection and options ------------------------------------------------------------------------------


def test_formats_match_config() -> None:
    literal = IngestParams.model_fields["format"].annotation.__args__  # type: ignore[union-attr]
    assert set(literal) == {"auto", *FORMATS}


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("a.txt", "(1.0) vcan0 123#00\n", "candump"),
        ("a.csv", "\n\n1478198376.389427,0316,8,05,21,68,09,21,21,00,6f,R\n", "hcrl"),
        ("a.log", "Timestamp: 1.5        ID: 0350    000    DLC: 1    05\n", "hcrl_txt"),
        ("a.csv", "Timestamp,Arbitration_ID,Data_Field,Attack\n", "cantt"),
        ("a.csv", "timestamp,arbitration_id,extended,remote,error,dlc,data\n", "canlog_csv"),
        ("a.asc", "date Mon Jan 1 00:00:00.000 2024\nbase hex  timestamps absolute\n", "asc"),
        ("a.trc", ";$FILEVERSION=2.1\n", "trc"),
        ("b.asc", "something vendor-specific\n", "asc"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    assert detect_format(path) == expected


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("a.csv", b"", "empty file"),
        ("a.log", b"\n  \n", "only blank lines"),
        ("a.log", bytes(range(256)) * 4, "binary data of unknown format"),
        ("a.blf", b"not a blf", "no BLF signature"),
        ("a.csv", b"hello,world\n", "unknown log format"),
    ],
)
def test_detect_format_errors(tmp_path: Path, name: str, content: bytes, message: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FrameError, match=message):
        detect_format(path)


def test_bad_options(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    path.write_text("(1.0) can0 123#00\n")
    with pytest.raises(ValueError, match="unknown format 'pcap'"):
        read_capture(path, fmt="pcap")
    with pytest.raises(ValueError, match="on_bad_line must be"):
        read_capture(path, on_bad_line="ignore")


def test_report_merge() -> None:
    a, b = IngestReport(), IngestReport()
    a.add("candump", FileCounts(frames=3, bad_lines=1, bad_examples=["x:1: bad"]))
    b.add("cantt", FileCounts(frames=5))
    a.merge(b)
    assert a.to_dict() == {
        "files": 2,
        "frames": 8,
        "bad_lines": 1,
        "out_of_order": 0,
        "non_data": 0,
        "bad_examples": ["x:1: bad"],
        "files_by_format": {"candump": 1, "cantt": 1},
        "frames_by_format": {"candump": 3, "cantt": 5},
        "ignored": [],
    }
