"""Speed benchmark of the pipeline: preprocessing, model training and inference, the last full run.

    python -m kdgat.bench.speed [--frames 1000000] [--repeats 5] [--out bench/latest.json]

Prints one JSON object on stdout (progress goes to stderr) and, with --out, writes it there too.

Preprocessing (one can-train-and-test CSV → graph shards, on one core): the timing runs in a child
process started with POLARS_MAX_THREADS, OMP/MKL/OpenBLAS threads set to 1 (they must be set before
polars and numpy load) and pinned to one CPU, so the figures compare across machines with different core
counts. Reported: medians over the repeats of the bare ``pl.read_csv`` of the file (parse_s), the reader
(read_capture_s), graph building and writing (graphs_s), plus preprocess_frames_per_s = frames /
(read_capture_s + graphs_s) and preprocess_vs_parse = (read_capture_s + graphs_s) / parse_s. Goal: >= 1e6
frames/s and <= 4x the parse.

Models (kdgat/bench/models.py): train_graphs_per_s and infer_ms, on the default dataset's graphs
(data/graphs/synth, or a small synthetic dataset generated on the spot when absent).

edge (kdgat/bench/edge.py, when `dvc repro` exported onnx/<dataset>/): ONNX Runtime one-window latency
on one thread per exported model, file sizes, and `kdgat detect` frames/s on a 1 M-frame log on one core.

last_repro_s: wall time of the last `make run` that executed every stage (kdgat/bench/repro_timer.py), or
null.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kdgat.bench.repro_timer import RECORD, read_record
from kdgat.bench.worker import SINGLE_THREAD_ENV, run_worker
from kdgat.config import PARAMS_FILE, params_here
from kdgat.io import write_json

DEFAULT_GRAPHS = Path("data/graphs/synth")  # what `dvc repro` builds for the default dataset
CSV_NAME = "dos-1.csv"  # the reader takes the attack type from the file name


def write_cantt_csv(path: Path, n_frames: int, seed: int = 0) -> None:
    """A can-train-and-test CSV of ``n_frames`` frames: ~30 periodic IDs and a short DoS burst."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    n_ids = 30
    ids = np.sort(rng.choice(np.arange(0x050, 0x7FF), n_ids, replace=False))
    periods = rng.choice([0.01, 0.02, 0.02, 0.05, 0.1], n_ids)
    seconds = n_frames / (1.0 / periods).sum() * 1.02
    ts_parts, id_parts = [], []
    for cid, period in zip(ids, periods, strict=True):
        t = np.arange(rng.random() * period, seconds, period)
        ts_parts.append(t + rng.normal(0.0, period * 0.01, len(t)))
        id_parts.append(np.full(len(t), cid))
    ts, can_id = np.concatenate(ts_parts), np.concatenate(id_parts)
    order = np.argsort(ts, kind="stable")[:n_frames]
    ts, can_id = ts[order], can_id[order]
    # Payloads: a rolling counter, a slowly varying value, noise and constant bytes, per ID.
    payload = np.zeros((n_frames, 8), dtype=np.uint8)
    payload[:, 0] = np.arange(n_frames) % 16
    payload[:, 1] = (128 + 100 * np.sin(ts / 7.0 + can_id)).astype(np.uint8)
    payload[:, 2] = rng.integers(0, 256, n_frames)
    payload[:, 3:] = (can_id[:, None] * np.arange(1, 6)) % 256
    attack = np.zeros(n_frames, dtype=np.int64)
    burst = np.arange(n_frames // 2, n_frames // 2 + min(300, n_frames // 10))
    can_id[burst], payload[burst], attack[burst] = 0, 0, 1  # DoS: top-priority ID 0x000 flooding
    hex_payload = np.frombuffer(payload.tobytes().hex().upper().encode(), dtype="S16").astype(str)
    pl.DataFrame(
        {
            "timestamp": np.round(1.6e9 + ts, 6),
            "arbitration_id": [f"{i:03X}" for i in can_id.tolist()],
            "data_field": hex_payload,
            "attack": attack,
        }
    ).write_csv(path, float_precision=6)


def _worker(csv: Path, out: Path, repeats: int) -> dict[str, Any]:
    """Runs inside the single-threaded child process."""
    import polars as pl

    from kdgat.data.formats import read_capture
    from kdgat.data.graphs import build_graphs

    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {max(os.sched_getaffinity(0))})  # cpu 0 takes most interrupts
    p = params_here()
    times: dict[str, list[float]] = {"parse_s": [], "read_capture_s": [], "graphs_s": []}
    n_frames, meta = 0, {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        pl.read_csv(csv)
        t1 = time.perf_counter()
        frames, _ = read_capture(csv, fmt="cantt")
        t2 = time.perf_counter()
        meta = build_graphs(frames, p.windows, p.split, p.vocab, out, progress=False)
        t3 = time.perf_counter()
        n_frames = len(frames)
        times["parse_s"].append(t1 - t0)
        times["read_capture_s"].append(t2 - t1)
        times["graphs_s"].append(t3 - t2)
        del frames
    med = {k: statistics.median(v) for k, v in times.items()}
    total = med["read_capture_s"] + med["graphs_s"]
    return {
        "frames": n_frames,
        "repeats": repeats,
        "preprocess_frames_per_s": round(n_frames / total),
        "preprocess_vs_parse": round(total / med["parse_s"], 3),
        **{k: round(v, 4) for k, v in med.items()},
        "graphs": sum(s["graphs"] for s in meta["counts"].values()),
        "threads": {k: os.environ.get(k) for k in SINGLE_THREAD_ENV},
    }


def bench_preprocess(frames: int, repeats: int) -> dict[str, Any]:
    """The preprocessing figures, measured in a single-threaded child process."""
    with tempfile.TemporaryDirectory(prefix="kdgat-bench-") as tmp:
        csv = Path(tmp) / CSV_NAME
        write_cantt_csv(csv, frames)
        args = ("--repeats", str(repeats), "--worker", str(csv), str(Path(tmp) / "graphs"))
        result = run_worker("kdgat.bench.speed", *args)
        result["csv_mb"] = round(csv.stat().st_size / 2**20, 1)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", type=Path, help="also write the JSON object to this file")
    ap.add_argument(
        "--params", type=Path, default=PARAMS_FILE, help="batch size and model sizes (default: %(default)s)"
    )
    ap.add_argument("--graphs", type=Path, default=DEFAULT_GRAPHS, help="graph folder (default: %(default)s)")
    ap.add_argument(
        "--repro-record", type=Path, default=RECORD, help="the last full run (default: %(default)s)"
    )
    # defaults of the model part: ModelBenchSettings in kdgat/bench/models.py
    ap.add_argument("--train-steps", type=int, help="timed training steps per repeat")
    ap.add_argument("--train-repeats", type=int, help="timed runs of --train-steps (median)")
    ap.add_argument("--infer-calls", type=int, help="timed single-window calls per model")
    ap.add_argument("--train-threads", type=int, help="torch threads while training")
    ap.add_argument("--skip-models", action="store_true", help="preprocessing only (no torch, seconds)")
    ap.add_argument("--gpu-only", action="store_true", help="the GPU figures alone (kdgat/bench/gpu.py)")
    ap.add_argument("--worker", nargs=2, metavar=("CSV", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.frames < 1000:
        ap.error("--repeats must be >= 1 and --frames >= 1000")
    given = {
        "steps": args.train_steps,
        "repeats": args.train_repeats,
        "infer_calls": args.infer_calls,
        "train_threads": args.train_threads,
    }
    chosen = {k: v for k, v in given.items() if v is not None}
    if any(v < 1 for v in chosen.values()):
        ap.error("--train-steps, --train-repeats, --infer-calls and --train-threads must be >= 1")
    if args.worker:
        print(json.dumps(_worker(Path(args.worker[0]), Path(args.worker[1]), args.repeats)))
        return
    t0 = time.perf_counter()
    if args.gpu_only:
        from kdgat.bench.gpu import bench_gpu

        _emit(bench_gpu(params_here(args.params), args.graphs), args.out, t0)
        return
    print(f"bench: preprocessing {args.frames:,} frames x {args.repeats}", file=sys.stderr, flush=True)
    result = bench_preprocess(args.frames, args.repeats)
    print(f"bench: {result['preprocess_frames_per_s']:,} frames/s", file=sys.stderr, flush=True)

    if not args.skip_models:
        from kdgat.bench.models import ModelBenchSettings, bench_models  # torch loads here, not in the child

        params = params_here(args.params)
        result.update(bench_models(params, args.graphs, ModelBenchSettings(**chosen)))
        import torch

        if torch.cuda.is_available():
            from kdgat.bench.gpu import bench_gpu

            result.update(bench_gpu(params, args.graphs))
        bundle = Path("onnx") / args.graphs.name  # the export stage's output for the same dataset
        if (bundle / "detector.json").exists():
            from kdgat.bench.edge import bench_edge

            print("bench: ONNX latency and detector throughput", file=sys.stderr, flush=True)
            result.update(bench_edge(bundle, Path("data/frames") / f"{args.graphs.name}.parquet"))
    record = read_record(args.repro_record)
    result["last_repro_s"] = record["wall_s"] if record else None
    result["last_repro_at"] = record.get("finished_at") if record else None
    _emit(result, args.out, t0)


def _emit(result: dict[str, Any], out: Path | None, t0: float) -> None:
    if out:
        write_json(result, out)
    print(f"bench: done in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
