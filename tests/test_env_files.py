"""The cluster environments stay in step with requirements.lock: pixi.toml (pixi is not installable here)
and the Apptainer definition (nor is Apptainer), checked by reading them; the container's smoke test runs
here on the CPU."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CONDA_TO_PYPI = {"pytorch": "torch"}  # conda-forge names that differ from the PyPI ones
NOT_TASKS = {"help", "venv", "lock", "clean"}  # pixi's own commands: install, lock, clean


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(req: str) -> str:
    match = re.match(r"[A-Za-z0-9_.-]+", req)
    assert match, req
    return _norm(match.group())


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_norm(name)] = version
    return pins


def _base(version: str) -> str:
    return version.split("+")[0]  # 2.13.0+cpu → 2.13.0


@pytest.fixture(scope="module")
def pixi() -> dict[str, Any]:
    return tomllib.loads((REPO / "pixi.toml").read_text())


def _tables(pixi: dict[str, Any], key: str) -> list[dict[str, Any]]:
    """`key` ("dependencies", "pypi-dependencies", "tasks") of the workspace and of every feature."""
    return [pixi.get(key, {})] + [f.get(key, {}) for f in pixi.get("feature", {}).values()]


def _version(spec: str | dict[str, Any]) -> str | None:
    return spec if isinstance(spec, str) else spec.get("version")


def test_pixi_pins_equal_the_lock(pixi: dict[str, Any]) -> None:
    lock = _lock()
    for table in _tables(pixi, "pypi-dependencies"):
        for name, spec in table.items():
            if isinstance(spec, dict) and "path" in spec:
                continue  # the project itself
            assert _norm(name) in lock, f"pixi.toml PyPI dependency {name} is not in requirements.lock"
            assert _version(spec) == f"=={lock[_norm(name)]}", f"pixi.toml {name}: {spec} ≠ lock"
    for table in _tables(pixi, "dependencies"):
        for name, spec in table.items():
            pypi = _norm(CONDA_TO_PYPI.get(name, name))
            if pypi in lock:  # conda packages that are also PyPI pins: same release (torch without +cpu)
                assert _version(spec) == f"=={_base(lock[pypi])}", f"pixi.toml conda {name}: {spec} ≠ lock"


def test_pixi_has_every_dependency_of_pyproject(pixi: dict[str, Any]) -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    wanted = {_requirement_name(r) for r in project["dependencies"]}
    wanted |= {_requirement_name(r) for reqs in project["optional-dependencies"].values() for r in reqs}
    have = {_norm(n) for t in _tables(pixi, "pypi-dependencies") for n in t}
    have |= {_norm(CONDA_TO_PYPI.get(n, n)) for t in _tables(pixi, "dependencies") for n in t}
    assert wanted - have == set(), "pyproject.toml dependencies missing from pixi.toml"


def test_pixi_pytorch_is_cuda_12_from_conda_forge(pixi: dict[str, Any]) -> None:
    deps = pixi["dependencies"]
    assert pixi["workspace"]["channels"] == ["conda-forge"]
    assert "linux-64" in pixi["workspace"]["platforms"]
    assert pixi["system-requirements"]["cuda"].startswith("12")
    assert deps["pytorch"]["build"].startswith("cuda12")
    assert re.fullmatch(r"12\.\d+\.\*", deps["cuda-version"])
    assert "torch" not in {_norm(n) for t in _tables(pixi, "pypi-dependencies") for n in t}
    assert deps["python"] == f"{_container_python()}.*"


def test_pixi_features_and_tasks(pixi: dict[str, Any]) -> None:
    dev = pixi["feature"]["dev"]["pypi-dependencies"]
    assert {"pytest", "ruff", "mypy"} <= set(dev)
    assert "quarto" in pixi["feature"]["paper"]["dependencies"]
    tasks = {name for t in _tables(pixi, "tasks") for name in t}
    makefile = (REPO / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):.*## ", makefile, flags=re.M))
    assert targets - NOT_TASKS - tasks == set(), "Makefile targets without a pixi task"
    envs = pixi["environments"]
    assert "dev" in envs["default"]["features"] and "paper" in envs["paper"]["features"]


def _def_sections() -> tuple[dict[str, str], dict[str, str]]:
    """(header, sections) of container/kd-gat.def: `Key: value` lines, then `%name` blocks."""
    header: dict[str, str] = {}
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in (REPO / "container" / "kd-gat.def").read_text().splitlines():
        if line.startswith("%"):
            current = sections.setdefault(line[1:].split()[0], [])
        elif current is not None:
            current.append(line)
        elif ":" in line and not line.startswith("#"):
            key, value = line.split(":", 1)
            header[key.strip()] = value.strip()
    return header, {k: "\n".join(v) for k, v in sections.items()}


def _container_python() -> str:
    header, _ = _def_sections()
    match = re.fullmatch(r"python:(3\.\d+)-slim.*", header["From"])
    assert match, header["From"]
    return match.group(1)


def test_container_installs_the_lock_with_the_cuda_torch(tmp_path: Path) -> None:
    header, sec = _def_sections()
    assert header["Bootstrap"] == "docker"
    assert f"{sys.version_info.major}.{sys.version_info.minor}" == _container_python()  # the lock's Python
    cuda = re.search(r"^\s*CUDA=(cu12\d)$", sec["arguments"], flags=re.M)
    assert cuda, sec["arguments"]
    assert re.search(r"^\s*requirements\.lock /opt/kd-gat/requirements\.lock$", sec["files"], flags=re.M)
    post = sec["post"].replace("{{ CUDA }}", cuda.group(1))
    sed = re.search(r"^\s*(sed '[^']+') /opt/kd-gat/requirements\.lock > (\S+)$", post, flags=re.M)
    assert sed, post
    assert re.search(rf"pip install .*whl/{cuda.group(1)} \\\n\s+-r {re.escape(sed.group(2))}$", post, re.M)
    # the definition's own sed, applied to the lock: only the torch line changes, to the CUDA build
    out = subprocess.run(
        f"{sed.group(1)} requirements.lock", shell=True, cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    lock = (REPO / "requirements.lock").read_text().splitlines()
    changed = [(a, b) for a, b in zip(lock, out, strict=True) if a != b]
    torch = _lock()["torch"]
    assert changed == [(f"torch=={torch}", f"torch=={_base(torch)}+{cuda.group(1)}")]


def test_container_runs_kdgat_and_tests_itself() -> None:
    _, sec = _def_sections()
    assert re.search(r"^\s*exec kdgat \"\$@\"$", sec["runscript"], flags=re.M)
    assert "/opt/venv/bin" in sec["environment"]
    assert "import kdgat" in sec["test"] and "kdgat --help" in sec["test"]
    assert "container/smoke.py" in sec["test"]
    for line in sec["files"].strip().splitlines():
        src = line.split()[0]
        assert (REPO / src).exists(), f"%files names {src}, which is not in the repository"


@pytest.mark.slow
def test_container_smoke_runs_on_cpu() -> None:
    proc = subprocess.run(
        [sys.executable, str(REPO / "container" / "smoke.py")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok: torch" in proc.stdout


def test_every_environment_sets_the_cublas_workspace() -> None:
    """Deterministic CUDA matrix products need CUBLAS_WORKSPACE_CONFIG before CUDA starts: the torch setup
    module sets it for a process that has not touched CUDA yet, the environments for everything else."""
    from kdgat.train.torch_setup import CUBLAS_WORKSPACE

    pixi = tomllib.loads((REPO / "pixi.toml").read_text())
    assert pixi["activation"]["env"]["CUBLAS_WORKSPACE_CONFIG"] == CUBLAS_WORKSPACE
    for name in (
        "container/kd-gat.def",
        "slurm/pipeline.sbatch",
        "slurm/hpo-array.sbatch",
        "slurm/gpu-check.sbatch",
    ):
        text = (REPO / name).read_text()
        assert f"CUBLAS_WORKSPACE_CONFIG:-{CUBLAS_WORKSPACE}" in text, (
            f"{name} does not set CUBLAS_WORKSPACE_CONFIG"
        )
