"""W&B tracking (kdgat/track/tracker.py): offline runs written by a real training call, read back from their
transaction logs; deterministic ids; lineage in the config; alerts; failed state; nothing in $HOME.

Two real runs only (W&B init costs about half a second each): the training run and a failing rerun of it.
"""

from __future__ import annotations

import logging
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import torch
import yaml
from support.tiny_project import tiny_graphs
from test_train import tiny_params
from typer.testing import CliRunner

from kdgat.cli.main import app
from kdgat.config import DQNScale, sections
from kdgat.fusion.train import fit_qnet
from kdgat.study import MODELS, Model, TrainOutputs
from kdgat.track.lightning import EpochLogger
from kdgat.track.sync import read_records, run_files
from kdgat.track.tracker import (
    Tracker,
    TrackingError,
    close_failed,
    params_hash,
    resolve_mode,
    run_id,
    stage_run,
)
from kdgat.train.run import train_gat

REPO = Path(__file__).resolve().parents[1]
STUDENT = Model.parse("gat_small_kd")
PARAMS = tiny_params(tracking={"mode": "offline"})


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An empty $HOME for every W&B call of this module (and no key, so nothing can go online)."""
    home = tmp_path_factory.mktemp("home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.delenv("WANDB_API_KEY", raising=False)
        yield home


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_graphs(tmp_path_factory.mktemp("data"))


def _student_run(root: Path) -> Any:
    return stage_run(
        "train",
        "synth",
        PARAMS,
        STUDENT.param_keys,
        name=STUDENT.name,
        lineage=STUDENT.lineage(curriculum=False),
        root=root,
    )


@pytest.fixture(scope="module")
def trained(home: Path, graphs: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real training call with the tracker's epoch callback, then its report and checkpoint."""
    root = tmp_path_factory.mktemp("project")
    outs = TrainOutputs.in_folder(root / "out")
    with _student_run(root) as t:
        report = train_gat(PARAMS, graphs, "small", outs, progress=False, callbacks=[EpochLogger(t)])
        t.summary(report)
        t.log_model(STUDENT.name, outs.weights)
    (log,) = run_files(root)
    return {"root": root, "report": report, "epochs": outs.epochs, "records": read_records(log, root)}


