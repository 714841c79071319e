"""``read_capture_blocks``: a log read a block of lines at a time gives ``read_capture``'s frames and counts,
wherever the blocks end — bad lines, remote and error frames, timestamps going backwards and bursts of
frames far in the future or the past among them, right at the blocks' edges — and the same error in
error mode."""

from __future__ import annotations

import gzip
import random
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest

import kdgat.data.formats_core as fc
from kdgat.data.formats import IngestReport, read_capture, read_capture_blocks
from kdgat.data.formats_core import FileCounts, Finisher, _drop_out_of_order, candidates
from kdgat.data.formats_order import HOLD
from kdgat.data.frames import FrameError


@pytest.fixture(autouse=True)
def small_head(monkeypatch: pytest.MonkeyPatch) -> None:
    """The binary check's first read (64 KiB) would hold these small files whole: blocks from the start."""
    monkeypatch.setattr(fc, "HEAD_BYTES", 64)


def _messy_lines(n: int, seed: int) -> list[tuple[float, str]]:
    """(timestamp, kind) of ``n`` frames with every kind of trouble mixed in, ~1 in 15 lines."""
    rng = random.Random(seed)
    out, t = [], 1000.0
    burst: list[str] = []  # the kinds of the next few frames, already chosen
    for _ in range(n):
        t += 0.001
        r = rng.random()
        kind = "ok"
        if burst:
            kind = burst.pop()
        elif r < 0.005:
            kind, burst = "spike", ["spike"] * rng.choice((1, 2))  # two or three frames in the future
        elif r < 0.008:
            kind, burst = "back", ["back"] * rng.choice((1, 2))  # two or three in the past
        elif r < 0.01:
            kind = "bad"
        elif r < 0.02:
            kind = "blank"
        elif r < 0.03:
            kind = "back"  # earlier than the frames before it
        elif r < 0.04:
            kind = "spike"  # far in the future, once
        elif r < 0.05:
            kind = "swap"  # the next frame's time: two neighbours swapped
        elif r < 0.06:
            kind = "remote"
        elif r < 0.065:
            kind = "error"
        out.append((t, kind))
    return out


def _candump(rows: list[tuple[float, str]]) -> str:
    text = []
    for i, (t, kind) in enumerate(rows):
        stamp = {"back": t - 0.5, "spike": t + 100.0, "swap": t + 0.0015}.get(kind, t)
        line = f"({stamp:.6f}) can0 {0x100 + i % 40:03X}#{i % 256:02X}11223344"
        text.append(
            {
                "bad": "not a frame",
                "blank": "",
                "remote": f"({t:.6f}) can0 123#R",
                "error": f"({t:.6f}) can0 20000080#0000000000000000",
            }.get(kind, line)
        )
    return "\n".join(text) + "\n"


def _hcrl(rows: list[tuple[float, str]]) -> str:
    text = ["Timestamp,ID,DLC,Data,Flag"]
    for i, (t, kind) in enumerate(rows):
        stamp = {"back": t - 0.5, "spike": t + 100.0, "swap": t + 0.0015}.get(kind, t)
        flag = "T" if i % 7 == 0 else "R"
        text.append("x,y" if kind == "bad" else f"{stamp:.6f},{0x100 + i % 40:04x},2,{i % 256:02x},11,{flag}")
    return "\n".join(text) + "\n"


def _hcrl_txt(rows: list[tuple[float, str]]) -> str:
    text = []
    for i, (t, kind) in enumerate(rows):
        stamp = {"back": t - 0.5, "spike": t + 100.0, "swap": t + 0.0015}.get(kind, t)
        line = f"Timestamp: {stamp:.6f}        ID: {0x100 + i % 40:04x}    000    DLC: 2    {i % 256:02x} 11"
        text.append("Timestamp: junk" if kind == "bad" else line)
    return "\n".join(text) + "\n"


def _read_in_blocks(path: Path, block_bytes: int, **kw: str) -> tuple[pl.DataFrame, IngestReport, int]:
    parts, report = [], IngestReport()
    for frames, part in read_capture_blocks(path, block_bytes=block_bytes, **kw):
        parts.append(frames)
        report.merge(part)
    return pl.concat(parts), report, len(parts)


def _counts(report: IngestReport) -> dict:
    d = report.to_dict()
    del d["bad_examples"]  # the first few, which come in file order
    return d


