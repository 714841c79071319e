"""DVC stage `export@<dataset>`: the models of params.yaml `export.models` as ONNX files with the detector's
bundle in onnx/D/ (what `kdgat detect` runs), and the parity report reports/export/D.json (ONNX vs PyTorch
on every val and test graph: max |Δ|, decision flips, metrics recomputed vs metrics/D.json).

    python stages/export.py DATASET
"""

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.edge.build import export_dataset
from kdgat.track.tracker import stage_run


def main(dataset: str) -> None:
    params = load_params()
    with stage_run("export", dataset, params, ("export", "calibration")) as t:
        report = export_dataset(dataset, params.export, params.calibration)
        t.summary({"decision_flips_test": report["decision_flips_test"]})
    for name, r in report["models"].items():
        print(
            f"{name}: {r['decision_flips_test']} flips on {r['graphs']['test']} test graphs, "
            f"max |Δ| {max(r['max_abs_diff'].values()):.2g}, {r['file_bytes'] / 1024:.0f} KiB"
        )


if __name__ == "__main__":
    run_stage(main, __doc__)
