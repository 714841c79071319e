"""DVC stages `vgae_<variant>@<dataset>` and `gat_<variant>@<dataset>`: train one model, then score every
split with it.

    python stages/train.py DATASET MODEL      # MODEL: vgae_large | vgae_small_kd | ... | gat_small

Writes models/D/M.ckpt (weights), models/D/M/ (checkpoints; a killed run resumes from last.ckpt),
reports/train/D/M.json + .epochs.csv, and predictions/D/M.parquet (one row per graph and split).
"""

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.cluster.launch import submitted
from kdgat.config import load_params
from kdgat.study import Paths
from kdgat.track.lightning import EpochLogger
from kdgat.track.tracker import stage_run
from kdgat.train.job import TrainJob


def main(dataset: str, model: str) -> None:
    # launch.executor slurm: this script again, as a SLURM job that this process waits for
    if submitted(__file__, dataset, model):
        return
    params = load_params()
    job = TrainJob.of(model, params, Paths(dataset))
    with stage_run("train", dataset, params, job.param_keys, name=model, lineage=job.lineage) as t:
        report = job.run(callbacks=[EpochLogger(t)])
        t.summary(report)
        t.log_model(model, job.outs.weights, {k: report[k] for k in ("best_epoch", "params_count")})


if __name__ == "__main__":
    run_stage(main, __doc__)