@pytest.mark.parametrize(("fmt", "write"), [("candump", _candump), ("hcrl", _hcrl), ("hcrl_txt", _hcrl_txt)])
@pytest.mark.parametrize(("lines", "blocks"), [(2_500, (2_000, 1 << 20)), (60, (1, 300))])
def test_blocks_give_the_whole_files_frames_and_counts(
    tmp_path: Path,
    fmt: str,
    write: Callable[[list[tuple[float, str]]], str],
    lines: int,
    blocks: tuple[int, ...],
) -> None:
    """Block sizes down to 1 byte (every line a block of its own)."""
    path = tmp_path / "DoS_attack.log"
    path.write_text(write(_messy_lines(lines, lines)))
    whole, report = read_capture(path, fmt, on_bad_line="skip")
    assert report.out_of_order and report.bad_lines  # the trouble is there
    for block_bytes in blocks:
        frames, parts, n = _read_in_blocks(path, block_bytes, fmt=fmt, on_bad_line="skip")
        assert frames.equals(whole), block_bytes
        assert _counts(parts) == _counts(report), block_bytes
        assert n > path.stat().st_size // max(block_bytes, 64) // 2  # about a block a part


def test_error_mode_raises_the_same_error_wherever_the_blocks_end(tmp_path: Path) -> None:
    rows = [(1000.0 + i * 0.001, "ok") for i in range(80)]
    for i, kind in ((50, "back"), (50, "spike"), (50, "bad"), (79, "back")):
        case = list(rows)
        case[i] = (case[i][0], kind)
        path = tmp_path / "bus.log"
        path.write_text(_candump(case))
        with pytest.raises(FrameError) as whole:
            read_capture(path)
        for block_bytes in (1, 500):
            with pytest.raises(FrameError) as blocks:
                _read_in_blocks(path, block_bytes)
            assert str(blocks.value) == str(whole.value), (kind, block_bytes)


def test_gzip_logs_and_the_other_formats(tmp_path: Path) -> None:
    text = _candump(_messy_lines(3_000, 3))
    gz = tmp_path / "bus.log.gz"
    gz.write_bytes(gzip.compress(text.encode()))
    whole, report = read_capture(gz, on_bad_line="skip")
    frames, parts, n = _read_in_blocks(gz, 1_000, on_bad_line="skip")
    assert frames.equals(whole) and _counts(parts) == _counts(report) and n > 10
    # candump's screen output (its -td times add up over the file) is read whole, as one part
    screen = tmp_path / "screen.log"
    screen.write_text("(000.000000)  can0  123   [2]  01 02\n(000.001000)  can0  124   [1]  03\n")
    frames, _, n = _read_in_blocks(screen, 1)
    assert n == 1 and frames.equals(read_capture(screen)[0])


def test_empty_and_blank_files_fail_as_when_read_whole(tmp_path: Path) -> None:
    for content in (b"", b"\n\n  \n", b"\xef\xbb\xbf", b"not a frame\n"):
        path = tmp_path / "bus.log"
        path.write_bytes(content)
        with pytest.raises(FrameError) as whole:
            read_capture(path, "candump", on_bad_line="skip")
        with pytest.raises(FrameError) as blocks:
            _read_in_blocks(path, 1, fmt="candump", on_bad_line="skip")
        assert str(blocks.value) == str(whole.value)


def test_finisher_holds_back_a_frames_neighbours(tmp_path: Path) -> None:
    """A frame is judged by the frames on either side of it: with parts of one candidate each, a frame
    comes out once HOLD more have come in, and the parts drop what the whole file drops."""
    ts = [1.0 + i * 0.01 for i in range(200)]
    ts[50:53] = [99.0, 99.5, 99.7]  # three frames in the future
    ts[120] = 0.5  # one in the past
    ts[150], ts[151] = ts[151], ts[150]  # a swap: the later frame goes
    n = len(ts)
    cand = candidates(
        pl.DataFrame(
            {
                "line": range(1, n + 1),
                "reason": [None] * n,
                "timestamp": ts,
                "can_id": [0x100] * n,
                "id_max": [0x7FF] * n,
                "dlc": [0] * n,
                "nbytes": [0] * n,
                **{f"b{i}": [0] * n for i in range(8)},
                "label": [0] * n,
                "attack_type": ["benign"] * n,
            }
        )
    )
    counts = FileCounts()
    want = _drop_out_of_order(cand, tmp_path, "skip", counts, "line")
    assert sorted(set(cand["line"]) - set(want["line"])) == [51, 52, 53, 121, 152]
    checks = Finisher(tmp_path, "skip", FileCounts(), "s")
    got = [checks.push(cand.slice(i, 1)) for i in range(n)]
    got.append(checks.push(cand.slice(n, 0), last=True))
    assert [g.height for g in got[:HOLD]] == [0] * HOLD and got[HOLD].height == 1
    assert pl.concat(got)["timestamp"].to_list() == want["timestamp"].to_list()
    assert checks.counts.out_of_order == counts.out_of_order == 5
