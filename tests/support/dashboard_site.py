"""The dashboard as a visitor gets it, for the system-tier tests: the built site (dashboard/dist) served
by its Worker under `wrangler dev` (workerd) on loopback, with a local R2 bucket filled from a results
folder the way `make deploy` / `make publish-results` fill the real one; and Debian's chromium, headless,
driven by Playwright (no browser download).

    with WorkerSite(repo / "dashboard", repo / "results", tmp / "state") as site:
        urlopen(site.url("/leaderboard"))

`stop` ends the process group `start` began (wrangler and its workerd children), nothing else."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from kdgat.bench.dashboard import CHROMIUM

CHROMIUM_PACKAGES = ("chromium",)


def missing_chromium() -> list[str]:
    return [] if Path(CHROMIUM).exists() else [CHROMIUM]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkerSite:
    def __init__(self, dashboard: Path, results: Path, state: Path) -> None:
        self.dashboard, self.results, self.state = dashboard, results, state
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self, timeout_s: float = 180) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        node = shutil.which("node") or "node"
        subprocess.run(
            [node, "scripts/local-r2.js", str(self.results), str(self.state)],
            cwd=self.dashboard,
            check=True,
            capture_output=True,
            timeout=600,
        )
        self.port = _free_port()
        log = (self.state / "wrangler.log").open("wb")
        self.proc = subprocess.Popen(
            [
                shutil.which("npx") or "npx",
                "--no-install",
                "wrangler",
                "dev",
                "--ip",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--persist-to",
                str(self.state),
            ],
            cwd=self.dashboard,
            env={**os.environ, "WRANGLER_SEND_METRICS": "false"},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stop() ends workerd with it
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"wrangler dev exited:\n{(self.state / 'wrangler.log').read_text()[-3000:]}"
                )
            try:
                with urllib.request.urlopen(self.url("/"), timeout=5) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"wrangler dev not ready in {timeout_s:.0f} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.proc.wait(wait_s)
                break
            except subprocess.TimeoutExpired:
                continue
        self.proc = None

    def __enter__(self) -> WorkerSite:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
