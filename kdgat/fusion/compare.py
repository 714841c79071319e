"""Does the fusion earn its place? The DQN against simpler rules, on every split, in the fusion report.

Contenders, all deciding at 0.5 on inputs that are 0.5 at their own thresholds: the DQN's per-graph α, the
GAT alone (α = 1), the VGAE alone (α = 0), the best fixed α on validation, and ``max_inputs`` — alarm when
either input alarms (max of the two calibrated scores; no α, so no reward from the α grid), and ``deployed``
— the policy as it decides, the DQN's α with the VGAE guard (fusion.guard_fpr; the DQN's α without one).

On the unseen vehicle's calibrated splits (``test_*_calibrated``) the inputs are re-centred at thresholds set
on that vehicle's calibration windows (``vehicle_threshold`` of each input, as the evaluation does for a
model alone) and the DQN is applied to the states those inputs give: the same rules, on the car's own
thresholds.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import polars as pl
from numpy.typing import NDArray

from kdgat.fusion.policy import (
    CALIBRATED_SUFFIX,
    CALIBRATION_SPLIT,
    FusionPolicy,
    columns_of,
    decide,
    fuse,
    gat_attack,
    vgae_anomaly,
)
from kdgat.metrics import binary_metrics

_SUMMARY = ("n", "n_attack", "f1", "precision", "recall", "fpr", "mcc", "roc_auc")


def _summary(
    y: NDArray[np.int64], fused: NDArray[np.float64], reward: NDArray[np.float64] | None
) -> dict[str, Any]:
    m = binary_metrics(y, fused, decide(fused).astype(np.int64))
    mean_reward = float(reward.mean()) if reward is not None and y.size else None
    return {**{k: m[k] for k in _SUMMARY}, "mean_reward": mean_reward}


def comparison(
    groups: dict[str, NDArray[np.bool_]],
    alpha_of: dict[str, NDArray[np.float64] | float],
    y: NDArray[np.int64],
    anomaly: NDArray[np.float64],
    p: NDArray[np.float64],
    reward: NDArray[np.float64] | None,
    alphas: NDArray[np.float64],
    deployed: NDArray[np.float64],
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every contender through the same rule on every group of rows; an α contender's reward read from the
    [G, A] ``reward`` table (all α lie on the grid), none for ``max_inputs``, ``deployed`` (the policy's
    fused scores) or without a table."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for name, rows in groups.items():
        out[name] = {}
        for who, a in alpha_of.items():
            a_rows = np.broadcast_to(np.asarray(a, np.float64), y.shape)[rows]
            col = np.searchsorted(alphas, a_rows).clip(0, alphas.size - 1)
            r = None if reward is None else reward[rows][np.arange(rows.sum()), col]
            out[name][who] = _summary(y[rows], fuse(anomaly[rows], p[rows], a_rows), r)
        out[name]["max_inputs"] = _summary(y[rows], np.maximum(anomaly[rows], p[rows]), None)
        out[name]["deployed"] = _summary(y[rows], deployed[rows], None)
    return out


def calibrated_comparison(
    joined: pl.DataFrame,
    policy: FusionPolicy,
    fixed_alpha: float,
    deployed: NDArray[np.float64],
) -> dict[str, Any] | None:
    """The contenders on the calibrated splits, inputs re-centred and the guard (if the policy has one)
    re-cut on the calibration split (``for_vehicle``; None without calibration rows or calibrated
    splits); ``deployed``: the fused scores of ``policy.predict(joined)``, which re-cuts the same way."""
    split = joined["split"].to_numpy()
    calibrated = sorted({s for s in split.tolist() if s.endswith(CALIBRATED_SUFFIX)})
    on_car = split == CALIBRATION_SPLIT
    if not on_car.any() or not calibrated:
        return None
    score, p_raw = joined["vgae_score"].to_numpy(), joined["gat_p_attack"].to_numpy().astype(np.float64)
    car = policy.for_vehicle(score[on_car], p_raw[on_car])
    t_vgae, t_gat = car.calibration.threshold, car.gat_threshold
    # the Q-net's own α on the car's re-centred inputs (the deployed policy sets α = 1 there)
    mixed = dataclasses.replace(car, alphas=policy.alphas).decisions(columns_of(joined))
    anomaly = vgae_anomaly(score, t_vgae, policy.calibration.scale)
    p = gat_attack(p_raw, t_gat)
    alpha_of: dict[str, NDArray[np.float64] | float] = {
        "dqn": mixed["alpha"],
        "gat_alone": 1.0,
        "vgae_alone": 0.0,
        "fixed_alpha": fixed_alpha,
    }
    groups = {s: split == s for s in calibrated}
    y = joined["y"].to_numpy().astype(np.int64)
    return {
        "fpr": policy.vehicle_fpr,
        "thresholds": {"vgae_score": t_vgae, "gat_p_attack": t_gat, "guard": car.guard_threshold},
        "splits": comparison(groups, alpha_of, y, anomaly, p, None, policy.alphas, deployed),
    }
