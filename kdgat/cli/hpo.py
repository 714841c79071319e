"""`kdgat hpo MODEL --dataset D`: an Optuna study over one model of the study (kdgat/cluster/hpo.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

import typer

from kdgat.cli.errors import fail


def hpo(
    model: Annotated[
        str, typer.Argument(help="vgae_large | vgae_small_kd | ... | gat_small (not fusion_*).")
    ],
    dataset: Annotated[str, typer.Option(help="Dataset whose data/graphs/<dataset> the trials train on.")],
    trials: Annotated[
        int | None, typer.Option(help="Trials of this call, over all tasks (default: hpo.trials).")
    ] = None,
    workers: Annotated[int, typer.Option(help="Tasks running at once; >1 runs a submitit array.")] = 1,
    tasks: Annotated[
        int | None, typer.Option(help="Array tasks sharing the trials (default: --workers).")
    ] = None,
    executor: Annotated[
        Literal["local", "slurm"],
        typer.Option(help="local: this machine (one task: this process); slurm: sbatch."),
    ] = "local",
    study: Annotated[
        str | None, typer.Option(help="Study name (default: MODEL-DATASET); hpo/<study>/.")
    ] = None,
    storage: Annotated[
        str | None,
        typer.Option(help="sqlite:///PATH or journal:PATH (default: SQLite for one local process)."),
    ] = None,
    metric: Annotated[
        str | None, typer.Option(help="val_f1 | val_auc | val_loss (default: hpo.metric).")
    ] = None,
    params: Annotated[Path, typer.Option("--params", help="Parameters file.")] = Path("params.yaml"),
    root: Annotated[Path, typer.Option(help="Project folder holding data/, models/, predictions/.")] = Path(),
) -> None:
    """Search hpo.space for MODEL on DATASET; writes hpo/<study>/best.yaml and prints the `dvc exp run -S`
    command that applies it. Started as a SLURM array task it is worker $SLURM_ARRAY_TASK_ID of the study."""
    from kdgat.cluster.hpo import HPOError, HPOJob, run_study, storage_url
    from kdgat.config import load_params

    p = load_params(params)
    name = study or f"{model}-{dataset}"
    folder = root.resolve() / "hpo" / name
    many = executor != "local" or (tasks or workers) > 1
    chosen = metric or p.hpo.metric
    job = HPOJob(
        name, storage or storage_url(folder, many), model, dataset, root.resolve(), params.resolve(), chosen
    )
    offset = int(os.environ.get("SLURM_ARRAY_TASK_ID", "0"))  # distinct sampler seeds for array tasks
    try:
        summary = run_study(
            job,
            p,
            trials or p.hpo.trials,
            workers=workers,
            tasks=tasks,
            executor=executor,
            worker_offset=offset,
        )
    except (HPOError, KeyError, FileNotFoundError) as err:
        fail(err.args[0] if err.args else str(err))
    states = ", ".join(f"{n} {s}" for s, n in summary["states"].items() if n)
    typer.echo(f"study {name}: {states}; storage {job.storage}")
    typer.echo(f"best: trial {summary['best_trial']}, {chosen} = {summary['best_value']:.6g}")
    typer.echo(f"wrote {summary['best_file']}; apply it with:")
    typer.echo(f"  {summary['dvc_command']}")
