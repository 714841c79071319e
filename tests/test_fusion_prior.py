"""The fusion's prior towards the best fixed α on validation (fusion.prior_cost) and the fallback to that α
when the Q-net shows no gain on the held-out select half (fusion.fallback): kdgat/fusion/train.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch
from test_fusion import fusion_params, two_region_tables

import kdgat.fusion.policy as fu
import kdgat.fusion.train as ft
from kdgat.config import DQNScale
from kdgat.fusion.dqn import constant_qnet


def test_prior_rewards_cost_the_distance_from_the_prior_alpha() -> None:
    reward = np.array([[1.0, 1.0, 1.0], [-5.0, 1.0, 1.0]])
    alphas = fu.alpha_grid(3)
    np.testing.assert_allclose(
        ft.prior_rewards(reward, alphas, 1.0, 0.5), [[0.5, 0.75, 1.0], [-5.5, 0.75, 1.0]]
    )
    np.testing.assert_array_equal(ft.prior_rewards(reward, alphas, 0.5, 0.0), reward)


def test_constant_qnet_picks_its_action_for_every_state() -> None:
    net = constant_qnet(DQNScale(hidden=8, layers=2), 16, 11, 7)
    q = net(torch.randn(50, 16) * 100)
    assert (q.argmax(dim=1) == 7).all()


def _agreeing_tables(d: Path) -> tuple[Path, Path]:
    """Both inputs right on every split: validation has nothing to prefer the VGAE for."""
    vgae, gat = two_region_tables(seed=1)
    y = gat["y"].to_numpy()
    logit = np.where(y == 1, 3.0, -3.0) + np.random.default_rng(0).normal(0, 0.5, y.size)
    gat = gat.with_columns(pl.Series("logit", logit), pl.Series("p_attack", 1 / (1 + np.exp(-logit))))
    score = np.where(vgae["y"].to_numpy() == 1, 3.0, 1.0) + np.random.default_rng(1).normal(0, 0.3, y.size)
    vgae = vgae.with_columns(pl.Series("score", np.abs(score)))
    vgae.write_parquet(d / "v.parquet")
    gat.write_parquet(d / "g.parquet")
    return d / "v.parquet", d / "g.parquet"


def _fit(d: Path, tag: str, **fusion: object) -> tuple[dict, pl.DataFrame]:
    v, g = _agreeing_tables(d)
    report = ft.train_fusion(
        fusion_params(epochs=6, **fusion),
        v,
        g,
        "small",
        d / f"{tag}.ckpt",
        report=d / f"{tag}.json",
        predictions=d / f"{tag}.parquet",
    )
    return report, pl.read_parquet(d / f"{tag}.parquet")


@pytest.mark.slow
def test_where_every_alpha_ties_the_prior_keeps_the_validated_alpha(tmp_path: Path) -> None:
    report, table = _fit(tmp_path, "prior", prior_cost=0.5, fallback=False)
    test = table.filter(pl.col("split").str.starts_with("test_"))
    off = (test["alpha"] - report["fixed_alpha"]).abs()
    assert report["policy"]["chosen"] == "dqn" and off.mean() < 0.05, off.describe()


@pytest.mark.slow
def test_without_a_held_out_gain_the_policy_is_the_fixed_alpha(tmp_path: Path) -> None:
    report, table = _fit(tmp_path, "fallback", prior_cost=0.5, fallback=True)
    chosen = report["policy"]
    assert chosen["chosen"] == "fixed_alpha"
    assert chosen["select_reward"]["dqn"] <= chosen["select_reward"]["fixed_alpha"]
    assert (table["alpha"] == report["fixed_alpha"]).all()
    # the saved policy is that fixed α too, as the detector and the ONNX export load it
    assert (
        fu.load_policy(tmp_path / "fallback.ckpt").actions(torch.randn(20, 16)) == 10 * report["fixed_alpha"]
    ).all()
