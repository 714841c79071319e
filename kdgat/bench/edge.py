"""Speed on the car (`make bench`, when onnx/<dataset>/ exists): ONNX Runtime latency of one window on one
thread for the detector's student GAT, VGAE and Q-net and for every other exported GAT (the teacher), the
detector's whole per-window step, model file sizes, and `kdgat detect`'s throughput on a 1 M-frame candump
log on one pinned core, with its peak memory and where the time goes (parse / windows / features /
inference), and the detector's GAT and VGAE exported with ScatterElements (the first export) against the
bundle's ScatterND files (``scatter_forms``).

    python -m kdgat.bench.edge [--bundle onnx/synth] [--frames 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from kdgat.bench.worker import run_worker
from kdgat.data.frames import BYTE_COLUMNS, read_frames

CALLS = 2000  # timed single-window calls per model
LIVE_WINDOWS = 2000  # windows decided one at a time (live_latency)


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1e3
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 4),
        "p99_ms": round(float(np.percentile(ms, 99)), 4),
    }


def _timed(fn: Any, calls: int) -> dict[str, float]:
    for _ in range(20):  # warm-up: first runs allocate
        fn()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return _percentiles(times)


def latency(bundle: Path, frames_file: Path, calls: int = CALLS) -> dict[str, Any]:
    """One-window latencies on one thread (the first window of the dataset's first test capture)."""
    from kdgat.edge.detect import Detector
    from kdgat.edge.runtime import graph_inputs, run_rows, session
    from kdgat.edge.stream import chunk_of_frames

    det = Detector(bundle, threads=1)
    frames = read_frames(frames_file).filter(pl.col("source").str.contains("test")).head(det.size)
    chunk = chunk_of_frames(frames)
    starts = np.zeros(1, dtype=np.int64)
    inputs = graph_inputs(det.graphs(chunk, starts))
    out: dict[str, Any] = {}
    for name, info in det.models.data["models"].items():
        sess = session(bundle / info["file"], threads=1)
        if info["outputs"] == ["q"]:
            state = np.zeros((1, len(det.models.data["policy"]["state_columns"])), np.float32)
            out[name] = _timed(lambda s=sess, x=state: s.run(["q"], {"state": x}), calls)
        else:
            out[name] = _timed(lambda s=sess: run_rows(s, inputs), calls)
    out["detector_window"] = _timed(
        lambda: det.models.score(graph_inputs(det.graphs(chunk, starts))), calls // 4
    )
    return out


def live_latency(bundle: Path, frames_file: Path, windows: int = LIVE_WINDOWS) -> dict[str, Any]:
    """The detector on a live bus: the dataset's test frames fed one at a time, as ``bus_chunks`` yields
    them from a python-can bus, so each window is decided alone when its last frame arrives. p50/p99 of
    that latency (the summary's: from the window's last frame to its decision) and the detector's seconds
    per window in each part; the bus's own receive is not in it."""
    from kdgat.edge.detect import Detector
    from kdgat.edge.stream import chunk_of_frames

    det = Detector(bundle, threads=1)
    frames = read_frames(frames_file).filter(pl.col("source").str.contains("test"))
    chunk = chunk_of_frames(frames.head(det.size + det.stride * (windows + 20 - 1)))
    one_by_one = (chunk.rows(i, i + 1) for i in range(len(chunk)))
    for n, _ in enumerate(det.windows_of(one_by_one)):
        if n == 19:  # warm-up: first runs allocate
            det._reset()
    lat = np.array(det.latency) * 1e3
    return {
        "windows": det.windows,
        "p50_ms": round(float(np.percentile(lat, 50)), 4),
        "p99_ms": round(float(np.percentile(lat, 99)), 4),
        "ms_per_window": {k: round(v / det.windows * 1e3, 4) for k, v in det.seconds.items()},
    }


def scatter_forms(
    bundle: Path, frames_file: Path, models_dir: Path, graphs_dir: Path, calls: int = CALLS
) -> dict[str, Any]:
    """The detector's GAT and VGAE exported both ways (kdgat/edge/export.py FORMS: the bundle's ScatterND
    rows and the first export's ScatterElements) from their weights in ``models_dir``, one window on one
    thread, the two files' calls interleaved so that both see the same machine: p50/p99 each and the
    ratio of the p50s. Also the per-window cost in calls of INFER_BATCH windows, as `kdgat detect` runs
    them on a file."""
    from kdgat.edge.detect import INFER_BATCH, Detector
    from kdgat.edge.export import example_batch, export_rows
    from kdgat.edge.runtime import graph_inputs, run_rows, session
    from kdgat.edge.stream import chunk_of_frames

    det = Detector(bundle, threads=1)
    names = det.models.data["detector"]
    frames = read_frames(frames_file).filter(pl.col("source").str.contains("test"))
    chunk = chunk_of_frames(frames.head(det.size * INFER_BATCH * 16))
    starts = np.arange(INFER_BATCH * 16, dtype=np.int64) * det.size
    one = graph_inputs(det.graphs(chunk, starts[:1]))
    many = [
        graph_inputs(det.graphs(chunk, starts[i : i + INFER_BATCH]))
        for i in range(0, len(starts), INFER_BATCH)
    ]
    example = example_batch(graphs_dir)
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kdgat-forms-") as tmp:
        for model in (names["gat"], names["vgae"]):
            files = {"rows": bundle / det.models.data["models"][model]["file"]}
            files["elements"] = Path(tmp) / f"{model}.elements.onnx"
            export_rows(models_dir / f"{model}.ckpt", example, files["elements"], 18, scatters="elements")
            sessions = {form: session(f, threads=1) for form, f in files.items()}
            single = _interleaved({f: (lambda s=s: run_rows(s, one)) for f, s in sessions.items()}, calls)
            batched = _interleaved(
                {f: (lambda s=s: [run_rows(s, b) for b in many]) for f, s in sessions.items()}, calls // 100
            )
            per_window = {f: round(v["p50_ms"] / len(starts), 4) for f, v in batched.items()}
            out[model] = {
                "one_window": single,
                "p50_ratio": round(single["elements"]["p50_ms"] / single["rows"]["p50_ms"], 2),
                f"per_window_in_calls_of_{INFER_BATCH}_ms": per_window,
            }
    return out


def _interleaved(fns: dict[str, Any], calls: int) -> dict[str, dict[str, float]]:
    for fn in fns.values():  # warm-up: first runs allocate
        for _ in range(5):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(calls):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: _percentiles(v) for k, v in times.items()}


