"""The Metaflow KD flow (flows/kd_flow.py) on two tiny datasets: teachers and distilled students trained
in parallel branches, the join's table read back with the Metaflow client, everything inside the project
folder; then the same flow with an S3 datastore on a real S3 server (SeaweedFS) and one worker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3
from support.tiny_project import build_project, tiny_params_file

from kdgat.track.sync import local_runs

pytestmark = pytest.mark.slow
FLOW = Path(__file__).resolve().parents[1] / "flows" / "kd_flow.py"
# What docs/hpo.md shows: the join's table and each teacher task's start and end, from the client.
CLIENT = """
import json
from kdgat.cluster.metaflow import metaflow_env
metaflow_env()
from metaflow import Flow
run = Flow("KDFlow").latest_run
teachers = [[t.created_at.timestamp(), t.finished_at.timestamp()] for t in run["teacher"]]
print(json.dumps({"ok": run.successful, "table": run["join"].task.data.table, "teachers": teachers}))
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_project(tmp_path_factory.mktemp("kdflow"), {"synth": 0, "synth2": 1})


def _env(project: Path, **extra: str) -> dict[str, str]:
    """A clean environment: no Metaflow settings from outside, HOME in a folder the test inspects."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("METAFLOW_", "AWS_", "WANDB_"))}
    (project / "home").mkdir(exist_ok=True)
    return {**env, "HOME": str(project / "home"), "USER": "root", **extra}


def _flow(project: Path, env: dict[str, str], *args: str) -> dict[str, Any]:
    cmd = [sys.executable, str(FLOW), "--no-pylint", "run", "--datasets", "synth,synth2", *args]
    run = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    client = subprocess.run(
        [sys.executable, "-c", CLIENT], cwd=project, env=env, capture_output=True, text=True, timeout=120
    )
    assert client.returncode == 0, client.stderr[-3000:]
    return dict(json.loads(client.stdout.strip().splitlines()[-1]))


def _overlap(intervals: list[list[float]]) -> bool:
    first, second = sorted(intervals)
    return second[0] < first[1]


def test_kd_flow_two_datasets_in_parallel(project: Path) -> None:
    params = tiny_params_file(project / "params_curriculum.yaml", gat_train={"sampling": "curriculum"})
    out = _flow(project, _env(project), "--params-file", params.name, "--max-workers", "2")
    assert out["ok"]
    table = out["table"]
    models = {(r["dataset"], r["model"], r["role"]) for r in table}
    # curriculum: the large VGAE orders the teacher GAT's graphs, the distilled small VGAE the student's
    assert models == {
        (d, m, role)
        for d in ("synth", "synth2")
        for m, role in [
            ("vgae_large", "teacher"),
            ("gat_large", "teacher"),
            ("vgae_small_kd", "student"),
            ("gat_small_kd", "student"),
        ]
    }
    splits = {r["split"] for r in table}
    assert {"val", "test_known", "test_unknown_attack"} <= splits and "train" not in splits
    assert all(r["f1"] is None or 0 <= r["f1"] <= 1 for r in table)
    teacher = next(r for r in table if r["model"] == "gat_large")
    student = next(r for r in table if r["model"] == "gat_small_kd")
    assert teacher["params"] > student["params"]
    assert _overlap(out["teachers"])  # --max-workers 2: both datasets' teachers trained at once
    # Metaflow's files stay in the project, none in HOME; the models in the flow's own folder
    assert (project / ".metaflow" / "KDFlow").is_dir() and not any((project / "home").iterdir())
    (run_dir,) = (project / "flows" / "out").iterdir()
    assert (run_dir / "kd_table.csv").is_file() and (
        run_dir / "synth2" / "gat_small_kd" / "model.ckpt"
    ).is_file()
    runs = [r for r in local_runs(project) if r.job_type == "kdflow"]
    assert sorted(r.name for r in runs if r.group == "synth") == sorted(
        f"kdflow-{m}@synth" for m in ("vgae_large", "gat_large", "vgae_small_kd", "gat_small_kd")
    )
    assert len(runs) == 9 and all(r.state == "finished" and r.offline for r in runs)  # 2 × 4 models + join


def test_kd_flow_s3_datastore_one_worker(project: Path, s3_server: SeaweedS3) -> None:
    env = _env(
        project,
        METAFLOW_DATASTORE_SYSROOT_S3=f"s3://{s3_server.bucket}/metaflow",
        METAFLOW_S3_ENDPOINT_URL=s3_server.endpoint,
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
    )
    # one epoch, no W&B: this test is about where Metaflow stores things and how many tasks run at once
    plain: dict[str, Any] = {"train": {"max_epochs": 1}, "tracking": {"mode": "disabled"}}
    params = tiny_params_file(project / "params_plain.yaml", **plain)
    out = _flow(project, env, "--params-file", params.name, "--max-workers", "1")
    keys = [o["Key"] for o in s3_server.client().list_objects_v2(Bucket=s3_server.bucket)["Contents"]]
    assert out["ok"] and {r["model"] for r in out["table"]} == {"gat_large", "gat_small_kd"}
    assert not _overlap(out["teachers"])  # --max-workers 1: one branch after the other
    assert any(k.startswith("metaflow/KDFlow/") for k in keys)  # the artifacts went to S3
