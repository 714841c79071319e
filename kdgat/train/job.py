"""One way into training: a ``TrainJob`` is one model of the study on one dataset, with all that follows
from model + dataset + params — the teacher it distils from, the VGAE scores ordering a GAT's curriculum,
where its files go, its lineage and the params keys it reads. The DVC stage, Optuna, the Metaflow flow and
the benchmark build one and call ``run``; tracking, when there is any, comes in as Lightning callbacks
(kdgat/track/lightning.py), so training never imports it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lightning.pytorch.callbacks import Callback

from kdgat.config import Params
from kdgat.io import write_parquet
from kdgat.study import Model, Paths, TrainOutputs
from kdgat.train.curriculum import train_scores
from kdgat.train.data import GraphSet
from kdgat.train.infer import predict
from kdgat.train.lit import LitBase
from kdgat.train.run import build_model, build_module, load_teacher, train_family


@dataclass(frozen=True)
class TrainJob:
    model: Model
    params: Params
    paths: Paths  # where the graphs, the teacher's weights and the curriculum scores are read
    outs: TrainOutputs  # where this training writes (default: the study's place for the model)

    @classmethod
    def of(cls, name: str, params: Params, paths: Paths, outs: TrainOutputs | None = None) -> TrainJob:
        model = Model.parse(name)
        if model.family == "fusion":
            raise KeyError(f"{name}: a job trains vgae_* and gat_* models; fusion has stages/fusion.py")
        return cls(model, params, paths, outs or paths.outputs(model))

    @property
    def curriculum(self) -> bool:
        return self.model.family == "gat" and self.params.gat_train.sampling == "curriculum"

    @property
    def teacher(self) -> Path | None:
        return self.paths.weights(self.model.teacher) if self.model.teacher else None

    @property
    def scores(self) -> Path | None:
        return self.paths.predictions(self.model.curriculum_vgae) if self.curriculum else None

    @property
    def lineage(self) -> dict[str, str | list[str] | None]:
        return self.model.lineage(self.curriculum)

    @property
    def param_keys(self) -> tuple[str, ...]:
        return self.model.param_keys

    def inputs(self) -> dict[Path, str]:
        """The files it trains from that another model's training writes: {path: that model}."""
        needed = {self.teacher: self.model.teacher, self.scores: self.model.curriculum_vgae}
        return {p: m.name for p, m in needed.items() if p is not None and m is not None}

    def module(
        self, meta: dict[str, Any], train: GraphSet, val: GraphSet, fresh_teacher: bool = False
    ) -> LitBase:
        """The Lightning module that ``run`` fits, on graphs already loaded: the model, its teacher and its
        curriculum's scores. ``fresh_teacher``: a freshly initialised teacher instead of the trained one
        (the bench: a step costs the same whatever the weights, and no teacher need be trained first)."""
        teacher = self.model.teacher
        if teacher is not None and fresh_teacher:
            teacher_model = build_model(teacher.family, self.params, teacher.scale, meta)
        else:
            teacher_model = load_teacher(self.teacher, self.model.family, meta)
        scores = train_scores(self.scores, len(train)) if self.scores is not None else None
        model = self.model
        return build_module(model.family, self.params, model.scale, meta, train, val, teacher_model, scores)

    def run(self, callbacks: Sequence[Callback] = (), progress: bool = True) -> dict[str, Any]:
        """Train (or resume, or find it trained already) into ``outs``, then score every split into
        outs.predictions when the launcher wants predictions. Returns the training report."""
        report = train_family(
            self.model.family,
            self.params,
            self.paths.graphs,
            self.model.scale,
            self.outs,
            self.teacher,
            self.scores,
            progress=progress,
            callbacks=callbacks,
        )
        if self.outs.predictions is not None:
            scores = predict(self.outs.weights, self.paths.graphs, accelerator=self.params.train.accelerator)
            write_parquet(scores, self.outs.predictions)
        return report
