"""The export of one dataset's study (stage `export@<dataset>`): every model of params.yaml `export.models`
to onnx/D/<model>.onnx, the detector bundle onnx/D/detector.json, and the parity report (kdgat/edge/parity.py)
reports/export/D.json. Reads the study's outputs only: nothing of the study changes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import onnx
import polars as pl

from kdgat.config import CalibrationParams, ExportParams
from kdgat.data.layout import CALIBRATION
from kdgat.data.shards import load_meta
from kdgat.edge.export import bundle, example_batch, export_qnet, export_rows, write_bundle
from kdgat.edge.parity import onnx_predictions, parity
from kdgat.edge.quantize import int8_report, quantize_int8
from kdgat.edge.runtime import joined_rows, session, with_qnet
from kdgat.fusion.policy import load_policy
from kdgat.io import atomic_path, write_json
from kdgat.study import Model, Paths


def bundle_dir(paths: Paths) -> Path:
    """onnx/D/: the exported models and detector.json, what `kdgat detect` runs. (Here rather than in
    kdgat/study.py, which every stage depends on: a path added there would rerun the whole study.)"""
    return paths.root / "onnx" / paths.dataset


def _file_info(path: Path, outputs: list[str]) -> dict[str, Any]:
    proto = onnx.load(str(path), load_external_data=False)
    return {
        "file": path.name,
        "bytes": path.stat().st_size,
        "opset": max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")),
        "inputs": [i.name for i in proto.graph.input],
        "outputs": outputs,
    }


def export_dataset(
    dataset: str, export: ExportParams, calibration: CalibrationParams, paths: Paths | None = None
) -> dict[str, Any]:
    """Export, check and describe every model; returns the parity report written."""
    paths = paths or Paths(dataset)
    metrics = json.loads(paths.metrics.read_text())
    scored = ("val", CALIBRATION)  # thresholds: val for every scenario, calibration for the unseen vehicle's
    splits = [s for s in load_meta(paths.graphs)["counts"] if s in scored or s.startswith("test_")]
    example = example_batch(paths.graphs)
    models = [Model.parse(n) for n in export.models]
    report: dict[str, Any] = {"dataset": dataset, "splits": splits, "models": {}}
    files: dict[str, dict[str, Any]] = {}
    tables: dict[str, pl.DataFrame] = {}
    with atomic_path(bundle_dir(paths)) as out:
        out.mkdir()
        # graph models first: a fusion model is checked on its own VGAE's and GAT's ONNX outputs
        for m in sorted(models, key=lambda m: m.family == "fusion"):
            started = time.perf_counter()
            dest = out / f"{m.name}.onnx"
            study = pl.read_parquet(paths.predictions(m))
            if m.family == "fusion":
                policy = load_policy(paths.weights(m))
                export_qnet(policy, dest, export.opset)
                vgae, gat = (tables[f"{f}_{m.variant}"] for f in ("vgae", "gat"))
                key = vgae.select("split", "index", "y", "y_type")
                table = with_qnet(policy, session(dest)).predict(joined_rows(vgae, gat, key))
                outputs = ["q"]
                if m.name == export.detector:
                    detector_policy = policy
            else:
                outputs = export_rows(paths.weights(m), example, dest, export.opset)
                table = onnx_predictions(session(dest), paths.graphs, splits, export.batch_size, m.name)
            tables[m.name] = table
            files[m.name] = _file_info(dest, outputs)
            report["models"][m.name] = {
                **parity(m.name, table, study, metrics[m.name], calibration.fpr),
                "file_bytes": files[m.name]["bytes"],
                "opset": files[m.name]["opset"],
            }
            if export.quantize and m.family != "fusion":  # the Q-net is a few kB: nothing to gain
                small = out / f"{m.name}.int8.onnx"
                quantize_int8(dest, small)
                q_table = onnx_predictions(
                    session(small), paths.graphs, splits, export.batch_size, small.name
                )
                q_parity = parity(m.name, q_table, table, metrics[m.name], calibration.fpr)
                report["models"][m.name]["int8"] = int8_report(dest, small, paths.graphs, q_parity)
            report["models"][m.name]["wall_s"] = round(time.perf_counter() - started, 2)
        detector = Model.parse(export.detector)
        data = bundle(dataset, paths.graphs, detector, detector_policy, files, export.opset, calibration)
        write_bundle(data, out)
    report["decision_flips_test"] = sum(r["decision_flips_test"] for r in report["models"].values())
    write_json(report, paths.report("export"))
    return report
