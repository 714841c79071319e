"""The CPU benchmark record that docs/benchmark.md quotes: the median of several `make bench` runs, kept
in git as bench/cpu.json (these machines are noisy; one run is not a figure), and the tables printed from it.

    python -m kdgat.bench.record RUN.json RUN.json RUN.json --out bench/cpu.json   # combine runs
    python -m kdgat.bench.record bench/cpu.json                                      # print the tables

`make bench-record` does both after three `make bench` runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kdgat.io import write_json

RECORD = Path("bench/cpu.json")
# the detector's models, as docs/edge.md names them
EDGE_ROWS = {
    "gat_small_kd": "student GAT (distilled)",
    "gat_small": "student GAT alone",
    "gat_large": "teacher GAT",
    "vgae_small_kd": "student VGAE",
    "fusion_small_kd": "Q-net of the fusion",
    "detector_window": "the detector's whole step",
}


def median_of(runs: list[Any]) -> Any:
    """Leaf by leaf, the median of the numbers of ``runs`` (records of the same shape); other values from
    the first run. A key missing from some run is left out, so that no figure is a median of fewer runs."""
    first = runs[0]
    if isinstance(first, dict):
        keys = [k for k in first if all(isinstance(r, dict) and k in r for r in runs)]
        return {k: median_of([r[k] for r in runs]) for k in keys}
    if isinstance(first, (int, float)) and not isinstance(first, bool):
        if any(r is None for r in runs):
            return None
        value = statistics.median(runs)
        return round(value, 4) if isinstance(value, float) else value
    return first


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    record = median_of(runs)
    record["runs"] = len(runs)
    record["recorded_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    record["machine"] = {"cpus": len(os.sched_getaffinity(0)), "arch": platform.machine()}
    return record


def tables(record: dict[str, Any]) -> str:
    """The three tables of docs/benchmark.md: preprocessing, models, the detector on the car."""
    parts = [_preprocessing(record), _models(record)]
    if "edge" in record:
        parts.append(_edge(record["edge"]))
    return "\n\n".join(parts)


def _preprocessing(r: dict[str, Any]) -> str:
    parts = f"{r['parse_s']:.3f} s / {r['read_capture_s']:.3f} s / {r['graphs_s']:.3f} s"
    return "\n".join(
        [
            "| preprocessing (one core) | measured | goal |",
            "| --- | ---: | ---: |",
            f"| frames/s, CSV → graph shards | {r['preprocess_frames_per_s'] / 1e6:.2f} M | ≥ 1 M |",
            f"| that time / bare `pl.read_csv` | {r['preprocess_vs_parse']:.2f}× | ≤ 4× |",
            f"| bare parse / reader / graphs + shards | {parts} | |",
        ]
    )


def _models(r: dict[str, Any]) -> str:
    lines = [
        "| model (PyTorch) | params | train graphs/s | one window p50 / p99 |",
        "| --- | ---: | ---: | ---: |",
    ]
    counts = r["model_bench"]["params_count"]
    for kind, rates in r["train_graphs_per_s"].items():
        for scale, rate in rates.items():
            name = f"{kind}_{scale}"
            infer = r["infer_ms"].get(name)
            latency = f"{infer['p50']:.2f} / {infer['p99']:.2f} ms" if infer else ""
            lines.append(f"| {name} | {counts[name]:,} | {rate:,.0f} | {latency} |")
    return "\n".join(lines)


def _edge(e: dict[str, Any]) -> str:
    lines = [
        "| on the car (ONNX Runtime, one thread) | file | one window p50 / p99 |",
        "| --- | ---: | ---: |",
    ]
    for name, label in EDGE_ROWS.items():
        lat, size = e["latency_1_thread"][name], e["onnx_bytes"].get(f"{name}.onnx")
        kib = f"{size / 1024:,.0f} KiB" if size else ""
        lines.append(f"| {label} (`{name}`) | {kib} | {lat['p50_ms']:.3f} / {lat['p99_ms']:.3f} ms |")
    live, detect = e["live_1_thread"], e["detect_1_core"]
    live_ms = f"{live['p50_ms']:.2f} / {live['p99_ms']:.2f} ms"
    lines.append(f"| live bus: a window's last frame → its decision | | {live_ms} |")
    lines += [
        "",
        f"`kdgat detect` on a {detect['log_mb']:.0f} MB candump log of 1 M frames, one core: "
        f"{detect['frames_per_cpu_s']:,.0f} frames per CPU-second, "
        f"peak memory {detect['peak_rss_mb']:,.0f} MB.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="`make bench` JSON files (one: a record to print)")
    ap.add_argument("--out", type=Path, help="write the median record here (e.g. bench/cpu.json)")
    args = ap.parse_args(argv)
    runs = [json.loads(p.read_text()) for p in args.runs]
    record = combine(runs) if args.out else runs[0]
    if args.out:
        write_json(record, args.out)
    print(tables(record))


if __name__ == "__main__":
    main()
