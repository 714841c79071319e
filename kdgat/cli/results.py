"""`kdgat results ...`: the Parquet results tables (written by the `results` stage) in the terminal."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import polars as pl
import typer

from kdgat.cli.errors import fail

results_app = typer.Typer(
    help="Query the results tables in results/ (Parquet, via DuckDB); schema in docs/results.md.",
    no_args_is_help=True,
)

DirOpt = Annotated[Path, typer.Option("--dir", help="Results folder (results/<dataset>/<table>.parquet).")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", "-d", help="Only this dataset.")]
ScenarioOpt = Annotated[str | None, typer.Option("--scenario", "-s", help="Only this test scenario.")]


def _print(build: Callable[[], pl.DataFrame]) -> None:
    from kdgat.results.views import ResultsMissingError, render

    try:
        df = build()
    except (ResultsMissingError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) else str(err)
        fail(message)
    typer.echo(render(df))


@results_app.command("leaderboard")
def leaderboard(
    dataset: DatasetOpt = None, scenario: ScenarioOpt = None, results_dir: DirOpt = Path("results")
) -> None:
    """Every model per dataset × scenario, ranked by F1, with precision, recall, FPR, ROC-AUC, MCC, params."""
    from kdgat.results.views import leaderboard as view

    _print(lambda: view(results_dir, dataset, scenario))


@results_app.command("kd-transfer")
def kd_transfer(
    dataset: DatasetOpt = None, scenario: ScenarioOpt = None, results_dir: DirOpt = Path("results")
) -> None:
    """Teacher vs distilled vs plain student per dataset × family × scenario: F1, KD gain, compression."""
    from kdgat.results.views import kd_transfer as view

    _print(lambda: view(results_dir, dataset, scenario))


@results_app.command("show")
def show(
    table: Annotated[str, typer.Argument(help="A table or view (`kdgat results tables` lists them).")],
    dataset: DatasetOpt = None,
    columns: Annotated[str | None, typer.Option(help="Comma-separated columns to print.")] = None,
    limit: Annotated[int, typer.Option(help="Rows to print.")] = 20,
    results_dir: DirOpt = Path("results"),
) -> None:
    """Print the first rows of any table or view."""
    from kdgat.results.views import show as view

    def build() -> pl.DataFrame:
        df = view(results_dir, table, dataset, limit)
        if columns is None:
            return df
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in df.columns]
        if unknown:
            raise KeyError(f"{table} has no column(s) {unknown}; it has {df.columns}")
        return df.select(wanted)

    _print(build)


@results_app.command("tables")
def tables(results_dir: DirOpt = Path("results")) -> None:
    """List the tables and views with their datasets and rows."""
    from kdgat.results.views import table_counts

    _print(lambda: table_counts(results_dir))


@results_app.command("schema")
def schema() -> None:
    """Print the documented schema of every table and view (Markdown; it is docs/results.md)."""
    from kdgat.results.schema import schema_markdown

    typer.echo(schema_markdown(), nl=False)
