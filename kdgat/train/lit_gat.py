"""Lightning module of the GAT: supervised, class-weighted CE or focal loss, optional distillation from a
frozen teacher, and a training sample re-drawn every epoch by the curriculum sampler."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.functional.classification import binary_accuracy, binary_auroc, binary_f1_score

from kdgat.config import GATTrainParams, KDParams, TrainParams
from kdgat.data.vocab import UNKNOWN
from kdgat.models import GAT
from kdgat.train.curriculum import EpochSampler
from kdgat.train.data import Batch, GraphSet
from kdgat.train.kd import class_weights, gat_kd_loss, task_loss
from kdgat.train.lit import LitBase


def hide_ids(batch: Batch, p: float) -> tuple[torch.Tensor, ...]:
    """The batch's inputs with every CAN ID of a random share ``p`` of its graphs set to the unknown slot, so
    the model also learns to judge a window without ID identity (an unseen vehicle's IDs are all unknown;
    otherwise the unknown slot only ever holds attack IDs in training)."""
    x, vocab, *rest = batch.inputs()
    if p > 0:
        # drawn from the CPU generator on every device: a CUDA run hides the same graphs as a CPU run
        hide = (torch.rand(batch.num_graphs) < p).to(vocab.device)
        vocab = torch.where(hide[batch.batch], torch.full_like(vocab, UNKNOWN), vocab)
    return (x, vocab, *rest)


class LitGAT(LitBase):
    model: GAT

    def __init__(
        self,
        model: GAT,
        train: TrainParams,
        gat_train: GATTrainParams,
        kd: KDParams,
        train_set: GraphSet,
        val_set: GraphSet,
        sampler: EpochSampler,
        teacher: GAT | None = None,
    ) -> None:
        super().__init__(model, train, train_set, val_set, teacher)
        self.gat_train, self.kd, self.sampler = gat_train, kd, sampler
        self.monitor = gat_train.monitor
        self.monitor_mode = "min" if gat_train.monitor == "val_loss" else "max"
        self.class_weight: torch.Tensor | None = None
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def epoch_indices(self, epoch: int) -> np.ndarray:
        idx = self.sampler.indices(epoch)
        y = self.train_set.y[torch.from_numpy(idx)]
        # weights follow the epoch's own sample: under a curriculum its class balance moves every epoch
        self.class_weight = class_weights(y, self.model.n_classes) if self.gat_train.class_weights else None
        self.epoch_stats["train_attack_share"] = float(y.float().mean()) if len(y) else 0.0
        return idx

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        logits = self.model(*hide_ids(batch, self.gat_train.id_dropout), num_graphs=batch.num_graphs)
        if self.class_weight is not None and self.class_weight.device != logits.device:
            self.class_weight = self.class_weight.to(logits.device)  # once an epoch, not a copy every step
        w = None if self.class_weight is None else self.class_weight.to(logits.dtype)
        gamma = self.gat_train.focal_gamma if self.gat_train.loss == "focal" else None
        teacher = self.teacher
        eps = self.gat_train.label_smoothing
        if teacher is None:
            loss = task_loss(logits, batch.y, w, gamma, eps)
        else:
            with torch.no_grad():
                t_logits = teacher(*batch.inputs(), num_graphs=batch.num_graphs)
            loss = gat_kd_loss(logits, t_logits, batch.y, self.kd.temperature, self.kd.alpha, w, gamma, eps)
        self.record_train_loss(loss, batch.num_graphs)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        logits = self.model(*batch.inputs(), num_graphs=batch.num_graphs)
        self._val.append((F.log_softmax(logits, dim=-1), batch.y))

    def on_validation_epoch_end(self) -> None:
        if not self._val:
            return
        logp = torch.cat([v[0] for v in self._val])
        y = torch.cat([v[1] for v in self._val])
        self._val.clear()
        p = logp[:, 1].exp()
        metrics = {
            "val_loss": F.nll_loss(logp, y),
            "val_f1": binary_f1_score(p, y),
            "val_acc": binary_accuracy(p, y),
            # AUC is undefined with one class present: log NaN rather than a misleading 0 or 1
            "val_auc": binary_auroc(p, y) if 0 < int(y.sum()) < len(y) else torch.tensor(float("nan")),
        }
        self.log_dict({k: v.float() for k, v in metrics.items()}, prog_bar=True)
