"""The study's cast: which models exist, who teaches whom, and where each one's files live.

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
            return ("train", "fusion", "models.dqn")
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
class Paths:
    """Where a dataset's files live, relative to the repository root."""

    dataset: str
    root: Path = Path()

    @property
    def graphs(self) -> Path:
        return self.root / "data" / "graphs" / self.dataset

    def weights(self, model: Model) -> Path:
        return self.root / "models" / self.dataset / f"{model.name}.ckpt"

    def predictions(self, model: Model) -> Path:
        return self.root / "predictions" / self.dataset / f"{model.name}.parquet"

    def train_report(self, model: Model) -> Path:
        return self.root / "reports" / "train" / self.dataset / f"{model.name}.json"
