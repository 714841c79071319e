"""DVC stages `vgae_<variant>@<dataset>` and `gat_<variant>@<dataset>`: train one model, then score every
split with it.

    python stages/train.py DATASET MODEL      # MODEL: vgae_large | vgae_small_kd | ... | gat_small

Writes models/D/M.ckpt (weights), models/D/M/ (checkpoints; a killed run resumes from last.ckpt),
reports/train/D/M.json + .epochs.csv, and predictions/D/M.parquet (one row per graph and split).
"""

import sys
from functools import partial

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.cluster.launch import launch_stage
from kdgat.config import load_params
from kdgat.study import Model, Paths
from kdgat.track.lightning import train_and_score
from kdgat.track.tracker import stage_run
from kdgat.train.run import TrainOutputs


def main(dataset: str, name: str) -> None:
    params, model, paths = load_params(), Model.parse(name), Paths(dataset)
    if model.family == "fusion":
        raise KeyError(f"{name}: stages/train.py trains vgae_* and gat_* models; fusion has stages/fusion.py")
    outs = TrainOutputs.standard(paths.root, dataset, model.name)
    teacher = paths.weights(model.teacher) if model.teacher else None
    curriculum = model.family == "gat" and params.gat_train.sampling == "curriculum"
    lineage = model.lineage(curriculum)
    with stage_run("train", dataset, params, model.param_keys, name=name, lineage=lineage) as t:
        scores = paths.predictions(model.curriculum_vgae) if curriculum else None
        report = train_and_score(
            t, model, params, paths.graphs, outs, teacher, scores, paths.predictions(model)
        )
        t.log_model(name, outs.weights, {k: report[k] for k in ("best_epoch", "params_count")})


if __name__ == "__main__":
    # launch.executor: here (local), or as a SLURM job that this process waits for (kdgat/cluster/launch.py)
    run_stage(partial(launch_stage, main, __file__), *sys.argv[1:])
