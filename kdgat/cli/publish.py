"""`kdgat publish`: the release bundle and its plan (a dry run by default), uploaded with --yes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdgat.cli.errors import fail


def publish(
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="Only write the bundle and print the plan (the default, said outright)."
        ),
    ] = False,
    yes: Annotated[
        bool,
        typer.Option("--yes", help="Upload (tokens from the environment or .env); without it: a dry run."),
    ] = False,
    remote: Annotated[
        bool,
        typer.Option("--remote", help="Dry run: also ask each service what it already holds (read only)."),
    ] = False,
    sandbox: Annotated[
        bool, typer.Option("--sandbox", help="Zenodo's sandbox (params publish.zenodo.sandbox_url) instead.")
    ] = False,
    only: Annotated[
        list[str] | None,
        typer.Option("--only", help="hub | zenodo | wandb (repeatable; default: all three)."),
    ] = None,
    root: Annotated[
        Path, typer.Option("--root", help="Project folder (params.yaml, the study's outputs).")
    ] = Path("."),
) -> None:
    """Release the study: models with model cards to the Hugging Face Hub, code and models to Zenodo,
    registry aliases in W&B. Writes the bundle (params publish.folder) and prints the plan; --yes uploads."""
    from kdgat.config import load_params
    from kdgat.publish.bundle import ReleaseError
    from kdgat.publish.release import SERVICES, TOKENS, PublishError, describe, make_plan, redact, secret
    from kdgat.publish.release import publish as upload

    if dry_run and yes:
        # both given is a mistake either way round: refuse rather than guess which the caller meant
        fail("--dry-run and --yes contradict each other: give one")
    services = only or list(SERVICES)
    bad = [s for s in services if s not in SERVICES]
    if bad:
        fail(f"--only {bad[0]!r}: expected one of {', '.join(SERVICES)}")
    services = [s for s in SERVICES if s in services]
    params = load_params(root / "params.yaml")
    secrets = [secret(t, root) for t in TOKENS.values()]
    try:
        if not yes:
            for line in describe(make_plan(params, root, remote=remote, sandbox=sandbox, services=services)):
                typer.echo(line)
            typer.echo("dry run: nothing was sent (kdgat publish --yes uploads)")
            return
        for line in upload(params, root, sandbox=sandbox, services=services):
            typer.echo(line)
    except (PublishError, ReleaseError) as err:
        typer.secho(f"error: {redact(str(err), secrets)}", fg="red", err=True)
        raise typer.Exit(1) from None
