"""candump's screen format (item 1 of issue 16) and compressed captures (item 2): read, auto-detected,
vectorized, with line-numbered errors; the same frames as the -l log format they were converted from."""

from __future__ import annotations

import gzip
import lzma
import re
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


FUTURE, PAST = [9999999999.0, 9999999999.5, 9999999999.7], [1.0, 1.5, 1.7]


def _log_with(tmp_path: Path, at: int, stamps: list[float], screen_format: bool) -> Path:
    """1,000 frames 10 ms apart, frames ``at``, ``at`` + 1, ... stamped ``stamps`` instead."""
    lines = [f"({1000 + i * 0.01:.6f}) can0 123#{i % 256:02X}" for i in range(1000)]
    for i, stamp in enumerate(stamps):
        lines[at + i] = f"({stamp:.6f}) can0 123#FF"
    text = "\n".join(lines) + "\n"
    (tmp_path / "a.log").write_text(screen(text, "ta") if screen_format else text)
    return tmp_path / "a.log"


@pytest.mark.parametrize("screen_format", [False, True], ids=["log", "screen"])
@pytest.mark.parametrize(
    ("at", "stamps"),
    [
        (2, FUTURE[:1]),
        (2, FUTURE[:2]),
        (2, FUTURE),
        (500, FUTURE),
        (2, PAST[:1]),
        (500, PAST[:1]),
        (500, PAST),
    ],
    ids=["future-1", "future-2", "future-3", "future-3-mid", "past-1", "past-1-mid", "past-3-mid"],
)
def test_one_frame_far_in_the_future_is_the_bad_line(
    tmp_path: Path, at: int, stamps: list[float], screen_format: bool
) -> None:
    """Issue 16, item 9: skip mode drops the outlier, not the 997 good frames after it; and so for a
    burst of two or three frames far in the future (audit: two dropped 898 good frames), or far in the
    past, in both of candump's formats (one rule for every format: formats_order)."""
    path = _log_with(tmp_path, at, stamps, screen_format)
    frames, report = read_capture(path, on_bad_line="skip")
    assert frames.height == 1000 - len(stamps) and report.out_of_order == len(stamps)
    assert frames["timestamp"].is_sorted() and not frames["timestamp"].is_in(stamps).any()
    why = "jumps ahead of the frames after it" if stamps[0] > 1000 else "goes backwards"
    assert report.bad_examples[0].endswith(f"a.log:{at + 1}: timestamp {stamps[0]:.6f} {why}")
    if stamps[0] > 1000:
        after = 1000 + (at + len(stamps)) * 0.01
        message = f"a.log:{at + 1}: timestamp {stamps[0]:.6f} is later than the next frames ({after:.6f} at"
    else:
        before = 1000 + (at - 1) * 0.01
        message = f"a.log:{at + 1}: timestamp {stamps[0]:.6f} is earlier than {before:.6f} at line {at}"
    with pytest.raises(FrameError, match=re.escape(message)):
        read_capture(path)


def test_a_burst_in_the_past_outnumbering_the_frames_before_it_is_kept(tmp_path: Path) -> None:
    """Three frames stamped in the past right after the first two: the longest run in order keeps the
    three and drops the two (it cannot know which clock is right; it keeps the most frames)."""
    frames, report = read_capture(_log_with(tmp_path, 2, PAST, False), on_bad_line="skip")
    assert frames["timestamp"].head(4).to_list() == [*PAST, 1000.05] and report.out_of_order == 2
