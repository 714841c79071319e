"""Which training graphs the GAT sees in each epoch: all of them, an undersampled balance, or a curriculum.

The sample is drawn afresh for every epoch from a seed that depends only on (seed, epoch): the original
work computed a schedule but drew its sample once, so every epoch saw the first epoch's graphs. Because
the draw depends on nothing else, a run resumed from a checkpoint sees the same samples as one that
never stopped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl

from kdgat.train.data import STREAM_SAMPLE, epoch_seed

Mode = Literal["none", "undersample", "curriculum"]


def _lerp(pair: tuple[float, float], f: float) -> float:
    return pair[0] + f * (pair[1] - pair[0])


class EpochSampler:
    """Graph indices for each epoch (sorted; the loader shuffles them).

    none: every graph. undersample: every attack graph + as many benign graphs, drawn at random.
    curriculum: every attack graph + ``benign_ratio``·(attack count) benign graphs drawn from the
    easiest ``hardness`` share of benign graphs (lowest VGAE score first); both move linearly from
    their first value at epoch 0 to their second at the last epoch.
    """

    def __init__(
        self,
        y: np.ndarray,
        mode: Mode,
        max_epochs: int,
        seed: int,
        benign_ratio: tuple[float, float] = (1.0, 1.0),
        hardness: tuple[float, float] = (1.0, 1.0),
        scores: np.ndarray | None = None,
    ) -> None:
        y = np.asarray(y)
        self.mode, self.max_epochs, self.seed = mode, max_epochs, seed
        self.benign_ratio, self.hardness = benign_ratio, hardness
        self.attack = np.flatnonzero(y != 0)
        benign = np.flatnonzero(y == 0)
        if mode != "none" and len(self.attack) == 0:
            raise ValueError(f"sampling {mode!r} needs attack graphs in the training split; it has none")
        if mode == "curriculum":
            if scores is None:
                raise ValueError("sampling 'curriculum' needs the VGAE teacher's scores of the train graphs")
            scores = np.asarray(scores, dtype=np.float64)
            if scores.shape != y.shape:
                raise ValueError(f"{len(scores)} VGAE scores for {len(y)} training graphs")
            # easiest first; NaN scores count as hardest; ties broken by index (stable sort)
            key = np.where(np.isnan(scores[benign]), np.inf, scores[benign])
            benign = benign[np.argsort(key, kind="stable")]
        self.benign = benign  # in eligibility order for the curriculum
        self.n_total = len(y)

    def progress(self, epoch: int) -> float:
        """0 at the first epoch, 1 at the last."""
        return min(1.0, max(0.0, epoch / max(1, self.max_epochs - 1)))

    def schedule(self, epoch: int) -> tuple[float, float]:
        """(benign per attack graph, eligible share of benign graphs) at ``epoch``."""
        f = self.progress(epoch)
        return _lerp(self.benign_ratio, f), _lerp(self.hardness, f)

    def indices(self, epoch: int) -> np.ndarray:
        if self.mode == "none":
            return np.arange(self.n_total)
        rng = np.random.default_rng(epoch_seed(self.seed, epoch, STREAM_SAMPLE))
        if self.mode == "undersample":
            pool, n_draw = self.benign, min(len(self.attack), len(self.benign))
        else:
            ratio, hard = self.schedule(epoch)
            pool = self.benign[: int(np.ceil(hard * len(self.benign) - 1e-9))]
            n_draw = min(len(pool), round(ratio * len(self.attack)))
        drawn = rng.choice(pool, size=n_draw, replace=False) if n_draw else pool[:0]
        return np.sort(np.concatenate([self.attack, drawn]))


def train_scores(predictions: str | Path, n_graphs: int) -> np.ndarray:
    """The VGAE scores of the train split's graphs, by graph index, from a predictions Parquet."""
    path = Path(predictions)
    df = pl.read_parquet(path, columns=["split", "index", "score"]).filter(pl.col("split") == "train")
    if df.height != n_graphs or df["index"].n_unique() != n_graphs:
        raise ValueError(f"{path}: {df.height} train rows with scores, expected one per graph ({n_graphs})")
    return df.sort("index")["score"].to_numpy()
