"""`kdgat` — the command line. Each command wires library functions; the DVC stages call the same ones."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from kdgat.cli.datasets import datasets_app
from kdgat.cli.detect import detect
from kdgat.cli.errors import fail as _fail
from kdgat.cli.hpo import hpo
from kdgat.cli.launch import launch
from kdgat.cli.outputs import refuse_inside_inputs
from kdgat.cli.paper import paper_app
from kdgat.cli.publish import publish
from kdgat.cli.remote import remote_app
from kdgat.cli.results import results_app
from kdgat.cli.track import track_app
from kdgat.config import (
    IngestParams,
    ParamsError,
    SynthParams,
    format_validation_error,
    load_params,
    params_here,
)
from kdgat.data.format_names import format_help

if TYPE_CHECKING:
    import polars as pl

M = TypeVar("M", bound=BaseModel)
FORMAT_HELP = format_help()

app = typer.Typer(
    help="kd-gat: CAN-bus intrusion detection with GNNs and knowledge distillation.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(results_app, name="results")
app.add_typer(track_app, name="track")
app.add_typer(remote_app, name="remote")
app.add_typer(paper_app, name="paper")
app.add_typer(datasets_app, name="datasets")
app.command()(hpo)
app.command()(detect)
app.command()(launch)
app.command()(publish)

ParamsOpt = Annotated[Path, typer.Option("--params", help="Parameters file.")]
ForceOpt = Annotated[
    bool,
    typer.Option(
        "--force",
        help="Replace an existing output even where kdgat did not write it; write inside an input folder.",
    ),
]


_REPLACES = "replaced atomically if kdgat wrote it; any other non-empty folder or file needs --force"


def _validated(model: type[M], base: M, overrides: Mapping[str, object]) -> M:
    """``base`` with command-line overrides, validated like params.yaml (model_copy would not check)."""
    try:
        return model.model_validate({**base.model_dump(), **overrides})
    except ValidationError as err:
        _fail(format_validation_error(err, "options"))


@app.command()
def synth(
    out_dir: Annotated[Path, typer.Argument(help=f"Folder to write ({_REPLACES}).")],
    seed: Annotated[int | None, typer.Option(help="Random seed (default: params.yaml synth.seed).")] = None,
    minutes: Annotated[
        float | None, typer.Option(help="Total minutes of traffic (default: params.yaml synth.minutes).")
    ] = None,
    params: ParamsOpt = Path("params.yaml"),
    force: ForceOpt = False,
) -> None:
    """Generate the synthetic CAN dataset in the can-train-and-test layout."""
    from kdgat.data.synth import generate
    from kdgat.io import OutputError

    base = params_here(params).synth
    overrides = {k: v for k, v in {"seed": seed, "minutes": minutes}.items() if v is not None}
    try:
        manifest = generate(out_dir, _validated(SynthParams, base, overrides), force=force)
    except OutputError as err:
        _fail(str(err))
    typer.echo(f"wrote {len(manifest['files'])} captures to {out_dir}")


@app.command()
def inject(
    src_dir: Annotated[Path, typer.Argument(help="Folder of benign captures (e.g. the WRX candump logs).")],
    out_dir: Annotated[Path, typer.Argument(help=f"Folder to write ({_REPLACES}).")],
    seed: Annotated[int | None, typer.Option(help="Random seed (default: params.yaml inject.seed).")] = None,
    params: ParamsOpt = Path("params.yaml"),
    force: ForceOpt = False,
) -> None:
    """Inject Car-Hacking attacks into real benign captures (can-train-and-test layout)."""
    from kdgat.config import InjectParams
    from kdgat.data.frames import FrameError
    from kdgat.data.inject import build_injected
    from kdgat.io import OutputError

    base = params_here(params).inject
    refuse_inside_inputs(out_dir, [src_dir], force)
    try:
        overrides = {} if seed is None else {"seed": seed}
        manifest = build_injected(src_dir, out_dir, _validated(InjectParams, base, overrides), force=force)
    except (FileNotFoundError, FrameError, OutputError) as err:
        _fail(str(err))
    typer.echo(f"wrote {len(manifest['files'])} captures to {out_dir}")


@app.command(
    help=f"""Read any supported CAN log or dataset folder into the canonical frame table (Parquet).

Formats (--format, default auto: detected per file):

{FORMAT_HELP}

