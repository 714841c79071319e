"""The speed benchmark with tiny settings: the JSON's shape and that every figure is a positive number (no
timing thresholds: this machine is shared), the fallback to a freshly generated dataset, and the timed
`dvc repro` wrapper that records a full run for last_repro_s."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml
from support.tiny_project import TINY_GAT, TINY_VGAE, study_params

from kdgat.bench.dashboard import PAGES as DASHBOARD_PAGES
from kdgat.bench.dashboard import TITLES as DASHBOARD_TITLES
from kdgat.bench.dashboard import table as dashboard_table
from kdgat.bench.gpu import table as gpu_table
from kdgat.bench.models import (
    INFER_MODELS,
    MIN_STEPS,
    TRAIN_SCALES,
    ModelBenchSettings,
    bench_models,
    fresh_graphs,
    plan_steps,
)
from kdgat.bench.record import median_of
from kdgat.bench.record import tables as cpu_tables
from kdgat.bench.repro_timer import is_full_run, read_record
from kdgat.config import (
    DQNScale,
    DQNScales,
    GATScale,
    GATScales,
    ModelParams,
    Params,
    VGAEScale,
    VGAEScales,
)

STUDY = study_params()  # the repository's params.yaml

# one training thread: two stall on a busy machine (each parallel region waits for a descheduled thread)
TINY = ModelBenchSettings(steps=2, repeats=2, warmup=1, infer_calls=5, infer_warmup=1, train_threads=1)
ENV = {**os.environ, "DVC_NO_ANALYTICS": "1"}


def tiny_params() -> Params:
    gat, vgae = GATScale(**TINY_GAT), VGAEScale(**TINY_VGAE)
    return STUDY.model_copy(
        update={
            "synth": STUDY.synth.model_copy(update={"minutes": 0.05, "vehicles": 2}),
            "train": STUDY.train.model_copy(update={"batch_size": 16}),
            "models": ModelParams(
                gat=GATScales(large=gat, small=gat.model_copy(update={"layers": 1})),
                vgae=VGAEScales(large=vgae, small=vgae.model_copy(update={"latent": 4})),
                dqn=DQNScales(large=DQNScale(hidden=16, layers=2), small=DQNScale(hidden=8, layers=1)),
            ),
        }
    )


@pytest.fixture(scope="module")
def graphs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fresh_graphs(tiny_params(), tmp_path_factory.mktemp("bench"), minutes=0.05)


def check_model_figures(out: dict[str, Any]) -> None:
    rates = out["train_graphs_per_s"]
    assert set(rates) == {"gat", "vgae"}
    for kind in rates.values():
        assert set(kind) == set(TRAIN_SCALES)
        assert all(isinstance(v, float) and v > 0 for v in kind.values())
    infer = out["infer_ms"]
    assert set(infer) == set(INFER_MODELS)
    for p in infer.values():
        assert set(p) == {"p50", "p99"}
        assert 0 < p["p50"] <= p["p99"]


@pytest.mark.slow
def test_model_bench_shape(graphs_dir: Path) -> None:
    threads = torch.get_num_threads()
    out = bench_models(tiny_params(), graphs_dir, TINY, progress=False)
    check_model_figures(out)
    info = out["model_bench"]
    assert info["graphs"] == str(graphs_dir) and info["batch_size"] == 16
    expect = {"steps": TINY.steps * TINY.repeats, "runs": TINY.repeats}  # a tiny model is within budget
    assert all(t == expect for t in info["train_timed"].values())
    assert info["mean_nodes"] > 1 and info["mean_edges_with_loops"] >= info["mean_nodes"]  # a loop per node
    # a KD student is the student's architecture (its projection aside): same size as the plain student
    assert info["params_count"]["gat_small_kd"] == info["params_count"]["gat_small"]
    assert info["params_count"]["gat_large"] > info["params_count"]["gat_small"]
    assert torch.get_num_threads() == threads  # the bench restores the caller's thread count


@pytest.mark.slow
def test_model_bench_generates_data_when_the_folder_is_missing(tmp_path: Path) -> None:
    # and a spent time budget cuts the timed steps and runs to the minimum
    hurried = dataclasses.replace(TINY, steps=50, repeats=3, budget_s=1e-9)
    out = bench_models(tiny_params(), tmp_path / "absent", hurried, progress=False)
    assert out["model_bench"]["graphs"].startswith("generated synth")
    assert all(t == {"steps": MIN_STEPS, "runs": 1} for t in out["model_bench"]["train_timed"].values())
    check_model_figures(out)


@pytest.mark.slow
def test_cli_prints_one_json_object(graphs_dir: Path, tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(tiny_params().model_dump(mode="json")))
    record = tmp_path / "last_repro.json"
    record.write_text(json.dumps({"wall_s": 12.5, "stages": ["a"], "finished_at": "2026-11-01T00:00:00Z"}))
    out_file = tmp_path / "out" / "latest.json"
    cmd = [
        sys.executable,
        "-m",
        "kdgat.bench.speed",
        "--frames",
        "5000",
        "--repeats",
        "1",
        "--params",
        str(params),
    ]
    cmd += ["--graphs", str(graphs_dir), "--repro-record", str(record), "--out", str(out_file)]
    cmd += ["--train-steps", "2", "--train-repeats", "1", "--infer-calls", "5", "--train-threads", "1"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1  # progress goes to stderr
    out = json.loads(lines[0])
    assert "bench: train gat_large" in done.stderr
    assert out["preprocess_frames_per_s"] > 0 and out["frames"] == 5000
    check_model_figures(out)
    assert out["last_repro_s"] == 12.5 and out["last_repro_at"] == "2026-11-01T00:00:00Z"
    assert json.loads(out_file.read_text()) == out


def test_plan_steps_fits_the_budget() -> None:
    s = ModelBenchSettings(steps=30, repeats=5, budget_s=15.0)
    assert plan_steps(s, 0.05) == (30, 5)  # 7.5 s: all of it
    assert plan_steps(s, 0.2) == (15, 5)  # fewer steps first
    assert plan_steps(s, 1.0) == (MIN_STEPS, 3)  # then fewer runs
    assert plan_steps(s, 60.0) == (MIN_STEPS, 1)  # never nothing
    assert plan_steps(dataclasses.replace(s, steps=2), 60.0) == (2, 1)  # never more than asked


def test_full_run_means_every_stage() -> None:
    ran = ["ingest@synth", "fusion@synth-large"]
    assert not is_full_run(ran, ["synth", "ingest@synth", "fusion@synth-large"])
    assert is_full_run(ran, ["ingest@synth", "fusion@synth-large"])
    assert not is_full_run([], [])


def test_read_record(tmp_path: Path) -> None:
    assert read_record(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text("{not json")
    assert read_record(tmp_path / "bad.json") is None
    (tmp_path / "odd.json").write_text('{"wall_s": "soon"}')
    assert read_record(tmp_path / "odd.json") is None


def _timer(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "kdgat.bench.repro_timer", "--record", "rec.json", *args]
    return subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_repro_timer_records_only_full_runs(tmp_path: Path) -> None:
    """A real dvc project of three stages (one a foreach): first run and -f are full, a no-op is not."""
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=tmp_path, env=ENV, check=True)
    (tmp_path / "dvc.yaml").write_text(
        "stages:\n"
        "  a:\n    cmd: echo hi > a.txt\n    outs: [a.txt]\n"
        "  b:\n    foreach: [x, y]\n    do:\n"
        "      cmd: cat a.txt > b_${item}.txt\n      deps: [a.txt]\n      outs: ['b_${item}.txt']\n"
    )
    first = _timer(tmp_path)
    assert first.returncode == 0, first.stderr
    assert "Running stage 'a'" in first.stdout  # dvc's output passes through
    rec = read_record(tmp_path / "rec.json")
    assert rec is not None and rec["stages"] == ["a", "b@x", "b@y"] and rec["wall_s"] > 0

    (tmp_path / "rec.json").write_text(json.dumps({**rec, "wall_s": 999.0}))
    noop = _timer(tmp_path)
    assert noop.returncode == 0 and "not a full run" in noop.stderr
    assert read_record(tmp_path / "rec.json") == {**rec, "wall_s": 999.0}  # untouched

    for out in (
        "a.txt",
        "b_x.txt",
        "b_y.txt",
        "dvc.lock",
    ):  # a (no deps) runs, the b stages come from the run cache
        (tmp_path / out).unlink()
    cached = _timer(tmp_path)
    assert cached.returncode == 0 and "1 of 3 stages ran" in cached.stderr, cached.stderr
    assert (tmp_path / "b_y.txt").is_file() and read_record(tmp_path / "rec.json") == {**rec, "wall_s": 999.0}

    forced = _timer(tmp_path, "-f")
    assert forced.returncode == 0, forced.stderr
    again = read_record(tmp_path / "rec.json")
    assert again is not None and again["wall_s"] != 999.0 and again["dvc_args"] == ["-f"]

    (tmp_path / "dvc.yaml").write_text("stages:\n  a:\n    cmd: exit 3\n    outs: [a.txt]\n")
    failed = _timer(tmp_path, "-f")
    assert failed.returncode != 0 and "nothing recorded" in failed.stderr
    assert read_record(tmp_path / "rec.json") == again


def test_skip_models_is_preprocessing_only() -> None:
    cmd = [sys.executable, "-m", "kdgat.bench.speed", "--frames", "5000", "--repeats", "1", "--skip-models"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["preprocess_frames_per_s"] > 0 and "train_graphs_per_s" not in out and "last_repro_s" in out


def test_gpu_doc_quotes_the_last_gpu_check(repo_root: Path) -> None:
    """docs/gpu.md shows bench/gpu.json (the last `make gpu-check`; CI has no GPU to rerun it)."""
    record = json.loads((repo_root / "bench" / "gpu.json").read_text())
    doc = (repo_root / "docs" / "gpu.md").read_text()
    assert gpu_table(record) in doc
    speedup = record["gpu_speedup"]
    assert f"{speedup['gat_large_default_batch']}× at the default batch" in doc
    assert f"{speedup['gat_large_best']:.0f}× at a batch of 4,096" in doc
    assert f"({record['gpu_cpu_baseline']['gat_large']:,.0f} graphs/s" in doc
    readme = (repo_root / "README.md").read_text()
    assert f"{speedup['gat_large_default_batch']}× faster" in readme
    assert f"{speedup['gat_large_best']:.0f}× at 4,096" in readme


def test_a_record_is_the_median_of_its_runs() -> None:
    runs = [
        {"rate": 1.0, "parts": {"a": 3, "b": 1}, "note": "first", "gpu": None},
        {"rate": 3.0, "parts": {"a": 1}, "note": "second", "gpu": None},
        {"rate": 2.5, "parts": {"a": 2}, "note": "third", "gpu": None},
    ]
    # "b" is in one run only: a median of fewer runs would pass for one of all three
    assert median_of(runs) == {"rate": 2.5, "parts": {"a": 2}, "note": "first", "gpu": None}


def test_benchmark_doc_and_readme_quote_the_cpu_record(repo_root: Path) -> None:
    """docs/benchmark.md shows bench/cpu.json (`make bench-record`: the median of three `make bench`
    runs), and the README's figures for the car are the same record's."""
    record = json.loads((repo_root / "bench" / "cpu.json").read_text())
    assert record["runs"] == 3
    assert cpu_tables(record) in (repo_root / "docs" / "benchmark.md").read_text()
    readme, edge = (repo_root / "README.md").read_text(), record["edge"]
    student, live = edge["latency_1_thread"]["gat_small_kd"], edge["live_1_thread"]
    assert f"{student['p50_ms']:.3f} ms per window (p50)" in readme
    assert f"{edge['detect_1_core']['frames_per_cpu_s']:,.0f} frames per CPU-second" in readme
    assert f"{live['p50_ms']:.2f} ms after the window's last frame" in readme


def test_dashboard_doc_and_readme_quote_the_dashboard_record(repo_root: Path) -> None:
    """docs/dashboard.md shows bench/dashboard.json (`make bench-dashboard`) as its table, with the date,
    repeats and load average of that measurement, and the README's Dashboard table has each page's figures
    from the same record."""
    record = json.loads((repo_root / "bench" / "dashboard.json").read_text())
    assert list(record["pages"]) == DASHBOARD_PAGES
    doc = (repo_root / "docs" / "dashboard.md").read_text()
    assert dashboard_table(record) in doc
    before, after = record["load_average"]
    assert f"Measured on {record['date']} (median of {record['repeats']} visits" in doc
    assert f"load average {before} before, {after} after" in doc
    readme = (repo_root / "README.md").read_text()
    assert f"`make bench-dashboard` on {record['date']}, median of {record['repeats']}" in readme
    assert f"at load {before}–{after}" in readme
    wasm = {round(r["mb_duckdb_wasm"], 1) for r in record["pages"].values() if r["mb_duckdb_wasm"]}
    assert len(wasm) == 1 and f"include its {wasm.pop():.1f} MB wasm" in readme
    rows = {line.split(" | ")[0].lstrip("| "): line for line in readme.splitlines() if line.startswith("| ")}
    for path, r in record["pages"].items():
        row = rows[DASHBOARD_TITLES[path]]
        assert row.endswith(f"| {r['first_chart_s']:.1f} s | {r['mb_transferred']:.1f} MB |"), row
