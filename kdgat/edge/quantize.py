"""int8 dynamic quantization of an exported graph model (onnxruntime.quantization), reported beside the float
file it came from and never in its place: the detector runs the float models unless told otherwise.

Weights of MatMul/Gemm become int8 and activations are quantized per call, so the file shrinks about 4×
where the weights are; whether decisions and speed hold is what the report says (parity with the float
ONNX file on every val, test and calibration graph, and the single-graph latency of both)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import QuantType, quantize_dynamic

from kdgat.edge.export import GRAPH_INPUTS
from kdgat.edge.runtime import run_rows, session
from kdgat.train.data import collate, load_graphs

LATENCY_GRAPHS = 100  # single-graph runs timed per file (after one warm-up run each)


def quantize_int8(src: Path, dest: Path) -> None:
    """``src`` with its weights in int8 (per-tensor, signed), written to ``dest``."""
    quantize_dynamic(src, dest, weight_type=QuantType.QInt8)


def single_graph_ms(sess: ort.InferenceSession, graphs_dir: Path, split: str = "test_known") -> float:
    """Median milliseconds of one ONNX Runtime call on one graph (the first LATENCY_GRAPHS of ``split``)."""
    graphs = load_graphs(graphs_dir, split)
    times = []
    for i in range(min(LATENCY_GRAPHS, len(graphs))):
        feeds = {k: t.numpy() for k, t in zip(GRAPH_INPUTS, collate(graphs, [i]).inputs(), strict=True)}
        if i == 0:
            run_rows(sess, feeds)  # warm-up: allocations and kernel selection
        t0 = time.perf_counter()
        run_rows(sess, feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)


def int8_report(
    float_file: Path, int8_file: Path, graphs_dir: Path, parity: dict[str, Any]
) -> dict[str, Any]:
    """Size, single-graph latency and ``parity`` (the int8 file's decisions against the float file's, its F1
    against the study's)."""
    ms = {k: single_graph_ms(session(f), graphs_dir) for k, f in (("float", float_file), ("int8", int8_file))}
    return {
        "file": int8_file.name,
        "file_bytes": int8_file.stat().st_size,
        "size_ratio": round(int8_file.stat().st_size / float_file.stat().st_size, 3),
        "single_graph_ms": {k: round(v, 4) for k, v in ms.items()},
        "speedup": round(ms["float"] / ms["int8"], 3),
        "decision_flips_test": parity["decision_flips_test"],
        "max_abs_diff": parity["max_abs_diff"],
        "f1": {s: {"int8": v["onnx"], "study": v["study"]} for s, v in parity["f1"].items()},
    }
