"""Optuna studies (kdgat/cluster/hpo.py, `kdgat hpo`) on a tiny graph folder: the search space from params,
four trials in one process on SQLite with a clearly bad trial pruned, four trials as two submitit array tasks
on a journal file, the same through a real one-node SLURM cluster, and best.yaml applying to params.yaml."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from support.slurm_cluster import SlurmCluster
from support.tiny_project import build_project, study_params, tiny_params_file
from typer.testing import CliRunner

from kdgat.cli.main import app
from kdgat.cluster.hpo import (
    BEST_FILE,
    HPOError,
    HPOJob,
    check_space,
    create_study,
    dvc_command,
    open_storage,
    run_study,
    searched,
    split_trials,
    storage_url,
)
from kdgat.config import Params, ParamsError, load_params, parse_params, with_overrides
from kdgat.study import Model
from kdgat.track.sync import local_runs

REPO = Path(__file__).resolve().parents[1]
SPACE = {
    "train.lr": {"type": "float", "low": 1.0e-05, "high": 0.01, "log": True},
    "models.gat.small.hidden": {"type": "int", "low": 4, "high": 12},
    "kd.alpha": {"type": "float", "low": 0.3, "high": 0.9},  # not read by gat_small: never searched
}
HPO = {"metric": "val_loss", "startup_trials": 2, "warmup_epochs": 1, "space": SPACE}
GOOD, BAD = (
    {"train.lr": 0.01, "models.gat.small.hidden": 8},
    {"train.lr": 1.0e-05, "models.gat.small.hidden": 4},
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = build_project(tmp_path_factory.mktemp("hpo"), {"synth": 0})
    tiny_params_file(root / "params.yaml", train={"max_epochs": 3}, hpo=HPO)
    return root


def slurm(**resources: object) -> dict[str, Any]:
    """The study's launch.slurm with ``resources`` set (tiny_params merges whole sections)."""
    return {**study_params().launch.slurm.model_dump(mode="json"), **resources}


def with_space(space: dict[str, Any]) -> Params:
    """The study's params searching ``space``."""
    raw = study_params().model_dump(mode="json")
    raw["hpo"]["space"] = space
    return parse_params(raw, "params")


def _job(project: Path, study: str, shared: bool, params: Path | None = None) -> HPOJob:
    folder = project / "hpo" / study
    params = params or project / "params.yaml"
    return HPOJob(study, storage_url(folder, shared), "gat_small", "synth", project, params, "val_loss")


def _trials(job: HPOJob) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name=job.study, storage=open_storage(job.storage)).trials


def _hpo_runs(project: Path, study: str) -> list[Any]:
    return [r for r in local_runs(project) if r.job_type == "hpo" and r.name.startswith(f"hpo-{study}-")]


def test_space_is_read_from_params_and_checked() -> None:
    repo = load_params(REPO / "params.yaml")
    kd = searched(repo.hpo.space, Model.parse("gat_small_kd"))
    assert {"train.lr", "models.gat.small.hidden", "kd.alpha", "kd.temperature", "gat_train.loss"} <= set(kd)
    assert not {"models.gat.large.hidden", "kd.vgae_alpha", "models.vgae.small.latent"} & set(kd)
    assert "kd.alpha" not in searched(repo.hpo.space, Model.parse("gat_small"))
    check_space(repo, repo.hpo.space)  # every range end and choice of the repo's space is a valid value
    assert split_trials(5, 2) == [3, 2] and split_trials(1, 3) == [1]
    command = dvc_command({"train.lr": 1.0e-05, "gat_train.loss": "focal"})
    assert command == "dvc exp run -S gat_train.loss=focal -S train.lr=1.0e-05"
    with pytest.raises(ParamsError, match=r"hpo.space: 'train.lrr' is not a parameter"):
        with_space({"train.lrr": SPACE["train.lr"]})
    with pytest.raises(ParamsError, match="categorical needs choices"):
        with_space({"gat_train.loss": {"type": "categorical"}})
    with pytest.raises(ParamsError, match="log scale needs low > 0"):
        with_space({"kd.alpha": {"type": "float", "low": 0, "high": 1, "log": True}})


def test_study_errors_say_what_to_do(project: Path, tmp_path: Path) -> None:
    params = load_params(project / "params.yaml")
    job = _job(project, "errors", False)
    with pytest.raises(
        HPOError, match=r"gat_large\.ckpt: not found; gat_small_kd needs it: run `dvc repro gat_large@synth`"
    ):
        create_study(HPOJob(**{**job.__dict__, "model": "gat_small_kd"}), params)
    with pytest.raises(HPOError, match="logs no val_f1"):
        create_study(HPOJob(**{**job.__dict__, "model": "vgae_small", "metric": "val_f1"}), params)
    wide = with_space({"train.lr": {**SPACE["train.lr"], "low": -1.0, "log": False}})
    with pytest.raises(ParamsError, match=r"hpo.space.train.lr = -1.0: 1 invalid parameter"):
        create_study(job, wide)
    with pytest.raises(HPOError, match="the local executor starts every task at once"):
        run_study(job, params, 4, workers=1, tasks=2)
    create_study(job, params)
    with pytest.raises(HPOError, match="is for model 'gat_small', not 'gat_large'"):
        create_study(HPOJob(**{**job.__dict__, "model": "gat_large"}), params)


