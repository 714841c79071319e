"""`kdgat launch [TARGETS...]`: the stale stages of the DVC DAG as one job each (kdgat/cluster/fanout.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from pydantic import ValidationError

from kdgat.config import LaunchParams, ParamsError, format_validation_error


def launch_params(path: Path, overrides: list[str] | None = None) -> LaunchParams:
    """params.yaml's ``launch`` section (only that: any DVC project can be launched), with ``-S`` overrides
    like ``launch.slurm.partition=gpu`` (values parsed as YAML)."""
    raw: dict[str, Any] = {}
    if path.exists():
        raw = (yaml.safe_load(path.read_text()) or {}).get("launch") or {}
    for item in overrides or []:
        key, sep, value = item.partition("=")
        parts = key.split(".")
        if not sep or parts[0] != "launch" or len(parts) < 2:
            raise ParamsError(f"-S {item!r}: expected launch.KEY=VALUE, e.g. launch.slurm.partition=gpu")
        node = raw
        for part in parts[1:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = yaml.safe_load(value)
    try:
        return LaunchParams.model_validate(raw)
    except ValidationError as err:
        raise ParamsError(format_validation_error(err, f"{path} launch")) from None


def launch(
    targets: Annotated[
        list[str] | None, typer.Argument(help="Stages or foreach groups (default: the whole pipeline).")
    ] = None,
    executor: Annotated[
        Literal["local", "slurm", "debug"] | None,
        typer.Option(help="Where jobs run (default: params.yaml launch.executor)."),
    ] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; submit nothing.")] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="local: stages running at once.")] = 1,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", "-S", help="Override a launch setting: -S launch.slurm.gpus_per_node=0."),
    ] = None,
    params: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
) -> None:
    """Run every stale stage of the DVC pipeline as its own job (SLURM: with afterok dependencies), then
    record the results in dvc.lock so that `dvc status` is clean and `dvc repro` does nothing."""
    from dvc.exceptions import DvcException

    from kdgat.cluster.fanout import launch_dag
    from kdgat.cluster.launch import executor_name

    settings = launch_params(params, set_)
    name = executor or executor_name(settings)
    try:
        status = launch_dag(Path.cwd(), name, settings, targets or [], dry_run=dry_run, jobs=jobs)
    except DvcException as err:  # no DVC project here, unknown target, another dvc holding the lock
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise typer.Exit(status)
