"""End to end: the whole DVC DAG (synth → ingest → graphs → teachers → students → fusion → evaluate →
results, export) on a tiny synthetic dataset in a temporary copy of the repository. Then: a second repro does
nothing, a window-size change makes only `graphs` stale upstream, and `dvc exp run -S` on a student
parameter reruns that student and what follows, nothing else."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kdgat.study import MODELS

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
TINY: dict[str, dict] = {
    "synth": {"minutes": 0.5, "vehicles": 2},
    "train": {"max_epochs": 1, "patience": 1},
    "fusion": {"epochs": 2},
    # the detector's three files only: the ONNX export is the slowest stage of a tiny study
    "export": {"models": ["gat_small_kd", "vgae_small_kd", "fusion_small_kd"]},
}


def _run(args: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(cwd),  # run the copied library, the one whose files DVC hashes
        "DVC_NO_ANALYTICS": "1",
    }
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def _set_params(repo: Path, sections: dict[str, dict]) -> None:
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for name, values in sections.items():
        params[name].update(values)
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dst = tmp_path_factory.mktemp("repo")
    for name in ("kdgat", "stages"):
        shutil.copytree(REPO / name, dst / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", "datasets.yaml", ".gitignore"):
        shutil.copy(REPO / name, dst / name)
    _run(["git", "init", "-q"], dst)
    _run(["dvc", "init", "-q"], dst)
    shutil.copy(REPO / ".dvcignore", dst / ".dvcignore")  # kdgat/ folders are deps: not their __pycache__
    _set_params(dst, TINY)
    _run(["git", "add", "-A"], dst)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], dst)
    return dst


def test_repro_runs_every_stage(repo: Path) -> None:
    out = _run(["dvc", "repro"], repo)
    stages = set(_run(["dvc", "stage", "list", "--name-only"], repo).split())
    assert _ran(out) == stages
    meta = json.loads((repo / "data/graphs/synth/meta.json").read_text())
    assert meta["counts"]["train"]["graphs"] > 0
    metrics = json.loads((repo / "metrics/synth.json").read_text())
    assert set(metrics) == set(MODELS)
    assert 0 <= metrics["gat_large"]["known"]["f1"] <= 1
    assert (repo / "plots/synth/roc/known/gat_large.csv").exists()
    shown = _run(["dvc", "metrics", "show"], repo)
    assert "gat_small_kd.known.f1" in shown
    board = _run([sys.executable, "-m", "kdgat.cli.main", "results", "leaderboard", "-s", "known"], repo)
    assert "gat_small_kd" in board and (repo / "results/synth/runs.parquet").exists()


def test_second_repro_does_nothing(repo: Path) -> None:
    assert _ran(_run(["dvc", "repro"], repo)) == set()


def test_student_param_reruns_only_that_student_and_downstream(repo: Path) -> None:
    out = _run(["dvc", "exp", "run", "-S", "models.gat.small.hidden=8"], repo)
    assert _ran(out) == {
        "gat_small_kd@synth",
        "gat_small@synth",
        "fusion@synth-small_kd",
        "fusion@synth-small",
        "evaluate@synth",
        "results@synth",
        "export@synth",
    }
    table = _run(["dvc", "exp", "show", "--csv"], repo)
    assert "models.gat.small.hidden" in table.splitlines()[0]


def test_window_size_makes_only_graphs_stale(repo: Path) -> None:
    _set_params(repo, {"windows": {"size": 50, "stride": 50}})
    status = json.loads(_run(["dvc", "status", "--json"], repo))
    assert set(status) == {"graphs@synth"}
