"""`kdgat paper ...`: the checks of the paper's sources that need no Quarto, and its figures as
self-contained HTML files (docs/paper.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kdgat.cli.errors import fail

paper_app = typer.Typer(
    help="The paper (paper/): check its sources, build its figures as self-contained HTML.",
    no_args_is_help=True,
)

PaperOpt = Annotated[Path, typer.Option("--paper", help="The paper's Quarto project folder.")]


@paper_app.command("check")
def check(paper: PaperOpt = Path("paper")) -> None:
    """Config, cross-references, citations, variables, no hand-typed number in the results, figures."""
    from kdgat.paper.check import check_paper

    problems = check_paper(paper)
    for problem in problems:
        typer.secho(f"{paper}: {problem}", fg=typer.colors.RED, err=True)
    if problems:
        raise typer.Exit(2)
    typer.echo(f"{paper}: every check passed")


@paper_app.command("bundle")
def bundle(
    paper: PaperOpt = Path("paper"),
    out: Annotated[Path | None, typer.Option("--out", help="Folder of the HTML files.")] = None,
) -> None:
    """Each interactive figure as one HTML file (default paper/assets/html/) that opens offline."""
    from kdgat.io import DataError
    from kdgat.paper.bundle import bundle_figures

    try:
        written = bundle_figures(paper, out)
    except DataError as err:  # BundleError, or kdgat.io's OutputError for a bad --out
        fail(str(err))
    for path in written:
        typer.echo(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")
