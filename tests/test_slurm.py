"""On a real one-node SLURM cluster (the `slurm_cluster` fixture): job states without slurmdbd, `kdgat
launch` over a toy DAG (parallel jobs, dvc.lock recorded, a failure stopping only its descendants, code
frozen at submission), and one real training stage run as a SLURM job that is told to stop, requeues itself
and resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from support.slurm_cluster import SlurmCluster
from support.tiny_project import study_params
from test_launch import TOY_STAGE, dvc, interval, kdgat_launch, launch_until_submitted, tool_env, toy_repo

from kdgat.cluster.launch import StageCommand, job_error, job_parameters, make_executor

STUDY = study_params()  # the repository's params.yaml

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow
SMALL_JOBS = {"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1, "timeout_min": 5}
LAUNCH = STUDY.launch.model_copy(update={"slurm": STUDY.launch.slurm.model_copy(update=SMALL_JOBS)})


def _wait_for(ready: object, timeout_s: float, what: str) -> None:
    assert callable(ready)
    deadline = time.monotonic() + timeout_s
    while not ready():
        assert time.monotonic() < deadline, f"no {what} after {timeout_s:.0f} s"
        time.sleep(0.2)


def test_job_states_are_read_without_accounting(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    # plain sacct has nothing to say here: the states come from the job completion log and squeue
    assert subprocess.run(["sacct", "-j", "1"], capture_output=True).returncode != 0
    ex = make_executor("slurm", LAUNCH, tmp_path / "jobs")
    jobs = {}
    for name, cmd in [("ok", "true"), ("fails", "exit 3"), ("sleeps", "sleep 60")]:
        job_parameters(ex, LAUNCH, name, None, gpu=False)
        jobs[name] = ex.submit(StageCommand(cmd, str(tmp_path)))
    job_parameters(ex, LAUNCH, "never", None, gpu=False, after=[jobs["fails"].job_id])
    jobs["never"] = ex.submit(StageCommand("true", str(tmp_path)))
    _wait_for(lambda: jobs["sleeps"].state == "RUNNING", 60, "running job")
    jobs["sleeps"].cancel()
    _wait_for(jobs["never"].done, 60, "end of a job that never ran")  # no result file: the state says it
    final = ("COMPLETED", "FAILED", "CANCELLED")
    for job in jobs.values():
        _wait_for(lambda j=job: j.watcher.get_state(j.job_id, mode="force") in final, 60, f"end of {job}")
    assert {n: j.state for n, j in jobs.items()} == {
        "ok": "COMPLETED",
        "fails": "FAILED",
        "sleeps": "CANCELLED",
        "never": "CANCELLED",  # its afterok can never be met: SLURM cancels it (kill-on-invalid-dep)
    }
    assert job_error(jobs["ok"]) is None
    assert "exited with status 3" in (job_error(jobs["fails"]) or "")


@pytest.fixture
def toy(tmp_path: Path) -> Path:
    return toy_repo(tmp_path / "toy")


def test_launch_runs_independent_stages_in_parallel_and_records_them(
    slurm_cluster: SlurmCluster, toy: Path
) -> None:
    run = kdgat_launch(["--executor", "slurm", "c"], toy)
    assert run.returncode == 0, run.stdout + run.stderr
    for stage in ("a", "b1", "b2", "c"):
        assert f"{stage} " in run.stdout and "COMPLETED" in run.stdout
    assert "submitted after b1 (" in run.stdout  # c waits on both through afterok
    (b1s, b1e), (b2s, b2e) = interval(toy, "b1"), interval(toy, "b2")
    assert max(b1s, b2s) < min(b1e, b2e), f"b1 {b1s:.1f}-{b1e:.1f} and b2 {b2s:.1f}-{b2e:.1f} did not overlap"
    a_end, c_start = interval(toy, "a")[1], interval(toy, "c")[0]
    assert a_end <= min(b1s, b2s) and c_start >= max(b1e, b2e)  # and the DAG order held
    assert json.loads(dvc(["status", "c", "--json"], toy)) == {}
    assert "Running stage" not in dvc(["repro", "c"], toy)


def test_failed_stage_stops_only_its_descendants(slurm_cluster: SlurmCluster, toy: Path) -> None:
    run = kdgat_launch(["--executor", "slurm"], toy)
    assert run.returncode == 1, run.stdout + run.stderr
    failed = [ln for ln in run.stdout.splitlines() if ln.startswith("failed: bad ")]
    assert failed and "exited with status 1" in failed[0]
    log = Path(failed[0].rsplit("log ", 1)[1])
    assert log.exists() and "bad: failing on purpose" in log.read_text()
    assert "bad_child" in run.stdout and "cancelled: upstream bad failed" in run.stdout
    assert "not run: bad_child" in run.stdout
    assert "recorded in dvc.lock: a, b1, b2, c, d" in run.stdout  # d, beside bad, ran
    assert set(json.loads(dvc(["status", "--json"], toy))) == {"bad", "bad_child"}


def test_queued_jobs_run_the_code_of_their_submission(slurm_cluster: SlurmCluster, toy: Path) -> None:
    # b1 is queued behind a; edit the stage script meanwhile
    proc, out = launch_until_submitted(["--executor", "slurm", "b1"], toy, "b1")
    (toy / "stages" / "toy.py").write_text(TOY_STAGE.replace("VERSION = 1", "VERSION = 2"))
    assert proc.stdout is not None
    out += proc.stdout.read()
    assert proc.wait(timeout=120) == 1, out
    assert json.loads((toy / "out" / "b1.json").read_text())["version"] == 1
    assert "not recorded in dvc.lock: stages/toy.py changed since submission" in out


# --- one real training stage -----------------------------------------------------------------------------

EPOCHS = 80  # ~0.13 s each here: the signal must land while training runs, not after (it raced at 8)
TINY: dict[str, dict[str, float]] = {
    "synth": {"minutes": 0.5, "vehicles": 2},
    "train": {"max_epochs": EPOCHS, "patience": EPOCHS},
}


@pytest.fixture(scope="module")
def tiny_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the real pipeline on a tiny synthetic dataset, graphs built, training on the test cluster."""
    repo = tmp_path_factory.mktemp("tiny")
    for name in ("kdgat", "stages"):
        shutil.copytree(REPO / name, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", "params.yaml", "datasets.yaml"):
        shutil.copy(REPO / name, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    params["launch"].update(executor="slurm", poll_s=1.0)
    params["launch"]["slurm"].update(gpus_per_node=0, cpus_per_task=1, mem_gb=2, timeout_min=10)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc(["init", "--no-scm", "-q"], repo)
    shutil.copy(REPO / ".dvcignore", repo / ".dvcignore")  # kdgat/ folders are deps: not their __pycache__
    _stage_run(["dvc", "repro", "-q", "graphs@synth"], repo).check_returncode()
    return repo


def _job_log(repo: Path, job_id: str, kind: str) -> str:
    return next((repo / "slurm" / "jobs").glob(f"*-train-synth-vgae_large/{job_id}_0_log.{kind}")).read_text()


def _ctld_log(cluster: SlurmCluster, job_id: str) -> str:
    """What slurmctld logged about ``job_id`` (why it requeued it, for one), for a failure's message."""
    log = (cluster.base / "log" / "slurmctld.log").read_text(errors="replace")
    return "".join(f"\n{ln}" for ln in log.splitlines() if re.search(rf"JobId={job_id}\b", ln))


def _stage_env(repo: Path) -> dict[str, str]:
    # SHELL=/bin/sh: dash forks the stage's python rather than exec it, as on a machine with SHELL unset
    env = {**tool_env(), "SHELL": "/bin/sh"}
    return {**env, "PYTHONPATH": str(repo), "WANDB_MODE": "offline", "WANDB_DIR": str(repo)}


def _stage_run(args: list[str], repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=repo, env=_stage_env(repo), capture_output=True, text=True, timeout=600)


def test_training_stage_runs_as_a_slurm_job_requeues_and_resumes(
    slurm_cluster: SlurmCluster, tiny_repo: Path
) -> None:
    # `dvc repro` runs the stage as always; with launch.executor slurm the stage submits its work and waits
    repro = subprocess.Popen(
        ["dvc", "repro", "vgae_large@synth"],
        cwd=tiny_repo,
        env=_stage_env(tiny_repo),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    last = tiny_repo / "models" / "synth" / "vgae_large" / "last.ckpt"
    _wait_for(lambda: last.exists() or repro.poll() is not None, 300, "first epoch checkpoint")
    job_id = slurm_cluster.run(["squeue", "-h", "-o", "%i"]).split()
    assert len(job_id) == 1, f"expected one job in the queue, got {job_id}"
    slurm_cluster.run(["scancel", "--signal=USR2", job_id[0]])  # as SLURM does before a time limit
    out = repro.communicate(timeout=600)[0]
    logs = "".join(f"\n--- {p}\n{p.read_text()[-3000:]}" for p in tiny_repo.glob("slurm/jobs/*/*_log.err"))
    assert repro.returncode == 0, out + logs
    report = json.loads((tiny_repo / "reports" / "train" / "synth" / "vgae_large.json").read_text())
    assert report["resumed_from"] and report["resumed_from"].endswith("last.ckpt"), "no resume"
    assert report["epochs_run"] == EPOCHS
    for path in ("models/synth/vgae_large.ckpt", "predictions/synth/vgae_large.parquet"):
        assert (tiny_repo / path).is_file(), path
    # the job's own logs, which every run of it appends to: slurmstepd's notice of the requeue, and
    # submitit's line for each time the job requeued itself (INFO: the .out log)
    job_err, job_out = (_job_log(tiny_repo, job_id[0], kind) for kind in ("err", "out"))
    assert "DUE TO JOB REQUEUE" in job_err
    assert job_out.count(f"Requeued job {job_id[0]} (") == 1, job_out  # once, on our one USR2
    # The completion log holds a record for every requeue (state PENDING), then the end: what happened to
    # the job, not only what it did. At load 15+ it once held two requeues where the job requeued itself
    # once (counted above): SLURM requeues a run itself, e.g. one it could not launch (its log, in the
    # message, says why); asserting one record raced the machine's load, not the job's behaviour
    states = slurm_cluster.run(["sacct", "--completion", "--parsable2", "-n", "-o", "State", "-j", job_id[0]])
    *requeues, end = states.split()
    why = states + _ctld_log(slurm_cluster, job_id[0])
    assert end == "COMPLETED" and requeues and set(requeues) == {"PENDING"}, why
    assert json.loads(dvc(["status", "vgae_large@synth", "--json"], tiny_repo)) == {}
    assert os.environ["SLURM_CONF"] == str(slurm_cluster.conf)
