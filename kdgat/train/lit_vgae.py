"""Lightning module of the VGAE: unsupervised, on the BENIGN training graphs, optionally distilled from a
frozen teacher VGAE.

Validation metric (early stopping, best checkpoint): ``val_loss``, the training objective on the benign
validation graphs. An anomaly detector for unknown attacks should not be selected by how well it
separates the attacks it happens to see in validation; ``val_auc`` (score AUC on all validation graphs,
when both classes are present) is logged for information only.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torchmetrics.functional.classification import binary_auroc

from kdgat.config import KDParams, TrainParams, VGAETrainParams
from kdgat.models import VGAE, anomaly_score, sample_negative_pairs, vgae_loss
from kdgat.train.data import Batch, GraphSet
from kdgat.train.kd import vgae_kd_loss
from kdgat.train.lit import LitBase


class LitVGAE(LitBase):
    model: VGAE
    monitor = "val_loss"
    monitor_mode = "min"

    def __init__(
        self,
        model: VGAE,
        train: TrainParams,
        vgae_train: VGAETrainParams,
        kd: KDParams,
        train_set: GraphSet,
        val_set: GraphSet,
        teacher: VGAE | None = None,
    ) -> None:
        super().__init__(model, train, train_set, val_set, teacher)
        self.weights, self.kd = vgae_train, kd
        self.benign = np.flatnonzero(train_set.y.numpy() == 0)
        if len(self.benign) == 0:
            raise ValueError(f"the {train_set.name!r} split has no benign graphs to train the VGAE on")
        # the student's latent is narrower than the teacher's: a learned map compares them
        self.projection = nn.Linear(model.scale.latent, teacher.scale.latent) if teacher is not None else None
        self._val: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def epoch_indices(self, epoch: int) -> np.ndarray:
        return self.benign

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        x, vocab, ei, ea, b = batch.inputs()
        out = self.model(x, vocab, ei, ea)
        neg = sample_negative_pairs(b, batch.num_graphs)  # torch's stream, re-seeded every epoch
        errors = self.model.graph_errors(out, x, vocab, ei, b, batch.num_graphs, neg)
        loss = vgae_loss(errors, self.weights)
        teacher = self.teacher
        if teacher is not None:
            assert self.projection is not None
            with torch.no_grad():
                t = teacher(x, vocab, ei, ea)
            match = vgae_kd_loss(
                out.mu,
                t.mu,
                self.projection,
                out.x_hat,
                t.x_hat,
                out.id_logits,
                t.id_logits,
                self.kd.temperature,
            )
            loss = (1 - self.kd.vgae_alpha) * loss + self.kd.vgae_alpha * match
        self.record_train_loss(loss, batch.num_graphs)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        x, vocab, ei, ea, b = batch.inputs()
        out = self.model(x, vocab, ei, ea)
        errors = self.model.graph_errors(out, x, vocab, ei, b, batch.num_graphs)
        score = anomaly_score(errors, self.weights)
        self._val.append((score + self.weights.w_kl * errors["kl"], score, batch.y))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        loss, score, y = (torch.cat(parts) for parts in zip(*self._val, strict=True))
        self._val.clear()
        benign = y == 0
        metrics = {
            "val_loss": loss[benign].mean() if bool(benign.any()) else loss.mean(),
            "val_score_benign": score[benign].mean() if bool(benign.any()) else torch.tensor(float("nan")),
            "val_auc": binary_auroc(score, y) if 0 < int(y.sum()) < len(y) else torch.tensor(float("nan")),
        }
        self.log_dict({k: v.float() for k, v in metrics.items()}, prog_bar=True)
