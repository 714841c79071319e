"""The fusion's VGAE guard (fusion.guard_fpr): the VGAE alarms on its own, whatever α the policy chose, beyond
the score that only that share of benign validation windows reach — set on benign validation only, applied
in the deployed score, the evaluation's check, the comparison and the bundle's decision rule."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from test_fusion import fit_tables, fusion_params, two_region_tables

import kdgat.evaluate.report as ev
import kdgat.fusion.policy as fu
from kdgat.config import DQNScale
from kdgat.edge.export import decision_rule
from kdgat.fusion.dqn import constant_qnet


def _fit(tmp_path: Path, guard_fpr: float) -> tuple[dict, pl.DataFrame, pl.DataFrame]:
    vgae, gat = two_region_tables()
    # one unknown attack the VGAE scores far beyond benign traffic while the GAT sees nothing
    novel = (vgae["split"] == "test_unknown_attack") & (vgae["y"] == 1)
    vgae = vgae.with_columns(
        pl.when(novel).then(pl.col("score") + 10.0).otherwise(pl.col("score")).alias("score")
    )
    report = fit_tables(tmp_path, vgae, gat, fusion_params(guard_fpr=guard_fpr))
    return report, pl.read_parquet(tmp_path / "fusion.parquet"), vgae


@pytest.mark.slow
def test_guard_is_set_on_benign_validation_and_alarms_whatever_alpha(tmp_path: Path) -> None:
    report, table, vgae = _fit(tmp_path, 0.01)
    val = vgae.filter((pl.col("split") == "val") & (pl.col("y") == 0))["score"].to_numpy()
    assert report["guard_threshold"] == pytest.approx(float(np.quantile(val, 0.99)))
    score = vgae.sort("split", "index")["score"].to_numpy()
    table = table.sort("split", "index")
    beyond = score >= report["guard_threshold"]
    assert (table["guard"].to_numpy()[beyond] >= 0.5).all() and (
        table["guard"].to_numpy()[~beyond] < 0.5
    ).all()
    rule = fu.fuse(
        table["vgae_anomaly"].to_numpy(), table["gat_attack"].to_numpy(), table["alpha"].to_numpy()
    )
    np.testing.assert_allclose(table["fused"].to_numpy(), np.maximum(rule, table["guard"].to_numpy()))
    # every window beyond the guard alarms, whatever α; the evaluation accepts the stored scores
    assert (table["decision"].to_numpy()[beyond] == 1).all()
    ev.scored_view("fusion_small", table)
    novel = report["comparison"]["test_unknown_attack"]
    assert novel["deployed"]["recall"] == 1.0 > novel["gat_alone"]["recall"]
    # the same policy file and the bundle's decision rule carry it
    policy = fu.load_policy(tmp_path / "fusion.ckpt")
    assert policy.guard_threshold == report["guard_threshold"]
    assert decision_rule(policy)["guard_threshold"] == report["guard_threshold"]


@pytest.mark.slow
def test_no_guard_leaves_the_alpha_rule(tmp_path: Path) -> None:
    report, table, _ = _fit(tmp_path, 0.0)
    assert report["guard_threshold"] is None and (table["guard"] == 0).all()
    rule = fu.fuse(
        table["vgae_anomaly"].to_numpy(), table["gat_attack"].to_numpy(), table["alpha"].to_numpy()
    )
    np.testing.assert_array_equal(table["fused"].to_numpy(), rule)
    for split in report["comparison"].values():
        assert split["deployed"] == {**split["dqn"], "mean_reward": None}


def test_evaluation_rejects_a_guard_column_the_scores_disagree_with() -> None:
    table = pl.DataFrame(
        {
            "split": ["val", "val"],
            "index": [0, 1],
            "y": [0, 1],
            "vgae_anomaly": [0.1, 0.2],
            "gat_attack": [0.1, 0.2],
            "alpha": [1.0, 1.0],
            "guard": [0.0, 0.9],
            "fused": [0.1, 0.9],
            "decision": [0, 1],
        }
    )
    ev.scored_view("fusion_small", table)
    with pytest.raises(ev.EvaluationError, match="disagree"):
        ev.scored_view("fusion_small", table.with_columns(pl.Series("fused", [0.1, 0.2]), decision=pl.lit(0)))


def _gat_alone(cal: fu.VGAECalibration) -> fu.FusionPolicy:
    """A policy at α = 1 whatever the state (GAT threshold 0.5), without a guard."""
    n = len(fu.STATE_COLUMNS)
    qnet = constant_qnet(DQNScale(hidden=4, layers=1), n, 11, 10)
    return fu.FusionPolicy(qnet, fu.alpha_grid(11), np.zeros(n), np.ones(n), cal, 0.5)


def test_policy_without_guard_reads_as_before(tmp_path: Path) -> None:
    vgae, gat = two_region_tables(splits={"val": 40})
    joined = fu.join_predictions(vgae, gat)
    cal = fu.calibrate_vgae(joined["vgae_score"].to_numpy(), joined["y"].to_numpy())
    plain = _gat_alone(cal)
    out = plain.decisions(fu.columns_of(joined))
    np.testing.assert_array_equal(out["fused"], out["gat_attack"])  # α = 1, no guard
    guarded = dataclasses.replace(plain, guard_threshold=float(joined["vgae_score"].to_numpy().min()))
    assert (guarded.decisions(fu.columns_of(joined))["decision"] == 1).all()
    plain.save(tmp_path / "p.ckpt", "small", {})
    assert fu.load_policy(tmp_path / "p.ckpt").guard_threshold is None


def test_a_new_vehicles_rows_get_inputs_and_guard_recut_on_its_calibration_windows() -> None:
    """On a car whose benign windows all score above validation's guard, a guard cut on validation would
    decide every window; ``predict`` re-cuts both inputs and the guard at ``vehicle_fpr`` of the car's
    calibration windows."""
    vgae, gat = two_region_tables(
        splits={"val": 200, "calibration": 400, "test_unknown_vehicle_calibrated": 100}
    )
    on_car = pl.col("split") != "val"
    vgae = vgae.with_columns(pl.when(on_car).then(pl.col("score") + 50.0).otherwise(pl.col("score")))
    joined = fu.join_predictions(vgae, gat)
    val = joined.filter(pl.col("split") == "val")
    cal = fu.calibrate_vgae(val["vgae_score"].to_numpy(), val["y"].to_numpy())
    guard = float(np.quantile(val.filter(pl.col("y") == 0)["vgae_score"].to_numpy(), 0.99))
    policy = dataclasses.replace(_gat_alone(cal), guard_threshold=guard, vehicle_fpr=0.01)
    table = policy.predict(joined)
    car_rows = joined.filter(pl.col("split") == "calibration")
    car_scores, car_p = car_rows["vgae_score"].to_numpy(), car_rows["gat_p_attack"].to_numpy()
    car = policy.for_vehicle(car_scores, car_p)
    assert car.guard_threshold is not None and car.guard_threshold > guard + 40
    assert car.guard_threshold == car.calibration.threshold == pytest.approx(np.quantile(car_scores, 0.99))
    assert car.gat_threshold == pytest.approx(np.quantile(car_p, 0.99))
    assert car.calibration.scale == policy.calibration.scale  # the VGAE's spread is validation's
    assert (car.alphas == 1.0).all()  # the larger of the two re-centred inputs decides
    # re-cut: about one of the car's windows in 100 passes it; on validation's cut every window would
    assert (table.filter(on_car)["guard"].to_numpy() >= 0.5).mean() < 0.05
    assert fu.decide(policy.decisions(fu.columns_of(joined.filter(on_car)))["fused"]).all()
    assert table.filter(~on_car).equals(policy.predict(joined.filter(~on_car)))  # validation's rows as before
    unguarded = dataclasses.replace(policy, guard_threshold=None).for_vehicle(car_scores, car_p)
    assert unguarded.guard_threshold is None and unguarded.gat_threshold == car.gat_threshold
    with pytest.raises(fu.FusionError, match=r"calibration\.fpr"):
        dataclasses.replace(policy, vehicle_fpr=0.0).for_vehicle(car_scores, car_p)
