"""DQN fusion: the one rule, VGAE calibration, the contextual bandit on a synthetic two-region problem fitted
on held-out validation halves (not on the over-confident train split), the fixed-α baseline, determinism,
the files train_fusion writes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from support.tiny_project import study_params

import kdgat.evaluate.report as ev
import kdgat.fusion.compare as fc
import kdgat.fusion.policy as fu
import kdgat.fusion.train as ft
from kdgat.config import DQNScale, Params
from kdgat.fusion.dqn import QNet, build_qnet
from kdgat.metrics import binary_metrics

STUDY = study_params()  # the repository's params.yaml

SPLITS = {"train": 600, "val": 1600, "test_known": 500, "test_unknown_attack": 300}


def two_region_tables(seed: int = 0, splits: dict[str, int] = SPLITS) -> tuple[pl.DataFrame, pl.DataFrame]:
    """VGAE and GAT prediction tables where the GAT is right in region 1 (GAT emb_mean ≈ +2) and confidently
    wrong in region 0 (emb_mean ≈ −2), while the VGAE separates region 0 and is near chance in region 1.
    On the train split the GAT is right in both regions, as a model is on the graphs it was fitted on."""
    rng = np.random.default_rng(seed)
    split = np.concatenate([[s] * n for s, n in splits.items()])
    index = np.concatenate([np.arange(n) for n in splits.values()])
    g = split.size
    y = (rng.random(g) < 0.3).astype(np.int64)
    region = rng.random(g) < 0.5
    # VGAE: region 0 benign ≈ 1, attack ≈ 3; region 1 benign ≈ 2.2, attack ≈ 1.8 (slightly inverted)
    centre = np.where(region, np.where(y == 1, 1.8, 2.2), np.where(y == 1, 3.0, 1.0))
    score = np.abs(centre + rng.normal(0, 0.3, g))
    feat = score * rng.uniform(0.4, 0.6, g)
    id_ce = (score - feat) * rng.uniform(0.3, 0.7, g) * 2
    vgae = pl.DataFrame(
        {
            "split": split,
            "index": index,
            "y": y,
            "y_type": y * 2,
            "score": score,
            "feat_mse": feat,
            "id_ce": id_ce,
            "nbr_bce": (score - feat - 0.5 * id_ce) * 2,
            "kl": rng.uniform(0, 5, g),
            "latent_mean": rng.normal(0, 1, g),
            "latent_std": rng.uniform(0.5, 1.5, g),
            "latent_norm": rng.uniform(1, 3, g),
        }
    )
    right = np.where(y == 1, 2.5, -2.5) + rng.normal(0, 0.7, g)
    # outside its region the GAT is confidently random: wrong half the time, yet its validation threshold
    # (fusion.calibrate) stays near 0.5, as a GAT that is wrong only somewhere has it
    logit = np.where(region | (split == "train"), right, rng.normal(0, 2.5, g))
    p = 1 / (1 + np.exp(-logit))
    gat = pl.DataFrame(
        {
            "split": split,
            "index": index,
            "y": y,
            "y_type": y * 2,
            "p_attack": p,
            "logit": logit,
            "emb_norm": rng.uniform(2, 4, g),
            "emb_mean": np.where(region, 2.0, -2.0) + rng.normal(0, 0.3, g),
            "emb_std": rng.uniform(0.5, 1.0, g),
            "confidence": np.abs(p - 0.5),
            "entropy": -(p * np.log(p) + (1 - p) * np.log(1 - p)),
        }
    )
    # the GAT table arrives in another row order: the join must not care
    return vgae, gat.reverse()


def fusion_params(**fusion: object) -> Params:
    base = STUDY
    small = {"hidden": 32, "layers": 2}
    return Params.model_validate(
        {
            **base.model_dump(),
            "models": {**base.models.model_dump(), "dqn": {"large": small, "small": small}},
            "train": {**base.train.model_dump(), "batch_size": 128, "lr": 3e-3},
            "fusion": {**base.fusion.model_dump(), "epochs": 15, **fusion},
        }
    )


def fit_tables(d: Path, vgae: pl.DataFrame, gat: pl.DataFrame, params: Params) -> dict[str, Any]:
    """``train_fusion`` (small) on these tables, every file in ``d``: fusion.ckpt, .json, .parquet."""
    vgae.write_parquet(d / "vgae.parquet")
    gat.write_parquet(d / "gat.parquet")
    return ft.train_fusion(
        params,
        d / "vgae.parquet",
        d / "gat.parquet",
        "small",
        d / "fusion.ckpt",
        report=d / "fusion.json",
        predictions=d / "fusion.parquet",
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    d = tmp_path_factory.mktemp("fusion")
    return d, fit_tables(d, *two_region_tables(), fusion_params())


# --- the rule -------------------------------------------------------------------------------------


def test_one_rule_everywhere() -> None:
    assert ev.fuse is fu.fuse and ev.decide is fu.decide
    a, p = np.array([0.2, 0.9, 0.5]), np.array([0.8, 0.1, 0.5])
    np.testing.assert_allclose(fu.fuse(a, p, np.array([0.0, 0.5, 1.0])), [0.2, 0.5, 0.5])
    np.testing.assert_array_equal(fu.decide(np.array([0.4999, 0.5, 0.7])), [False, True, True])
    # α = 1 is exactly the GAT, α = 0 exactly the VGAE anomaly
    np.testing.assert_array_equal(fu.gat_alone(p), p)
    np.testing.assert_array_equal(fu.vgae_alone(a), a)
    # the torch path gives the same numbers (the ONNX policy will use it)
    t = fu.fuse(torch.tensor(a), torch.tensor(p), torch.tensor([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(t.numpy(), [0.2, 0.5, 0.5])


def test_training_reward_and_evaluation_call_the_same_fuse(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = fu.fuse

    def spy(*args: Any) -> Any:
        calls.append("x")
        return original(*args)

    assert ft.fuse is fu.fuse and ft.decide is fu.decide
    monkeypatch.setattr(ft, "fuse", spy)
    y, a, p = np.array([1, 0]), np.array([0.9, 0.1]), np.array([0.2, 0.8])
    r = ft.rewards(y, a, p, fu.alpha_grid(3), STUDY.fusion)
    assert calls, "rewards() bypassed fuse"
    # α 0 → VGAE: catches the attack, passes the benign; α 1 → GAT: misses (−5), false alarm (−1)
    np.testing.assert_array_equal(r[:, 0], [1, 1])
    np.testing.assert_array_equal(r[:, 2], [-5, -1])
    calls.clear()
    monkeypatch.setattr(ev, "fuse", spy)
    table = pl.DataFrame(
        {"split": ["test_known"], "index": [0], "y": [1], "vgae_anomaly": [0.9], "gat_attack": [0.2]}
    ).with_columns(alpha=pl.lit(0.0), fused=pl.lit(0.9), decision=pl.lit(1))
    ev.scored_view("fusion_small", table)
    assert calls, "evaluation bypassed fuse"


def test_vgae_anomaly_is_half_at_the_youden_threshold() -> None:
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(400, int), np.ones(100, int)]
    score = np.r_[rng.normal(1, 0.2, 400), rng.normal(2, 0.3, 100)]
    cal = fu.calibrate_vgae(score, y)
    assert cal.method == "youden_val" and 1.2 < cal.threshold < 1.8
    assert cal.scale == pytest.approx(0.2, rel=0.2)  # benign σ
    anomaly = fu.vgae_anomaly(score, cal.threshold, cal.scale)
    assert fu.vgae_anomaly(np.array([cal.threshold]), cal.threshold, cal.scale)[0] == 0.5
    np.testing.assert_array_equal(fu.decide(anomaly), score >= cal.threshold)
    assert np.all((anomaly >= 0) & (anomaly <= 1)) and np.all(np.isfinite(fu.vgae_anomaly(score * 1e6, 0, 1)))
    # val without attacks: the 99th benign percentile instead
    fallback = fu.calibrate_vgae(score[:400], y[:400])
    assert fallback.method == "benign_q99_val" and fallback.threshold == pytest.approx(
        np.quantile(score[:400], 0.99)
    )


# --- the bandit -----------------------------------------------------------------------------------


@pytest.mark.slow
def test_bandit_learns_which_model_to_trust(trained: tuple[Path, dict]) -> None:
    d, report = trained
    table = pl.read_parquet(d / "fusion.parquet")
    _, gat = two_region_tables()
    region = table.join(
        gat.select("split", "index", (pl.col("emb_mean") > 0).alias("gat_region")), on=["split", "index"]
    )
    test = region.filter(pl.col("split").str.starts_with("test_"))
    # where the two models disagree, the policy sides with the one that is right in the graph's region
    disagree = test.filter((pl.col("vgae_anomaly") >= 0.5) != (pl.col("gat_attack") >= 0.5))
    sided = disagree.with_columns(
        follows=pl.when(pl.col("gat_region")).then(pl.col("gat_attack")).otherwise(pl.col("vgae_anomaly"))
        >= 0.5
    ).with_columns(right=pl.col("follows") == (pl.col("decision") == 1))
    share = dict(sided.group_by("gat_region").agg(pl.col("right").mean()).iter_rows())
    assert disagree.height > 200 and share[True] > 0.9 and share[False] > 0.9, share
    mean_alpha = dict(test.group_by("gat_region").agg(pl.col("alpha").mean()).iter_rows())
    # the prior (fusion.prior_cost) holds α near the best fixed α wherever moving it changes no decision,
    # so the regions differ by less than the 0.5 their decisions alone would allow
    assert mean_alpha[True] > mean_alpha[False] + 0.25, mean_alpha
    assert report["policy"]["chosen"] == "dqn"  # its gain shows on the held-out select half
    for split in ("test_known", "test_unknown_attack"):
        f1 = {who: m["f1"] for who, m in report["comparison"][split].items()}
        assert (
            f1["dqn"] > 0.9 and f1["dqn"] > max(f1["gat_alone"], f1["vgae_alone"], f1["fixed_alpha"]) + 0.1
        ), f1


@pytest.mark.slow
def test_bandit_feedback_mode_also_learns(tmp_path: Path) -> None:
    vgae, gat = two_region_tables(seed=3)
    vgae.write_parquet(tmp_path / "v.parquet")
    gat.write_parquet(tmp_path / "g.parquet")
    report = ft.train_fusion(
        fusion_params(feedback="bandit", epochs=20),
        tmp_path / "v.parquet",
        tmp_path / "g.parquet",
        "small",
        tmp_path / "f.ckpt",
        report=tmp_path / "f.json",
        predictions=tmp_path / "f.parquet",
    )
    f1 = {who: m["f1"] for who, m in report["comparison"]["test_known"].items()}
    assert f1["dqn"] > max(f1["gat_alone"], f1["vgae_alone"], f1["fixed_alpha"]), f1
    eps = pl.read_csv(tmp_path / "f.epochs.csv")["epsilon"].to_list()
    assert (
        eps[0] == pytest.approx(0.5) and eps[-1] == pytest.approx(0.02) and eps == sorted(eps, reverse=True)
    )


def test_fixed_alpha_is_the_best_grid_alpha_on_val() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(600) < 0.4).astype(np.int64)
    anomaly = np.clip(0.5 + np.where(y == 1, 0.15, -0.15) + rng.normal(0, 0.2, 600), 0, 1)
    p = np.clip(0.5 + np.where(y == 1, 0.1, -0.1) + rng.normal(0, 0.2, 600), 0, 1)
    alphas = fu.alpha_grid(11)
    alpha, f1s = ft.tune_fixed_alpha(y, anomaly, p, alphas)
    brute = []
    for a in alphas:
        d = ((1 - a) * anomaly + a * p >= 0.5).astype(int)
        tp, fp, fn = ((d == 1) & (y == 1)).sum(), ((d == 1) & (y == 0)).sum(), ((d == 0) & (y == 1)).sum()
        brute.append(2 * tp / (2 * tp + fp + fn))
    np.testing.assert_allclose(np.array(f1s, dtype=float), brute)
    assert alpha == alphas[int(np.argmax(brute))]


def test_fit_select_split_is_stratified_and_seeded() -> None:
    rng = np.random.default_rng(0)
    y_type = rng.choice([0, 0, 0, 1, 2, 3], 1001)
    y = (y_type > 0).astype(np.int64)
    fit, select = ft.fit_select_split(y, y_type, seed=4)
    assert not (fit & select).any() and (fit | select).all()
    for t in range(4):
        rows = y_type == t
        assert 0 <= fit[rows].sum() - select[rows].sum() <= 1, t  # half of every stratum, odd extra to fit
    again, _ = ft.fit_select_split(y, y_type, seed=4)
    other, _ = ft.fit_select_split(y, y_type, seed=5)
    np.testing.assert_array_equal(fit, again)
    assert (fit != other).sum() > 200
    one, none = ft.fit_select_split(np.array([1]), np.array([3]), seed=0)
    assert one.tolist() == [True] and none.tolist() == [False]


def test_epoch_ties_on_the_select_half_go_to_the_better_fit() -> None:
    rng = np.random.default_rng(1)
    states = torch.from_numpy(rng.normal(0, 1, (400, 5)).astype(np.float32))
    # the best α depends on the sign of the first state number
    reward = torch.where((states[:, :1] > 0) == (torch.arange(3) == 0), 1.0, -1.0)
    flat = torch.ones(50, 3)  # every action earns the same on the selection rows: every epoch ties there
    params = fusion_params(epochs=8)
    _, history, best = ft.fit_qnet(
        DQNScale(hidden=16, layers=1), params.fusion, params.train, states, reward, states[:50], flat
    )
    fit = [h["fit_reward"] for h in history]
    assert {h["select_reward"] for h in history} == {1.0}
    assert best == fit.index(max(fit)) and fit[best] > fit[0]


@pytest.mark.slow
def test_train_rows_are_not_fitted_unless_asked(tmp_path: Path) -> None:
    vgae, gat = two_region_tables(seed=6, splits={"train": 300, "val": 300, "test_known": 100})
    for tag, keep in (("all", True), ("no_train", False)):
        vgae.filter(keep | (pl.col("split") != "train")).write_parquet(tmp_path / f"v_{tag}.parquet")
        gat.filter(keep | (pl.col("split") != "train")).write_parquet(tmp_path / f"g_{tag}.parquet")

    def run(tag: str, include_train: bool = False) -> tuple[dict, dict]:
        report = ft.train_fusion(
            fusion_params(epochs=3, fallback=False),
            tmp_path / f"v_{tag.split('+')[0]}.parquet",
            tmp_path / f"g_{tag.split('+')[0]}.parquet",
            "small",
            tmp_path / f"{tag}.ckpt",
            report=tmp_path / f"{tag}.json",
            predictions=tmp_path / f"{tag}.parquet",
            include_train=include_train,
        )
        return torch.load(tmp_path / f"{tag}.ckpt", weights_only=True), report

    (a, ra), (b, _), (c, rc) = run("all"), run("no_train"), run("all+train", include_train=True)
    n_fit, n_select = ra["fit_data"]["n_fit"], ra["fit_data"]["n_select"]
    assert n_fit + n_select == 300 and abs(n_fit - n_select) <= 2 and rc["fit_data"]["n_fit"] == n_fit + 300
    assert rc["fit_data"]["fit"] == "val half + train" and a["info"]["fit_data"] == ra["fit_data"]
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k])
    assert a["state_mean"] == b["state_mean"] and a["state_mean"] != c["state_mean"]
    with pytest.raises(fu.FusionError, match="no 'train' rows, but include_train"):
        run("no_train+x", include_train=True)


@pytest.mark.slow
def test_same_seed_same_policy_other_seed_other_weights(tmp_path: Path) -> None:
    vgae, gat = two_region_tables(seed=5, splits={"train": 400, "val": 200, "test_known": 100})
    vgae.write_parquet(tmp_path / "v.parquet")
    gat.write_parquet(tmp_path / "g.parquet")

    def run(tag: str, seed: int) -> tuple[dict, pl.DataFrame]:
        params = fusion_params(epochs=4, fallback=False)
        params = params.model_copy(update={"train": params.train.model_copy(update={"seed": seed})})
        ft.train_fusion(
            params,
            tmp_path / "v.parquet",
            tmp_path / "g.parquet",
            "small",
            tmp_path / f"{tag}.ckpt",
            report=tmp_path / f"{tag}.json",
            predictions=tmp_path / f"{tag}.parquet",
        )
        return torch.load(tmp_path / f"{tag}.ckpt", weights_only=True), pl.read_parquet(
            tmp_path / f"{tag}.parquet"
        )

    (a, ta), (b, tb), (c, _) = run("a", 0), run("b", 0), run("c", 1)
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k])
    assert ta.equals(tb)
    assert not all(torch.equal(a["state_dict"][k], c["state_dict"][k]) for k in a["state_dict"])


# --- files and inputs -----------------------------------------------------------------------------


@pytest.mark.slow
def test_train_fusion_writes_policy_report_and_predictions(trained: tuple[Path, dict]) -> None:
    d, report = trained
    table = pl.read_parquet(d / "fusion.parquet")
    assert table.columns == [
        "split",
        "index",
        "y",
        "y_type",
        "vgae_anomaly",
        "p_attack",
        "gat_attack",
        "action",
        "alpha",
        "guard",
        "fused",
        "decision",
    ]
    assert table.height == sum(SPLITS.values())
    assert set(table["alpha"].unique().to_list()) <= set(fu.alpha_grid(11).tolist())
    on_disk = json.loads((d / "fusion.json").read_text())
    assert on_disk["best_epoch"] == report["best_epoch"] and on_disk["n_state"] == 16
    assert on_disk["vgae_calibration"]["method"] == "youden_val"
    epochs = pl.read_csv(d / "fusion.epochs.csv")
    assert epochs.columns == ["epoch", "epsilon", "train_loss", "fit_reward", "select_reward"]
    assert epochs.height == 15
    assert report["best_select_reward"] == pytest.approx(epochs["select_reward"].max())
    # the best selection-half reward, ties to the best fit-half reward, then to the first epoch
    keys = list(zip(epochs["select_reward"], epochs["fit_reward"], -epochs["epoch"], strict=True))
    assert epochs["epoch"][keys.index(max(keys))] == report["best_epoch"]
    fit = on_disk["fit_data"]
    assert fit["fit"] == "val half" and fit["n_fit"] + fit["n_select"] == SPLITS["val"]
    assert on_disk["comparison"]["val_fit"]["dqn"]["n"] == fit["n_fit"]
    assert on_disk["comparison"]["val_select"]["dqn"]["n"] == fit["n_select"]
    # the saved policy reproduces the stored predictions
    policy = fu.load_policy(d / "fusion.ckpt")
    vgae, gat = two_region_tables()
    joined = fu.join_predictions(
        fu.read_predictions(vgae, fu.VGAE_COLUMNS, "v"), fu.read_predictions(gat, fu.GAT_COLUMNS, "g")
    )
    assert policy.predict(joined).equals(table)
    assert dataclasses.asdict(policy.calibration) == report["vgae_calibration"]


def test_bad_inputs_are_named(tmp_path: Path) -> None:
    vgae, gat = two_region_tables(splits={"train": 50, "val": 50})
    with pytest.raises(fu.FusionError, match=r"vgae\.parquet: missing column\(s\) \['latent_norm'\]"):
        fu.read_predictions(vgae.drop("latent_norm"), fu.VGAE_COLUMNS, "vgae.parquet")
    nan = vgae.with_columns(
        pl.when(pl.col("index") == 7).then(None).otherwise(pl.col("id_ce")).alias("id_ce")
    )
    with pytest.raises(fu.FusionError, match=r"row 7 .* non-finite"):
        fu.read_predictions(nan, fu.VGAE_COLUMNS, "v")
    with pytest.raises(fu.FusionError, match="100 graphs, the GAT table 99"):
        fu.join_predictions(vgae, gat.slice(1))
    flipped = gat.with_columns(y=1 - pl.col("y"))
    with pytest.raises(fu.FusionError, match="disagree on labels"):
        fu.join_predictions(vgae, flipped)
    vgae.filter(pl.col("split") == "train").write_parquet(tmp_path / "v.parquet")
    gat.filter(pl.col("split") == "train").write_parquet(tmp_path / "g.parquet")
    with pytest.raises(fu.FusionError, match=r"v\.parquet: 0 'val' rows; at least 2 are needed"):
        ft.train_fusion(
            fusion_params(),
            tmp_path / "v.parquet",
            tmp_path / "g.parquet",
            "small",
            tmp_path / "f.ckpt",
            report=tmp_path / "f.json",
            predictions=tmp_path / "f.parquet",
        )
    with pytest.raises(fu.FusionError, match="scale must be 'large' or 'small', not 'tiny'"):
        ft.train_fusion(
            fusion_params(),
            tmp_path / "v.parquet",
            tmp_path / "g.parquet",
            "tiny",
            tmp_path / "f.ckpt",
            report=tmp_path / "f.json",
            predictions=tmp_path / "f.parquet",
        )


def test_qnet_shapes_and_seed() -> None:
    scale = DQNScale(hidden=16, layers=3)
    net = build_qnet(scale, 15, 11, seed=0)
    assert isinstance(net, QNet) and net(torch.zeros(4, 15)).shape == (4, 11)
    assert sum(isinstance(m, torch.nn.Linear) for m in net.modules()) == 4
    before = torch.random.get_rng_state()
    same = build_qnet(scale, 15, 11, seed=0)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's stream untouched
    assert all(torch.equal(p, q) for p, q in zip(net.parameters(), same.parameters(), strict=True))


@pytest.mark.slow  # torch.export and the ONNX translation load and trace for seconds, as test_edge's exports
def test_qnet_exports_to_onnx(tmp_path: Path) -> None:
    net = build_qnet(DQNScale(hidden=16, layers=3), 15, 11, seed=0)
    ort = pytest.importorskip("onnxruntime")
    path = tmp_path / "qnet.onnx"
    # the exporter the project uses (dynamo), batch axis dynamic, weights inside the one file
    torch.onnx.export(
        net.eval(),
        (torch.zeros(2, 15),),
        str(path),
        input_names=["state"],
        output_names=["q"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    x = torch.randn(7, 15)
    (q,) = ort.InferenceSession(str(path)).run(None, {"state": x.numpy()})
    np.testing.assert_allclose(q, net(x).detach().numpy(), atol=1e-5)


@pytest.mark.slow
def test_summary_metrics_match_binary_metrics(trained: tuple[Path, dict]) -> None:
    d, report = trained
    table = pl.read_parquet(d / "fusion.parquet").filter(pl.col("split") == "test_known")
    m = binary_metrics(table["y"], table["fused"], table["decision"])
    assert report["comparison"]["test_known"]["dqn"]["f1"] == pytest.approx(m["f1"])


# --- issue 10: does the fusion earn its place on the unseen vehicle ---------------------------------


def test_max_inputs_alarms_when_either_input_does() -> None:
    y = np.array([1, 1, 1, 0, 0])
    anomaly, p = np.array([0.9, 0.1, 0.1, 0.6, 0.1]), np.array([0.1, 0.9, 0.1, 0.1, 0.1])
    out = fc.comparison(
        {"all": np.ones(5, bool)}, {"gat_alone": 1.0}, y, anomaly, p, None, np.array([0.0, 1.0]), p
    )
    m = out["all"]["max_inputs"]
    assert (m["recall"], m["fpr"], m["mean_reward"]) == (pytest.approx(2 / 3), 0.5, None)
    assert out["all"]["gat_alone"]["recall"] == pytest.approx(1 / 3)
    assert out["all"]["deployed"] == out["all"]["gat_alone"]  # the policy's own scores, as given


def test_calibrated_comparison_recentres_the_inputs_on_the_vehicles_calibration(tmp_path: Path) -> None:
    """A new car whose benign windows all score high for both models: on its calibrated split every
    contender decides with inputs re-centred at that car's calibration thresholds."""
    vgae, gat = two_region_tables(seed=4)
    test = (pl.col("split") == "test_known") & (pl.col("y") == 0)

    def car(t: pl.DataFrame, col: str, moved: pl.Expr) -> pl.DataFrame:
        cal = t.filter(test).with_columns(pl.lit("calibration").alias("split"), moved.alias(col))
        vehicle = t.filter(pl.col("split") == "test_known").with_columns(
            pl.lit("test_unknown_vehicle_calibrated").alias("split"), moved.alias(col)
        )
        return pl.concat([t, cal, vehicle])

    car(vgae, "score", pl.col("score") + 3.0).write_parquet(tmp_path / "v.parquet")
    g = car(gat, "p_attack", pl.col("p_attack") * 0.2 + 0.8)  # every window of the car above 0.8
    g.write_parquet(tmp_path / "g.parquet")
    report = ft.train_fusion(
        fusion_params(epochs=3, fallback=False),
        tmp_path / "v.parquet",
        tmp_path / "g.parquet",
        "small",
        tmp_path / "f.ckpt",
        report=tmp_path / "f.json",
        predictions=tmp_path / "f.parquet",
    )
    cal = report["comparison_calibrated"]
    on_car = g.filter(pl.col("split") == "calibration")["p_attack"].to_numpy()
    assert cal["thresholds"]["gat_p_attack"] == pytest.approx(np.quantile(on_car, 1 - cal["fpr"]))
    vehicle = cal["splits"]["test_unknown_vehicle_calibrated"]
    assert set(vehicle) == {"dqn", "gat_alone", "vgae_alone", "fixed_alpha", "max_inputs", "deployed"}
    # the guard too sits on the car's own windows, at the VGAE's cut there (calibration.fpr of them)
    car_score = vgae.filter(test)["score"].to_numpy() + 3.0
    assert cal["thresholds"]["guard"] == cal["thresholds"]["vgae_score"]
    assert cal["thresholds"]["guard"] == pytest.approx(np.quantile(car_score, 1 - cal["fpr"]))
    assert vehicle["deployed"]["fpr"] < 0.1
    # the plain validation thresholds would flag every benign window of this car; its own do not
    assert report["comparison"]["test_unknown_vehicle_calibrated"]["gat_alone"]["fpr"] == 1.0
    assert vehicle["gat_alone"]["fpr"] < 0.1 and vehicle["vgae_alone"]["fpr"] < 0.1
    assert vehicle["max_inputs"]["recall"] >= max(
        vehicle["gat_alone"]["recall"], vehicle["vgae_alone"]["recall"]
    )