@pytest.mark.slow
def test_sqlite_study_in_process_prunes_a_bad_trial(project: Path) -> None:
    job = _job(project, "sqlite", shared=False)
    create_study(job, load_params(project / "params.yaml"))
    study = optuna.load_study(study_name=job.study, storage=job.storage)
    for params in (GOOD, GOOD, BAD, GOOD):  # two finished trials set the median the bad one is held to
        study.enqueue_trial(params)
    args = ["hpo", "gat_small", "--dataset", "synth", "--trials", "4", "--study", "sqlite"]
    result = CliRunner().invoke(
        app, [*args, "--params", str(project / "params.yaml"), "--root", str(project)]
    )
    assert result.exit_code == 0, result.output
    assert job.storage.startswith("sqlite:///") and (job.folder / "study.db").is_file()
    trials = _trials(job)
    states = [t.state.name for t in trials]
    assert states == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    for t in trials:  # the validation loss of every epoch was reported; the bad trial stopped at epoch 1
        assert sorted(t.intermediate_values) == ([0, 1] if t.state.name == "PRUNED" else [0, 1, 2])
    assert trials[2].intermediate_values[1] > 5 * trials[0].intermediate_values[1]
    # best.yaml: dotted keys that `dvc exp run -S` sets, giving valid params for the real params.yaml
    best = yaml.safe_load((job.folder / BEST_FILE).read_text())
    assert best == GOOD
    applied = with_overrides(load_params(REPO / "params.yaml"), best)
    assert isinstance(applied, Params) and applied.models.gat.small.hidden == 8
    assert "dvc exp run -S models.gat.small.hidden=8 -S train.lr=0.01" in result.output
    assert "dvc exp run -S" in (job.folder / BEST_FILE).read_text().splitlines()[1]
    runs = _hpo_runs(project, "sqlite")  # a W&B run per trial, the pruned one closed normally
    assert sorted(r.name for r in runs) == [f"hpo-sqlite-{n}@synth" for n in range(4)]
    assert all(r.offline and r.state == "finished" for r in runs)


@pytest.mark.slow
def test_journal_study_as_two_local_array_tasks(project: Path) -> None:
    job = _job(project, "journal", shared=True)
    summary = run_study(job, load_params(project / "params.yaml"), 4, workers=2)
    assert (job.folder / "journal.log").is_file() and not (job.folder / "study.db").exists()
    workers = summary["workers"]
    assert [len(w["trials"]) for w in workers] == [2, 2] and len({w["pid"] for w in workers}) == 2
    assert sorted(n for w in workers for n in w["trials"]) == [0, 1, 2, 3]
    assert len(_trials(job)) == 4 and summary["states"]["complete"] + summary["states"]["pruned"] == 4
    assert set(yaml.safe_load((job.folder / BEST_FILE).read_text())) == {
        "train.lr",
        "models.gat.small.hidden",
    }
    assert len(_hpo_runs(project, "journal")) == 4


@pytest.mark.slow
def test_journal_study_as_a_slurm_array(project: Path, slurm_cluster: SlurmCluster) -> None:
    resources = {"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 2, "timeout_min": 10}
    params = tiny_params_file(
        project / "params_slurm.yaml", train={"max_epochs": 3}, hpo=HPO, launch={"slurm": slurm(**resources)}
    )
    job = _job(project, "slurm", shared=True, params=params)
    summary = run_study(job, load_params(params), 4, workers=2, executor="slurm")
    workers = summary["workers"]
    assert all(w["slurm_job"] for w in workers) and [len(w["trials"]) for w in workers] == [2, 2]
    (submission,) = job.folder.glob("jobs/*/*_submission.sh")
    assert "#SBATCH --array=0-1%2" in submission.read_text()  # one array, both tasks at once
    assert all(w["code"] == str(submission.parent / "snapshot" / "kdgat") for w in workers)  # frozen code
    assert len(_trials(job)) == 4 and len(_hpo_runs(project, "slurm")) == 4
    assert (job.folder / BEST_FILE).is_file()


@pytest.mark.slow
def test_a_slurm_task_stopped_mid_trial_requeues_and_retries_it(
    project: Path, slurm_cluster: SlurmCluster
) -> None:
    resources = {"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 2, "timeout_min": 10}
    epochs = {"max_epochs": 60, "patience": 60}  # long enough for the signal to land inside trial 0
    params = tiny_params_file(
        project / "params_requeue.yaml", train=epochs, hpo=HPO, launch={"slurm": slurm(**resources)}
    )
    job = _job(project, "requeue", shared=True, params=params)
    done: list[dict[str, Any]] = []
    thread = threading.Thread(
        target=lambda: done.append(run_study(job, load_params(params), 2, executor="slurm"))
    )
    thread.start()
    first = job.folder / "trials" / "0000" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while not first.exists():
        assert thread.is_alive() and time.monotonic() < deadline, "trial 0 never reached its first epoch"
        time.sleep(0.2)
    (task,) = slurm_cluster.run(["squeue", "-h", "-o", "%i"]).split()
    slurm_cluster.run(["scancel", "--signal=USR2", task])  # as SLURM does before a time limit
    thread.join(timeout=600)
    assert done, "the study did not finish"
    trials = _trials(job)
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[1].user_attrs["retry_of"] == 0 and trials[1].params == trials[0].params
    assert len({t.user_attrs["task"] for t in trials}) == 1  # one task, its share (2) run to the end
    assert done[0]["workers"][0]["trials"] == [1, 2] and done[0]["states"]["complete"] == 2
