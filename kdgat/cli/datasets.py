"""`kdgat datasets`: the dataset catalogue, and `kdgat datasets add` to declare a folder of the user's."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated

import typer

from kdgat.cli.errors import fail
from kdgat.config import ParamsError
from kdgat.data.layout import CALIBRATION, LAYOUT_RULES, SCENARIOS, TRAIN, is_layout_folder, role_of

datasets_app = typer.Typer(
    help=f"""The dataset catalogue: kd-gat's datasets and the project's own (datasets.yaml).

`kdgat datasets` lists them; `kdgat datasets add NAME --path FOLDER` declares one of yours.

{LAYOUT_RULES}""",
    invoke_without_command=True,
    no_args_is_help=False,
)


@datasets_app.callback()
def datasets(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from kdgat.data.catalog import catalogue

    for e in catalogue().values():
        scenarios = ",".join(e.scenarios) or (_scenarios_found(e.raw_dir()) if e.path else "-")
        typer.echo(f"{e.name:<8} {e.title}")
        typer.echo(f"{'':<8} layout={e.layout} format={e.format} scenarios={scenarios}")
        typer.echo(f"{'':<8} attacks={','.join(e.attacks) or '-'}")
        typer.echo(f"{'':<8} source: {e.source}")


@datasets_app.command("add")
def datasets_add(
    name: Annotated[str, typer.Argument(help="Dataset name (lower-case letters, digits, _).")],
    path: Annotated[Path, typer.Option("--path", help="Folder holding the captures (see the layout above).")],
    fmt: Annotated[str, typer.Option("--format", help="auto or a format of `kdgat ingest --help`.")] = "auto",
    attack_from: Annotated[
        str, typer.Option(help="Attack type of a capture from its file name or the folder holding it.")
    ] = "filename",
    title: Annotated[str | None, typer.Option(help="One line saying what the dataset is.")] = None,
) -> None:
    """Check a folder of captures against the layout, declare it in datasets.yaml and link data/raw/NAME."""
    from kdgat.data.catalog import add_dataset
    from kdgat.data.formats import FrameError, detect_format, scan_dataset
    from kdgat.data.layout import role_of, unplaced

    if attack_from not in ("filename", "folder"):
        fail(f"--attack-from must be filename or folder, got {attack_from!r}")
    try:
        files, ignored = scan_dataset(path)
        rel = [f.relative_to(path).as_posix() for f in files]
        if not files:
            raise FrameError(
                path, "no capture files in this folder (`kdgat ingest --help` lists the formats)"
            )
        stray = unplaced(rel)
        if stray:
            raise FrameError(path, f"captures outside the layout folders: {', '.join(stray[:5])}")
        formats = [detect_format(f) if fmt == "auto" else fmt for f in files]
        entry = add_dataset(name, path, fmt, attack_from, title)
    except (FrameError, ParamsError) as err:
        fail(str(err))
    roles = Counter(role_of(r) for r in rel)
    typer.echo(f"{entry.name}: {len(files)} captures ({', '.join(f'{n} {r}' for r, n in roles.items())})")
    typer.echo(f"formats: {', '.join(f'{n} {f}' for f, n in Counter(formats).items())}")
    for f in ignored[:10]:
        typer.echo(f"warning: {f}: not a capture (extension); ingest leaves it out", err=True)
    typer.echo(f"declared in datasets.yaml; data/raw/{name} → {path}")
    typer.echo(f"next: set `datasets: [{name}]` (and `synthetic: []`) in params.yaml, then `dvc repro`")


def _scenarios_found(folder: Path) -> str:
    """The test scenarios a user's dataset folder holds, from its top-level folder names alone (the
    catalogue entry names none: they are whatever the user laid out); read on every listing, so cheap."""
    if not folder.is_dir():
        return f"? ({folder} is missing)"
    tops = [
        d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and any(d.iterdir())
    ]
    if not any(is_layout_folder(t) for t in tops):  # one bag of training captures: graphs cuts the test
        return "known (cut from the training captures)"
    found = {role_of(t) for t in tops if is_layout_folder(t)} - {TRAIN, CALIBRATION}
    return ",".join(s for s in SCENARIOS.values() if s in found) or "- (no test_0N_* folder)"
