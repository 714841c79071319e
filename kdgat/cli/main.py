"""`kdgat` — the command line. Each command wires library functions; the DVC stages call the same ones."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from kdgat.cli.detect import detect
from kdgat.cli.hpo import hpo
from kdgat.cli.launch import launch
from kdgat.cli.remote import remote_app
from kdgat.cli.results import results_app
from kdgat.cli.track import track_app
from kdgat.config import IngestParams, ParamsError, format_validation_error, load_params, params_here

app = typer.Typer(
    help="kd-gat: CAN-bus intrusion detection with GNNs and knowledge distillation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(results_app, name="results")
app.add_typer(track_app, name="track")
app.add_typer(remote_app, name="remote")
app.command()(hpo)
app.command()(detect)
app.command()(launch)

ParamsOpt = Annotated[Path, typer.Option("--params", help="Parameters file.")]


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(2)


@app.command()
def datasets() -> None:
    """List the dataset catalogue: name, layout, test scenarios, source."""
    from kdgat.data.catalog import catalogue

    for e in catalogue().values():
        typer.echo(f"{e.name:<8} {e.title}")
        typer.echo(f"{'':<8} layout={e.layout} format={e.format} scenarios={','.join(e.scenarios)}")
        typer.echo(f"{'':<8} attacks={','.join(e.attacks)}")
        typer.echo(f"{'':<8} source: {e.source}")


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help="Folder to write (replaced atomically if it exists).")],
    seed: Annotated[int | None, typer.Option(help="Random seed (default: params.yaml synth.seed).")] = None,
    minutes: Annotated[
        float | None, typer.Option(help="Total minutes of traffic (default: params.yaml synth.minutes).")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Generate the synthetic CAN dataset in the can-train-and-test layout."""
    from kdgat.data.synth import generate

    base = params_here(params).synth
    overrides = {k: v for k, v in {"seed": seed, "minutes": minutes}.items() if v is not None}
    manifest = generate(out_dir, base.model_copy(update=overrides))
    typer.echo(f"wrote {len(manifest['files'])} captures to {out_dir}")


@app.command()
def inject(
    src_dir: Annotated[Path, typer.Argument(help="Folder of benign captures (e.g. the WRX candump logs).")],
    out_dir: Annotated[Path, typer.Argument(help="Folder to write (replaced atomically if it exists).")],
    seed: Annotated[int | None, typer.Option(help="Random seed (default: params.yaml inject.seed).")] = None,
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Inject Car-Hacking attacks into real benign captures (can-train-and-test layout)."""
    from kdgat.data.frames import FrameError
    from kdgat.data.inject import build_injected

    base = params_here(params).inject
    try:
        manifest = build_injected(
            src_dir, out_dir, base if seed is None else base.model_copy(update={"seed": seed})
        )
    except (FileNotFoundError, FrameError) as err:
        _fail(str(err))
    typer.echo(f"wrote {len(manifest['files'])} captures to {out_dir}")


@app.command()
def ingest(
    src: Annotated[Path, typer.Argument(help="A log file or a dataset folder.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Frame table to write (.parquet).")],
    fmt: Annotated[
        str, typer.Option("--format", help="auto|candump|asc|blf|trc|canlog_csv|hcrl|hcrl_txt|cantt")
    ] = "auto",
    on_bad_line: Annotated[
        str, typer.Option(help="error: stop at the first bad line; skip: drop and count")
    ] = ("error"),
    report: Annotated[Path | None, typer.Option(help="Also write the ingest report (JSON) here.")] = None,
) -> None:
    """Read any supported CAN log or dataset folder into the canonical frame table (Parquet)."""
    from kdgat.data.formats import FrameError, read_any
    from kdgat.data.frames import write_frames
    from kdgat.io import write_json

    try:
        opts = IngestParams.model_validate({"format": fmt, "on_bad_line": on_bad_line})
    except ValidationError as err:
        _fail(format_validation_error(err, "options"))
    if not src.exists():
        _fail(f"{src}: no such file or folder")
    try:
        frames, rep = read_any(src, fmt=opts.format, on_bad_line=opts.on_bad_line)
    except FrameError as err:
        _fail(str(err))
    write_frames(frames, out)
    if report is not None:
        write_json(rep.to_dict(), report)
    typer.echo(json.dumps(rep.to_dict()), err=True)
    typer.echo(f"wrote {frames.height} frames to {out}")


@app.command()
def graphs(
    frames_path: Annotated[Path, typer.Argument(help="Frame table (.parquet) from `kdgat ingest`.")],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help="Graph shard folder to write.")],
    params: ParamsOpt = Path("params.yaml"),
) -> None:
    """Cut frames into windows and build graph shards (windows, splits, vocabulary from params.yaml)."""
    from kdgat.data.frames import read_frames
    from kdgat.data.graphs import build_graphs

    p = load_params(params)
    meta = build_graphs(read_frames(frames_path), p.windows, p.split, p.vocab, out_dir)
    typer.echo(json.dumps(meta["counts"], indent=1))


@app.command()
def metrics(
    dataset: Annotated[str, typer.Argument(help="Dataset whose metrics/<dataset>.json to show.")] = "synth",
    metric: Annotated[str, typer.Option(help="Metric per cell (f1, recall, fpr, roc_auc, ...).")] = "f1",
) -> None:
    """Print one metric per model × test scenario as a Markdown table (from the evaluate stage's JSON)."""
    from kdgat.results.tables import metrics_table

    path = Path("metrics") / f"{dataset}.json"
    if not path.exists():
        _fail(f"{path}: not found; run `dvc repro evaluate@{dataset}` first")
    typer.echo(metrics_table(json.loads(path.read_text()), metric))


def main() -> None:
    try:
        app()
    except ParamsError as err:
        typer.secho(str(err), fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
