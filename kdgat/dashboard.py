"""The dashboard site (dashboard/, Observable Framework; docs/dashboard.md): its node packages installed
from the lock file and its build, for the `dashboard` DVC stage and the browser tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

DASHBOARD = Path(__file__).resolve().parents[1] / "dashboard"


def npm() -> str:
    found = shutil.which("npm")
    if found is None:
        raise FileNotFoundError("npm not found: install Node.js 20 or later (docs/dashboard.md)")
    return found


def install(root: Path = DASHBOARD) -> None:
    """`npm ci` when node_modules is missing or older than package-lock.json (npm writes its own record of
    the installed tree, node_modules/.package-lock.json, on every install)."""
    record, lock = root / "node_modules" / ".package-lock.json", root / "package-lock.json"
    if not record.exists() or record.stat().st_mtime < lock.stat().st_mtime:
        subprocess.run([npm(), "ci", "--no-audit", "--no-fund"], cwd=root, check=True)


def build(root: Path = DASHBOARD) -> Path:
    """Install, then build the site to root/dist (site/ for static assets, r2/ for files over 25 MiB)."""
    install(root)
    subprocess.run([npm(), "run", "build"], cwd=root, check=True)
    return root / "dist"
