"""The DVC remote: an S3 bucket on Cloudflare R2. `.dvc/config` (committed) names the remote `r2` with a
placeholder account; `configure` writes the real bucket and endpoint into the git-ignored
`.dvc/config.local`, and `check` asks the endpoint for the bucket so that a push fails early with a
message saying what is missing (keys, account, server) instead of DVC's generic "unexpected error"."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

REMOTE = "r2"
PREFIX = "kd-gat"  # folder inside the bucket, so one bucket can hold several projects
R2_ENDPOINT = "https://{account}.r2.cloudflarestorage.com"
_ACCOUNT = re.compile(r"[0-9a-f]{32}")
_BUCKET = re.compile(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]")


class RemoteError(RuntimeError):
    """The remote is not configured, not reachable, or refuses the credentials."""


@dataclass(frozen=True)
class Remote:
    name: str
    url: str
    endpoint: str
    region: str
    access_key_id: str | None = None  # from config.local; otherwise boto3 reads the environment
    secret_access_key: str | None = None

    @property
    def bucket(self) -> str:
        return self.url.removeprefix("s3://").split("/", 1)[0]


def r2_endpoint(account: str) -> str:
    """The S3 endpoint of a Cloudflare account (its 32-hex-digit id, on the dashboard's R2 page)."""
    if not _ACCOUNT.fullmatch(account):
        raise RemoteError(f"Cloudflare account id must be 32 lowercase hex digits, got {account!r}")
    return R2_ENDPOINT.format(account=account)


def configure(
    repo: Path, *, bucket: str, account: str | None = None, endpoint: str | None = None, name: str = REMOTE
) -> Path:
    """Point remote `name` at `s3://<bucket>/kd-gat` on R2 (`account`) or any S3 `endpoint`, in
    `.dvc/config.local` only. Credentials stay out of it unless the user adds them there."""
    if (account is None) == (endpoint is None):
        raise RemoteError("give exactly one of a Cloudflare account id or an S3 endpoint URL")
    if not _BUCKET.fullmatch(bucket):
        raise RemoteError(f"bucket name {bucket!r}: 3-63 lowercase letters, digits or '-', no leading '-'")
    url = endpoint if endpoint is not None else r2_endpoint(str(account))
    if not url.startswith(("https://", "http://")):
        raise RemoteError(f"endpoint must be an http(s) URL, got {url!r}")
    for option, value in (("url", f"s3://{bucket}/{PREFIX}"), ("endpointurl", url)):
        _dvc(repo, "remote", "modify", "--local", name, option, value)
    return repo / ".dvc" / "config.local"


def load(repo: Path, name: str | None = None) -> Remote:
    """The remote as DVC sees it: committed config merged with config.local (and global/system)."""
    from dvc.config import Config

    conf = Config(dvc_dir=str(repo / ".dvc"))
    name = name or conf["core"].get("remote")
    if not name:
        raise RemoteError(f"{repo / '.dvc/config'}: no default remote (core.remote)")
    if name not in conf["remote"]:
        raise RemoteError(f"{repo / '.dvc/config'}: no remote named {name!r}")
    section = conf["remote"][name]
    return Remote(
        name=name,
        url=section["url"],
        endpoint=section.get("endpointurl", ""),
        region=section.get("region", "auto"),
        access_key_id=section.get("access_key_id"),
        secret_access_key=section.get("secret_access_key"),
    )


def check(repo: Path, name: str | None = None, timeout_s: float = 5.0) -> Remote:
    """Ask the endpoint for the bucket; raise RemoteError naming the cause when that fails."""
    import boto3
    import botocore.config
    import botocore.exceptions as bex

    remote = load(repo, name)
    where = f"remote {remote.name!r} ({remote.url} at {remote.endpoint or 'AWS'})"
    if "<" in remote.endpoint or "<" in remote.url:
        raise RemoteError(
            f"{where} still has the placeholder of .dvc/config: run "
            "`kdgat remote setup --bucket BUCKET --account ACCOUNT_ID` (writes .dvc/config.local)"
        )
    has_env_keys = os.environ.get("AWS_ACCESS_KEY_ID") and os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (remote.access_key_id or has_env_keys or os.environ.get("AWS_PROFILE")):
        raise RemoteError(
            f"{where}: no credentials; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (an R2 API token) "
            f"or run `dvc remote modify --local {remote.name} access_key_id ...` (and secret_access_key)"
        )
    # A new session: boto3's default one keeps the credentials it found first.
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=remote.endpoint or None,
        region_name=remote.region,
        aws_access_key_id=remote.access_key_id,
        aws_secret_access_key=remote.secret_access_key,
        config=botocore.config.Config(
            connect_timeout=timeout_s, read_timeout=timeout_s, retries={"max_attempts": 1}
        ),
    )
    try:
        client.head_bucket(Bucket=remote.bucket)
    except bex.EndpointConnectionError as e:
        raise RemoteError(f"{where}: cannot connect to the endpoint ({e})") from e
    except bex.ClientError as e:
        code = e.response.get("Error", {}).get("Code", "?")
        hint = {
            "403": "the credentials are refused (wrong key, or the token lacks access to this bucket)",
            "404": f"bucket {remote.bucket!r} does not exist (create it on the R2 dashboard)",
        }.get(str(code), str(e))
        raise RemoteError(f"{where}: {hint}") from e
    except bex.BotoCoreError as e:
        raise RemoteError(f"{where}: {e}") from e
    return remote


def transfer(repo: Path, direction: Literal["push", "pull"], jobs: int | None = None) -> None:
    """`dvc push`/`dvc pull` after `check`, its output going to the terminal. Botocore makes up to 5
    attempts per request with growing pauses, object by object: against a server that went away mid-push,
    DVC was still retrying 400 small objects after 2 minutes here. Two attempts keep one retry for a passing
    error and gave up in 25 s (1 attempt: 1.5 s); AWS_MAX_ATTEMPTS overrides it.
    S3 uploads are whole-object, so a failed push leaves no partial object and a rerun sends the rest."""
    check(repo)
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "AWS_MAX_ATTEMPTS": os.environ.get("AWS_MAX_ATTEMPTS", "2")}
    args = [sys.executable, "-m", "dvc", direction, *(["--jobs", str(jobs)] if jobs else [])]
    if subprocess.run(args, cwd=repo, env=env, check=False).returncode == 0:
        return
    try:
        check(repo)
    except RemoteError as err:
        raise RemoteError(
            f"dvc {direction} incomplete, {err}; what was transferred is complete, rerun when it answers"
        ) from None
    raise RemoteError(f"dvc {direction} failed in {repo} (its messages are above)")


def _dvc(repo: Path, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=repo, capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise RemoteError(f"dvc {' '.join(args)} failed in {repo}: {proc.stderr.strip() or proc.stdout}")
