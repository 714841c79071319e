"""End to end: `dvc repro` of synth → ingest → graphs on a tiny synthetic dataset in a temporary copy
of the repository; a second repro does nothing; a window-size change reruns `graphs` only."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(args: list[str], cwd: Path) -> str:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "PYTHONPATH": str(cwd),  # run the copied library, the one whose files DVC hashes
        "DVC_NO_ANALYTICS": "1",
    }
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def _set_params(repo: Path, **sections: dict) -> None:
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
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO / name, dst / name)
    _run(["git", "init", "-q"], dst)
    _run(["dvc", "init", "-q"], dst)
    _set_params(dst, synth={"minutes": 1.0})
    return dst


def test_repro_builds_graphs(repo: Path) -> None:
    out = _run(["dvc", "repro"], repo)
    for stage in ("synth", "ingest@synth", "graphs@synth"):
        assert f"Running stage '{stage}'" in out
    meta = json.loads((repo / "data/graphs/synth/meta.json").read_text())
    assert meta["counts"]["train"]["graphs"] > 0
    ingest = json.loads((repo / "reports/ingest/synth.json").read_text())
    assert ingest["frames"] > 0 and ingest["bad_lines"] == 0


def test_second_repro_does_nothing(repo: Path) -> None:
    out = _run(["dvc", "repro"], repo)
    assert "Running stage" not in out
    assert "Data and pipelines are up to date" in _run(["dvc", "status"], repo)


def test_window_size_change_reruns_graphs_only(repo: Path) -> None:
    _set_params(repo, windows={"size": 50, "stride": 50})
    out = _run(["dvc", "repro"], repo)
    assert "Running stage 'graphs@synth'" in out
    assert "Running stage 'ingest@synth'" not in out
    assert "Running stage 'synth'" not in out
    meta = json.loads((repo / "data/graphs/synth/meta.json").read_text())
    assert meta["params"]["windows"]["size"] == 50
