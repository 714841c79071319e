"""The knowledge-distillation cross-product as a Metaflow flow: for each dataset (``foreach``) a teacher,
then its distilled student, then one table of their F1 on validation and every test split.

    python flows/kd_flow.py run [--datasets synth,wrx_inject] [--graphs-root data/graphs]
                                [--params-file params.yaml] [--out flows/out] [--max-workers 2]

It reads the graph folders the DVC pipeline builds (data/graphs/<dataset>) and trains each model as the
same TrainJob the DVC stage runs (kdgat/train/job.py), into flows/out/<run id>/<dataset>/, where a student
finds its teacher and a curriculum GAT its VGAE's scores. This file is the flow's one wiring; Metaflow's
settings and the table live in kdgat/cluster/metaflow.py. Metaflow keeps its datastore and metadata in
./.metaflow (or S3: see docs/hpo.md); the table is then ``Flow("KDFlow").latest_run["join"].task.data.table``.
"""

from kdgat.cluster.metaflow import metaflow_env

metaflow_env()  # before Metaflow reads its configuration at import

from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import polars as pl  # noqa: E402
from metaflow import FlowSpec, Parameter, current, step  # noqa: E402

from kdgat.cluster.metaflow import markdown, split_rows  # noqa: E402
from kdgat.config import load_params  # noqa: E402
from kdgat.io import write_csv  # noqa: E402
from kdgat.study import FolderPaths, Paths  # noqa: E402
from kdgat.track.tracker import stage_run  # noqa: E402


class KDFlow(FlowSpec):
    params_file = Parameter("params-file", default="params.yaml", help="Parameters file (models, train, kd).")
    datasets = Parameter("datasets", default="", help="Comma-separated datasets (default: params.yaml).")
    graphs_root = Parameter("graphs-root", default="data/graphs", help="Folder of <dataset>/ graph folders.")
    out = Parameter("out", default="flows/out", help="Models, predictions and the table go to OUT/<run id>/.")

    @step
    def start(self) -> None:
        """Check the parameters and the graph folders, then fan out over the datasets."""
        params = load_params(str(self.params_file))
        chosen = [d.strip() for d in str(self.datasets).split(",") if d.strip()] or list(params.datasets)
        missing = [str(p) for d in chosen if not (p := self._paths(d).graphs / "meta.json").is_file()]
        if missing:
            raise FileNotFoundError(f"no graph folder at {', '.join(missing)}: run `dvc repro graphs`")
        self.curriculum = params.gat_train.sampling == "curriculum"
        self.run_dir = str(Path(str(self.out)) / str(current.run_id))
        self.dataset_list = chosen
        self.next(self.teacher, foreach="dataset_list")

    def _paths(self, dataset: str) -> Paths:
        folder = Path(getattr(self, "run_dir", ".")) / dataset
        return FolderPaths(dataset, folder=folder, graphs_dir=Path(str(self.graphs_root)) / dataset)

    def _train(self, name: str) -> dict[str, Any]:
        """``name`` into this branch's folder, where its teacher and curriculum VGAE were trained before it;
        a W&B run of job type "kdflow". Returns the files and the training report."""
        from kdgat.track.lightning import (
            EpochLogger,  # Lightning and torch: only the training steps need them
        )
        from kdgat.train.job import TrainJob

        dataset, params = str(self.dataset), load_params(str(self.params_file))
        job = TrainJob.of(name, params, self._paths(dataset))
        keys, lineage = job.param_keys, job.lineage
        with stage_run("kdflow", dataset, params, keys, name=f"kdflow-{name}", lineage=lineage) as t:
            report = job.run([EpochLogger(t)], progress=False)
            t.summary(report)
            if params.tracking.log_models:  # kdflow-<model>-<dataset>: apart from the DVC stages' artifacts
                meta = {k: report[k] for k in ("best_epoch", "params_count")}
                t.log_artifact(f"kdflow-{name}-{dataset}", "model", [job.outs.weights], meta)
        files = {"weights": str(job.outs.weights), "predictions": str(job.outs.predictions)}
        return {"model": name, **files, "report": report}

    @step
    def teacher(self) -> None:
        """The large GAT; the large VGAE first when its scores order the GAT's curriculum."""
        self.dataset = self.input
        self.vgae_teacher = self._train("vgae_large") if self.curriculum else None
        self.gat_teacher = self._train("gat_large")
        self.next(self.student)

    @step
    def student(self) -> None:
        """The small GAT distilled from the teacher (and the distilled small VGAE for its curriculum)."""
        self.vgae_student = self._train("vgae_small_kd") if self.curriculum else None
        self.gat_student = self._train("gat_small_kd")
        trained = [self.vgae_teacher, self.gat_teacher, self.vgae_student, self.gat_student]
        self.rows = [row for t in trained if t is not None for row in split_rows(str(self.dataset), t)]
        self.next(self.join)

    @step
    def join(self, inputs: Any) -> None:
        """One table over the datasets: dataset, model, role, params, split, n, f1, precision, recall, fpr."""
        self.merge_artifacts(inputs, include=["run_dir"])
        self.table = [row for branch in inputs for row in branch.rows]
        self.table_file = str(Path(self.run_dir) / "kd_table.csv")
        datasets = ",".join(dict.fromkeys(r["dataset"] for r in self.table))
        with stage_run("kdflow", datasets, load_params(str(self.params_file)), name="kdflow-join") as t:
            write_csv(pl.DataFrame(self.table), self.table_file)
            t.summary({f"{r['dataset']}/{r['model']}/{r['split']}/f1": r["f1"] for r in self.table})
            t.log_artifact(f"kdflow-table-{current.run_id}", "kdflow", [Path(self.table_file)])
        self.next(self.end)

    @step
    def end(self) -> None:
        """Print the F1 table."""
        print(markdown(self.table))
        print(f"table: {self.table_file}")


if __name__ == "__main__":
    KDFlow()
