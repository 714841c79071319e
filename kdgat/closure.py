"""Which library files a script or module imports, transitively: what a DVC stage declares as its code
deps (tests/test_dvc_deps.py holds dvc.yaml to it) and what a training's resume fingerprint hashes
(kdgat.train.run.code_hash), so that an edit elsewhere neither reruns a stage nor discards a checkpoint."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout: kdgat/ and stages/ side by side


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The file of a dotted kdgat module (a package: its __init__.py), or None for a name inside one."""
    base = root / module.replace(".", "/")
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.exists():
            return cand
    return None


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {m for m in found if m.split(".")[0] == "kdgat"}


def import_closure(script: Path, root: Path = ROOT) -> set[Path]:
    """Every kdgat file that ``script`` imports, directly or through another, imports inside functions
    included (as DVC must rerun a stage whatever path of its code changed)."""
    seen: set[Path] = set()
    todo = [script]
    while todo:
        for module in _imports(todo.pop()):
            f = module_file(module, root)
            if f is not None and f not in seen:
                seen.add(f)
                todo.append(f)
    return seen
