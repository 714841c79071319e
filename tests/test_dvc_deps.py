"""dvc.yaml lists, for every stage, exactly the library files its script imports (transitively), so an
edit reruns the stages it touches and no others. A stage may name a folder of kdgat/ when it imports every
file in it; the same closure is what a training's resume fingerprint hashes (kdgat.train.run.code_hash).

kdgat/config.py and package __init__ files that define nothing are left out on purpose: config.py only
validates, and every value it validates is spelled out in params.yaml (test_config checks that) and
tracked through `params:`.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import kdgat.closure

REPO = Path(__file__).resolve().parents[1]
NOT_DEPS = {"kdgat/config.py"}


def import_closure(script: Path) -> set[str]:
    found = kdgat.closure.import_closure(script, REPO)
    return {str(p.relative_to(REPO)) for p in found if _defines_code(p)} - NOT_DEPS


def _defines_code(path: Path) -> bool:
    """False for a package __init__ that holds only a docstring and constants."""
    if path.name != "__init__.py":
        return True
    defs = (ast.FunctionDef, ast.ClassDef, ast.ImportFrom, ast.Import)
    return any(isinstance(node, defs) for node in ast.parse(path.read_text()).body)


def _code_files(dep: str) -> set[str]:
    """The library files a dependency stands for: itself, or every file of a folder that defines code."""
    path = REPO / dep
    files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if dep.endswith(".py") else []
    return {str(f.relative_to(REPO)) for f in files if _defines_code(f)} - NOT_DEPS


def _stages() -> list[tuple[str, dict]]:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [(name, body.get("do", body)) for name, body in stages.items()]


@pytest.mark.parametrize(("name", "stage"), _stages(), ids=[n for n, _ in _stages()])
def test_stage_code_deps_are_exactly_its_imports(name: str, stage: dict) -> None:
    script = re.search(r"python (stages/\S+\.py)", stage["cmd"])
    assert script, f"{name}: command does not run a stage script"
    declared = set().union(*(_code_files(d) for d in stage["deps"] if d.startswith("kdgat/")))
    assert script.group(1) in stage["deps"]
    assert declared == import_closure(REPO / script.group(1)), name
    assert "stages/_checkout.py" in stage["deps"], name


def _top_imports(script: Path) -> list[str]:
    body = ast.parse(script.read_text()).body
    return [
        n.names[0].name if isinstance(n, ast.Import) else n.module or ""
        for n in body
        if isinstance(n, ast.Import | ast.ImportFrom)
    ]


@pytest.mark.parametrize("script", sorted(p.name for p in (REPO / "stages").glob("[!_]*.py")))
def test_stage_scripts_import_their_own_checkout_first(script: str) -> None:
    names = _top_imports(REPO / "stages" / script)
    first_kdgat = next(i for i, m in enumerate(names) if m.split(".")[0] == "kdgat")
    assert "_checkout" in names[:first_kdgat], script


def test_a_copy_of_the_repository_imports_its_own_kdgat(tmp_path: Path) -> None:
    # as `dvc exp run --temp` does: the stages of a copy, with the workspace's kdgat installed (editable)
    copy = tmp_path / "exp"
    for name in ("kdgat", "stages"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "stages" / "probe.py").write_text(
        "import _checkout  # noqa: F401\nimport kdgat\nprint(kdgat.__file__)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run(
        [sys.executable, "stages/probe.py"], cwd=copy, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert Path(out.stdout.strip()) == copy / "kdgat" / "__init__.py"
    bare = subprocess.run(
        [sys.executable, "-c", "import kdgat; print(kdgat.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert Path(bare.stdout.strip()) == REPO / "kdgat" / "__init__.py"  # what the copy would get without it
