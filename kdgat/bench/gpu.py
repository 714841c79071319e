"""Training speed on a GPU (`make bench` adds it when CUDA is visible; `make gpu-check` runs it alone).

``gpu_train_graphs_per_s`` {model: {precision: {batch size: graphs/s}}}: the same timed training steps as
the CPU bench (kdgat/bench/models.py ``train_rate``: collate on the CPU, copy, step, backward, AdamW) on
CUDA, in float32 and under bf16 autocast, at the default batch size and larger ones up to 4,096.
``gpu_cpu_baseline`` times the large GAT's steps on this machine's CPU with 2 threads (the cluster's CPU
baseline); ``gpu_speedup`` divides by it. ``gpu_h2d_ms`` / ``gpu_collate_ms``: per batch, the copy to the
GPU and the CPU collate that precede every step (medians). ``gpu_peak_mib``: peak GPU memory of a step.
``gpu_deterministic_cost``: the large GAT's rate with torch's deterministic kernels off over on.
``gpu_bf16_val_f1``: the large GAT trained through ``train_gat`` in each precision; validation F1 of the
kept epoch."""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from kdgat.bench.models import ModelBenchSettings, fresh_graphs, has_graphs, make_lit, train_rate
from kdgat.config import Params, with_overrides
from kdgat.data.shards import load_meta
from kdgat.train.data import GraphLoader, GraphSet, load_graphs
from kdgat.train.run import train_gat
from kdgat.train.torch_setup import deterministic

BATCHES = (256, 1024, 4096)  # beside train.batch_size
MINUTES = 1.0  # generated data when no graph folder is given (a batch larger than the split repeats graphs)
MODELS = (("gat", "large"), ("gat", "small"), ("vgae", "large"), ("vgae", "small"))
F1_EPOCHS = 6


def _log(msg: str) -> None:
    print(f"bench-gpu: {msg}", file=sys.stderr, flush=True)


def _median_ms(fn: Any, n: int = 20) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1e3)
    return round(statistics.median(times), 3)


def _copy_costs(train: GraphSet, batches: list[int], device: torch.device) -> tuple[dict[str, float], ...]:
    h2d, collate_ms = {}, {}
    for bs in batches:
        b = next(iter(GraphLoader(train, batch_size=bs)))
        h2d[str(bs)] = _median_ms(lambda b=b: b.to(device))
        t0 = time.perf_counter()
        for _ in range(5):
            next(iter(GraphLoader(train, batch_size=bs)))
        collate_ms[str(bs)] = round((time.perf_counter() - t0) / 5 * 1e3, 3)
    return h2d, collate_ms


def _rate(params: Params, kind: str, scale: str, data: tuple[Any, ...], bs: int, **kw: Any) -> float:
    lit = make_lit(kind, scale, params, *data)
    device = kw.get("device")
    if device is not None:
        lit.to(device)
    settings = ModelBenchSettings(steps=20, repeats=3, warmup=3, budget_s=1.5, train_threads=2)
    return round(train_rate(lit, bs, settings, params.train.seed, **kw)[0], 1)


def _val_f1(params: Params, folder: Path, precision: str, out: Path, device: torch.device) -> float:
    p = with_overrides(
        params,
        {
            "train.accelerator": device.type,
            "train.precision": precision,
            "train.max_epochs": F1_EPOCHS,
            "gat_train.sampling": "undersample",
        },
    )
    report = train_gat(p, folder, "large", out / precision, progress=False)
    return round(float(report["best_row"]["val_f1"]), 4)


