"""A user's own dataset (issue 16, items 3 and 4): declared in the project (datasets.yaml) by `kdgat
datasets add`, which checks the layout; validated when params load; read with its attack types from file
or folder names; and `dvc repro` on it alone generates no synthetic data."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml
from support.can_logs import LOG, kdgat, screen

from kdgat.config import ParamsError, load_params
from kdgat.data.formats import FrameError, read_dataset
from kdgat.data.layout import attack_of_filename

REPO = Path(__file__).resolve().parents[1]
CANTT = "timestamp,arbitration_id,data_field,attack\n1.0,0123,00FF,0\n2.0,0124,11,1\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder (params.yaml as shipped) and, beside it, a folder of screen-format captures."""
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(REPO / "params.yaml", proj / "params.yaml")
    caps = tmp_path / "caps"
    for folder in ("train_01_attack_free", "test_01_known_vehicle_known_attack"):
        (caps / folder).mkdir(parents=True)
        (caps / folder / "drive.log").write_text(screen(LOG))
    return proj


def _params(proj: Path, **top: object) -> Path:
    raw = yaml.safe_load((proj / "params.yaml").read_text())
    (proj / "params.yaml").write_text(yaml.safe_dump({**raw, **top}, sort_keys=False))
    load_params.cache_clear()
    return proj / "params.yaml"


def test_datasets_add_declares_checks_and_links(project: Path) -> None:
    r = kdgat("datasets", "add", "mine", "--path", "../caps", "--title", "my car", cwd=project)
    assert r.returncode == 0, r.stderr
    assert "2 captures (1 known, 1 train)" in r.stdout and "2 candump" in r.stdout
    entry = yaml.safe_load((project / "datasets.yaml").read_text())["mine"]
    assert entry == {"path": "../caps", "format": "auto", "attack_from": "filename", "title": "my car"}
    assert (project / "data/raw/mine/train_01_attack_free/drive.log").read_text() == screen(LOG)
    listed = kdgat("datasets", cwd=project).stdout
    assert "mine" in listed and "my car" in listed and "synth" in listed
    assert re.search(r"^ +layout=cantt format=auto scenarios=known$", listed, re.M)  # its test_01 folder
    again = kdgat("datasets", "add", "mine", "--path", "../caps", cwd=project)
    assert again.returncode == 2 and "declared already" in again.stderr
    clash = kdgat("datasets", "add", "synth", "--path", "../caps", cwd=project)
    assert clash.returncode == 2 and "kd-gat's own datasets" in clash.stderr


def test_datasets_lists_the_scenarios_a_user_folder_holds(tmp_path: Path) -> None:
    """Issue 16 audit: a user's entry names no scenarios; the listing reads them off its folders."""
    from kdgat.cli.datasets import _scenarios_found

    for folder in ("train_01_x", "test_03_known_vehicle_unknown_attack", "test_01_a", "test_04_b"):
        (tmp_path / "ds" / folder).mkdir(parents=True)
        (tmp_path / "ds" / folder / "a.log").write_text(LOG)
    (tmp_path / "ds" / "test_02_empty").mkdir()  # holds nothing: no scenario
    assert _scenarios_found(tmp_path / "ds") == "known,unknown_attack,unknown_both"
    (tmp_path / "bag").mkdir()
    (tmp_path / "bag" / "a.log").write_text(LOG)
    assert _scenarios_found(tmp_path / "bag") == "known (cut from the training captures)"
    assert _scenarios_found(tmp_path / "gone") == f"? ({tmp_path / 'gone'} is missing)"


def test_linked_folders_are_read_and_broken_links_named(tmp_path: Path) -> None:
    """Issue 16 audit: a linked test folder was skipped whole (22,498 frames) and a broken link without a
    word. Links to folders are followed, each real folder once; a loop or a dead link names itself."""
    ds, elsewhere = tmp_path / "ds", tmp_path / "elsewhere"
    (ds / "train_01_attack_free").mkdir(parents=True)
    (ds / "train_01_attack_free" / "a.log").write_text(LOG)
    (elsewhere / "caps").mkdir(parents=True)
    (elsewhere / "caps" / "b.log").write_text(LOG)
    (ds / "test_01_known_vehicle_known_attack").symlink_to(elsewhere)
    frames, report = read_dataset(ds)
    assert frames["source"].unique().sort().to_list() == [
        "test_01_known_vehicle_known_attack/caps/b.log",
        "train_01_attack_free/a.log",
    ]
    assert report.files == 2
    up = ds / "train_01_attack_free" / "up"
    up.symlink_to(ds)  # a loop
    with pytest.raises(FrameError, match=re.escape(f"{up}: links to {ds.resolve()}, a folder read already")):
        read_dataset(ds)
    up.unlink()
    twice = ds / "test_03_known_vehicle_unknown_attack"
    twice.symlink_to(elsewhere / "caps")  # a second path to test_01's captures
    with pytest.raises(FrameError, match=re.escape(f"{twice}: links to {(elsewhere / 'caps').resolve()}")):
        read_dataset(ds)
    twice.unlink()
    dead = ds / "train_01_attack_free" / "c.log"
    dead.symlink_to(tmp_path / "gone.log")
    with pytest.raises(FrameError, match=re.escape(f"{dead}: a broken link (to {tmp_path / 'gone.log'})")):
        read_dataset(ds)
    r = kdgat("datasets", "add", "mine", "--path", ds, cwd=tmp_path)
    assert r.returncode == 2 and f"{dead}: a broken link" in r.stderr


