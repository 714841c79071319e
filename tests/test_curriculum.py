"""The per-epoch sample of GAT training graphs: none / undersample / curriculum, redrawn every epoch,
reproducible from (seed, epoch)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from kdgat.train.curriculum import EpochSampler, train_scores

Y = np.array([0] * 60 + [1] * 20)  # 60 benign (indices 0..59), 20 attack (60..79)
SCORES = np.concatenate([np.arange(60)[::-1], np.zeros(20)]).astype(float)  # benign 59 is the easiest


def test_none_is_everything() -> None:
    s = EpochSampler(Y, "none", 5, 0)
    assert s.indices(0).tolist() == s.indices(4).tolist() == list(range(80))


def test_undersample_balances_and_redraws() -> None:
    s = EpochSampler(Y, "undersample", 5, 0)
    draws = [s.indices(e) for e in range(5)]
    for d in draws:
        assert set(range(60, 80)) <= set(d.tolist()) and (Y[d] == 0).sum() == 20 and len(set(d)) == 40
    assert len({tuple(d) for d in draws}) == 5
    again = EpochSampler(Y, "undersample", 5, 0)
    assert all(np.array_equal(again.indices(e), draws[e]) for e in (3, 0))  # any order: (seed, epoch) only
    assert not np.array_equal(EpochSampler(Y, "undersample", 5, 1).indices(0), draws[0])


def test_curriculum_schedule_moves_from_easy_to_all() -> None:
    s = EpochSampler(Y, "curriculum", 5, 0, benign_ratio=(0.5, 2.0), hardness=(0.25, 1.0), scores=SCORES)
    assert s.schedule(0) == (0.5, 0.25) and s.schedule(4) == (2.0, 1.0)
    assert s.schedule(2) == pytest.approx((1.25, 0.625))
    first = s.indices(0)
    benign = first[Y[first] == 0]
    assert len(benign) == 10 and set(benign.tolist()) <= set(range(45, 60))  # the easiest 25 % = 15 graphs
    assert set(range(60, 80)) <= set(first.tolist())
    mid = s.indices(2)  # 1.25 · 20 = 25 benign from the easiest 62.5 % (38 graphs)
    assert (Y[mid] == 0).sum() == 25 and mid[Y[mid] == 0].min() >= 60 - 38
    last = s.indices(4)
    assert (Y[last] == 0).sum() == 40  # 2 · 20 benign, from all 60
    assert len({tuple(s.indices(e)) for e in range(5)}) == 5


def test_curriculum_caps_and_nan_scores() -> None:
    scores = SCORES.copy()
    scores[59] = np.nan  # unknown error counts as hardest, not easiest
    s = EpochSampler(Y, "curriculum", 1, 0, benign_ratio=(5.0, 5.0), hardness=(0.5, 0.5), scores=scores)
    benign = s.indices(0)[Y[s.indices(0)] == 0]
    assert len(benign) == 30 and 59 not in benign.tolist()  # capped at the 30 eligible graphs


def test_errors() -> None:
    with pytest.raises(ValueError, match="VGAE teacher's scores"):
        EpochSampler(Y, "curriculum", 3, 0)
    with pytest.raises(ValueError, match="3 VGAE scores for 80"):
        EpochSampler(Y, "curriculum", 3, 0, scores=np.zeros(3))
    with pytest.raises(ValueError, match="it has none"):
        EpochSampler(np.zeros(10, int), "undersample", 3, 0)


def test_train_scores_from_predictions(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    pl.DataFrame(
        {"split": ["val", "train", "train", "train"], "index": [0, 2, 0, 1], "score": [9.0, 0.3, 0.1, 0.2]}
    ).write_parquet(path)
    np.testing.assert_array_equal(train_scores(path, 3), [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="expected one per graph"):
        train_scores(path, 4)
