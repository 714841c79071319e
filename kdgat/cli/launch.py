"""`kdgat launch [TARGETS...]`: the stale stages of the DVC DAG as one job each (kdgat/cluster/fanout.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from pydantic import ValidationError

from kdgat.cli.errors import fail
from kdgat.config import (
    CHECKOUT_PARAMS,
    LaunchParams,
    ParamsError,
    format_validation_error,
    params_here,
    set_dotted,
)


def _leaves(tree: dict[str, Any], prefix: str) -> Iterator[tuple[str, Any]]:
    for name, value in tree.items():
        key = f"{prefix}.{name}"
        yield from _leaves(value, key) if isinstance(value, dict) else [(key, value)]


def launch_params(path: Path, overrides: list[str] | None = None) -> LaunchParams:
    """params.yaml's ``launch`` section (only that: any DVC project can be launched; what a project's file
    leaves out comes from kdgat's own params.yaml), with ``-S`` overrides like ``launch.slurm.partition=gpu``
    (values parsed as YAML)."""
    own = (yaml.safe_load(path.read_text()) or {}).get("launch") or {} if path.exists() else {}
    entries = list(_leaves(own, "launch"))
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith("launch.") or key == "launch.":
            raise ParamsError(f"-S {item!r}: expected launch.KEY=VALUE, e.g. launch.slurm.partition=gpu")
        entries.append((key, yaml.safe_load(value)))
    raw = {"launch": params_here(CHECKOUT_PARAMS).launch.model_dump(mode="json")}
    for key, value in entries:
        try:
            set_dotted(raw, key, value)
        except KeyError:
            raise ParamsError(f"{path} launch: {key!r} is not a launch setting") from None
    try:
        return LaunchParams.model_validate(raw["launch"])
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
        fail(str(err))
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise typer.Exit(status)
