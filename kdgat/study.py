"""The study's cast and its map: which models exist, who teaches whom, and where every file of the pipeline
lives (``Paths``; dvc.yaml names the same files).

Names are ``<family>_<variant>``: family vgae | gat | fusion, variant large (teacher) | small_kd (student
distilled from the large model of its family) | small (student trained alone). A fusion variant fuses
the VGAE and the GAT of the same variant. Every stage, the evaluation and the results use these names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

VARIANTS = ("large", "small_kd", "small")
FAMILIES = ("vgae", "gat", "fusion")
MODELS = tuple(f"{f}_{v}" for f in FAMILIES for v in VARIANTS)


@dataclass(frozen=True)
class Model:
    family: str
    variant: str

    @classmethod
    def parse(cls, name: str) -> Model:
        family, _, variant = name.partition("_")
        if family not in FAMILIES or variant not in VARIANTS:
            raise KeyError(f"unknown model {name!r}; expected one of {', '.join(MODELS)}")
        return cls(family, variant)

    @property
    def name(self) -> str:
        return f"{self.family}_{self.variant}"

    @property
    def scale(self) -> str:
        """Size in params.yaml `models.<family>.<scale>` (fusion: the DQN's)."""
        return "large" if self.variant == "large" else "small"

    @property
    def teacher(self) -> Model | None:
        return Model(self.family, "large") if self.variant == "small_kd" else None

    @property
    def curriculum_vgae(self) -> Model:
        """The VGAE whose scores order a GAT's curriculum: the one of the same variant."""
        return Model("vgae", self.variant)

    @property
    def param_keys(self) -> tuple[str, ...]:
        """The params.yaml keys its stage reads: its `params:` in dvc.yaml, its W&B run's config."""
        if self.family == "fusion":
            return ("train", "fusion", "models.dqn", "calibration.fpr")
        keys = (f"models.{self.family}.{self.scale}", "train", f"{self.family}_train")
        if self.teacher is None:
            return keys
        return (*keys, *(("kd.vgae_alpha",) if self.family == "vgae" else ("kd.temperature", "kd.alpha")))

    def lineage(self, curriculum: bool) -> dict[str, str | list[str] | None]:
        """The models it learns from, by name: a student's teacher, the VGAE ordering a GAT's curriculum
        (``curriculum``: gat_train.sampling is curriculum), the VGAE and GAT a fusion combines."""
        if self.family == "fusion":
            return {"inputs": [Model("vgae", self.variant).name, Model("gat", self.variant).name]}
        out: dict[str, str | list[str] | None] = {"teacher": self.teacher.name if self.teacher else None}
        if self.family == "gat":
            out["curriculum_vgae"] = self.curriculum_vgae.name if curriculum else None
        return out


@dataclass(frozen=True)
class TrainOutputs:
    """What training one model leaves: the final weights (best epoch), a folder of Lightning checkpoints
    (last.ckpt, best.ckpt, run.json, logs/), a JSON report, a per-epoch CSV, and, where the launcher wants
    them, per-graph predictions of every split."""

    weights: Path
    ckpt_dir: Path
    report: Path
    epochs: Path
    predictions: Path | None = None

    @classmethod
    def in_folder(cls, folder: str | Path, predictions: Path | None = None) -> TrainOutputs:
        """A launcher's own folder (an Optuna trial, a Metaflow run): model.ckpt, checkpoints/, ..."""
        f = Path(folder)
        return cls(f / "model.ckpt", f / "checkpoints", f / "report.json", f / "epochs.csv", predictions)


@dataclass(frozen=True)
class Paths:
    """Where one dataset's files live, relative to ``root`` (the repository): the one map of the pipeline's
    files, read by the stages (their dvc.yaml `outs:`), the results and every launcher of a training."""

    dataset: str
    root: Path = Path()

    @property
    def frames(self) -> Path:
        return self.root / "data" / "frames" / f"{self.dataset}.parquet"

    @property
    def graphs(self) -> Path:
        return self.root / "data" / "graphs" / self.dataset

    def report(self, stage: str) -> Path:
        """reports/<stage>/D.json of the data stages (ingest, graphs)."""
        return self.root / "reports" / stage / f"{self.dataset}.json"

    def outputs(self, model: Model) -> TrainOutputs:
        """models/D/M.ckpt, models/D/M/, reports/train/D/M.json + .epochs.csv, predictions/D/M.parquet."""
        models, reports = self.root / "models" / self.dataset, self.root / "reports" / "train" / self.dataset
        return TrainOutputs(
            models / f"{model.name}.ckpt",
            models / model.name,
            reports / f"{model.name}.json",
            reports / f"{model.name}.epochs.csv",
            self.root / "predictions" / self.dataset / f"{model.name}.parquet",
        )

    def weights(self, model: Model) -> Path:
        return self.outputs(model).weights

    def predictions(self, model: Model) -> Path:
        predictions = self.outputs(model).predictions
        assert predictions is not None  # every model of the study is scored
        return predictions

    @property
    def metrics(self) -> Path:
        return self.root / "metrics" / f"{self.dataset}.json"

    @property
    def plots(self) -> Path:
        return self.root / "plots" / self.dataset

    @property
    def results(self) -> Path:
        return self.root / "results" / self.dataset


@dataclass(frozen=True)
class FolderPaths(Paths):
    """A launcher's own folder for the models it trains (the Metaflow flow's <out>/<run>/<dataset>/):
    <folder>/<model>/model.ckpt ... and <folder>/<model>.parquet, over the graphs in ``graphs_dir``."""

    folder: Path = Path()
    graphs_dir: Path = Path()

    @property
    def graphs(self) -> Path:
        return self.graphs_dir

    def outputs(self, model: Model) -> TrainOutputs:
        return TrainOutputs.in_folder(self.folder / model.name, self.folder / f"{model.name}.parquet")