@pytest.fixture(scope="module")
def failed(trained: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """A rerun of the same stage that logs a loss jump, then a NaN, then fails; its records and log lines."""
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    logging.getLogger("kdgat.track.tracker").addHandler(handler)
    try:
        with pytest.raises(RuntimeError, match="boom"), _student_run(trained["root"]) as t:
            for epoch, loss in enumerate([1.0, 50.0, math.nan]):
                t.log_epoch({"epoch": epoch, "train_loss": loss, "val_f1": 0.5})
            raise RuntimeError("boom")
    finally:
        logging.getLogger("kdgat.track.tracker").removeHandler(handler)
    second = run_files(trained["root"])[-1]
    return read_records(second, trained["root"]), lines


def _of(records: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r[kind] for r in records if r["type"] == kind]


@pytest.mark.slow
def test_epochs_summary_and_model_artifact_in_the_run(trained: dict[str, Any]) -> None:
    records, report = trained["records"], trained["report"]
    csv = pl.read_csv(trained["epochs"])
    history = _of(records, "history")
    assert [h["item"]["epoch"] for h in history] == csv["epoch"].to_list() == [0, 1, 2]
    for col in ("train_loss", "val_loss", "val_f1", "train_graphs"):  # the same values as the epochs CSV
        assert [h["item"][col] for h in history] == pytest.approx(csv[col].to_list(), rel=1e-12), col
    summary: dict[str, Any] = {}
    for s in _of(records, "summary"):
        summary.update(s["update"])
    assert summary["best_epoch"] == report["best_epoch"] and summary["params_count"] == report["params_count"]
    (artifact,) = _of(records, "artifact")
    assert (artifact["type"], artifact["name"]) == ("model", "gat_small_kd-synth")
    assert [c["path"] for c in artifact["manifest"]["contents"]] == ["model.ckpt"]
    assert artifact["metadata"] and '"params_hash"' in artifact["metadata"]
    assert _of(records, "exit")[-1].get("exit_code", 0) == 0


@pytest.mark.slow
def test_config_holds_params_lineage_and_deterministic_id(trained: dict[str, Any]) -> None:
    (run,) = _of(trained["records"], "run")
    config = run["config"]["update"]
    assert config["teacher"] == "gat_large" and config["curriculum_vgae"] is None  # lineage, offline too
    assert (config["kd.temperature"], config["kd.alpha"]) == (4, 0.7) and config["train"]["max_epochs"] == 3
    assert "tracking" not in config and "windows" not in config  # only what the stage reads
    assert (run["job_type"], run["run_group"], run["display_name"]) == (
        "train",
        "synth",
        "gat_small_kd@synth",
    )
    phash = params_hash(sections(PARAMS, STUDENT.param_keys))
    assert config["params_hash"] == phash and "git_commit" in config
    assert run["run_id"] == run_id("kd-gat", "gat_small_kd", "synth", phash)
    other = params_hash(sections(tiny_params(kd={"alpha": 0.5}), STUDENT.param_keys))
    ids = {
        run_id(*key)
        for key in [("kd-gat", "gat_small_kd", "synth", other), ("x", "gat_small_kd", "synth", phash)]
    }
    ids |= {run_id("kd-gat", "gat_small", "synth", phash), run_id("kd-gat", "gat_small_kd", "wrx", phash)}
    assert len(ids) == 4 and run["run_id"] not in ids
    # untracked sections (e.g. the W&B project itself) leave the hash alone
    renamed = tiny_params(tracking={"project": "elsewhere"})
    assert params_hash(sections(renamed, STUDENT.param_keys)) == phash


@pytest.mark.slow
def test_rerun_resumes_the_same_id_and_a_failure_alerts(
    trained: dict[str, Any], failed: tuple[list[dict[str, Any]], list[str]]
) -> None:
    records, lines = failed
    (first,), (second,) = _of(trained["records"], "run"), _of(records, "run")
    assert second["run_id"] == first["run_id"] and second["resume"]
    assert _of(records, "exit")[-1]["exit_code"] == 1
    titles = [a["title"] for a in _of(records, "alert")]
    assert titles == [
        "gat_small_kd@synth: train_loss jumped ×50",
        "gat_small_kd@synth: train_loss is nan",
        "gat_small_kd@synth: stage failed",
    ]
    assert len(lines) == 3 and "RuntimeError: boom" in lines[-1]  # WARNING lines, whatever the mode


@pytest.mark.slow
def test_nothing_written_outside_the_project(home: Path, trained: dict[str, Any], failed: Any) -> None:
    assert list(home.rglob("*")) == []
    assert sorted(p.name for p in trained["root"].iterdir()) == ["out", "wandb"]


@pytest.mark.slow
def test_track_list_and_sync(trained: dict[str, Any], failed: Any) -> None:
    runner, root = CliRunner(), str(trained["root"])
    listed = runner.invoke(app, ["track", "list", "--root", root])
    assert listed.exit_code == 0, listed.output
    rows = [line.split() for line in listed.output.splitlines()]
    assert [(r[1], r[2], r[3], r[4]) for r in rows] == [
        ("gat_small_kd@synth", "train", "synth", "finished"),
        ("gat_small_kd@synth", "train", "synth", "failed"),
    ]
    no_key = runner.invoke(app, ["track", "sync", "--root", root])
    assert no_key.exit_code == 2 and "no W&B key" in no_key.output and "WANDB_API_KEY=..." in no_key.output
    dry = runner.invoke(app, ["track", "sync", "--root", root, "--dry-run"])
    assert dry.exit_code == 0 and "would upload 2 offline run(s)" in dry.output, dry.output


def test_disabled_mode_writes_nothing_but_still_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    params = tiny_params(tracking={"mode": "disabled"})
    with (
        pytest.raises(ValueError, match="bad"),
        stage_run("graphs", "synth", params, ["windows"], root=tmp_path) as t,
    ):
        t.log_epoch({"epoch": 0, "val_loss": math.inf})
        t.summary({"x": 1})
        raise ValueError("bad")
    assert list(tmp_path.iterdir()) == []
    assert [r.levelname for r in caplog.records] == ["WARNING", "WARNING"]
    assert "val_loss is inf" in caplog.records[0].getMessage()


def test_mode_follows_params_then_env_then_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    auto = PARAMS.tracking.model_copy(update={"mode": "auto"})
    assert resolve_mode(auto, tmp_path) == "offline"
    with pytest.raises(TrackingError, match="needs a key: set WANDB_API_KEY"):
        resolve_mode(PARAMS.tracking.model_copy(update={"mode": "online"}), tmp_path)
    (tmp_path / ".env").write_text("OTHER=1\nexport WANDB_API_KEY='k123'\n")
    assert resolve_mode(auto, tmp_path) == "online"
    monkeypatch.setenv("WANDB_MODE", "offline")  # what the Makefile exports
    assert resolve_mode(auto, tmp_path) == "offline"
    assert resolve_mode(PARAMS.tracking.model_copy(update={"mode": "online"}), tmp_path) == "online"
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert resolve_mode(auto, tmp_path) == "disabled"
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(TrackingError, match="WANDB_MODE='sometimes'"):
        resolve_mode(auto, tmp_path)


def test_model_param_keys_are_the_dvc_params() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name in MODELS:
        model = Model.parse(name)
        body = stages["fusion" if model.family == "fusion" else name]
        assert list(model.param_keys) == body.get("do", body)["params"], name
    assert Model.parse("fusion_small").lineage(False) == {"inputs": ["vgae_small", "gat_small"]}
    assert Model.parse("gat_large").lineage(True) == {"teacher": None, "curriculum_vgae": "vgae_large"}
    assert Model.parse("vgae_small_kd").lineage(True) == {"teacher": "vgae_large"}
    assert sections(PARAMS, ["kd.alpha", "models.gat.small.heads"]) == {
        "kd.alpha": 0.7,
        "models.gat.small.heads": 2,
    }


def test_fusion_hands_each_epoch_row_over_as_it_ends() -> None:
    states, reward = torch.randn(64, 4, generator=torch.Generator().manual_seed(0)), torch.ones(64, 3)
    rows: list[dict[str, float]] = []
    params = tiny_params(fusion={"epochs": 3})
    _, history, _ = fit_qnet(
        DQNScale(hidden=8, layers=1), params.fusion, params.train, states, reward, states, reward, rows.append
    )
    assert rows == history and [r["epoch"] for r in rows] == [0, 1, 2]


def test_a_run_still_in_use_is_retried_then_tracked_apart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import wandb

    import kdgat.track.tracker as track

    calls: list[str] = []

    def fake_init(**kwargs: Any) -> str:
        calls.append(kwargs["id"])
        if not kwargs["id"].endswith("-retry"):
            raise RuntimeError(f"run ID {kwargs['id']} is in use")
        return "run"

    monkeypatch.setattr(wandb, "init", fake_init)
    monkeypatch.setattr(track, "IN_USE_WAIT_S", (0, 0))
    assert track._init("offline", tmp_path, id="abc") == "run"
    assert calls == ["abc", "abc", "abc", "abc-retry"]  # two waits, the last try, then its own id


def test_run_files_oldest_first_when_a_rerun_starts_in_the_same_second(tmp_path: Path) -> None:
    # W&B names a rerun's folder "<first run's folder>-1" when it starts within the same second
    names = [
        "offline-run-20261129_041528-5a1f-1",
        "offline-run-20261129_041527-77b0-retry",
        "offline-run-20261129_041528-5a1f",
        "run-20261129_041529-0c3e",
    ]
    for name in names:
        (tmp_path / "wandb" / name).mkdir(parents=True)
        (tmp_path / "wandb" / name / "run-x.wandb").touch()
    assert [p.parent.name for p in run_files(tmp_path)] == [names[1], names[2], names[0], names[3]]


class _LostService:
    """A W&B run whose service process is gone (SLURM stops it with the job being requeued)."""

    def alert(self, **_: Any) -> None:
        raise ConnectionResetError("Connection lost")

    def finish(self, exit_code: int) -> None:
        raise ConnectionResetError("Connection lost")


def test_a_run_that_cannot_close_leaves_the_stage_error_to_propagate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tracker = Tracker(
        _LostService(), PARAMS.tracking.model_copy(update={"mode": "offline"}), "gat_small", "synth"
    )
    close_failed(tracker, SystemExit(-1))  # no ConnectionResetError: the SystemExit is what goes on
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "gat_small@synth: stage failed — SystemExit: -1",
        "gat_small@synth: W&B run not closed: ConnectionResetError: Connection lost",
    ]


def test_ctrl_c_is_no_stage_failure(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Issue 16, item 11: an interrupted stage raises no 'stage failed' alert; its script prints the
    interruption's message and exits 130."""
    params = tiny_params(tracking={"mode": "disabled"})
    with pytest.raises(KeyboardInterrupt), stage_run("train", "synth", params, root=tmp_path):
        raise KeyboardInterrupt("interrupted; rerun to resume from m/last.ckpt")
    assert not [r for r in caplog.records if "stage failed" in r.getMessage()]
    script = (
        "from kdgat.cli.stage import run_stage\n"
        "def main() -> None:\n"
        "    raise KeyboardInterrupt('interrupted; rerun to resume from m/last.ckpt')\n"
        "run_stage(main)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 130 and done.stderr.strip() == "interrupted; rerun to resume from m/last.ckpt"
