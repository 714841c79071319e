"""The DVC remote against a real S3 server (SeaweedFS on loopback), configured exactly like the committed
R2 remote except for the endpoint: push → wipe cache and outputs → pull gives the same bytes; a server
killed mid-push fails the push with a clear error, and after a restart the push completes, every stored
object matches its hash and a fresh clone pulls everything intact."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from configobj import ConfigObj
from support.s3server import ACCESS_KEY, SECRET_KEY, SeaweedS3

from kdgat.cluster.remote import PREFIX, RemoteError, check, configure, r2_endpoint

REPO = Path(__file__).resolve().parents[1]
BUCKET = "kdgat-test"  # the bucket the s3_server fixture serves
KEY_OPTIONS = {"access_key_id", "secret_access_key", "session_token", "credentialpath", "profile"}

# A toy pipeline: one `dvc add`-ed input and one stage writing a folder of many small files (enough
# objects that a push with one job is still running when the test stops the server).
MAKE_SHARDS = """\
import json, random
from pathlib import Path
raw = Path("data/raw/captures.bin").read_bytes()
out = Path("data/shards"); out.mkdir(parents=True, exist_ok=True)
rng = random.Random(len(raw))
for i in range(200):
    (out / f"shard_{i:04d}.bin").write_bytes(rng.randbytes(2048))
Path("data/summary.json").write_text(json.dumps({"shards": 200, "raw_bytes": len(raw)}))
"""
DVC_YAML = """\
stages:
  shards:
    cmd: python make_shards.py
    deps: [make_shards.py, data/raw/captures.bin]
    outs: [data/shards, data/summary.json]
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"PATH": f"{Path(sys.executable).parent}:{env['PATH']}", "DVC_NO_ANALYTICS": "1"}
    env |= {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY} | extra
    return env


