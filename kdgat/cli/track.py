"""`kdgat track ...`: the W&B runs the stages leave in wandb/ (offline unless a key is configured)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdgat.cli.errors import fail

track_app = typer.Typer(
    help="W&B runs of the pipeline stages, kept in wandb/: list them, upload the offline ones.",
    no_args_is_help=True,
)

RootOpt = Annotated[Path, typer.Option("--root", help="Project folder holding wandb/ and params.yaml.")]


@track_app.command("list")
def list_runs(root: RootOpt = Path(".")) -> None:
    """One line per local run: id, stage, dataset, state, offline/online, synced."""
    from kdgat.track.sync import local_runs
    from kdgat.track.tracker import TrackingError

    try:
        runs = local_runs(root)
    except TrackingError as err:
        fail(str(err))
    if not runs:
        typer.echo(f"no W&B runs in {root / 'wandb'}")
    for r in runs:
        where = "offline" + (" synced" if r.synced else "") if r.offline else "online"
        typer.echo(f"{r.id}  {r.name:<24} {r.job_type:<9} {r.group:<12} {r.state:<10} {where}")


@track_app.command("sync")
def sync(
    root: RootOpt = Path("."),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would be uploaded.")] = False,
) -> None:
    """Upload the offline runs (`wandb sync`); needs WANDB_API_KEY in the environment or in .env."""
    from kdgat.config import params_here
    from kdgat.track.sync import sync_runs
    from kdgat.track.tracker import TrackingError

    tracking = params_here(root / "params.yaml").tracking
    try:
        done, output = sync_runs(root, tracking, dry_run=dry_run)
    except TrackingError as err:
        fail(str(err))
    if output:
        typer.echo(output)
    typer.echo(f"{'would upload' if dry_run else 'uploaded'} {len(done)} offline run(s)")
