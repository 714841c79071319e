"""`kdgat remote ...`: point the DVC remote at a Cloudflare R2 bucket and check that it answers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from kdgat.cli.errors import fail

remote_app = typer.Typer(
    help="The DVC remote (Cloudflare R2, S3 API): configure it in .dvc/config.local, check it answers.",
    no_args_is_help=True,
)

RootOpt = Annotated[Path, typer.Option("--root", help="Project folder holding .dvc/.")]
JobsOpt = Annotated[int | None, typer.Option("--jobs", "-j", help="Parallel transfers (default: DVC's).")]


@remote_app.command()
def setup(
    bucket: Annotated[str, typer.Option(help="R2 bucket; objects go under <bucket>/kd-gat/.")],
    account: Annotated[str | None, typer.Option(help="Cloudflare account id (32 hex digits).")] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Any other S3 endpoint URL instead of R2 (e.g. a local server).")
    ] = None,
    root: RootOpt = Path("."),
) -> None:
    """Write bucket and endpoint to .dvc/config.local (git-ignored). Keys: AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY in the environment, or `dvc remote modify --local r2 access_key_id ...`."""
    from kdgat.cluster.remote import RemoteError, configure

    try:
        path = configure(root, bucket=bucket, account=account, endpoint=endpoint)
    except RemoteError as err:
        fail(str(err))
    typer.echo(f"wrote {path}")


@remote_app.command()
def check(root: RootOpt = Path(".")) -> None:
    """Ask the endpoint for the bucket; exit 2 with the reason (placeholder, keys, server) if it fails."""
    from kdgat.cluster.remote import RemoteError
    from kdgat.cluster.remote import check as check_remote

    try:
        remote = check_remote(root)
    except RemoteError as err:
        fail(str(err))
    typer.echo(f"remote {remote.name!r}: {remote.url} at {remote.endpoint} answers")


@remote_app.command()
def push(root: RootOpt = Path("."), jobs: JobsOpt = None) -> None:
    """`dvc push` after `check`, failing within seconds (not minutes) if the server goes away meanwhile."""
    _transfer(root, "push", jobs)


@remote_app.command()
def pull(root: RootOpt = Path("."), jobs: JobsOpt = None) -> None:
    """`dvc pull` after `check`, with the same bounded retries as `push`."""
    _transfer(root, "pull", jobs)


def _transfer(root: Path, direction: Literal["push", "pull"], jobs: int | None) -> None:
    from kdgat.cluster.remote import RemoteError, transfer

    try:
        transfer(root, direction, jobs)
    except RemoteError as err:
        fail(str(err))
