"""Model speed on CPU: training throughput and single-window inference latency of the study's models.

Training (``train_graphs_per_s``, {kind: {scale: graphs/s}}, scales large, small and small_kd): the
real training step of the Lightning module that TrainJob trains (LitGAT / LitVGAE.training_step; a KD
student also runs its frozen teacher's forward), then backward and the AdamW step, on batches of
``train.batch_size`` graphs collated from the train split the way the training loop does it (the collate
is part of the cost), with torch.set_num_threads(2). Warm-up steps, then ``repeats`` timed runs of
``steps`` steps; the median rate over the runs. Weights are freshly initialised: a step costs the same
whatever they are.

Inference (``infer_ms``, {model_scale: {p50, p99}}): one window at a time, as a detector sees them, with
torch.set_num_threads(1) under inference_mode: the collate of the one graph, the forward pass and what a
detector reads from it (GAT: P(attack); VGAE: the anomaly score; DQN: the chosen α from one state row).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kdgat.config import Params, with_overrides
from kdgat.data.formats import read_dataset
from kdgat.data.graphs import build_graphs
from kdgat.data.shards import META_FILE, load_meta
from kdgat.data.synth import generate
from kdgat.fusion.dqn import build_qnet
from kdgat.fusion.policy import STATE_COLUMNS
from kdgat.models import anomaly_score, build_gat, build_vgae, count_parameters
from kdgat.study import Paths
from kdgat.train.data import Batch, GraphLoader, GraphSet, collate, load_graphs
from kdgat.train.job import TrainJob
from kdgat.train.lit import LitBase

BENCH_DATASET = "bench"  # the jobs' dataset name: they train on graphs handed to them, not on its files
FALLBACK_MINUTES = 1.0  # a fresh clone: a small synthetic dataset (every file has a floor length anyway)
TRAIN_SCALES = ("large", "small", "small_kd")
MIN_STEPS = 5  # timed steps per repeat even when the budget is spent
INFER_MODELS = ("gat_large", "gat_small", "vgae_large", "vgae_small", "dqn_large", "dqn_small")


@dataclass(frozen=True)
class ModelBenchSettings:
    steps: int = 30  # timed training steps per repeat
    repeats: int = 5
    warmup: int = 4  # untimed training steps first (allocator, autograd caches); they set the pace
    budget_s: float = 12.0  # timed training seconds per model, about: fewer steps on a slow machine
    infer_calls: int = 500
    infer_warmup: int = 50
    train_threads: int = 2
    infer_threads: int = 1


def _log(progress: bool, msg: str) -> None:
    if progress:
        print(f"bench: {msg}", file=sys.stderr, flush=True)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def has_graphs(folder: Path) -> bool:
    return (folder / META_FILE).is_file() and (folder / "train").is_dir() and (folder / "val").is_dir()


def fresh_graphs(params: Params, out: Path, minutes: float = FALLBACK_MINUTES) -> Path:
    """A small synthetic dataset cut into graphs with the windows/split/vocab of ``params`` (so the graphs
    have the default dataset's shape), written to ``out``/graphs."""
    generate(out / "raw", params.synth.model_copy(update={"minutes": minutes}))
    frames, _ = read_dataset(out / "raw", progress=False)
    build_graphs(frames, params.windows, params.split, params.vocab, out / "graphs", progress=False)
    return out / "graphs"


def make_lit(
    kind: str, scale: str, params: Params, meta: dict[str, Any], train: GraphSet, val: GraphSet
) -> LitBase:
    """The Lightning module that TrainJob fits for ``kind``_``scale`` (the study's cast says its size and
    whether a teacher runs beside it), with a freshly initialised teacher and every graph each epoch: the
    sampler decides which graphs, not what a step costs. Nothing is read from the job's paths then."""
    every_graph = with_overrides(params, {"gat_train.sampling": "none"}, "bench")
    job = TrainJob.of(f"{kind}_{scale}", every_graph, Paths(BENCH_DATASET))
    return job.module(meta, train, val, fresh_teacher=True)


def _endless(loader: GraphLoader) -> Iterator[Batch]:
    while True:
        yield from loader


def plan_steps(settings: ModelBenchSettings, step_s: float) -> tuple[int, int]:
    """(steps, repeats) that fit ``budget_s`` at ``step_s`` seconds a step: the steps shrink first (down
    to MIN_STEPS), then the repeats (down to 1)."""
    step_s = max(step_s, 1e-9)
    fit = int(settings.budget_s / settings.repeats / step_s)
    steps = max(min(MIN_STEPS, settings.steps), min(settings.steps, fit))
    repeats = max(1, min(settings.repeats, int(settings.budget_s / (steps * step_s))))
    return steps, repeats


def train_rate(
    lit: LitBase,
    batch_size: int,
    settings: ModelBenchSettings,
    seed: int = 0,
    device: torch.device | None = None,
    bf16: bool = False,
) -> tuple[float, int, int]:
    """(median graphs per second over the timed runs of full training steps: collate, copy to ``device``
    (the CPU by default), step under bf16 autocast when ``bf16``, backward, optimiser; the steps timed in
    all; the runs). ``lit`` (and its teacher) must already be on ``device``.

    On a busy machine two intra-op threads can run a hundred times slower than on a quiet one (each
    parallel region waits for a descheduled thread), and the pace changes as other jobs come and go: the
    warm-up's pace plans the runs (``plan_steps``) and a deadline at ``budget_s`` cuts them short (once a
    run has MIN_STEPS steps), so the bench always ends."""
    idx = lit.epoch_indices(0)
    if len(idx) == 0:
        raise ValueError(f"no training graphs in the {lit.train_set.name!r} split to time steps on")
    idx = np.resize(idx, max(len(idx), batch_size))  # a full batch even above the split's size (repeats)
    batches = _endless(GraphLoader(lit.train_set, idx, batch_size, shuffle=True, seed=seed))
    opt = lit.configure_optimizers()
    lit.train()

    def run(n: int, deadline: float = float("inf")) -> tuple[float, int]:
        graphs, done = 0, 0
        t0 = time.perf_counter()
        while done < n and (done < MIN_STEPS or time.perf_counter() < deadline):
            b = next(batches) if device is None else next(batches).to(device)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(b.x.device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = lit.training_step(b, done)
            assert isinstance(loss, torch.Tensor)
            loss.backward()
            opt.step()
            graphs, done = graphs + b.num_graphs, done + 1
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)  # the GPU's queue is part of the steps' time
        return graphs / (time.perf_counter() - t0), done

    with warnings.catch_warnings():  # self.log() outside a Trainer warns and does nothing
        warnings.filterwarnings("ignore", message=r".*self\.log\(\)")
        torch.manual_seed(seed)
        run(1)  # the first step pays one-time costs: not a fair pace for the plan
        warm, _ = run(max(1, settings.warmup - 1))
        steps, repeats = plan_steps(settings, batch_size / warm)
        deadline = time.perf_counter() + settings.budget_s
        runs: list[tuple[float, int]] = []
        while len(runs) < repeats and (not runs or time.perf_counter() < deadline):
            runs.append(run(steps, deadline))
        return statistics.median(r for r, _ in runs), sum(n for _, n in runs), len(runs)


def latency_ms(
    call: Callable[[int], object], n_inputs: int, settings: ModelBenchSettings
) -> dict[str, float]:
    """p50 / p99 in ms of ``call(i)`` over ``infer_calls`` timed calls, cycling over ``n_inputs`` inputs."""
    times = np.empty(settings.infer_calls)
    with torch.inference_mode():
        for i in range(settings.infer_warmup):
            call(i % n_inputs)
        for i in range(settings.infer_calls):
            t0 = time.perf_counter_ns()
            call(i % n_inputs)
            times[i] = time.perf_counter_ns() - t0
    p50, p99 = np.percentile(times / 1e6, [50, 99])
    return {"p50": round(float(p50), 4), "p99": round(float(p99), 4)}


def _detectors(params: Params, meta: dict[str, Any], graphs: GraphSet) -> dict[str, Callable[[int], object]]:
    """One call per model_scale: window i (or state row i) in, the detector's reading out."""
    calls: dict[str, Callable[[int], object]] = {}
    seed = params.train.seed
    for scale in ("large", "small"):
        gat = build_gat(getattr(params.models.gat, scale), meta, seed=seed).eval()
        vgae = build_vgae(getattr(params.models.vgae, scale), meta, seed=seed).eval()

        def gat_call(i: int, model: Any = gat) -> float:
            b = collate(graphs, [i])
            return float(torch.softmax(model(*b.inputs()), dim=-1)[0, 1])

        def vgae_call(i: int, model: Any = vgae) -> float:
            b = collate(graphs, [i])
            x, vocab, ei, ea, batch = b.inputs()
            errors = model.graph_errors(model(x, vocab, ei, ea), x, vocab, ei, batch, b.num_graphs)
            return float(anomaly_score(errors, params.vgae_train)[0])

        calls[f"gat_{scale}"], calls[f"vgae_{scale}"] = gat_call, vgae_call
    # the Q-net's cost does not depend on the state's values: standard-normal rows, as after standardising
    states = np.random.default_rng(seed).standard_normal((len(graphs), len(STATE_COLUMNS))).astype(np.float32)
    for scale in ("large", "small"):
        qnet = build_qnet(
            getattr(params.models.dqn, scale), len(STATE_COLUMNS), params.fusion.actions, seed=seed
        )
        qnet.eval()

        def dqn_call(i: int, model: Any = qnet) -> int:
            return int(model(torch.from_numpy(states[i : i + 1])).argmax(dim=-1)[0])

        calls[f"dqn_{scale}"] = dqn_call
    return calls


def bench_models(
    params: Params,
    graphs_dir: Path | None,
    settings: ModelBenchSettings | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """{train_graphs_per_s, infer_ms, model_bench (settings and sources)} on the graphs in ``graphs_dir``
    when it holds a graph folder, else on a small synthetic dataset generated into a temp folder."""
    s = settings or ModelBenchSettings()
    with tempfile.TemporaryDirectory(prefix="kdgat-bench-models-") as tmp:
        if graphs_dir is not None and has_graphs(graphs_dir):
            source, folder = str(graphs_dir), graphs_dir
        else:
            _log(
                progress,
                f"no graphs at {graphs_dir}: generating a {FALLBACK_MINUTES}-minute synthetic dataset",
            )
            folder, source = fresh_graphs(params, Path(tmp)), f"generated synth, minutes={FALLBACK_MINUTES}"
        meta = load_meta(folder)
        train, val = load_graphs(folder, "train"), load_graphs(folder, "val")
    if len(val) == 0:
        raise ValueError(f"{source}: the val split is empty; inference latency needs graphs")

    rates: dict[str, dict[str, float]] = {"gat": {}, "vgae": {}}
    sizes: dict[str, int] = {}
    timed: dict[str, dict[str, int]] = {}
    seed = params.train.seed
    load_start = os.getloadavg()[0]
    with _threads(s.train_threads):
        for kind in rates:
            for scale in TRAIN_SCALES:
                lit = make_lit(kind, scale, params, meta, train, val)
                rate, steps, runs = train_rate(lit, params.train.batch_size, s, seed)
                timed[f"{kind}_{scale}"] = {"steps": steps, "runs": runs}
                rates[kind][scale] = round(rate, 1)
                sizes[f"{kind}_{scale}"] = count_parameters(lit.model)
                _log(progress, f"train {kind}_{scale}: {rate:,.0f} graphs/s")

    infer: dict[str, dict[str, float]] = {}
    with _threads(s.infer_threads):
        calls = _detectors(params, meta, val)
        for name in INFER_MODELS:
            infer[name] = latency_ms(calls[name], len(val), s)
            _log(progress, f"infer {name}: p50 {infer[name]['p50']:.3f} ms, p99 {infer[name]['p99']:.3f} ms")

    nodes = float(val.node_ptr.diff().float().mean())
    edges = float(val.edge_ptr.diff().float().mean())
    return {
        "train_graphs_per_s": rates,
        "infer_ms": infer,
        "model_bench": {
            "graphs": source,
            "batch_size": params.train.batch_size,
            "mean_nodes": round(nodes, 1),
            "mean_edges_with_loops": round(edges, 1),
            "params_count": sizes,
            "train_timed": timed,  # what the budget allowed: steps timed in all, runs (median of their rates)
            "load_avg_1m": [round(load_start, 2), round(os.getloadavg()[0], 2)],  # busy machine: slow figures
            **asdict(s),
        },
    }
