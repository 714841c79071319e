"""On the car (kdgat/edge/): a tiny study exported to ONNX, its parity report, and `kdgat detect` over the
same captures — from a file, from python-can's virtual bus, with bad frames, and stopped by a signal."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import can
import numpy as np
import onnx
import polars as pl
import pytest
from support.tiny_project import tiny_graphs, tiny_params

from kdgat.bench.edge import candump_lines
from kdgat.config import ExportParams
from kdgat.data import formats_core
from kdgat.data.formats import read_capture
from kdgat.data.graphs import expected_of_meta
from kdgat.data.shards import load_meta, load_split
from kdgat.edge.build import bundle_dir, export_dataset
from kdgat.edge.detect import Detector, run
from kdgat.edge.runtime import graph_inputs
from kdgat.edge.stream import Chunk, Counts, Windower, bus_chunks, file_chunks, follow_chunks
from kdgat.evaluate.report import evaluate
from kdgat.fusion.policy import vehicle_threshold
from kdgat.fusion.train import train_fusion
from kdgat.io import write_json, write_parquet
from kdgat.models import build_gat, build_vgae
from kdgat.study import Model, Paths
from kdgat.train.data import collate, load_graphs
from kdgat.train.infer import predict
from kdgat.train.weights import save_model

DATASET = "tiny"
MODELS = ("gat_small_kd", "vgae_small_kd", "fusion_small_kd")


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[Paths, dict, Path]:
    """A tiny study (seeded untrained GAT and VGAE students, a fitted fusion, its metrics) exported:
    (paths, the parity report, the work folder with raw/ captures and full/ = every graph of them)."""
    root = tmp_path_factory.mktemp("edge")
    paths, params = Paths(DATASET, root), tiny_params()
    tiny_graphs(root / "work", dest=paths.graphs)
    meta = load_meta(paths.graphs)
    for m, model in (
        ("gat_small_kd", build_gat(params.models.gat.small, meta, seed=0)),
        ("vgae_small_kd", build_vgae(params.models.vgae.small, meta, seed=0)),
    ):
        save_model(model.eval(), paths.weights(Model.parse(m)), {}, params.vgae_train)
        write_parquet(predict(paths.weights(Model.parse(m)), paths.graphs), paths.predictions(Model.parse(m)))
    fused = Model.parse("fusion_small_kd")
    outs = paths.outputs(fused)
    train_fusion(
        params,
        paths.predictions(Model.parse("vgae_small_kd")),
        paths.predictions(Model.parse("gat_small_kd")),
        "small",
        outs.weights,
        report=outs.report,
        predictions=paths.predictions(fused),
    )
    tables = {m: paths.predictions(Model.parse(m)) for m in MODELS}
    write_json(evaluate(tables, params.calibration.fpr), paths.metrics)
    export = ExportParams(
        opset=18, models=list(MODELS), detector="fusion_small_kd", batch_size=16, quantize=True
    )
    report = export_dataset(DATASET, export, params.calibration, paths)
    return paths, report, root / "work"


def _capture(work: Path) -> tuple[Path, int]:
    """The shortest test capture with attack windows among the study's test graphs (the tiny subset keeps
    a few per split), and its index in the graph folders' file list."""
    files = load_meta(work / "full")["files"]
    graphs = work.parent / "data" / "graphs" / DATASET
    held = set()
    for split in load_meta(graphs)["counts"]:
        if split.startswith("test_"):
            s = load_split(graphs, split)
            held |= set(np.asarray(s.file_idx)[np.asarray(s.y) == 1].tolist())
    f = min(held, key=lambda i: files[i]["frames"])
    return work / "raw" / files[f]["source"], f


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_exported_files_decide_as_the_study(study: tuple[Paths, dict, Path]) -> None:
    paths, report, _ = study
    int8 = [f"{m}.int8.onnx" for m in MODELS if not m.startswith("fusion")]
    assert sorted(p.name for p in bundle_dir(paths).iterdir()) == sorted(
        ["detector.json", *(f"{m}.onnx" for m in MODELS), *int8]
    )
    for m in MODELS:
        proto = onnx.load(str(bundle_dir(paths) / f"{m}.onnx"))  # weights inside: no external data
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
        r = report["models"][m]
        assert r["decision_flips_test"] == 0 and r["decision_flips_val"] == 0, m
        assert r["metrics_equal"] or r["metrics_max_abs_diff"] < 1e-6, m
        # float32 rounding: within 1e-4 of each column's own size (an untrained VGAE's KL runs to thousands)
        table = pl.read_parquet(paths.predictions(Model.parse(m)))
        for c, diff in r["max_abs_diff"].items():
            size = float(table[c].abs().max()) if c in table.columns else 1.0
            assert diff < 1e-4 * max(1.0, size), (m, c, diff, size)
    bundle = json.loads((bundle_dir(paths) / "detector.json").read_text())
    assert bundle["detector"] == {"fusion": "fusion_small_kd", "vgae": "vgae_small_kd", "gat": "gat_small_kd"}
    assert set(bundle) >= {"vocab", "scalers", "windows", "thresholds", "policy", "models"}
    assert json.loads(paths.report("export").read_text()) == report
    assert bundle["models"][bundle["detector"]["gat"]]["file"] == "gat_small_kd.onnx"  # float, never int8


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_int8_copies_are_reported_beside_the_float_files(study: tuple[Paths, dict, Path]) -> None:
    paths, report, _ = study
    for m in ("gat_small_kd", "vgae_small_kd"):
        q = report["models"][m]["int8"]
        assert (bundle_dir(paths) / q["file"]).stat().st_size == q["file_bytes"]
        assert q["size_ratio"] < 1 and q["single_graph_ms"]["int8"] > 0 and q["speedup"] > 0
        assert q["decision_flips_test"] >= 0 and set(q["f1"]) >= {"known"}
        assert all(v["study"] == report["models"][m]["f1"][s]["study"] for s, v in q["f1"].items())
    assert "int8" not in report["models"]["fusion_small_kd"]


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_graph_count_nodes_and_edges_are_dynamic(study: tuple[Paths, dict, Path]) -> None:
    import onnxruntime as ort

    paths, _, _ = study
    graphs = load_graphs(paths.graphs, "test_known")
    sess = ort.InferenceSession(str(bundle_dir(paths) / "vgae_small_kd.onnx"))
    for idx in ([0, 1], [3], list(range(len(graphs)))):
        b = collate(graphs, idx)
        out = sess.run(
            ["score"],
            {
                k: v.numpy()
                for k, v in zip(
                    ("x", "node_vocab", "edge_index", "edge_attr", "batch"), b.inputs(), strict=True
                )
            },
        )
        assert out[0].shape == (len(idx),)


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_detector_graphs_are_the_graphs_stage_graphs(study: tuple[Paths, dict, Path]) -> None:
    paths, _, work = study
    capture, f = _capture(work)
    frames, _ = read_capture(capture)
    detector = Detector(bundle_dir(paths))
    chunks = list(file_chunks(capture, Counts(), chunk=777))  # cuts that fall inside windows
    windower = Windower(detector.size, detector.stride)
    got: dict[int, tuple] = {}
    for chunk in chunks:
        cut = windower.push(chunk)
        if cut is None:
            continue
        part, starts, first = cut
        b = detector.graphs(part, starts)
        node_ptr, edge_ptr = np.cumsum([0, *b.n_nodes]), np.cumsum([0, *b.n_edges])
        for i, s in enumerate(starts):
            got[int(s) + first] = (
                b.x[node_ptr[i] : node_ptr[i + 1]],
                b.node_vocab[node_ptr[i] : node_ptr[i + 1]],
                b.edge_index[:, edge_ptr[i] : edge_ptr[i + 1]],
                b.edge_attr[edge_ptr[i] : edge_ptr[i + 1]],
            )
    compared = 0
    for split in load_meta(work / "full")["counts"]:
        if split.endswith("_calibrated") or split == "calibration":
            continue  # built through the unseen vehicle's ID alignment: a calibrated detector's (test above)
        s = load_split(work / "full", split)
        for g in np.flatnonzero(np.asarray(s.file_idx) == f):
            mine, theirs = got[int(s.start_row[g])], s.graph(int(g))
            for a, b_ in zip(
                mine, (theirs.x, theirs.node_vocab, theirs.edge_index, theirs.edge_attr), strict=True
            ):
                np.testing.assert_array_equal(a, b_)
            compared += 1
    assert compared > 10 and len(got) == (frames.height - detector.size) // detector.stride + 1


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_calibrated_detector_graphs_are_the_calibrated_splits(study: tuple[Paths, dict, Path]) -> None:
    """After `--calibrate`, the unseen vehicle's windows are the stage's *_calibrated graphs: its ID
    alignment and, with windows.absent_ids, its own expected IDs."""
    paths, _, work = study
    (calibration,) = sorted((work / "raw").glob("calibration_*/*.csv"))
    detector = Detector(bundle_dir(paths))
    detector.calibrate(file_chunks(calibration, detector.counts))
    files = load_meta(work / "full")["files"]
    s = load_split(work / "full", "test_unknown_vehicle_calibrated")
    f = int(np.asarray(s.file_idx)[0])
    graphs = np.flatnonzero(np.asarray(s.file_idx) == f)
    frames = Chunk.join(list(file_chunks(work / "raw" / files[f]["source"], Counts())))
    starts = np.asarray(s.start_row)[graphs].astype(np.int64)
    b = detector.graphs(frames, starts)
    node_ptr = np.cumsum([0, *b.n_nodes])
    for i, g in enumerate(graphs):
        theirs = s.graph(int(g))
        np.testing.assert_array_equal(b.node_vocab[node_ptr[i] : node_ptr[i + 1]], theirs.node_vocab)
        np.testing.assert_array_equal(b.x[node_ptr[i] : node_ptr[i + 1]], theirs.x)
    assert len(graphs) > 5


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_detector_inputs_have_training_self_loops(study: tuple[Paths, dict, Path]) -> None:
    paths, _, _ = study
    split = load_split(paths.graphs, "test_known")
    graphs = load_graphs(paths.graphs, "test_known")
    from kdgat.data.features import GraphBatch

    idx = np.arange(len(split.y))
    n_nodes, n_edges = np.diff(split.node_ptr), np.diff(split.edge_ptr)
    b = GraphBatch(
        n_nodes,
        n_edges,
        np.asarray(split.x),
        np.asarray(split.node_vocab),
        np.asarray(split.edge_index),
        np.asarray(split.edge_attr),
        np.asarray(split.y),
        np.asarray(split.y_type),
        np.asarray(split.t_start),
        np.asarray(split.start_row),
        np.asarray(split.file_idx),
        np.zeros((len(idx), 2), np.uint64),
    )
    mine = graph_inputs(b)
    theirs = collate(graphs, idx)
    for k, v in zip(("x", "node_vocab", "edge_index", "edge_attr", "batch"), theirs.inputs(), strict=True):
        np.testing.assert_array_equal(mine[k], v.numpy(), err_msg=k)


