"""The Lightning side of tracking: each finished epoch's row of the epochs CSV, sent to a Tracker as it
happens, and the tracked train → score sequence every launcher of a training runs. Apart from
kdgat/track/tracker.py so that only training loads Lightning for it; kdgat/train itself never knows about W&B
(this module passes its callback in through ``callbacks=``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning.pytorch as pl

from kdgat.config import Params
from kdgat.io import write_parquet
from kdgat.study import Model
from kdgat.track.tracker import Tracker
from kdgat.train.infer import predict
from kdgat.train.lit import EpochHistory
from kdgat.train.run import TrainOutputs, train_family


class EpochLogger(pl.Callback):
    """Logs the row EpochHistory has just recorded (the same values train_* write to the epochs CSV). It
    runs after EpochHistory, which the trainer lists first; Lightning calls checkpoint callbacks last."""

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self._first = True

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        history = next((c for c in trainer.callbacks if isinstance(c, EpochHistory)), None)  # type: ignore[attr-defined]
        if history is None or not history.rows:
            return
        if self._first:  # a resumed run: earlier epochs were logged by the session that ran them
            for row in history.rows[:-1]:
                self.tracker.remember(row)
            self._first = False
        self.tracker.log_epoch(history.rows[-1])


def train_and_score(
    t: Tracker,
    model: Model,
    params: Params,
    graphs: Path,
    outs: TrainOutputs,
    teacher: Path | None,
    scores: Path | None,
    predictions: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Train ``model`` into ``outs`` with its epochs logged to ``t``, write its per-graph predictions of
    every split to ``predictions`` and put the training report in the run's summary; returns the report."""
    report = train_family(
        model.family,
        params,
        graphs,
        model.scale,
        outs,
        teacher,
        scores,
        progress=progress,
        callbacks=[EpochLogger(t)],
    )
    write_parquet(predict(outs.weights, graphs), predictions)
    t.summary(report)
    return report
