"""End to end: the whole DVC DAG (synth → ingest → graphs → teachers → students → fusion → evaluate →
results → dashboard, paper, export) on a tiny synthetic dataset in a temporary copy of the repository. Then: a
second repro does nothing, `kdgat publish` bundles the study, a window-size change makes only `graphs`
stale upstream, and `dvc exp run -S` on a student parameter reruns that student and what follows,
nothing else."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from support.tiny_project import run_in, set_params, study_repo

from kdgat.study import MODELS

pytestmark = pytest.mark.slow
TINY: dict[str, dict] = {
    "synth": {"minutes": 0.5, "vehicles": 2},
    "train": {"max_epochs": 1, "patience": 1, "warmup_epochs": 0},
    "fusion": {"epochs": 2},
    # the detector's three files only: the ONNX export is the slowest stage of a tiny study
    "export": {"models": ["gat_small_kd", "vgae_small_kd", "fusion_small_kd"]},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return study_repo(tmp_path_factory.mktemp("repo"), TINY)


def _ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def test_repro_runs_every_stage(repo: Path) -> None:
    out = run_in(repo, ["dvc", "repro"])
    stages = set(run_in(repo, ["dvc", "stage", "list", "--name-only"]).split())
    assert _ran(out) == stages
    meta = json.loads((repo / "data/graphs/synth/meta.json").read_text())
    assert meta["counts"]["train"]["graphs"] > 0
    metrics = json.loads((repo / "metrics/synth.json").read_text())
    assert set(metrics) == set(MODELS)
    assert 0 <= metrics["gat_large"]["known"]["f1"] <= 1
    assert (repo / "plots/synth/roc/known/gat_large.csv").exists()
    shown = run_in(repo, ["dvc", "metrics", "show"])
    assert "gat_small_kd.known.f1" in shown
    board = run_in(repo, [sys.executable, "-m", "kdgat.cli.main", "results", "leaderboard", "-s", "known"])
    assert "gat_small_kd" in board and (repo / "results/synth/runs.parquet").exists()
    assert (repo / "dashboard/dist/site/leaderboard.html").exists()
    assert (repo / "paper/_variables.yml").exists() and (repo / "paper/data/latent_umap.parquet").exists()


def test_second_repro_does_nothing(repo: Path) -> None:
    assert _ran(run_in(repo, ["dvc", "repro"])) == set()


def test_publish_dry_run_bundles_the_study(repo: Path) -> None:
    """`make publish` after `make run`: the bundle of every model, the edge export's ONNX files, the plan."""
    out = run_in(repo, [sys.executable, "-m", "kdgat.cli.main", "publish"])
    assert "dry run: nothing was sent" in out and "Hugging Face Hub kd-gat/kd-gat-synth ← synth/" in out
    bundle = repo / "release" / "synth"
    assert all((bundle / m / "model.safetensors").is_file() for m in MODELS)
    assert (bundle / "onnx" / "gat_small_kd.onnx").is_file() and (bundle / "onnx" / "detector.json").is_file()
    sizes = {p.name: p.stat().st_size for p in (repo / "release" / "zenodo").iterdir()}
    print(f"bundle: {sum(p.stat().st_size for p in bundle.rglob('*') if p.is_file())} bytes; zenodo: {sizes}")


def test_student_param_reruns_only_that_student_and_downstream(repo: Path) -> None:
    out = run_in(repo, ["dvc", "exp", "run", "-S", "models.gat.small.hidden=8"])
    assert _ran(out) == {
        "gat_small_kd@synth",
        "gat_small@synth",
        "fusion@synth-small_kd",
        "fusion@synth-small",
        "evaluate@synth",
        "results@synth",
        "dashboard",
        "paper",
        "export@synth",
    }
    table = run_in(repo, ["dvc", "exp", "show", "--csv"])
    assert "models.gat.small.hidden" in table.splitlines()[0]


def test_window_size_makes_only_graphs_stale(repo: Path) -> None:
    set_params(repo, {"windows": {"size": 50, "stride": 50}})
    status = json.loads(run_in(repo, ["dvc", "status", "--json"]))
    assert set(status) == {"graphs@synth"}
