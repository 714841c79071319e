"""DVC stage `evaluate@<dataset>` (params: calibration.fpr): every model × test scenario → metrics/D.json
(DVC metrics), ROC / PR / confusion data under plots/D/ (DVC plots) and the figure tables in plots/D/figures/
(graph embeddings and attention weights are recomputed from the weights over data/graphs/D; which nodes of
the attention's sample graphs carried attack frames comes from data/frames/D.parquet)."""

import _checkout  # noqa: F401  (this checkout's kdgat, not the installed one)

from kdgat.cli.stage import run_stage
from kdgat.config import load_params
from kdgat.evaluate.report import write_evaluation
from kdgat.study import MODELS, Model, Paths
from kdgat.track.tracker import stage_run


def main(dataset: str) -> None:
    p, paths = load_params(), Paths(dataset)
    models = [Model.parse(n) for n in MODELS]
    with stage_run("evaluate", dataset, p, ["calibration.fpr"], lineage={"inputs": list(MODELS)}) as t:
        metrics = write_evaluation(
            {m.name: paths.predictions(m) for m in models},
            paths.metrics,
            paths.plots,
            model_files={m.name: paths.weights(m) for m in models},
            graphs_dir=paths.graphs,
            calibration_fpr=p.calibration.fpr,
            frames=paths.frames,
        )
        t.summary(metrics)
        t.log_artifact(f"evaluation-{dataset}", "evaluation", [paths.metrics, paths.plots / "figures"])


if __name__ == "__main__":
    run_stage(main, __doc__)
