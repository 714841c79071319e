"""The fusion policy on arrays (``FusionPolicy.decisions``, what the detector calls per window) decides bit
for bit as the polars table code the study's policies were fitted and scored with: the raw state, the actions,
the fused scores and the decisions, on random prediction tables and on the committed study's predictions
(when `dvc checkout` brought them). ``_polars_*`` below is that earlier code, kept as the reference."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import kdgat.fusion.policy as fu
import kdgat.fusion.signed_log as sl
from kdgat.config import DQNScale
from kdgat.fusion.dqn import QNet

REPO = Path(__file__).resolve().parents[1]
PREDICTIONS, MODELS = REPO / "predictions" / "synth", REPO / "models" / "synth"
VARIANTS = ("large", "small_kd", "small")


def _polars_state_matrix(joined: pl.DataFrame, anomaly: np.ndarray) -> np.ndarray:
    cols = [
        (pl.col(c).sign() * pl.col(c).abs().log1p()) if c in fu._LOG_COLUMNS else pl.col(c)
        for c in fu.STATE_COLUMNS
        if c != "vgae_anomaly"
    ]
    raw = joined.select(cols).to_numpy().astype(np.float64)
    return np.insert(raw, fu.STATE_COLUMNS.index("vgae_anomaly"), anomaly, axis=1)


def _polars_predict(policy: fu.FusionPolicy, joined: pl.DataFrame) -> pl.DataFrame:
    cal = policy.calibration
    score = joined["vgae_score"].to_numpy().astype(np.float64)
    p = joined["gat_p_attack"].to_numpy().astype(np.float64)
    # the unseen vehicle's rows: both inputs and the guard re-cut at vehicle_fpr of its calibration windows
    split = joined["split"].to_numpy().astype(str)
    on_car = split == "calibration"
    car = (on_car | np.char.endswith(split, "_calibrated")) & on_car.any()
    t_vgae = np.full(joined.height, cal.threshold)
    t_guard = None if policy.guard_threshold is None else np.full(joined.height, policy.guard_threshold)
    if on_car.any():
        t_vgae[car] = np.quantile(score[on_car], 1.0 - policy.vehicle_fpr)
        t_gat_car = float(np.quantile(p[on_car], 1.0 - policy.vehicle_fpr))
        if t_guard is not None:
            t_guard[car] = t_vgae[car]
    anomaly = 0.5 * (1.0 + np.tanh(0.5 * ((score - t_vgae) / cal.scale)))
    action = policy.actions(fu.standardise(_polars_state_matrix(joined, anomaly), policy.mean, policy.std))
    calibrated = fu.gat_attack(p, policy.gat_threshold)
    if on_car.any():
        calibrated = np.where(car, fu.gat_attack(p, t_gat_car), calibrated)
    guard = np.zeros(joined.height)
    if t_guard is not None:
        guard = 0.5 * (1.0 + np.tanh(0.5 * ((score - t_guard) / cal.scale)))
    alpha = np.where(car, 1.0, policy.alphas[action])  # on the unseen vehicle α = 1 whatever the action
    fused = np.maximum(fu.fuse(anomaly, calibrated, alpha), guard)
    return joined.select(*fu.KEY, "y", "y_type").with_columns(
        pl.Series("vgae_anomaly", anomaly),
        pl.Series("p_attack", p),
        pl.Series("gat_attack", calibrated),
        pl.Series("action", action, dtype=pl.Int32),
        pl.Series("alpha", alpha),
        pl.Series("guard", guard),
        pl.Series("fused", fused),
        pl.Series("decision", fu.decide(fused).astype(np.int8)),
    )


def _values(rng: np.random.Generator, n: int, dtype: type) -> np.ndarray:
    """Signed values over 16 decades, with zeros, −0.0 and exact integers among them."""
    x = rng.standard_normal(n) * 10.0 ** rng.uniform(-8, 8, n)
    x[rng.random(n) < 0.02] = 0.0
    x[rng.random(n) < 0.02] = -0.0
    ints = rng.random(n) < 0.02
    x[ints] = np.round(x[ints])
    return x.astype(dtype)


def _random_joined(seed: int, n: int, dtype: str) -> pl.DataFrame:
    """``dtype``: float32, float64 or mixed (VGAE columns float64, GAT columns float32)."""
    rng = np.random.default_rng(seed)

    def of(c: str) -> type:
        return np.float32 if dtype == "float32" or (dtype == "mixed" and c.startswith("gat_")) else np.float64

    cols = {c: _values(rng, n, of(c)) for c in fu.STATE_COLUMNS if c != "vgae_anomaly"}
    cols["gat_p_attack"] = rng.random(n).astype(of("gat_p_attack"))
    cols["vgae_score"] = np.abs(cols["vgae_score"])
    key = {"split": ["test"] * n, "index": np.arange(n), "y": rng.integers(0, 2, n), "y_type": np.zeros(n)}
    return pl.DataFrame(key | cols)


def _random_policy(seed: int, n_state: int, rows: np.ndarray) -> fu.FusionPolicy:
    import torch

    torch.manual_seed(seed)
    qnet = QNet(DQNScale(hidden=32, layers=2), n_state, 11)
    mean, std = rows.mean(axis=0), rows.std(axis=0) + 1e-3
    cal = fu.VGAECalibration(1.0, 0.5, "youden_val", 0.4)
    return fu.FusionPolicy(qnet, fu.alpha_grid(11), mean, std, cal, 0.3)


def test_signed_log_is_polars_bit_for_bit_on_both_paths() -> None:
    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        x = np.concatenate([_values(rng, 200_000, dtype), np.array([np.inf, -np.inf, 0.0, -0.0], dtype)])
        want = pl.DataFrame({"x": x}).select(pl.col("x").sign() * pl.col("x").abs().log1p())["x"].to_numpy()
        whole = sl.signed_log1p(x)  # polars itself
        small = np.concatenate([sl.signed_log1p(x[i : i + sl.SMALL]) for i in range(0, 19_200, sl.SMALL)])
        assert whole.dtype == small.dtype == dtype
        assert whole.tobytes() == want.tobytes()
        assert small.tobytes() == want[:19_200].tobytes()  # the C library's log1p through ctypes
    assert sl._c_log1p() is not None, "the C library's log1p is not polars' here: the live path is slow"
    ints = np.array([-5, 0, 7, 1 << 40])
    want = pl.DataFrame({"x": ints}).select(pl.col("x").sign() * pl.col("x").abs().log1p())["x"].to_numpy()
    assert sl.signed_log1p(ints).tobytes() == want.tobytes()


@pytest.mark.parametrize("dtype", ["float32", "float64", "mixed"])
def test_state_and_decisions_equal_the_polars_code_on_random_rows(dtype: str) -> None:
    joined = _random_joined(1, 5_000, dtype)
    policy = _random_policy(1, len(fu.STATE_COLUMNS), _polars_state_matrix(joined, np.zeros(joined.height)))
    # a VGAE guard that half the rows pass (fusion.guard_fpr)
    policy = dataclasses.replace(policy, guard_threshold=float(np.median(joined["vgae_score"].to_numpy())))
    anomaly = np.random.default_rng(2).random(joined.height)
    assert fu.state_matrix(joined, anomaly).tobytes() == _polars_state_matrix(joined, anomaly).tobytes()
    want = _polars_predict(policy, joined)
    assert policy.predict(joined).equals(want)
    # one window at a time and in small chunks, as the detector calls it (the C library's log1p path)
    for lo, hi in ((0, 1), (17, 18), (100, 140), (4_999, 5_000)):
        got = policy.decisions(fu.columns_of(joined[lo:hi]))
        assert pl.DataFrame(got).equals(want[lo:hi].drop(*fu.KEY, "y", "y_type"))


@pytest.mark.skipif(
    not all(
        (d / f"fusion_{v}.{x}").is_file()
        for v in VARIANTS
        for d, x in ((PREDICTIONS, "parquet"), (MODELS, "ckpt"))
    ),
    reason="the study's predictions and models are not checked out (dvc checkout)",
)
@pytest.mark.parametrize("variant", VARIANTS)
def test_committed_study_fusion_is_reproduced_bit_for_bit(variant: str) -> None:
    """The fusion stage's prediction table, rebuilt from its committed inputs and policy by the array code,
    equals the committed file; the raw states (what the Q-net was fitted on) equal the polars code's; and
    every 100th graph decided alone equals its row."""
    joined = fu.join_predictions(
        fu.read_predictions(PREDICTIONS / f"vgae_{variant}.parquet", fu.VGAE_COLUMNS, "vgae"),
        fu.read_predictions(PREDICTIONS / f"gat_{variant}.parquet", fu.GAT_COLUMNS, "gat"),
    )
    policy = fu.load_policy(MODELS / f"fusion_{variant}.ckpt")
    anomaly = fu.vgae_anomaly(joined["vgae_score"].to_numpy(), policy.calibration.threshold, 1.0)
    assert fu.state_matrix(joined, anomaly).tobytes() == _polars_state_matrix(joined, anomaly).tobytes()
    table = policy.predict(joined)
    assert table.equals(pl.read_parquet(PREDICTIONS / f"fusion_{variant}.parquet"))
    assert table.equals(_polars_predict(policy, joined))
    decided = table.drop(*fu.KEY, "y", "y_type")
    on_car = joined.filter(pl.col("split") == "calibration")
    car = policy.for_vehicle(on_car["vgae_score"].to_numpy(), on_car["gat_p_attack"].to_numpy())
    for i in range(0, joined.height, 100):
        split = joined["split"][i]
        alone = car if split == "calibration" or split.endswith("_calibrated") else policy
        assert pl.DataFrame(alone.decisions(fu.columns_of(joined[i : i + 1]))).equals(decided[i : i + 1])