def write_candump(frames_file: Path, dest: Path, n_frames: int) -> None:
    """A candump log of ``n_frames`` frames: the dataset's test captures end to end (times shifted so they
    only grow), repeated as needed."""
    frames = read_frames(frames_file).filter(pl.col("source").str.contains("test"))
    parts, total, shift = [], 0, 0.0
    while total < n_frames:
        for _, part in frames.group_by("source", maintain_order=True):
            part = part.with_columns(pl.col("timestamp") - part["timestamp"][0] + shift)
            shift = float(part["timestamp"][-1]) + 0.001
            parts.append(part)
            total += part.height
            if total >= n_frames:
                break
    dest.write_text("\n".join(candump_lines(pl.concat(parts).head(n_frames))) + "\n")


def candump_lines(df: pl.DataFrame) -> list[str]:
    """A canonical frame table as candump log lines, ``(s.micros) can0 ID#DATA`` (vectorized)."""
    us = (df["timestamp"].to_numpy() * 1e6).round().astype(np.int64)
    ext = df["extended"].to_numpy()
    ids = np.where(ext, _hex(df["can_id"].to_numpy(), 8), np.char.rjust(_hex(df["can_id"].to_numpy(), 3), 8))
    payload = _hex(
        df.select(BYTE_COLUMNS).to_numpy().astype(np.uint64) @ (256 ** np.arange(7, -1, -1, dtype=np.uint64)),
        16,
    )
    table = pl.DataFrame(
        {
            "s": us // 1_000_000,
            "us": pl.Series(us % 1_000_000).cast(pl.String).str.zfill(6),
            "id": pl.Series(ids).str.strip_chars_start(),
            "payload": payload,
            "dlc": df["dlc"].cast(pl.UInt32),
        }
    )
    data = pl.col("payload").str.slice(0, pl.col("dlc") * 2)
    line = pl.format("({}.{}) can0 {}#{}", "s", "us", "id", data)
    return table.select(line).to_series().to_list()


