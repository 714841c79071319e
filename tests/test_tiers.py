"""The test tiers of tests/conftest.py: what makes a test integration or system, and the guard that keeps
training and pipeline runs out of the unit tier."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import _heavy
from lightning.pytorch import Trainer


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["dvc", "repro"], "runs dvc"),
        ("dvc exp run -S train.seed=1", "runs dvc"),
        ([sys.executable, "-m", "dvc", "init", "--no-scm"], "runs dvc"),
        ([sys.executable, "flows/kd_flow.py", "run"], "runs a Metaflow flow"),
        (["git", "init"], None),
        ([sys.executable, "-m", "kdgat.cli.main", "--help"], None),
    ],
)
def test_heavy_commands(args: list[str] | str, what: str | None) -> None:
    assert _heavy(args) == what


def test_a_unit_test_cannot_train_or_run_dvc(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit")
    with pytest.raises(pytest.fail.Exception, match=r"trains a model .*mark it `slow`"):
        Trainer().fit(None)  # type: ignore[arg-type]
    with pytest.raises(pytest.fail.Exception, match="runs dvc"):
        subprocess.run(["dvc", "version"], check=False)


@pytest.mark.slow
def test_slow_is_integration(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("integration") and not request.node.get_closest_marker("unit")
