"""candump's screen format (item 1 of issue 16) and compressed captures (item 2): read, auto-detected,
vectorized, with line-numbered errors; the same frames as the -l log format they were converted from."""

from __future__ import annotations

import gzip
import lzma
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import zstandard
from support.can_logs import LOG, kdgat, screen

from kdgat.data.formats import FORMATS, FrameError, capture_files, detect_format, read_any, read_capture


def frames_of(path: Path, **kw: str) -> pl.DataFrame:
    return read_capture(path, **kw)[0].drop("source")


@pytest.mark.parametrize("stamp", ["ta", "tz", "td", ""])
def test_screen_format_reads_like_the_log_format(tmp_path: Path, stamp: str) -> None:
    (tmp_path / "a.log").write_text(LOG)
    (tmp_path / "s.log").write_text(screen(LOG, stamp))
    assert detect_format(tmp_path / "s.log") == "candump"
    want, got = frames_of(tmp_path / "a.log"), frames_of(tmp_path / "s.log")
    assert got.drop("timestamp").equals(want.drop("timestamp"))
    assert got["extended"].to_list() == [False, False, True, False]  # 29-bit 18FCF200 kept as such
    t, w = got["timestamp"].to_numpy(), want["timestamp"].to_numpy()
    if stamp == "ta":
        assert np.array_equal(t, w)
    elif stamp:  # -tz and -td (summed gaps) give times from the first frame
        assert np.allclose(t, w - w[0], atol=2e-6)
    else:  # no timestamp: frame numbers
        assert t.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_screen_remote_error_and_ascii_columns(tmp_path: Path) -> None:
    text = (
        " (0.000100)  can0  123   [2]  remote request\n"
        " (0.000200)  can0  20000004   [8]  00 00 00 00 00 00 00 00   ERRORFRAME\n"
        " (0.000300)  can0  456   [2]  41 42   'AB'\n"
    )
    (tmp_path / "s.log").write_text(text)
    frames, report = read_capture(tmp_path / "s.log")
    assert frames["can_id"].to_list() == [0x456] and report.non_data == 2
    assert frames.select("b0", "b1").row(0) == (0x41, 0x42)


def test_screen_bad_line_is_named_and_skippable(tmp_path: Path) -> None:
    text = screen(LOG).splitlines()
    text[2] = text[2].replace("[3]", "[4]")  # DLC says 4, three bytes follow
    text.insert(1, " (1498256920.792000)  can0  ZZZ   [1]  00")
    (tmp_path / "s.log").write_text("\n".join(text) + "\n")
    with pytest.raises(FrameError, match=r"s\.log:2: CAN ID is not hex"):
        read_capture(tmp_path / "s.log")
    with pytest.raises(FrameError, match=r"s\.log:2: CAN ID is not hex"):
        read_capture(tmp_path / "s.log", fmt="candump")
    frames, report = read_capture(tmp_path / "s.log", on_bad_line="skip")
    assert frames.height == 3 and report.bad_lines == 2
    assert any(":4: DLC 4 disagrees with the 3 payload bytes" in e for e in report.bad_examples)


@pytest.mark.parametrize("ext", [".gz", ".xz", ".zst"])
def test_compressed_captures_read_as_the_capture_inside(tmp_path: Path, ext: str) -> None:
    compressors: dict[str, Callable[[bytes], bytes]] = {
        ".gz": lambda b: gzip.compress(b),
        ".xz": lambda b: lzma.compress(b),
        ".zst": lambda b: zstandard.compress(b),
    }
    compress = compressors[ext]
    root = tmp_path / "ds"
    (root / "train_01_attack_free").mkdir(parents=True)
    (root / "train_01_attack_free" / f"drive.log{ext}").write_bytes(compress(screen(LOG).encode()))
    assert [p.name for p in capture_files(root)] == [f"drive.log{ext}"]
    frames, report = read_any(root)
    (tmp_path / "plain.log").write_text(screen(LOG))
    assert frames.drop("source").equals(frames_of(tmp_path / "plain.log"))
    assert frames["source"].unique().to_list() == [f"train_01_attack_free/drive.log{ext}"]
    assert report.files_by_format == {"candump": 1}


def test_damaged_compressed_capture_is_one_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "drive.log.gz"
    bad.write_bytes(gzip.compress(LOG.encode())[:-12])
    with pytest.raises(FrameError, match=r"drive\.log\.gz: cannot read"):
        read_capture(bad)


def test_compressed_cantt_takes_the_fast_path(tmp_path: Path) -> None:
    text = "timestamp,arbitration_id,data_field,attack\n1.0,0123,00FF,0\n2.0,0124,11,1\n"
    (tmp_path / "DoS-1.csv.gz").write_bytes(gzip.compress(text.encode()))
    (tmp_path / "DoS-1.csv").write_text(text)
    assert frames_of(tmp_path / "DoS-1.csv.gz").equals(frames_of(tmp_path / "DoS-1.csv"))


@pytest.mark.realdata
def test_screen_format_of_a_real_capture_and_its_speed(tmp_path: Path, can_data: Path) -> None:
    """A whole WRX capture converted to screen format at test time (never stored): same frames as the
    log; parsing stays vectorized (well over a million lines a minute on one core)."""
    src = can_data / "wrx-2016" / "gas-pedal.log"
    text = screen(src.read_text())
    dest = tmp_path / "gas-pedal.screen.log"
    dest.write_text(text)
    t0 = time.perf_counter()
    got = frames_of(dest)
    elapsed = time.perf_counter() - t0
    assert got.equals(frames_of(src)) and got.height == 35107
    assert got.height / elapsed > 50_000, f"{got.height / elapsed:.0f} lines/s"


def test_ingest_help_lists_every_format() -> None:
    out = kdgat("ingest", "--help").stdout
    for name in FORMATS:
        assert f"{name}:" in out, name
    assert "screen output" in out and ".zst" in out


def test_one_frame_far_in_the_future_is_the_bad_line(tmp_path: Path) -> None:
    """Issue 16, item 9: skip mode drops the outlier, not the 997 good frames after it."""
    lines = [f"({1000 + i * 0.01:.6f}) can0 123#{i % 256:02X}" for i in range(1000)]
    lines[2] = "(9999999999.000000) can0 123#FF"
    (tmp_path / "a.log").write_text("\n".join(lines) + "\n")
    frames, report = read_capture(tmp_path / "a.log", on_bad_line="skip")
    assert frames.height == 999 and report.out_of_order == 1
    assert report.bad_examples[0].endswith(
        "a.log:3: timestamp 9999999999.000000 jumps ahead of the frames after it"
    )
    with pytest.raises(FrameError, match=r"a\.log:3: timestamp 9999999999\.000000 is later than the next"):
        read_capture(tmp_path / "a.log")
    lines[2] = "(1.000000) can0 123#FF"  # one frame far in the past: that frame alone, as before
    (tmp_path / "b.log").write_text("\n".join(lines) + "\n")
    frames, report = read_capture(tmp_path / "b.log", on_bad_line="skip")
    assert frames.height == 999 and report.out_of_order == 1
