"""What the Lightning modules of the VGAE and the GAT share: data hooks, optimiser, per-epoch seeding,
timing, and the callback that keeps the per-epoch history inside the checkpoints.

Every epoch is a function of (weights, optimiser state, seed, epoch) only: the graph sample, its order
and torch's random stream (dropout, reparameterisation noise, negative pairs) are all re-seeded from
(seed, epoch) when the epoch starts. That is what makes a run resumed from last.ckpt end exactly where
an uninterrupted run ends, without saving random-generator states.
"""

from __future__ import annotations

import time
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.trainer.states import TrainerFn
from torch import nn
from torch.optim.swa_utils import get_ema_avg_fn

from kdgat.config import TrainParams
from kdgat.train.data import STREAM_SHUFFLE, STREAM_TORCH, Batch, GraphLoader, GraphSet, epoch_seed

VAL_BATCH = 256  # validation has no gradients: larger batches, fewer Python steps


def frozen(teacher: nn.Module) -> nn.Module:
    """A teacher in eval mode with no gradients (kept out of the student's optimiser and checkpoints)."""
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


class LitBase(pl.LightningModule):
    """Subclasses define ``epoch_indices(epoch)``, ``training_step`` and the validation metric."""

    monitor: str = "val_loss"
    monitor_mode: str = "min"

    def __init__(
        self,
        model: nn.Module,
        train: TrainParams,
        train_set: GraphSet,
        val_set: GraphSet,
        teacher: nn.Module | None,
    ) -> None:
        super().__init__()
        self.model = model
        self.train_params = train
        self.train_set, self.val_set = train_set, val_set
        # a tuple keeps the teacher out of the module tree: not trained, not saved, not in .parameters()
        self._teacher = (frozen(teacher),) if teacher is not None else ()
        self._t0 = self._t_train = 0.0
        self._train_loss: float | torch.Tensor = 0.0
        self._train_graphs = 0.0
        self.epoch_stats: dict[str, float] = {}

    @property
    def teacher(self) -> nn.Module | None:
        return self._teacher[0] if self._teacher else None

    def epoch_indices(self, epoch: int) -> np.ndarray:
        raise NotImplementedError

    # --- data ------------------------------------------------------------------------------------
    def train_dataloader(self) -> GraphLoader:
        epoch = self.trainer.current_epoch
        p = self.train_params
        self.epoch_stats = {}  # epoch_indices may add its own entries
        idx = self.epoch_indices(epoch)
        self.epoch_stats["train_graphs"] = float(len(idx))
        return GraphLoader(
            self.train_set, idx, p.batch_size, shuffle=True, seed=epoch_seed(p.seed, epoch, STREAM_SHUFFLE)
        )

    def val_dataloader(self) -> GraphLoader:
        return GraphLoader(self.val_set, batch_size=VAL_BATCH)

    def transfer_batch_to_device(self, batch: Batch, device: torch.device, dataloader_idx: int) -> Batch:
        return batch.to(device)

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)

    # --- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        p = self.train_params
        opt = torch.optim.AdamW(
            [q for q in self.parameters() if q.requires_grad],
            lr=p.lr,
            weight_decay=p.weight_decay,
            # one fused update per step (the default is a per-tensor loop): on a GPU one kernel for all
            fused=self.device.type == "cuda",
            foreach=self.device.type != "cuda",
        )
        if p.lr_schedule == "constant":
            return opt
        # stepped once per epoch; its state is in every checkpoint, so a resumed run keeps the schedule
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=p.max_epochs, eta_min=p.lr * p.lr_min)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "epoch"}}

    def on_train_epoch_start(self) -> None:
        torch.manual_seed(epoch_seed(self.train_params.seed, self.current_epoch, STREAM_TORCH))
        self._t0 = time.perf_counter()
        self._train_loss = self._train_graphs = 0.0

    def record_train_loss(self, loss: torch.Tensor, n_graphs: int) -> None:
        # summed on the loss's device (float64, as a Python float would be): reading it back every step
        # would make the host wait for the GPU at each step
        self._train_loss = self._train_loss + loss.detach().double() * n_graphs
        self._train_graphs += n_graphs
        self.log("train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=n_graphs)

    def on_validation_epoch_start(self) -> None:
        # the validation that ends a training epoch (not a sanity check or a validate() call)
        if self.trainer.state.fn == TrainerFn.FITTING and not self.trainer.sanity_checking:
            self._t_train = time.perf_counter() - self._t0

    def finish_epoch_stats(self) -> dict[str, float]:
        """Called by EpochHistory at the end of each training epoch."""
        s = dict(self.epoch_stats)
        s["train_loss"] = float(self._train_loss) / max(self._train_graphs, 1.0)
        s["train_seconds"] = self._t_train or (time.perf_counter() - self._t0)
        s["epoch_seconds"] = time.perf_counter() - self._t0
        s["train_graphs_per_s"] = self._train_graphs / max(s["train_seconds"], 1e-9)
        self._t_train = 0.0
        return s


class EpochHistory(pl.Callback):
    """One row per finished epoch; its state rides in the checkpoints, so a resumed run keeps the rows
    of the epochs before the interruption. Runs before ModelCheckpoint (Lightning orders checkpoint
    callbacks last), so last.ckpt holds the row of its own epoch."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        assert isinstance(pl_module, LitBase)
        row: dict[str, float] = {"epoch": float(trainer.current_epoch)}
        row.update(pl_module.finish_epoch_stats())
        for k, v in trainer.callback_metrics.items():
            if k.startswith("val_"):
                row[k] = float(v)
        self.rows = [r for r in self.rows if r["epoch"] != row["epoch"]] + [row]

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict["rows"])


class EpochBoundedEMA(EMAWeightAveraging):
    """An exponential moving average of the weights (``decay`` per optimizer step) that never reaches back
    more than one epoch: each epoch the decay is capped at 1 - 1/steps. With few attack windows an epoch of
    the curriculum is a handful of steps, and a fixed per-step 0.99 would keep what validation sees near
    the initial weights for the whole run; with one step per epoch the average is the weights themselves."""

    def __init__(self, decay: float) -> None:
        super().__init__(decay=decay)
        self.decay = decay
        self.epoch_decay = decay

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        steps = trainer.num_training_batches
        self.epoch_decay = min(self.decay, 1.0 - 1.0 / steps) if 0 < steps < float("inf") else self.decay
        if self._average_model is not None:
            self._average_model.avg_fn = get_ema_avg_fn(decay=self.epoch_decay)
        super().on_train_epoch_start(trainer, pl_module)


# Warm-up: the first epochs of a curriculum train on an attack-heavy mix, and a lucky validation loss
# there (train.seed 3: epoch 0's, never beaten within the patience) kept an under-trained GAT that
# flagged 32 of 1,230 known benign test windows. Neither the kept checkpoint nor early stopping look at
# epochs before train.warmup_epochs.


class WarmupCheckpoint(ModelCheckpoint):
    """ModelCheckpoint whose kept ("best") checkpoint comes from epoch ``warmup`` or later: until then every
    epoch replaces the kept one, and epoch ``warmup`` replaces it whatever its score."""

    def __init__(self, warmup: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.warmup = warmup

    def check_monitor_top_k(self, trainer: pl.Trainer, current: torch.Tensor | None = None) -> bool:
        return trainer.current_epoch <= self.warmup or super().check_monitor_top_k(trainer, current)


class WarmupEarlyStopping(EarlyStopping):
    """EarlyStopping that starts counting (and keeping its best score) at epoch ``warmup``."""

    def __init__(self, warmup: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.warmup = warmup

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.current_epoch >= self.warmup:
            super().on_train_epoch_end(trainer, pl_module)
