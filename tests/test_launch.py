"""kdgat/cluster/launch.py and `kdgat launch` without a cluster: settings, code snapshots, the plan read from
the DVC DAG, and a fan-out on the local executor over a toy pipeline
(tests/test_slurm.py runs it on SLURM)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.tiny_project import study_params

from kdgat.cli.launch import launch_params
from kdgat.cluster.fanout import Launch, Task, changed_since, launch_dag, plan
from kdgat.cluster.launch import executor_name, in_snapshot, sbatch_parameters, snapshot_code
from kdgat.config import ParamsError

STUDY = study_params()  # the repository's params.yaml

TOY_STAGE = '''\
"""A toy stage: sleep, then write out/NAME.json with this run's start and end times (or fail)."""
import json, sys, time
from pathlib import Path

VERSION = 1
name, seconds, *inputs = sys.argv[1:]
start = time.time()
time.sleep(float(seconds))
if "--fail" in inputs:
    sys.exit(f"{name}: failing on purpose")
Path("out").mkdir(exist_ok=True)
record = {"start": start, "end": time.time(), "version": VERSION, "inputs": inputs}
Path(f"out/{name}.json").write_text(json.dumps(record))
'''


def _stage(name: str, seconds: float, inputs: list[str], fail: bool = False) -> str:
    cmd = " ".join(["python stages/toy.py", name, str(seconds), *inputs, *(["--fail"] if fail else [])])
    deps = ", ".join(["stages/toy.py", *inputs])
    return f"  {name}:\n    cmd: {cmd}\n    deps: [{deps}]\n    outs: [out/{name}.json]\n"


TOY_DVC = "stages:\n" + "".join(
    [
        _stage("a", 0.5, []),
        _stage("b1", 4, ["out/a.json"]),  # b1 and b2 only need a: they can run side by side
        _stage("b2", 4, ["out/a.json"]),
        _stage("c", 0, ["out/b1.json", "out/b2.json"]),
        _stage("bad", 1, ["out/a.json"], fail=True),
        _stage("bad_child", 0, ["out/bad.json"]),
        _stage("d", 2, ["out/a.json"]),  # beside bad: must still run when bad fails
    ]
)
# every launch key is required (params.yaml is the one place a value is set): the study's, a few changed
_SLURM = {"gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 1, "timeout_min": 5}
TOY_LAUNCH = {
    **STUDY.launch.model_dump(mode="json"),
    "poll_s": 0.5,
    "slurm": {**STUDY.launch.slurm.model_dump(mode="json"), **_SLURM},
}


def toy_repo(path: Path) -> Path:
    """A DVC project of cheap python stages: a → (b1, b2) → c, a → bad → bad_child, a → d."""
    (path / "stages").mkdir(parents=True)
    (path / "stages" / "toy.py").write_text(TOY_STAGE)
    (path / "dvc.yaml").write_text(TOY_DVC)
    (path / "params.yaml").write_text(json.dumps({"launch": TOY_LAUNCH}))  # JSON is YAML; the rest: kdgat's
    dvc(["init", "--no-scm", "-q"], path)
    return path


def tool_env() -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }


def dvc(args: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=cwd, env=tool_env(), capture_output=True, text=True
    )
    assert proc.returncode == 0, f"dvc {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def kdgat_launch(args: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kdgat.cli.main", "launch", *args],
        cwd=cwd,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def interval(repo: Path, name: str) -> tuple[float, float]:
    record = json.loads((repo / "out" / f"{name}.json").read_text())
    return record["start"], record["end"]


def test_sbatch_parameters_follow_launch_settings() -> None:
    slurm = STUDY.launch.slurm.model_copy(
        update={"partition": "gpu", "gpus_per_node": 2, "mem_gb": 16, "timeout_min": 90, "constraint": "v100"}
    )
    got = sbatch_parameters(slurm)
    assert got["partition"] == "gpu" and got["gpus_per_node"] == 2 and got["constraint"] == "v100"
    assert got["mem"] == "16GB" and got["time"] == 90 and "account" not in got
    assert "gpus_per_node" not in sbatch_parameters(slurm, gpu=False)
    assert "gpus_per_node" not in sbatch_parameters(
        STUDY.launch.slurm.model_copy(update={"gpus_per_node": 0})
    )


def test_executor_is_named_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KDGAT_EXECUTOR", raising=False)
    assert executor_name(STUDY.launch) == "local"
    assert executor_name(STUDY.launch.model_copy(update={"executor": "slurm"})) == "slurm"
    monkeypatch.setenv("KDGAT_EXECUTOR", "local")  # what a job sees: never submit again from inside
    assert executor_name(STUDY.launch.model_copy(update={"executor": "slurm"})) == "local"
    monkeypatch.setenv("KDGAT_EXECUTOR", "auto")
    with pytest.raises(ValueError, match="KDGAT_EXECUTOR"):
        executor_name(STUDY.launch)


def test_launch_overrides_are_validated(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    launch = TOY_LAUNCH | {"slurm": TOY_LAUNCH["slurm"] | {"partition": "cpu", "gpus_per_node": 1}}
    path.write_text(json.dumps({"datasets": ["synth"], "launch": launch}))
    got = launch_params(path, ["launch.slurm.gpus_per_node=0", "launch.executor=slurm"])
    assert (got.executor, got.slurm.partition, got.slurm.gpus_per_node) == ("slurm", "cpu", 0)
    with pytest.raises(ParamsError, match=r"launch\.KEY=VALUE"):
        launch_params(path, ["slurm.partition=gpu"])
    with pytest.raises(ParamsError, match="cpus_per_task"):
        launch_params(path, ["launch.slurm.cpus_per_task=0"])


@pytest.mark.slow
def test_snapshot_freezes_code_and_rewrites_commands(tmp_path: Path) -> None:
    repo = toy_repo(tmp_path / "repo")
    snap = snapshot_code(repo, tmp_path / "snap")
    assert (snap / "stages" / "toy.py").read_text() == TOY_STAGE
    assert not (snap / "dvc.yaml").exists()  # DVC would read a copied dvc.yaml as a second pipeline
    cmd = in_snapshot("python stages/toy.py c 0 out/b1.json", snap)
    assert cmd == f"python {snap}/stages/toy.py c 0 out/b1.json"
    assert changed_since(snap, repo, ["stages/toy.py", "out/a.json"]) == []
    (repo / "stages" / "toy.py").write_text(TOY_STAGE.replace("VERSION = 1", "VERSION = 2"))
    assert changed_since(snap, repo, ["stages/toy.py", "out/a.json"]) == ["stages/toy.py"]
    # params: only the keys a stage reads count
    (repo / "params.yaml").write_text(json.dumps({"launch": {**TOY_LAUNCH, "poll_s": 5}}))
    assert changed_since(snap, repo, [], {"params.yaml": ["launch.slurm"]}) == []
    assert changed_since(snap, repo, [], {"params.yaml": ["launch.poll_s"]}) == ["params.yaml:launch.poll_s"]
    assert changed_since(snap, repo, [], {"params.yaml": []}) == ["params.yaml"]


# A job process as submitit runs it: on USR2 it leaves (sys.exit) while the stage command still runs
LEAVING_JOB = """
import signal, sys
from kdgat.cluster.launch import StageCommand
signal.signal(signal.SIGUSR2, lambda *_: sys.exit(-1))
StageCommand(sys.argv[1], sys.argv[2])()
"""
SLOW_STAGE = 'python -c \'import os, time; open("stage.pid", "w").write(str(os.getpid())); time.sleep(99)\''


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_job_that_leaves_takes_its_stage_with_it(tmp_path: Path) -> None:
    # /bin/sh (dash) forks the stage's python rather than exec it: killing the shell alone left it running
    env = {**tool_env(), "SHELL": "/bin/sh"}
    job = subprocess.Popen([sys.executable, "-c", LEAVING_JOB, SLOW_STAGE, str(tmp_path)], env=env)
    pid_file = tmp_path / "stage.pid"
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and job.poll() is None, "the stage never started"
        time.sleep(0.1)
    stage = int(pid_file.read_text())
    assert stage != job.pid and _running(stage)
    job.send_signal(signal.SIGUSR2)
    assert job.wait(timeout=30) != 0
    deadline = time.monotonic() + 10
    while _running(stage) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(stage), "the stage outlived its job"


@pytest.mark.slow
def test_plan_orders_stale_stages_and_their_descendants(tmp_path: Path) -> None:
    repo = toy_repo(tmp_path)
    tasks, skipped = plan(repo, ["c"], ["b*"])
    assert [t.stage for t in tasks] == ["a", "b1", "b2", "c"] and skipped == []
    by = {t.stage: t for t in tasks}
    assert by["c"].after == ["b1", "b2"] and by["a"].after == []
    assert by["b1"].gpu and not by["a"].gpu
    assert "stages/toy.py" in by["c"].deps
    assert {t.stage for t in plan(repo, [], [])[0]} == {"a", "b1", "b2", "c", "bad", "bad_child", "d"}
    dry = kdgat_launch(["--dry-run", "c"], repo)
    assert dry.returncode == 0 and "after: b1, b2" in dry.stdout and not (repo / "out").exists()


@pytest.mark.slow
def test_local_fanout_runs_the_dag_and_records_it(tmp_path: Path) -> None:
    repo = toy_repo(tmp_path)
    run = kdgat_launch(["--executor", "local", "--jobs", "2"], repo)
    assert run.returncode == 1, run.stdout + run.stderr  # bad fails on purpose
    assert "FAILED" in run.stdout and "bad_child" in run.stdout
    assert "recorded in dvc.lock: a, b1, b2, c, d" in run.stdout
    (b1s, b1e), (b2s, b2e) = interval(repo, "b1"), interval(repo, "b2")
    assert max(b1s, b2s) < min(b1e, b2e), "b1 and b2 did not overlap with --jobs 2"
    assert set(json.loads(dvc(["status", "--json"], repo))) == {"bad", "bad_child"}
    assert "Running stage" not in dvc(["repro", "c", "d"], repo)


def launch_until_submitted(args: list[str], repo: Path, stage: str) -> tuple[subprocess.Popen[str], str]:
    """`kdgat launch ARGS` started in ``repo``, its output read up to the line saying ``stage`` was
    submitted; the process (stdout still open) and what it printed so far."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "kdgat.cli.main", "launch", *args],
        cwd=repo,
        env=tool_env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if f" {stage} " in line and "submitted" in line:
            break
    return proc, "".join(lines)


@pytest.mark.slow
def test_an_interrupted_launch_records_what_finished(tmp_path: Path) -> None:
    repo = toy_repo(tmp_path)
    # a finishes in half a second; b1 (4 s) is running when Ctrl-C comes
    proc, out = launch_until_submitted(["--executor", "local", "c"], repo, "b1")
    proc.send_signal(signal.SIGINT)
    assert proc.stdout is not None
    out += proc.stdout.read()
    assert proc.wait(timeout=60) == 130, out
    assert "cancelled the jobs still queued or running" in out and "recorded in dvc.lock: a\n" in out
    assert not (repo / "out" / "b1.json").exists()
    assert json.loads(dvc(["status", "a", "--json"], repo)) == {}
    assert set(json.loads(dvc(["status", "c", "--with-deps", "--json"], repo))) == {"b1", "b2", "c"}


def test_a_job_sets_the_cublas_workspace_before_its_stage_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPU stage run as a job finds CUBLAS_WORKSPACE_CONFIG set (deterministic CUDA matrix products); a
    value the user set is kept."""
    from kdgat.cluster.launch import StageCommand

    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    StageCommand('printf %s "$CUBLAS_WORKSPACE_CONFIG" > seen', str(tmp_path))()
    assert (tmp_path / "seen").read_text() == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    StageCommand('printf %s "$CUBLAS_WORKSPACE_CONFIG" > seen', str(tmp_path))()
    assert (tmp_path / "seen").read_text() == ":16:8"


@pytest.mark.slow
def test_a_ctrl_c_swallowed_where_it_lands_still_stops_the_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 16, item 13: Ctrl-C right after a submission, while code that swallows a KeyboardInterrupt
    runs (a __del__, a broad except): the launch still stops, cancels and records what finished."""
    repo = toy_repo(tmp_path)
    submit = Launch._submit

    def submit_then_ctrl_c(self: Launch, task: Task) -> None:
        submit(self, task)
        if task.stage == "b1":
            try:
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.5)  # the signal is handled here ...
            except BaseException:
                pass

    monkeypatch.setattr(Launch, "_submit", submit_then_ctrl_c)
    lines: list[str] = []
    settings = STUDY.launch.model_copy(update={"executor": "local", "poll_s": 0.2})
    # a shell's background job starts with Ctrl-C ignored: the launch must hand back what it found
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        launch_dag(repo, "local", settings, ["c"], echo=lines.append)
    assert "interrupted: cancelled the jobs still queued or running" in lines
    assert signal.getsignal(signal.SIGINT) is before
    assert not (repo / "out" / "c.json").exists()
