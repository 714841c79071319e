"""DVC stage `fusion@<dataset>-<variant>`: learn the per-graph fusion weight α of the VGAE and GAT of one
variant (DQN, one-step), and score every split with it.

    python stages/fusion.py DATASET VARIANT   # VARIANT: large | small_kd | small

Writes models/D/fusion_V.ckpt, reports/train/D/fusion_V.json (+ baselines: GAT alone, VGAE alone,
fixed α) and predictions/D/fusion_V.parquet.
"""

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.fusion.train import train_fusion
from kdgat.study import Model, Paths
from kdgat.track.tracker import stage_run


def main(dataset: str, variant: str) -> None:
    params, paths, fused = load_params(), Paths(dataset), Model.parse(f"fusion_{variant}")
    lineage, outs = fused.lineage(curriculum=False), paths.outputs(fused)
    with stage_run("fusion", dataset, params, fused.param_keys, name=fused.name, lineage=lineage) as t:
        report = train_fusion(
            params,
            paths.predictions(Model("vgae", variant)),
            paths.predictions(Model("gat", variant)),
            fused.scale,
            outs.weights,
            report=outs.report,
            predictions=paths.predictions(fused),
            on_epoch=t.log_epoch,
        )
        t.summary(report)
        t.log_model(fused.name, outs.weights, {"best_epoch": report["best_epoch"]})


if __name__ == "__main__":
    run_stage(main, __doc__)