def _hex(values: np.ndarray, width: int) -> np.ndarray:
    """Upper-case hex strings of ``width`` digits (numpy, no Python loop per value)."""
    digits = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64) * np.uint64(4)
    ascii_ = digits[(values.astype(np.uint64)[:, None] >> shifts) & np.uint64(15)]
    return np.ascontiguousarray(ascii_).view(f"S{width}").ravel().astype(str)


def _peak_rss_mb(usage: resource.struct_rusage) -> float:
    """This process's peak resident memory. Linux's ru_maxrss carries over a fork: a child of `make bench`
    would report the parent's models too; VmHWM is of this program alone."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return usage.ru_maxrss / 1024


def _throughput_worker(bundle: Path, log: Path) -> dict[str, Any]:
    """Runs inside the single-threaded, pinned child: the detector over the log, output discarded."""
    from kdgat.edge.detect import Detector, run
    from kdgat.edge.stream import file_chunks

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})
    det = Detector(bundle, threads=1)
    before = resource.getrusage(resource.RUSAGE_SELF)
    summary = run(det, lambda stop: file_chunks(log, det.counts, stop=stop), lambda line: None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    # CPU seconds as well as wall: on a shared machine the wall clock counts other processes' turns
    cpu_s = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    peak_mb = _peak_rss_mb(usage)
    return {
        "cpu_s": round(cpu_s, 3),
        "frames_per_cpu_s": round(summary["frames"] / cpu_s, 1),
        "frames": summary["frames"],
        "windows": summary["windows"],
        "frames_per_s": summary["frames_per_s"],
        "wall_s": summary["wall_s"],
        "seconds": summary["seconds"],
        "peak_rss_mb": round(peak_mb, 1),
    }


def bench_edge(bundle: Path, frames_file: Path, n_frames: int = 1_000_000) -> dict[str, Any]:
    files = {p.name: p.stat().st_size for p in sorted(bundle.glob("*.onnx"))}
    result: dict[str, Any] = {"onnx_bytes": files, "latency_1_thread": latency(bundle, frames_file)}
    result["live_1_thread"] = live_latency(bundle, frames_file)
    dataset = json.loads((bundle / "detector.json").read_text())["dataset"]
    models_dir, graphs_dir = Path("models") / dataset, Path("data/graphs") / dataset
    if models_dir.is_dir() and graphs_dir.is_dir():  # the study's weights: the other export to compare
        result["scatter_forms"] = scatter_forms(bundle, frames_file, models_dir, graphs_dir)
    with tempfile.TemporaryDirectory(prefix="kdgat-edge-") as tmp:
        log = Path(tmp) / "bus.log"
        write_candump(frames_file, log, n_frames)
        result["detect_1_core"] = {
            **run_worker("kdgat.bench.edge", "--bundle", str(bundle), "--worker", str(log)),
            "log_mb": round(log.stat().st_size / 2**20, 1),
        }
    return {"edge": result}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, default=Path("onnx/synth"))
    ap.add_argument("--frames-file", type=Path, default=Path("data/frames/synth.parquet"))
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(_throughput_worker(args.bundle, args.worker)))
        return
    print(json.dumps(bench_edge(args.bundle, args.frames_file, args.frames)))


if __name__ == "__main__":
    main()
