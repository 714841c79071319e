"""The `kdgat` command line: help, catalogue, synth → ingest → graphs, and bad input exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from support.can_logs import kdgat, kdgat_process

from kdgat.data.frames import FRAME_SCHEMA


def test_help_lists_commands() -> None:
    # in a fresh process, as installed: the entry point itself, and every command's imports
    out = kdgat_process("--help").stdout
    for command in ("synth", "ingest", "datasets", "graphs"):
        assert command in out


def test_datasets_lists_catalogue() -> None:
    out = kdgat("datasets").stdout
    for name in ("synth", "hcrl_ch", "hcrl_sa", "set_01", "set_02", "set_03", "set_04"):
        assert f"{name} " in out


@pytest.mark.slow
def test_synth_ingest_graphs(tmp_path: Path) -> None:
    raw, frames, graphs = tmp_path / "raw", tmp_path / "frames.parquet", tmp_path / "graphs"
    assert kdgat("synth", raw, "--seed", "3", "--minutes", "0.5").returncode == 0
    assert (raw / "manifest.json").exists()
    res = kdgat("ingest", raw, "-o", frames)
    assert res.returncode == 0, res.stderr
    df = pl.read_parquet(frames)
    assert df.schema == pl.Schema(FRAME_SCHEMA)
    assert df["label"].sum() > 0
    res = kdgat("graphs", frames, "-o", graphs, "--params", Path(__file__).parents[1] / "params.yaml")
    assert res.returncode == 0, res.stderr
    assert (graphs / "meta.json").exists()


def test_ingest_bad_line_names_file_and_line(tmp_path: Path) -> None:
    log = tmp_path / "bad.log"
    log.write_text("(1.000000) can0 123#0011\n(1.001000) can0 12Z#0011\n")
    out = tmp_path / "frames.parquet"
    res = kdgat("ingest", log, "-o", out, "--format", "candump")
    assert res.returncode != 0
    assert f"{log}:2" in res.stderr
    assert not out.exists()
    res = kdgat("ingest", log, "-o", out, "--format", "candump", "--on-bad-line", "skip")
    assert res.returncode == 0, res.stderr
    assert pl.read_parquet(out).height == 1


def test_ingest_rejects_unknown_format(tmp_path: Path) -> None:
    res = kdgat("ingest", tmp_path, "-o", tmp_path / "x.parquet", "--format", "pcap")
    assert res.returncode != 0
    assert "format: Input should be 'auto'" in res.stderr


def test_metrics_table(tmp_path: Path) -> None:
    (tmp_path / "metrics").mkdir()
    metrics = {"gat_large": {"known": {"f1": 0.991}, "unknown_attack": {"f1": None}}}
    (tmp_path / "metrics" / "synth.json").write_text(json.dumps(metrics))
    out = kdgat("metrics", "synth", cwd=tmp_path).stdout.splitlines()
    assert out[0] == "| model | known | unknown_attack |"
    assert out[2] == "| gat_large | 0.991 | — |"
    assert kdgat("metrics", "nope", cwd=tmp_path).returncode != 0
    picked = kdgat(
        "metrics", "synth", "--scenarios", "unknown_attack,known", cwd=tmp_path
    ).stdout.splitlines()
    assert picked[0] == "| model | unknown_attack | known |" and picked[2] == "| gat_large | — | 0.991 |"
    wrong = kdgat("metrics", "synth", "--scenarios", "known,elsewhere", cwd=tmp_path)
    assert wrong.returncode != 0 and "no scenario elsewhere" in wrong.stderr


def test_graphs_of_a_missing_or_foreign_file_is_one_line(tmp_path: Path) -> None:
    """A frame table that is not there, a folder or not Parquet: exit 2 and one line naming it."""
    (tmp_path / "notes.parquet").write_text("not parquet")
    for path, what in [
        (tmp_path / "missing.parquet", "no such file"),
        (tmp_path, "is a folder"),
        (tmp_path / "notes.parquet", "not a frame table"),
    ]:
        res = kdgat("graphs", path, "-o", tmp_path / "g")
        assert res.returncode == 2, res.stderr
        assert res.stderr.startswith(f"error: {path}: {what}") and len(res.stderr.splitlines()) == 1
    assert not (tmp_path / "g").exists()


def test_graphs_prints_the_split_warnings_of_the_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`kdgat graphs` warns as the graphs stage does (splits.split_warnings), before its counts."""
    import kdgat.data.graphs as graphs
    from kdgat.data.frames import empty_frames, write_frames

    write_frames(empty_frames(), tmp_path / "f.parquet")
    counts = {"train": {"benign": 40, "attack": 3}, "val": {"benign": 9, "attack": 2}}
    monkeypatch.setattr(graphs, "build_graphs", lambda *a, **k: {"counts": counts})
    res = kdgat("graphs", tmp_path / "f.parquet", "-o", tmp_path / "g")
    assert res.returncode == 0, res.stderr
    assert res.stderr.startswith("warning: train has 3 attack windows, under 10 batches of")
    assert json.loads(res.stdout) == counts
