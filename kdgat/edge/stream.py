"""CAN frames as they come → window graphs, with the pipeline's own feature code.

Sources yield ``Chunk``s of frames: a log file in any format `kdgat ingest` reads (by the same readers, a
block of lines at a time for the line-oriented formats, bad lines skipped and counted, fed in chunks,
optionally at the capture's pace), or a live python-can bus. ``Windower`` cuts the stream like the graphs
stage cuts one capture (windows of ``size`` frames every ``stride``, from the first frame), and
``window_graphs`` builds them with kdgat/data/features.graphs_of_windows and scales them with the graphs
stage's scalers: a window's graph is the graphs stage's graph of the same frames, array for array
(tests/test_edge_detect.py).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kdgat.data.alignment import Alignment
from kdgat.data.features import Columns, GraphBatch, graphs_of_windows
from kdgat.data.formats import BLOCK_BYTES, IngestReport, read_capture, read_capture_blocks
from kdgat.data.frames import BYTE_COLUMNS, FrameError

# the graphs stage's dense ID codes (node order) and scaling, reused so the detector cannot drift from it
from kdgat.data.graphs import _apply, _dense_codes
from kdgat.data.vocab import Vocabulary, id_keys


@dataclass
class Counts:
    """What a source saw besides good frames: counted, never fatal."""

    frames: int = 0  # data frames passed on
    bad_lines: int = 0  # unreadable lines of a log file (out_of_order included)
    out_of_order: int = 0  # frames whose timestamp went backwards: dropped
    non_data: int = 0  # remote and error frames: dropped
    silent_s: float = 0.0  # time a live bus delivered nothing
    unknown_id_frames: int = 0  # frames whose ID is outside the vocabulary (they map to the unknown slot)
    unknown_ids: set[str] = field(default_factory=set)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "unknown_ids"}
        return {**out, "silent_s": round(self.silent_s, 3), "unknown_ids": sorted(self.unknown_ids)[:20]}


@dataclass
class Chunk:
    """Consecutive frames: the canonical columns (kdgat/data/frames.py) as numpy arrays."""

    ts: np.ndarray  # float64
    key: np.ndarray  # int64 ID key (vocab.id_keys)
    dlc: np.ndarray  # uint8
    payload: np.ndarray  # [n, 8] uint8
    label: np.ndarray  # uint8 (0 on a live bus)

    def __len__(self) -> int:
        return len(self.ts)

    def rows(self, lo: int, hi: int | None = None) -> Chunk:
        return Chunk(self.ts[lo:hi], self.key[lo:hi], self.dlc[lo:hi], self.payload[lo:hi], self.label[lo:hi])

    @staticmethod
    def join(parts: list[Chunk]) -> Chunk:
        if len(parts) == 1:
            return parts[0]
        return Chunk(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("ts", "key", "dlc", "payload", "label")


def file_chunks(
    path: Path,
    counts: Counts,
    fmt: str = "auto",
    chunk: int = 1 << 14,
    realtime: bool = False,
    stop: Callable[[], bool] = lambda: False,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Chunk]:
    """A log file's frames in chunks of at most ``chunk`` until ``stop()``; ``realtime``: a window's stride
    of frames at a time, none before its capture time (relative to the first frame). The file is read,
    parsed and checked ``block_bytes`` at a time (kdgat/data/formats.read_capture_blocks: the same frames
    and counts as reading it whole), so memory does not grow with the file."""
    started, first_ts = time.monotonic(), None
    for part in _rows_of(path, counts, fmt, chunk, block_bytes):
        first_ts = float(part.ts[0]) if first_ts is None else first_ts
        while realtime and not stop() and part.ts[-1] - first_ts > time.monotonic() - started:
            time.sleep(min(0.05, part.ts[-1] - first_ts - (time.monotonic() - started)))
        if stop():
            return
        yield part


def _rows_of(path: Path, counts: Counts, fmt: str, chunk: int, block_bytes: int) -> Iterator[Chunk]:
    """The file's frames as chunks of exactly ``chunk`` rows (the last one fewer), wherever its blocks end:
    the windows then go to the models in the same batches as from the file read whole, and the models'
    outputs (whose last bits depend on the batch) do not change with the block size."""
    held: Chunk | None = None
    for frames, report in read_capture_blocks(path, fmt, on_bad_line="skip", block_bytes=block_bytes):
        _count(counts, report)
        if frames.height == 0:
            continue
        rows = chunk_of_frames(frames) if held is None else Chunk.join([held, chunk_of_frames(frames)])
        full = len(rows) // chunk * chunk
        for lo in range(0, full, chunk):
            yield rows.rows(lo, lo + chunk)
        held = rows.rows(full) if full < len(rows) else None
    if held is not None:
        yield held


def follow_chunks(
    path: Path, counts: Counts, stop: Callable[[], bool], poll_s: float = 0.2
) -> Iterator[Chunk]:
    """The frames appended to a growing candump log after this call (tail -f), until ``stop()``. Each
    batch of new complete lines is read by the candump reader itself; frames older than the last one are
    counted and dropped, as in a file."""
    return _follow(path, Path(path).stat().st_size, counts, stop, poll_s)


def _follow(path: Path, pos: int, counts: Counts, stop: Callable[[], bool], poll_s: float) -> Iterator[Chunk]:
    pending, last_ts = b"", -np.inf
    with tempfile.TemporaryDirectory(prefix="kdgat-follow-") as tmp:
        part = Path(tmp) / Path(path).name
        while not stop():
            with open(path, "rb") as f:
                f.seek(pos)
                data = pending + f.read()
            pos += len(data) - len(pending)
            cut = data.rfind(b"\n") + 1
            lines, pending = data[:cut], data[cut:]
            if not lines.strip():
                counts.silent_s += poll_s
                time.sleep(poll_s)
                continue
            part.write_bytes(lines)
            try:
                frames, report = read_capture(part, "candump", on_bad_line="skip")
            except FrameError:  # nothing readable in these lines
                counts.bad_lines += lines.count(b"\n")
                continue
            _count(counts, report)
            chunk = chunk_of_frames(frames)
            fresh = chunk.ts >= last_ts
            counts.out_of_order += int((~fresh).sum())
            if fresh.any():
                chunk = chunk if fresh.all() else Chunk(*(getattr(chunk, f)[fresh] for f in _FIELDS))
                last_ts = float(chunk.ts[-1])
                yield chunk


def _count(counts: Counts, report: IngestReport) -> None:
    counts.bad_lines += report.bad_lines
    counts.out_of_order += report.out_of_order
    counts.non_data += report.non_data


def chunk_of_frames(frames: pl.DataFrame) -> Chunk:
    """A canonical frame table as one chunk."""
    payload = np.empty((frames.height, 8), dtype=np.uint8)
    for i, c in enumerate(BYTE_COLUMNS):
        payload[:, i] = frames[c].to_numpy()
    return Chunk(
        frames["timestamp"].to_numpy(),
        id_keys(frames["can_id"].to_numpy(), frames["extended"].to_numpy()),
        frames["dlc"].to_numpy(),
        payload,
        frames["label"].to_numpy(),
    )


def bus_chunks(
    bus: Any, counts: Counts, stop: Callable[[], bool], flush_every: int = 1, poll_s: float = 0.2
) -> Iterator[Chunk]:
    """Frames of a python-can bus as they arrive, ``flush_every`` at a time (or fewer when the bus pauses);
    ends when ``stop()`` turns true. Remote/error frames and frames older than the last one are counted and
    dropped; silence is counted and waited out."""
    rows: list[tuple[float, int, int, bytes]] = []
    last_ts = -np.inf
    while not stop():
        msg = bus.recv(timeout=poll_s)
        if msg is None:
            counts.silent_s += poll_s
        elif msg.is_remote_frame or msg.is_error_frame:
            counts.non_data += 1
        elif msg.timestamp < last_ts:
            counts.out_of_order += 1
        else:
            last_ts = msg.timestamp
            key = msg.arbitration_id | (1 << 32 if msg.is_extended_id else 0)
            rows.append((msg.timestamp, key, msg.dlc, bytes(msg.data)))
        if rows and (len(rows) >= flush_every or msg is None):
            yield _chunk_of(rows)
            rows = []
    if rows:
        yield _chunk_of(rows)


def _chunk_of(rows: list[tuple[float, int, int, bytes]]) -> Chunk:
    payload = np.zeros((len(rows), 8), dtype=np.uint8)
    for i, (_, _, _, data) in enumerate(rows):
        payload[i, : len(data)] = np.frombuffer(data[:8], dtype=np.uint8)
    return Chunk(
        np.array([r[0] for r in rows], dtype=np.float64),
        np.array([r[1] for r in rows], dtype=np.int64),
        np.array([min(r[2], 8) for r in rows], dtype=np.uint8),
        payload,
        np.zeros(len(rows), dtype=np.uint8),
    )


class Windower:
    """Cuts a stream of chunks into windows as the graphs stage cuts a capture: rows 0, stride, 2·stride, ...
    Keeps only the frames a coming window still needs."""

    def __init__(self, size: int, stride: int) -> None:
        self.size, self.stride = size, stride
        self.buffer: list[Chunk] = []
        self.buffered = 0
        self.first_row = 0  # stream row of the buffer's first frame (always a window start)

    def push(self, chunk: Chunk) -> tuple[Chunk, np.ndarray, int] | None:
        """Add frames; returns (frames, window starts within them, stream row of frames[0]) when at least one
        window completed."""
        self.buffer.append(chunk)
        self.buffered += len(chunk)
        if self.buffered < self.size:
            return None
        frames = Chunk.join(self.buffer)
        k = (len(frames) - self.size) // self.stride + 1
        starts = np.arange(k, dtype=np.int64) * self.stride
        keep_from = k * self.stride
        first = self.first_row
        self.buffer = [frames.rows(keep_from)] if keep_from < len(frames) else []
        self.buffered = len(frames) - keep_from
        self.first_row += keep_from
        return frames, starts, first


def window_graphs(
    frames: Chunk,
    starts: np.ndarray,
    size: int,
    vocab: Vocabulary | Alignment,
    scalers: dict[str, Any],
    expected: np.ndarray | None = None,
    ranges: np.ndarray | None = None,
) -> GraphBatch:
    """The scaled graphs of the windows of ``frames`` beginning at ``starts``, as the graphs stage builds
    them (``expected``: the vehicle profiles of windows.absent_ids, features.expected_periods; ``ranges``:
    their byte ranges of windows.byte_ranges, kdgat/data/ranges.py)."""
    uniq, code = _dense_codes(frames.key)
    cols = Columns(
        frames.key, code, frames.ts, frames.payload, frames.dlc, frames.label, frames.label.astype(np.int16)
    )
    batch = graphs_of_windows(cols, starts, size, 2, vocab.lookup(uniq), expected, ranges)
    _apply(batch.x, scalers["node"])
    _apply(batch.edge_attr, scalers["edge"])
    return batch
