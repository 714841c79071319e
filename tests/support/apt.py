"""Debian packages a system-tier test needs, installed on first use (CI and the developers run as root)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Sequence


def ensure_packages(
    packages: Sequence[str], missing: Callable[[], list[str]], timeout_s: float = 900
) -> str | None:
    """apt-get install ``packages`` when ``missing()`` names something. None when ready, else why not."""
    if not missing():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return f"{', '.join(missing())} not installed and no root apt-get to install {' '.join(packages)}"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
    log = ""
    for cmd in (install, ["apt-get", "update", "-q"], install):  # update only when the first try fails
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(cmd)}` took over {timeout_s:.0f} s"
        log = proc.stdout[-2000:] + proc.stderr[-2000:]
        if cmd is install and proc.returncode == 0 and not missing():
            return None
    return f"`{' '.join(install)}` failed: {log.strip()[-500:]}"
