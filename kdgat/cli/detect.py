"""`kdgat detect`: the exported student watching a log file or a live bus (kdgat/edge/detect.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer


def detect(
    source: Annotated[
        Path | None,
        typer.Argument(help="A CAN log in any format `kdgat ingest` reads; omit with --interface."),
    ] = None,
    bundle: Annotated[
        Path, typer.Option(help="Folder of the exported models and detector.json (stage export@<dataset>).")
    ] = Path("onnx/synth"),
    fmt: Annotated[str, typer.Option("--format", help="Log format (auto|candump|asc|blf|...).")] = "auto",
    interface: Annotated[
        str | None, typer.Option(help="python-can interface of a live bus: socketcan, virtual, pcan, ...")
    ] = None,
    channel: Annotated[str | None, typer.Option(help="python-can channel, e.g. can0.")] = None,
    alerts_only: Annotated[bool, typer.Option("--alerts-only", help="Print attack windows only.")] = False,
    follow: Annotated[
        bool, typer.Option("--follow", help="Watch a growing candump log from its end (like tail -f).")
    ] = False,
    realtime: Annotated[
        bool, typer.Option("--realtime", help="Replay a log at the pace it was captured.")
    ] = False,
    threads: Annotated[int, typer.Option(help="ONNX Runtime threads.")] = 1,
    calibrate: Annotated[
        Path | None,
        typer.Option(
            help="A benign log of this vehicle, recorded before: its first calibration seconds "
            "(detector.json) set the alarm threshold so that calibration.fpr of its windows would alarm "
            "(for a vehicle the study never saw; docs/study.md). Printed as the first line."
        ),
    ] = None,
) -> None:
    """One JSON line per window (timestamps, scores, decision, the IDs that weigh most), then a summary.

    Exit status: 0 no attack seen, 1 an attack was seen, 2 an error. SIGINT/SIGTERM stop it cleanly, with
    the summary. Unknown IDs, remote/error frames, out-of-order frames, bad lines and silence are counted.
    """
    from kdgat.data.frames import FrameError
    from kdgat.edge.detect import Detector, Stop, run
    from kdgat.edge.stream import Chunk, Counts, bus_chunks, file_chunks, follow_chunks

    if (source is None) == (interface is None):
        typer.secho("error: give a log file or --interface (not both)", fg=typer.colors.RED, err=True)
        raise typer.Exit(2)
    try:
        detector = Detector(bundle, threads, labelled=source is not None)
    except (FileNotFoundError, ValueError) as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None

    def emit(line: str) -> None:
        print(line, flush=True)

    try:
        if calibrate is not None:
            try:
                emit(json.dumps(detector.calibrate(file_chunks(calibrate, Counts(), fmt))))
            except ValueError as err:  # no complete window in its first seconds
                typer.secho(f"error: --calibrate {calibrate}: {err}", fg=typer.colors.RED, err=True)
                raise typer.Exit(2) from None
        if source is not None and follow:
            summary = run(
                detector, lambda stop: follow_chunks(source, detector.counts, stop), emit, alerts_only
            )
        elif source is not None:
            summary = run(
                detector,
                lambda stop: file_chunks(
                    source, detector.counts, fmt, detector.stride if realtime else 1 << 14, realtime, stop
                ),
                emit,
                alerts_only,
            )
        else:
            import can

            with can.Bus(interface=interface, channel=channel) as bus:

                def chunks(stop: Stop) -> Iterator[Chunk]:
                    return bus_chunks(bus, detector.counts, stop)

                def ready() -> None:
                    typer.echo(f"watching {interface} {channel or ''} (Ctrl-C stops)", err=True)

                summary = run(detector, chunks, emit, alerts_only, ready)
    except FrameError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    except Exception as err:
        if type(err).__module__.split(".")[0] != "can":
            raise
        typer.secho(f"error: {interface} {channel}: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from None
    sys.exit(1 if summary["attack_seen"] else 0)