Compressed files (.gz, .xz, .zst) are read as the log inside them."""
)
def ingest(
    src: Annotated[Path, typer.Argument(help="A log file or a dataset folder.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Frame table to write (.parquet); not a folder.")],
    fmt: Annotated[str, typer.Option("--format", help="auto or a format named above.")] = "auto",
    on_bad_line: Annotated[
        str, typer.Option(help="error: stop at the first bad line; skip: drop and count")
    ] = ("error"),
    report: Annotated[Path | None, typer.Option(help="Also write the ingest report (JSON) here.")] = None,
    force: ForceOpt = False,
) -> None:
    from kdgat.data.formats import FrameError, read_any
    from kdgat.data.frames import write_frames
    from kdgat.io import OutputError, check_output, write_json

    try:
        opts = IngestParams.model_validate({"format": fmt, "on_bad_line": on_bad_line})
    except ValidationError as err:
        _fail(format_validation_error(err, "options"))
    if not src.exists():
        _fail(f"{src}: no such file or folder")
    outputs = [out] if report is None else [out, report]
    if report is not None and report.resolve() == out.resolve():
        _fail(f"{report}: --report and -o name the same file")
    for dest in outputs:
        refuse_inside_inputs(dest, [src], force)
    try:
        for dest in outputs:  # before reading: a bad destination fails in a second, not after the read
            check_output(dest, force=force, inputs=[src])
        frames, rep = read_any(src, fmt=opts.format, on_bad_line=opts.on_bad_line)
        write_frames(frames, out, force=force, inputs=[src])
        if report is not None:
            write_json(rep.to_dict(), report, force=force, inputs=[src])
    except (FrameError, OutputError) as err:
        _fail(str(err))
    for name in rep.ignored[:10]:
        typer.echo(f"warning: {src / name}: not a capture (extension); left out", err=True)
    typer.echo(json.dumps(rep.to_dict()), err=True)
    typer.echo(f"wrote {frames.height} frames to {out}")


@app.command()
def graphs(
    frames_path: Annotated[Path, typer.Argument(help="Frame table (.parquet) from `kdgat ingest`.")],
    out_dir: Annotated[Path, typer.Option("-o", "--out", help=f"Graph shard folder to write ({_REPLACES}).")],
    params: ParamsOpt = Path("params.yaml"),
    force: ForceOpt = False,
) -> None:
    """Cut frames into windows and build graph shards (windows, splits, vocabulary from params.yaml)."""
    from kdgat.data.graphs import build_graphs
    from kdgat.data.splits import SplitError, split_warnings
    from kdgat.io import OutputError, check_output

    p = load_params(params)
    try:
        check_output(out_dir, folder=True, force=force, inputs=[frames_path])
        frames = _frame_table(frames_path)
        meta = build_graphs(
            frames,
            p.windows,
            p.split,
            p.vocab,
            out_dir,
            force=force,
            batch_size=p.train.batch_size,
            calibration=p.calibration,
        )
    except (OutputError, SplitError) as err:
        _fail(str(err))
    for warning in split_warnings(meta["counts"], p.train.batch_size):  # what the graphs stage warns
        typer.echo(f"warning: {warning}", err=True)
    typer.echo(json.dumps(meta["counts"], indent=1))


def _frame_table(path: Path) -> pl.DataFrame:
    """The frame table `kdgat ingest` wrote at ``path``, or one line saying why it cannot be read."""
    import polars as pl

    from kdgat.data.frames import read_frames

    if not path.is_file():
        what = "is a folder" if path.is_dir() else "no such file"
        _fail(f"{path}: {what}; `kdgat ingest CAPTURES -o {path}` writes the frame table")
    try:
        return read_frames(path)
    except (OSError, pl.exceptions.PolarsError, ValueError) as err:  # not Parquet, or not kdgat's columns
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        _fail(f"{path}: not a frame table of `kdgat ingest` ({first})")


@app.command()
def metrics(
    dataset: Annotated[str, typer.Argument(help="Dataset whose metrics/<dataset>.json to show.")] = "synth",
    metric: Annotated[str, typer.Option(help="Metric per cell (f1, recall, fpr, roc_auc, ...).")] = "f1",
    scenarios: Annotated[
        str | None, typer.Option(help="Comma-separated scenarios to show, in that order (default: all).")
    ] = None,
) -> None:
    """Print one metric per model × test scenario as a Markdown table (from the evaluate stage's JSON)."""
    from kdgat.results.tables import metrics_table

    path = Path("metrics") / f"{dataset}.json"
    if not path.exists():
        _fail(f"{path}: not found; run `dvc repro evaluate@{dataset}` first")
    metrics = json.loads(path.read_text())
    chosen = scenarios.split(",") if scenarios else None
    unknown = sorted(set(chosen or ()) - {s for by in metrics.values() for s in by})
    if unknown:
        _fail(f"{path}: no scenario {', '.join(unknown)}")
    typer.echo(metrics_table(metrics, metric, chosen))


def main() -> None:
    try:
        app()
    except ParamsError as err:
        typer.secho(str(err), fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