def _run(args: list[str], cwd: Path, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def _digests(repo: Path) -> dict[str, str]:
    """sha256 of every data file under data/ (not the .dvc and .gitignore files git keeps), by path."""
    files = sorted(
        p for p in (repo / "data").rglob("*") if p.is_file() and p.suffix != ".dvc" and p.name != ".gitignore"
    )
    return {str(p.relative_to(repo)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _make_repo(path: Path, endpoint: str) -> Path:
    path.mkdir()
    _run(["git", "init", "-q"], path)
    _run(["dvc", "init", "-q"], path)
    shutil.copy(REPO / ".dvc" / "config", path / ".dvc" / "config")  # the committed R2 remote
    (path / "make_shards.py").write_text(MAKE_SHARDS)
    (path / "dvc.yaml").write_text(DVC_YAML)
    (path / "data" / "raw").mkdir(parents=True)
    (path / "data" / "raw" / "captures.bin").write_bytes(os.urandom(300_000))
    _run(["dvc", "add", "-q", "data/raw/captures.bin"], path)
    _run(["dvc", "repro", "-q"], path)
    _run(["git", "add", "-A"], path)
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "toy"], path)
    configure(path, bucket=BUCKET, endpoint=endpoint)
    return path


def _wipe(repo: Path) -> None:
    shutil.rmtree(repo / ".dvc" / "cache")
    for rel in ("data/shards", "data/summary.json", "data/raw/captures.bin"):
        target = repo / rel
        shutil.rmtree(target) if target.is_dir() else target.unlink()


def test_committed_config_is_r2_without_credentials() -> None:
    conf = ConfigObj(str(REPO / ".dvc" / "config"))
    name = conf["core"]["remote"]
    remote = conf[f'remote "{name}"']
    assert re.fullmatch(rf"s3://[a-z0-9<>_-]+/{PREFIX}", remote["url"])
    assert re.fullmatch(r"https://[^/]+\.r2\.cloudflarestorage\.com", remote["endpointurl"])
    assert remote["region"] == "auto"
    for section in (s for s in conf.sections if s.startswith("remote ")):
        assert not KEY_OPTIONS & set(conf[section]), f".dvc/config [{section}] holds credentials"
    text = (REPO / ".dvc" / "config").read_text()
    assert not re.search(r"AKIA[0-9A-Z]{16}|[0-9a-f]{64}", text), ".dvc/config holds something like a key"
    assert "/config.local" in (REPO / ".dvc" / ".gitignore").read_text().split()


@pytest.mark.slow
def test_configure_writes_only_config_local(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _run(["dvc", "init", "-q", "--no-scm"], repo)
    shutil.copy(REPO / ".dvc" / "config", repo / ".dvc" / "config")
    committed = (repo / ".dvc" / "config").read_bytes()
    configure(repo, bucket="my-bucket", account="0123456789abcdef0123456789abcdef")
    assert (repo / ".dvc" / "config").read_bytes() == committed
    local = ConfigObj(str(repo / ".dvc" / "config.local"))['remote "r2"']
    assert local == {"url": f"s3://my-bucket/{PREFIX}", "endpointurl": r2_endpoint("0123456789abcdef" * 2)}
    with pytest.raises(RemoteError, match="32 lowercase hex"):
        configure(repo, bucket="my-bucket", account="not-an-account")
    with pytest.raises(RemoteError, match="bucket name"):
        configure(repo, bucket="B", account="0123456789abcdef" * 2)
    (repo / ".dvc" / "config.local").unlink()
    with pytest.raises(RemoteError, match="placeholder"):
        check(repo)


@pytest.mark.slow
def test_cli_setup_and_check(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from kdgat.cli.main import app

    _run(["dvc", "init", "-q", "--no-scm"], tmp_path)
    shutil.copy(REPO / ".dvc" / "config", tmp_path / ".dvc" / "config")
    runner = CliRunner()
    bad = runner.invoke(
        app, ["remote", "setup", "--bucket", "kd-gat", "--account", "12345", "--root", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "32 lowercase hex digits" in bad.output
    placeholder = runner.invoke(app, ["remote", "check", "--root", str(tmp_path)])
    assert placeholder.exit_code == 2 and "kdgat remote setup" in placeholder.output
    account = "0123456789abcdef" * 2
    ok = runner.invoke(
        app, ["remote", "setup", "--bucket", "kd-gat", "--account", account, "--root", str(tmp_path)]
    )
    assert ok.exit_code == 0, ok.output
    assert f"https://{account}.r2.cloudflarestorage.com" in (tmp_path / ".dvc" / "config.local").read_text()


def test_push_wipe_pull_gives_identical_bytes(tmp_path: Path, s3_server: SeaweedS3) -> None:
    repo = _make_repo(tmp_path / "repo", s3_server.endpoint)
    before = _digests(repo)
    assert len(before) == 202
    t0 = time.monotonic()
    out = _run(["dvc", "push"], repo)
    push_s = time.monotonic() - t0
    assert "203 files pushed" in out.stdout  # 200 shards + summary + raw file + the folder's .dir listing
    _wipe(repo)
    assert _digests(repo) == {}
    _run(["dvc", "pull"], repo)
    assert _digests(repo) == before
    assert "are in sync" in _run(["dvc", "status", "--cloud"], repo).stdout
    assert "up to date" in _run(["dvc", "status"], repo).stdout
    print(f"push of 203 objects: {push_s:.1f} s")


def test_check_names_the_cause(tmp_path: Path, s3_server: SeaweedS3, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = _make_repo(tmp_path / "repo", s3_server.endpoint)
    for key, value in _env().items():
        monkeypatch.setenv(key, value)
    assert check(repo).bucket == BUCKET
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with pytest.raises(RemoteError, match="credentials are refused"):
        check(repo)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(RemoteError, match="no credentials"):
        check(repo)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    configure(repo, bucket="no-such-bucket", endpoint=s3_server.endpoint)
    with pytest.raises(RemoteError, match="does not exist"):
        check(repo)


def _remote_objects(s3: SeaweedS3) -> dict[str, bytes]:
    client, objects = s3.client(), {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=f"{PREFIX}/"):
        for item in page.get("Contents", []):
            objects[item["Key"]] = client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
    return objects


def test_server_killed_mid_push_then_push_completes(tmp_path: Path, s3_server: SeaweedS3) -> None:
    repo = _make_repo(tmp_path / "repo", s3_server.endpoint)
    before = _digests(repo)
    # `kdgat remote push`: `dvc push` with bounded retries (see kdgat.cluster.remote.transfer)
    push = subprocess.Popen(
        ["kdgat", "remote", "push"],
        cwd=repo,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    client, stored = s3_server.client(), 0
    deadline = time.monotonic() + 60
    while stored < 20 and push.poll() is None and time.monotonic() < deadline:
        stored = client.list_objects_v2(Bucket=BUCKET, Prefix=f"{PREFIX}/").get("KeyCount", 0)
        time.sleep(0.05)
    assert push.poll() is None, "the push finished before the server could be stopped"
    s3_server.kill()
    t0 = time.monotonic()
    out, err = push.communicate(timeout=240)
    fail_s = time.monotonic() - t0
    assert push.returncode == 2, out + err
    assert f'Could not connect to the endpoint URL: "{s3_server.endpoint}/{BUCKET}/{PREFIX}/' in err, err
    assert re.search(r"failed to push data to the cloud - \d+ files failed to upload", err), err
    remote = f"remote 'r2' (s3://{BUCKET}/{PREFIX} at {s3_server.endpoint})"
    assert f"dvc push incomplete, {remote}: cannot connect" in err
    print(f"push failed {fail_s:.1f} s after the server was killed with {stored} objects stored")

    down = _run(["dvc", "push"], repo, ok=False)  # plain DVC with the server down: fails at once too
    assert down.returncode != 0 and "Could not connect to the endpoint URL" in down.stderr, down.stderr

    s3_server.start()  # same data folder and ports
    assert "files pushed" in _run(["dvc", "push"], repo).stdout
    objects = _remote_objects(s3_server)
    assert len(objects) == 203
    for (
        key,
        body,
    ) in objects.items():  # content-addressed: files/md5/ab/cdef… holds bytes whose md5 is abcdef…
        digest = "".join(key.removesuffix(".dir").split("/")[-2:])
        assert hashlib.md5(body).hexdigest() == digest, f"corrupted object {key}"

    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(repo), str(clone)], tmp_path)
    configure(clone, bucket=BUCKET, endpoint=s3_server.endpoint)
    _run(["dvc", "pull"], clone)
    assert _digests(clone) == before
