"""Shared fixtures: the repository root, the real CAN captures beside it (skipped when absent) and a real
one-node SLURM cluster (skipped where SLURM cannot be installed)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_cluster import SlurmCluster, ensure_installed

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real captures live outside the repository (their licence does not allow copying them in).
CAN_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "can"


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root (the folder holding pyproject.toml)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def can_data() -> Path:
    """../shared/data/can: real CAN captures, one folder per vehicle; skips the test when missing."""
    if not CAN_DATA.is_dir():
        pytest.skip(f"real CAN data not found at {CAN_DATA}")
    return CAN_DATA


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """munged + slurmctld + slurmd on loopback (tests/slurm_cluster.py), SLURM_CONF pointing at them for
    the whole session; Debian's packages are installed first when missing. Stopped at the end."""
    if os.geteuid() != 0:
        pytest.skip("the SLURM test cluster needs root (munged runs as user munge, slurmd as root)")
    reason = ensure_installed()
    if reason:
        pytest.skip(reason)
    # not under pytest's tmp folders: they are private to root, and munged (user munge) needs its socket
    base = Path(tempfile.mkdtemp(prefix="kdgat-slurm-"))
    cluster = SlurmCluster(base)
    cluster.start()
    before = os.environ.get("SLURM_CONF")
    os.environ.update(cluster.env)  # submitit calls sbatch, sacct and scancel with this environment
    try:
        yield cluster
    finally:
        cluster.stop()
        if before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = before
        shutil.rmtree(base, ignore_errors=True)