def _file_run(paths: Paths, capture: Path) -> tuple[list[dict], dict]:
    lines: list[str] = []
    detector = Detector(bundle_dir(paths), labelled=True)
    summary = run(detector, lambda stop: file_chunks(capture, detector.counts, stop=stop), lines.append)
    return [json.loads(x) for x in lines[:-1]], summary


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_file_detector_flags_attacks_as_the_offline_evaluation(study: tuple[Paths, dict, Path]) -> None:
    paths, _, work = study
    capture, _ = _capture(work)
    windows, summary = _file_run(paths, capture)
    assert summary["windows"] == len(windows) and summary["alerts"] == sum(w["attack"] for w in windows)
    assert summary["frames"] == read_capture(capture)[0].height and summary["frames_per_s"] > 0
    # the same windows in the study's graph folder (the tiny subset) and the fusion's offline decisions
    offline = pl.read_parquet(paths.predictions(Model.parse("fusion_small_kd")))
    by_row = {w["first_frame"]: w for w in windows}
    meta_files = [x["source"] for x in load_meta(paths.graphs)["files"]]
    f_sub = meta_files.index(capture.relative_to(work / "raw").as_posix())
    matched = 0
    for split in ("test_known", "test_unknown_vehicle", "test_unknown_attack", "test_unknown_both", "val"):
        if not (paths.graphs / split).is_dir():
            continue
        s = load_split(paths.graphs, split)
        rows = offline.filter(pl.col("split") == split)
        for g in np.flatnonzero(np.asarray(s.file_idx) == f_sub):
            w = by_row[int(s.start_row[g])]
            assert w["attack"] == bool(rows.filter(pl.col("index") == int(g))["decision"][0])
            assert w["label"] == int(s.y[g])
            matched += 1
    assert matched > 0


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_file_read_in_small_blocks_gives_the_same_lines(
    study: tuple[Paths, dict, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log read a few hundred bytes at a time (kdgat/data/formats.read_capture_blocks) makes the output of
    the log read whole, line for line (timings aside): windows across the blocks' ends, bad lines,
    remote frames and timestamps going backwards among them."""
    paths, _, work = study
    capture, _ = _capture(work)
    lines = candump_lines(read_capture(capture)[0])
    for i in range(len(lines) - 40, 0, -97):  # trouble every 97 frames
        t = lines[i][1 : lines[i].index(")")]
        lines[i : i + 1] = [lines[i], "junk", f"({float(t) - 1:.6f}) can0 123#01", f"({t}) can0 7FF#R"]
    log = tmp_path / "messy.log"
    log.write_text("\n".join(lines) + "\n")

    def output(block_bytes: int) -> list[dict]:
        out: list[str] = []
        detector = Detector(bundle_dir(paths), labelled=True)
        run(
            detector,
            lambda stop: file_chunks(log, detector.counts, stop=stop, block_bytes=block_bytes),
            out.append,
        )
        timing = ("frames_per_s", "wall_s", "latency_ms", "seconds")
        return [{k: v for k, v in json.loads(x).items() if k not in timing} for x in out]

    whole = output(1 << 30)
    monkeypatch.setattr(formats_core, "HEAD_BYTES", 300)  # else the first 64 KiB come at once
    blocks = output(300)
    assert blocks == whole
    assert whole[-1]["bad_lines"] > 10 and whole[-1]["out_of_order"] > 10 and whole[-1]["non_data"] > 10
    assert whole[-1]["windows"] > 5


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_virtual_bus_matches_the_file(study: tuple[Paths, dict, Path]) -> None:
    paths, _, work = study
    capture, _ = _capture(work)
    from_file, _ = _file_run(paths, capture)
    frames, _ = read_capture(capture)
    channel = f"edge-{os.getpid()}"
    detector = Detector(bundle_dir(paths))
    sent = threading.Event()
    bus: dict[str, Any] = {"interface": "virtual", "channel": channel, "preserve_timestamps": True}
    with can.Bus(**bus) as rx, can.Bus(**bus) as tx:

        def send() -> None:
            for r in frames.iter_rows(named=True):
                data = bytes(r[f"b{i}"] for i in range(r["dlc"]))
                tx.send(
                    can.Message(
                        timestamp=r["timestamp"],
                        arbitration_id=r["can_id"],
                        is_extended_id=r["extended"],
                        dlc=r["dlc"],
                        data=data,
                    )
                )
            tx.send(can.Message(arbitration_id=0x7FF, is_remote_frame=True))  # counted, dropped
            tx.send(can.Message(arbitration_id=0, is_error_frame=True))
            tx.send(can.Message(timestamp=0.0, arbitration_id=0x123, data=b"\x01"))  # out of order
            sent.set()

        quiet_before: list[float] = []

        def drained() -> bool:  # everything sent, and the bus went silent since
            if not sent.is_set():
                return False
            quiet_before.append(detector.counts.silent_s)
            return detector.counts.silent_s > quiet_before[0]

        threading.Thread(target=send, daemon=True).start()
        lines: list[str] = []
        summary = run(
            detector,
            lambda stop: bus_chunks(rx, detector.counts, lambda: stop() or drained(), poll_s=0.05),
            lines.append,
        )
    live = [json.loads(x) for x in lines[:-1]]
    assert [w["attack"] for w in live] == [w["attack"] for w in from_file]
    assert [w["first_frame"] for w in live] == [w["first_frame"] for w in from_file]
    assert summary["non_data"] == 2 and summary["out_of_order"] == 1
    assert summary["frames"] == frames.height


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_cli_exit_status_alerts_only_and_clean_stop_on_either_signal(study: tuple[Paths, dict, Path]) -> None:
    paths, _, work = study
    capture, _ = _capture(work)
    cmd = [sys.executable, "-m", "kdgat.cli.main", "detect"]
    out = subprocess.run(
        [*cmd, str(capture), "--bundle", str(bundle_dir(paths)), "--alerts-only"],
        capture_output=True,
        text=True,
    )
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    summary = lines[-1]
    assert all(x["attack"] for x in lines[:-1]) and len(lines) - 1 == summary["alerts"]
    assert out.returncode == (1 if summary["alerts"] else 0), out.stderr
    bad = subprocess.run(
        [*cmd, str(work / "nope.log"), "--bundle", str(bundle_dir(paths))], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "nope.log" in bad.stderr
    for sig in (signal.SIGTERM, signal.SIGINT):
        live = subprocess.Popen(
            [*cmd, "--interface", "virtual", "--channel", "quiet", "--bundle", str(bundle_dir(paths))],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert live.stderr is not None
        assert "watching virtual quiet" in live.stderr.readline()  # signals handled from here on
        time.sleep(1)
        live.send_signal(sig)
        stdout, stderr = live.communicate(timeout=60)
        summary = json.loads(stdout.splitlines()[-1])
        assert live.returncode == 0, stderr
        assert summary["stopped_by"] == sig.name and summary["windows"] == 0 and summary["silent_s"] > 0


def test_realtime_replays_at_the_captures_pace(tmp_path: Path) -> None:
    """--realtime: no chunk before its frames' capture time; without it the file is read at once."""
    log = tmp_path / "paced.log"
    log.write_text("".join(f"({1000 + i * 0.01:.6f}) can0 123#{i % 256:02X}\n" for i in range(81)))

    def replay(realtime: bool) -> tuple[float, list[float]]:
        started, seen = time.monotonic(), []
        for part in file_chunks(log, Counts(), chunk=20, realtime=realtime):
            seen.append(float(part.ts[-1]) - 1000 - (time.monotonic() - started))
        return time.monotonic() - started, seen

    paced, ahead = replay(True)
    assert paced >= 0.8 and max(ahead) <= 0.0  # the last frame is 0.8 s into the capture
    assert replay(False)[0] < 0.5


def test_windower_cuts_like_the_graphs_stage() -> None:
    w = Windower(4, 2)
    ts = np.arange(11, dtype=np.float64)
    chunk = Chunk(
        ts,
        np.zeros(11, np.int64),
        np.zeros(11, np.uint8),
        np.zeros((11, 8), np.uint8),
        np.zeros(11, np.uint8),
    )
    starts = []
    for lo in range(0, 11, 3):
        cut = w.push(chunk.rows(lo, lo + 3))
        if cut is not None:
            starts += [int(s) + cut[2] for s in cut[1]]
    assert starts == [0, 2, 4, 6]  # window_starts(11, 4, 2)


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_follow_reads_a_growing_candump_log(study: tuple[Paths, dict, Path]) -> None:
    paths, _, work = study
    capture, _ = _capture(work)
    from_file, _ = _file_run(paths, capture)
    frames, _ = read_capture(capture)
    lines = candump_lines(frames)
    log = work / "growing.log"
    log.write_text("")
    written = threading.Event()

    def write() -> None:
        for lo in range(0, len(lines), 997):  # batches that end mid-window
            with open(log, "a") as f:
                f.write("\n".join(lines[lo : lo + 997]) + "\n")
            time.sleep(0.05)
        with open(log, "a") as f:
            f.write("(0.000001) can0 123#01\nnot a candump line\n(1.0) can0 12")  # old, bad, incomplete
        written.set()

    detector = Detector(bundle_dir(paths))
    quiet_before: list[float] = []

    def drained() -> bool:
        if not written.is_set():
            return False
        quiet_before.append(detector.counts.silent_s)
        return detector.counts.silent_s > quiet_before[0]

    writer = threading.Thread(target=write, daemon=True)
    out: list[str] = []
    summary = run(
        detector,
        lambda stop: follow_chunks(log, detector.counts, lambda: stop() or drained(), 0.05),
        out.append,
        ready=writer.start,  # tail -f: lines written before the detector opened the log are not read
    )
    followed = [json.loads(x) for x in out[:-1]]
    assert [w["first_frame"] for w in followed] == [w["first_frame"] for w in from_file]
    assert summary["frames"] == frames.height
    assert summary["out_of_order"] == 1 and summary["bad_lines"] >= 1


@pytest.mark.parametrize(
    ("detector", "models", "message"),
    [
        ("gat_small_kd", ["gat_small_kd"], "detector must be a fusion model"),
        ("fusion_small_kd", ["gat_small_kd", "fusion_small_kd"], "needs ['vgae_small_kd'] in export.models"),
    ],
)
def test_export_params_name_what_the_detector_needs(detector: str, models: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        ExportParams(opset=18, models=models, detector=detector, batch_size=8, quantize=False)


@pytest.mark.slow  # exports a tiny study to ONNX (about a minute)
def test_calibrate_sets_the_threshold_on_the_vehicles_first_seconds(study: tuple[Paths, dict, Path]) -> None:
    paths, _, work = study
    calibration = sorted((work / "raw").glob("calibration_*/*.csv"))
    assert len(calibration) == 1
    detector = Detector(bundle_dir(paths), labelled=True)
    line = detector.calibrate(file_chunks(calibration[0], detector.counts))
    assert detector.counts.frames == 0  # counting starts over
    # the same ID alignment as the graphs stage made for the study's unseen vehicle, from the same frames
    assert line["alignment"] == load_meta(paths.graphs)["alignment"]["unseen_vehicle"]
    expected = load_meta(paths.graphs)["expected_ids"]
    if expected is not None:  # windows.absent_ids: the car's own steady IDs, as the graphs stage found them
        car = expected_of_meta([expected["unseen_vehicle"]], len(detector.known))
        np.testing.assert_array_equal(detector.expected, car)
    again = Detector(bundle_dir(paths))  # the calibration capture, scored through the same alignment
    again.calibrate(file_chunks(calibration[0], again.counts))
    lines: list[str] = []
    run(again, lambda stop: file_chunks(calibration[0], again.counts, stop=stop), lines.append)
    aligned = [json.loads(x) for x in lines[:-1]]
    end = aligned[0]["t_start"] + line["seconds"]
    first = [w["fused"] for w in aligned if w["t_end"] < end]  # the windows wholly inside the first seconds
    assert line["windows"] == len(first) > 0
    assert line["fused_threshold"] == pytest.approx(vehicle_threshold(np.array(first), line["fpr"]), abs=1e-6)
    capture, _ = _capture(work)
    lines = []
    summary = run(detector, lambda stop: file_chunks(capture, detector.counts, stop=stop), lines.append)
    windows = [json.loads(x) for x in lines[:-1]]
    assert summary["fused_threshold"] == line["fused_threshold"]
    assert all(w["attack"] == (w["fused"] >= line["fused_threshold"] - 1e-6) for w in windows)
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "kdgat.cli.main",
            "detect",
            str(capture),
            "--bundle",
            str(bundle_dir(paths)),
            "--calibrate",
            str(calibration[0]),
        ],
        capture_output=True,
        text=True,
    )
    printed = [json.loads(x) for x in out.stdout.splitlines()]
    assert printed[0]["calibration"] and printed[0]["fused_threshold"] == pytest.approx(
        line["fused_threshold"]
    )
    assert printed[-1]["alerts"] == summary["alerts"]