def test_params_check_the_dataset_when_they_load(project: Path) -> None:
    assert kdgat("datasets", "add", "mine", "--path", "../caps", cwd=project).returncode == 0
    cwd = os.getcwd()
    os.chdir(project)
    try:
        with pytest.raises(ParamsError, match=r"synthetic builds \['synth'\], which datasets does not list"):
            load_params(_params(project, datasets=["mine"]))
        assert load_params(_params(project, datasets=["mine"], synthetic=[])).datasets == ["mine"]
        with pytest.raises(ParamsError, match="unknown dataset"):
            load_params(_params(project, datasets=["yours"], synthetic=[]))
        (project / "data/raw/mine").unlink()
        with pytest.raises(ParamsError, match=r"data/raw/mine is missing; run `kdgat datasets add mine"):
            load_params(_params(project, datasets=["mine"], synthetic=[]))
    finally:
        os.chdir(cwd)
        load_params.cache_clear()


def test_captures_outside_the_layout_are_refused(tmp_path: Path, project: Path) -> None:
    stray = tmp_path / "caps" / "validation"
    stray.mkdir()
    (stray / "x.log").write_text(screen(LOG))
    r = kdgat("datasets", "add", "mine", "--path", "../caps", cwd=project)
    assert r.returncode == 2 and "outside the layout folders: validation/x.log" in r.stderr
    assert not (project / "datasets.yaml").exists()
    with pytest.raises(
        FrameError, match=r"1 capture\(s\) outside the layout folders, e.g. 'validation/x.log'"
    ):
        read_dataset(tmp_path / "caps")
    (tmp_path / "flat").mkdir()  # no layout folder at all: one bag of training captures, as documented
    (tmp_path / "flat" / "a.log").write_text(LOG)
    (tmp_path / "flat" / "photo.jpg").write_bytes(b"\xff\xd8")
    frames, report = read_dataset(tmp_path / "flat")
    assert frames.height == 4 and report.ignored == ["photo.jpg"]


def test_attack_type_from_file_name_or_folder(tmp_path: Path) -> None:
    assert attack_of_filename("tsc1.csv") == "tsc1"  # digits of the name stay
    assert attack_of_filename("DoS-1.csv") == "dos" and attack_of_filename("Fuzzy_dataset.csv") == "fuzzy"
    root = tmp_path / "ds" / "train_02_with_attacks"
    (root / "tsc").mkdir(parents=True)
    (root / "tsc" / "1.csv").write_text(CANTT)
    (root / "tsc1.csv").write_text(CANTT)
    by_name = read_dataset(tmp_path / "ds")[0].filter(pl.col("label") == 1)
    assert dict(by_name.select("source", "attack_type").iter_rows()) == {
        "train_02_with_attacks/tsc/1.csv": "unknown",  # the name "1" says nothing
        "train_02_with_attacks/tsc1.csv": "tsc1",
    }
    by_folder = read_dataset(tmp_path / "ds", attack_from="folder")[0].filter(pl.col("label") == 1)
    assert by_folder["attack_type"].to_list() == ["tsc", "train_02_with_attacks"]


@pytest.mark.slow
def test_dvc_repro_on_a_user_dataset_generates_no_synthetic_data(tmp_path: Path) -> None:
    """datasets: [mine] with synthetic: [] in a copy of the pipeline: no synth stage exists, and
    graphs@mine runs ingest@mine then graphs@mine only, on a dataset declared by `kdgat datasets add`."""
    repo = tmp_path / "repo"
    for name in ("kdgat", "stages"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", "datasets.yaml", ".gitignore"):
        shutil.copy(REPO / name, repo / name)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env |= {"PYTHONPATH": str(repo), "DVC_NO_ANALYTICS": "1", "WANDB_MODE": "disabled"}

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(map(str, args)), cwd=repo, env=env, capture_output=True, text=True)

    assert run("dvc", "init", "-q", "--no-scm").returncode == 0
    assert (
        run(sys.executable, "-m", "kdgat.cli.main", "synth", tmp_path / "mine", "--minutes", "0.5").returncode
        == 0
    )
    added = run(
        sys.executable, "-m", "kdgat.cli.main", "datasets", "add", "mine", "--path", tmp_path / "mine"
    )
    assert added.returncode == 0, added.stderr
    _params(
        repo, datasets=["mine"], synthetic=[], train={**load_params().train.model_dump(), "batch_size": 8}
    )
    stages = run("dvc", "stage", "list", "--name-only").stdout.split()
    assert "ingest@mine" in stages and not any(s.startswith("synth") for s in stages), stages
    out = run("dvc", "repro", "graphs@mine")
    assert out.returncode == 0, out.stdout + out.stderr
    assert set(re.findall(r"Running stage '([^']+)'", out.stdout)) == {"ingest@mine", "graphs@mine"}
    assert not (repo / "data/raw/synth").exists() and (repo / "data/graphs/mine/meta.json").exists()