def bench_gpu(params: Params, graphs_dir: Path | None = None, device: str = "cuda") -> dict[str, Any]:
    """The GPU figures above, on ``graphs_dir`` when it holds a graph folder, else on generated data."""
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device visible: the GPU bench needs one")
    deterministic(params.train.threads)
    dev = torch.device(device)
    default = params.train.batch_size
    batches = sorted({default, *BATCHES})
    with tempfile.TemporaryDirectory(prefix="kdgat-bench-gpu-") as tmp:
        if graphs_dir is not None and has_graphs(graphs_dir):
            folder, source = graphs_dir, str(graphs_dir)
        else:
            _log(f"generating {MINUTES} minutes of synthetic traffic")
            folder, source = fresh_graphs(params, Path(tmp), MINUTES), f"generated synth, minutes={MINUTES}"
        data = (load_meta(folder), load_graphs(folder, "train"), load_graphs(folder, "val"))
        rates: dict[str, dict[str, dict[str, float]]] = {}
        peak: dict[str, dict[str, float]] = {}
        for kind, scale in MODELS:
            name = f"{kind}_{scale}"
            rates[name], peak[name] = {"32-true": {}, "bf16-mixed": {}}, {}
            for bs in batches:
                for precision in rates[name]:
                    torch.cuda.reset_peak_memory_stats()
                    bf16 = precision == "bf16-mixed"
                    r = _rate(params, kind, scale, data, bs, device=dev, bf16=bf16)
                    rates[name][precision][str(bs)] = r
                    if not bf16:
                        peak[name][str(bs)] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
                    _log(f"{name} {precision} batch {bs}: {r:,.0f} graphs/s")
        torch.use_deterministic_algorithms(False)
        loose = _rate(params, "gat", "large", data, default, device=dev)
        torch.use_deterministic_algorithms(True)
        torch.set_num_threads(2)
        cpu = _rate(params, "gat", "large", data, default)
        _log(f"gat_large on the CPU (2 threads): {cpu:,.0f} graphs/s")
        h2d, collate_ms = _copy_costs(data[1], batches, dev)  # the train split loaded above
        f1 = {pr: _val_f1(params, folder, pr, Path(tmp), dev) for pr in ("32-true", "bf16-mixed")}
        _log(f"val F1 of gat_large: {f1}")
    fp32 = rates["gat_large"]["32-true"]
    best = max(max(v.values()) for v in rates["gat_large"].values())
    return {
        "gpu": torch.cuda.get_device_name(),
        "gpu_torch": f"{torch.__version__} (CUDA {torch.version.cuda})",
        "gpu_graphs": source,
        "gpu_train_split": {k: v for k, v in data[0]["counts"]["train"].items() if k in ("benign", "attack")},
        "gpu_train_graphs_per_s": rates,
        "gpu_peak_mib": peak,
        "gpu_h2d_ms": h2d,
        "gpu_collate_ms": collate_ms,
        "gpu_cpu_baseline": {"gat_large": cpu, "threads": 2, "batch_size": default},
        "gpu_speedup": {
            "gat_large_default_batch": round(fp32[str(default)] / cpu, 1),
            "gat_large_best": round(best / cpu, 1),
        },
        "gpu_deterministic_cost": round(loose / fp32[str(default)], 3),
        "gpu_bf16_val_f1": {**f1, "diff": round(abs(f1["32-true"] - f1["bf16-mixed"]), 4)},
    }


def table(record: dict[str, Any]) -> str:
    """The markdown table of docs/gpu.md: float32 (bf16) training graphs/s per model and batch size."""
    rates = record["gpu_train_graphs_per_s"]
    sizes = sorted(next(iter(rates.values()))["32-true"], key=int)
    lines = [
        "| model | " + " | ".join(f"batch {s}" for s in sizes) + " | peak MiB at " + sizes[-1] + " |",
        "| --- |" + " ---: |" * (len(sizes) + 1),
    ]
    for name, r in rates.items():
        cells = [f"{r['32-true'][s]:,.0f} ({r['bf16-mixed'][s]:,.0f})" for s in sizes]
        lines.append(
            f"| {name} | " + " | ".join(cells) + f" | {record['gpu_peak_mib'][name][sizes[-1]]:,.0f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(json.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/gpu.json").read_text())))
