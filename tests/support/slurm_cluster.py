"""A real one-node SLURM cluster for the tests: Debian's munge, slurmctld and slurmd on loopback.

Everything lives in one folder of its own (config from slurm/test-cluster/slurm.conf, state, spool,
logs, the munge key and socket) and on free ports, so nothing in /etc is touched and a cluster already
running on the machine is left alone. Clients find it through SLURM_CONF. `stop` cancels the cluster's
jobs, then ends only the three daemons `start` began, by their pids.

Also a command, to try `kdgat launch` on one machine (as root):

    python tests/support/slurm_cluster.py start /tmp/kdgat-slurm     # prints the SLURM_CONF to export
    python tests/support/slurm_cluster.py stop /tmp/kdgat-slurm
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "slurm" / "test-cluster" / "slurm.conf"
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sacct", "scancel", "sinfo")
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")
PARTITION = "debug"
STATE_FILE = "cluster.json"  # pids and ports, for `stop` from another process


def missing_binaries() -> list[str]:
    return [b for b in BINARIES if shutil.which(b) is None]


def ensure_installed(timeout_s: float = 900) -> str | None:
    """Install Debian's SLURM packages when missing. Returns None when ready, else why not."""
    if not missing_binaries():
        return None
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return (
            f"SLURM not installed ({', '.join(missing_binaries())} missing) and no root apt-get to install it"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *PACKAGES]
    log = ""
    for cmd in (install, ["apt-get", "update", "-q"], install):  # update only when the first try fails
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return f"`{' '.join(cmd)}` took over {timeout_s:.0f} s"
        log = proc.stdout[-2000:] + proc.stderr[-2000:]
        if cmd is install and proc.returncode == 0 and not missing_binaries():
            return None
    return f"`{' '.join(install)}` failed: {log.strip()[-500:]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _memory_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(int(line.split()[1]) / 1024 * 0.9)  # leave slurmd's check some slack
    raise RuntimeError("/proc/meminfo has no MemTotal")


class SlurmCluster:
    """munged + slurmctld + slurmd over ``base``; ``env`` points SLURM clients at it."""

    def __init__(self, base: Path, cred_expire_s: int = 5) -> None:
        self.base = Path(base)
        self.conf = self.base / "slurm.conf"
        self.cred_expire_s = cred_expire_s
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def env(self) -> dict[str, str]:
        return {"SLURM_CONF": str(self.conf)}

    def _write_config(self) -> None:
        for sub in ("state", "spool", "log", "munge"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        # munged runs as user munge: it must reach its socket folder, and insists on owning key and folder
        self.base.chmod(0o755)
        munge_dir = self.base / "munge"
        shutil.chown(munge_dir, "munge", "munge")
        munge_dir.chmod(0o755)
        key = munge_dir / "munge.key"
        if not key.exists():
            key.write_bytes(os.urandom(1024))
        shutil.chown(key, "munge", "munge")
        key.chmod(0o400)
        fields = {
            "host": socket.gethostname().split(".")[0],
            "ctld_port": _free_port(),
            "slurmd_port": _free_port(),
            "munge_socket": munge_dir / "munge.sock",
            "cred_expire": self.cred_expire_s,
            "base": self.base,
            "cpus": os.cpu_count() or 1,
            "mem_mb": _memory_mb(),
            "partition": PARTITION,
        }
        self.conf.write_text(string.Template(TEMPLATE.read_text()).substitute(fields))

    def _spawn(self, name: str, args: list[str], user: str | None = None) -> None:
        log = (self.base / "log" / f"{name}.out").open("ab")
        self.procs[name] = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C in the test session does not reach the daemons
            user=user,
            group=user,
            extra_groups=[] if user else None,
        )
        log.close()

    def start(self, timeout_s: float = 60) -> None:
        """Start the three daemons and wait until the node is idle."""
        self._write_config()
        munge_dir = self.base / "munge"
        self._spawn(
            "munged",
            [
                "munged", "--foreground", f"--key-file={munge_dir / 'munge.key'}",
                f"--socket={munge_dir / 'munge.sock'}", f"--pid-file={munge_dir / 'munged.pid'}",
                f"--log-file={munge_dir / 'munged.log'}", f"--seed-file={munge_dir / 'munged.seed'}",
            ],
            user="munge",
        )  # fmt: skip
        self._wait(lambda: (munge_dir / "munge.sock").exists(), timeout_s, "munged socket")
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-f", str(self.conf)])
        self._save_state()
        self._wait(self._idle, timeout_s, "an idle node in sinfo")

    def _save_state(self) -> None:
        state = {name: p.pid for name, p in self.procs.items()}
        (self.base / STATE_FILE).write_text(json.dumps(state))

    def _idle(self) -> bool:
        out = self.run(["sinfo", "-h", "-o", "%t"], check=False)
        return out.strip() == "idle"

    def _wait(self, ready: object, timeout_s: float, what: str) -> None:
        assert callable(ready)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
            if dead:
                self.stop()
                raise RuntimeError(f"{dead} exited early; logs in {self.base / 'log'}")
            if ready():
                return
            time.sleep(0.3)
        self.stop()
        raise TimeoutError(f"no {what} after {timeout_s:.0f} s; logs in {self.base / 'log'}")

    def run(self, args: list[str], check: bool = True) -> str:
        """A SLURM client command against this cluster; its stdout."""
        proc = subprocess.run(
            args, env={**os.environ, **self.env}, capture_output=True, text=True, timeout=60, check=False
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def stop(self, timeout_s: float = 30) -> None:
        """Cancel every job of this cluster, then end the daemons this object (or `start`) began."""
        pids = {n: p.pid for n, p in self.procs.items()}
        if not pids and (self.base / STATE_FILE).exists():
            pids = json.loads((self.base / STATE_FILE).read_text())
        if pids.get("slurmctld") and _alive(pids["slurmctld"]):
            self.run(["scancel", "--user", str(os.geteuid())], check=False)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.run(["squeue", "-h"], check=False).strip():
                time.sleep(0.5)
        for name in ("slurmd", "slurmctld", "munged"):
            pid = pids.get(name)
            if pid:
                _terminate(pid, self.procs.get(name), timeout_s)
        self.procs.clear()
        (self.base / STATE_FILE).unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _terminate(pid: int, proc: subprocess.Popen[bytes] | None, timeout_s: float) -> None:
    if not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return
        if proc is None and not _alive(pid):
            return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)
    if proc is not None:
        proc.wait(timeout=10)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("start", "stop"):
        print(f"usage: python {Path(__file__).relative_to(REPO)} start|stop FOLDER", file=sys.stderr)
        return 2
    cluster = SlurmCluster(Path(argv[1]).resolve())
    if argv[0] == "stop":
        cluster.stop()
        print(f"stopped the cluster in {cluster.base}")
        return 0
    reason = ensure_installed()
    if reason:
        print(f"error: {reason}", file=sys.stderr)
        return 1
    cluster.start()
    print(f"export SLURM_CONF={cluster.conf}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
