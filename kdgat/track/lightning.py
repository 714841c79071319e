"""The Lightning side of tracking: each finished epoch's row of the epochs CSV, sent to a Tracker as it
happens. Apart from kdgat/track/tracker.py so that only training loads Lightning for it; kdgat/train never
knows about W&B: a launcher hands this callback to ``TrainJob.run(callbacks=...)``."""

from __future__ import annotations

import lightning.pytorch as pl

from kdgat.track.tracker import Tracker
from kdgat.train.lit import EpochHistory


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
