"""DQN fusion of the VGAE and the GAT: what inference needs (the rule, VGAE calibration, state, policy).

The one decision rule, used by training rewards, validation, test, the baselines and evaluation alike:
    fused = fuse(vgae_anomaly, gat_attack, α) = (1 − α)·vgae_anomaly + α·gat_attack;  attack iff fused >= 0.5.
The deployed policy adds a guard outside the α grid (``fusion.guard_fpr``): fused = max(that, guard), guard
the VGAE score mapped to 0.5 at a cut only that share of benign validation windows reach. Validation holds
known attacks only, which the GAT alone separates, so every α it can choose silences the VGAE; the guard
lets the VGAE alarm on its own where its score is beyond benign traffic, at a false-alarm cost bounded by
the share, which is set beforehand, like calibration.fpr, not read off any attack. On a vehicle the models
never saw, both inputs and the guard are re-cut at calibration.fpr of that vehicle's calibration windows
and α is 1 (``for_vehicle``: the larger of the two re-centred inputs decides): cut on validation, the guard
would sit under most of a foreign car's VGAE scores and decide every window, and validation's α would mix
in a VGAE that lacks, on that car, the byte ranges it was trained with.
Every model's threshold is chosen on validation the same way (``calibrate``: Youden's J, the threshold
maximising TPR − FPR; the 99th percentile of benign validation scores when validation has no attack or no
threshold beats chance), and each score is mapped to [0, 1] with 0.5 exactly at its threshold:
vgae_anomaly from the VGAE score (logistic, scaled by the benign spread) and gat_attack from the GAT's
p_attack (shifted in logit space, so the GAT's own confidence is kept). A GAT alone (α = 1) therefore
flags p_attack >= its validation threshold, not >= 0.5: on real captures whose benign windows all got
p_attack above 0.5 the fixed cut flagged everything (FPR 1.0) although the ranking was good (ROC-AUC 0.93+).

A graph's state is 16 numbers from the two models' prediction rows (STATE_COLUMNS), standardised with the
statistics of the rows the Q-net was fitted on; the action is an index into an α grid over [0, 1].
``load_policy`` rebuilds a saved ``FusionPolicy``; fitting it (rewards, Q-net, baselines, which rows are
fitted on and why) lives in kdgat/fusion/train.py.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray
from torch import Tensor

from kdgat.config import DQNScale
from kdgat.fusion.dqn import QNet
from kdgat.fusion.signed_log import signed_log1p
from kdgat.io import atomic_path
from kdgat.metrics import youden_threshold

DECISION_THRESHOLD = 0.5
KEY = ("split", "index")
# the unseen vehicle's rows in a prediction table: its benign calibration windows and its test windows
# scored through its ID alignment (kdgat/data/splits.py, kdgat/evaluate/report.py)
CALIBRATION_SPLIT = "calibration"
CALIBRATED_SUFFIX = "_calibrated"
# the columns kdgat/train/infer.py writes
VGAE_COLUMNS = ("score", "feat_mse", "id_ce", "nbr_bce", "kl", "latent_mean", "latent_std", "latent_norm")
GAT_COLUMNS = ("p_attack", "logit", "confidence", "entropy", "emb_norm", "emb_mean", "emb_std")
# errors and scores are heavy-tailed: a signed log keeps one huge error from saturating the Q-net
_LOG_COLUMNS = ("vgae_score", "vgae_feat_mse", "vgae_id_ce", "vgae_nbr_bce", "vgae_kl", "gat_logit")
STATE_COLUMNS = (
    *(f"vgae_{c}" for c in VGAE_COLUMNS),
    "vgae_anomaly",
    *(f"gat_{c}" for c in GAT_COLUMNS),
)

Num = TypeVar("Num", NDArray[np.float64], Tensor, float)


class FusionError(ValueError):
    """Fusion inputs are unusable; the message names the file and what is wrong."""


def fuse(vgae_anomaly: Num, p_attack: Num, alpha: Num) -> Num:
    """THE fusion rule: (1 − α)·vgae_anomaly + α·p_attack (numpy, torch or floats; broadcasts)."""
    return (1.0 - alpha) * vgae_anomaly + alpha * p_attack


def guarded(fused: NDArray[np.float64], guard: NDArray[np.float64] | None) -> NDArray[np.float64]:
    """The deployed score: the α rule's, or the guard's where it is higher (no guard: unchanged)."""
    return fused if guard is None else np.maximum(fused, guard)


def decide(fused: NDArray[np.float64]) -> NDArray[np.bool_]:
    """Attack iff the fused score reaches 0.5 (α = 1 → p_attack >= 0.5; α = 0 → score >= VGAE threshold)."""
    return np.asarray(fused) >= DECISION_THRESHOLD


def gat_alone(p_attack: NDArray[np.float64]) -> NDArray[np.float64]:
    """The GAT on its own, through the same rule (α = 1)."""
    return fuse(np.zeros_like(p_attack), p_attack, np.ones_like(p_attack))


def vgae_alone(anomaly: NDArray[np.float64]) -> NDArray[np.float64]:
    """The VGAE on its own, through the same rule (α = 0)."""
    return fuse(anomaly, np.zeros_like(anomaly), np.zeros_like(anomaly))


@dataclass(frozen=True)
class VGAECalibration:
    threshold: float  # score >= threshold ↔ vgae_anomaly >= 0.5
    scale: float  # score units per logistic unit: the benign validation spread
    method: Literal["youden_val", "benign_q99_val"]
    youden_j: float | None


def calibrate(score_val: NDArray[np.float64], y_val: NDArray[np.int64]) -> VGAECalibration:
    """THE threshold rule of every model: Youden's J on validation (99th benign percentile if val lacks
    attacks or J <= 0); scale = robust spread (IQR / 1.349) of the benign validation scores, so ±1 scale
    ≈ ±1 benign σ (used by the VGAE's logistic map only)."""
    score_val, y_val = np.asarray(score_val, np.float64), np.asarray(y_val)
    benign = score_val[y_val == 0]
    if benign.size == 0:
        raise FusionError("the validation split has no benign graph: cannot calibrate the VGAE score")
    q25, q75, q99 = np.quantile(benign, [0.25, 0.75, 0.99])
    scale = float((q75 - q25) / 1.349) or float(benign.std()) or 1.0
    found = youden_threshold(y_val, score_val)
    if found is None:
        return VGAECalibration(float(q99), scale, "benign_q99_val", None)
    return VGAECalibration(found[0], scale, "youden_val", found[1])


calibrate_vgae = calibrate  # the VGAE's name for it, kept where the VGAE is meant


def vehicle_threshold(score_calibration: NDArray[np.float64], fpr: float) -> float:
    """THE calibration rule for a vehicle the models never saw: the threshold on a model's final score
    (GAT p_attack, VGAE score, fused score) above which a share ``fpr`` of that vehicle's calibration
    windows lie — benign traffic recorded before deployment, used without labels. A window alarms iff its
    score >= the threshold, as everywhere."""
    s = np.asarray(score_calibration, np.float64)
    if s.size == 0:
        raise FusionError(
            "no calibration window (a dataset's calibration_*/ captures, or a log given to calibrate)"
        )
    return float(np.quantile(s, 1.0 - fpr))


_P_EPS = 1e-7  # p_attack is clipped this far from 0 and 1 before its logit


def gat_calibration(p_val: NDArray[np.float64], y_val: NDArray[np.int64]) -> float:
    """The GAT's threshold on p_attack, chosen on validation by ``calibrate`` on the logit (the middle of
    a gap between p = 0.9 and 0.999 is a middle in evidence, not p ≈ 0.95)."""
    p = np.clip(np.asarray(p_val, np.float64), _P_EPS, 1 - _P_EPS)
    t = calibrate(np.log(p) - np.log1p(-p), y_val).threshold
    return float(1.0 / (1.0 + np.exp(-t)))


def gat_attack(p_attack: NDArray[np.float64], threshold: float) -> NDArray[np.float64]:
    """p_attack shifted in logit space so that exactly 0.5 sits at ``threshold`` (order and confidence kept):
    gat_attack >= 0.5 iff p_attack >= threshold."""
    p = np.clip(np.asarray(p_attack, np.float64), _P_EPS, 1 - _P_EPS)
    t = float(np.clip(threshold, _P_EPS, 1 - _P_EPS))
    z = np.log(p / (1 - p)) - np.log(t / (1 - t))
    z[p == t] = 0.0  # rounding must not move a graph exactly at the threshold to the other side
    out: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


def vgae_anomaly(score: NDArray[np.float64], threshold: float, scale: float) -> NDArray[np.float64]:
    """Logistic of (score − threshold)/scale, in [0, 1], exactly 0.5 at the threshold (tanh: no overflow)."""
    z = (np.asarray(score, np.float64) - threshold) / scale
    out: NDArray[np.float64] = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


# --- prediction tables → state ---------------------------------------------------------------------


def read_predictions(source: Path | pl.DataFrame, columns: tuple[str, ...], what: str) -> pl.DataFrame:
    """A prediction table with KEY, y, y_type and ``columns``; raises naming ``what`` (the file) otherwise."""
    df = pl.read_parquet(source) if isinstance(source, Path) else source
    missing = [c for c in (*KEY, "y", "y_type", *columns) if c not in df.columns]
    if missing:
        raise FusionError(f"{what}: missing column(s) {missing}; has {df.columns}")
    bad = df.select(
        pl.any_horizontal(
            (~pl.col(c).cast(pl.Float64).is_finite()).fill_null(True) for c in columns
        ).arg_true()
    )
    if bad.height:
        row = int(bad.item(0, 0))
        raise FusionError(
            f"{what}: row {row} ({df['split'][row]}, {df['index'][row]}) has a non-finite value"
        )
    return df.select(*KEY, "y", "y_type", *columns)


def join_predictions(vgae: pl.DataFrame, gat: pl.DataFrame, what: str = "predictions") -> pl.DataFrame:
    """One row per graph with vgae_* and gat_* columns; both tables must hold the same graphs and labels."""
    v = vgae.rename({c: f"vgae_{c}" for c in VGAE_COLUMNS})
    g = gat.select(*KEY, pl.col("y").alias("y_gat"), *(pl.col(c).alias(f"gat_{c}") for c in GAT_COLUMNS))
    joined = v.join(g, on=list(KEY), how="inner", maintain_order="left")
    if joined.height != v.height or joined.height != g.height:
        raise FusionError(
            f"{what}: the VGAE table has {v.height} graphs, the GAT table {g.height}; {joined.height} shared"
        )
    if (joined["y"] != joined["y_gat"]).any():
        raise FusionError(f"{what}: the VGAE and GAT tables disagree on labels")
    return joined.drop("y_gat")


def raw_state(columns: Mapping[str, NDArray[Any]], anomaly: NDArray[np.float64]) -> NDArray[np.float64]:
    """[G, len(STATE_COLUMNS)] raw state, before standardisation, from the prediction columns as arrays
    (vgae_* and gat_*, ``join_predictions`` names) and vgae_anomaly. Each column keeps its own precision
    through the signed log (float32 as the models write it), as the polars expressions that fitted the
    study's policies did (kdgat/fusion/signed_log.py)."""
    cols = {c: np.asarray(columns[c]) for c in STATE_COLUMNS if c != "vgae_anomaly"}
    by_dtype: dict[np.dtype[Any], list[str]] = {}
    for c in _LOG_COLUMNS:
        by_dtype.setdefault(cols[c].dtype, []).append(c)
    for names in by_dtype.values():  # one call per precision: a call costs more than its values
        logs = signed_log1p(np.stack([cols[c] for c in names]))
        cols |= dict(zip(names, logs, strict=True))
    common = np.result_type(*cols.values())  # the table's common type, as polars' to_numpy gave it
    state = [anomaly if c == "vgae_anomaly" else cols[c].astype(common, copy=False) for c in STATE_COLUMNS]
    raw: NDArray[np.float64] = np.stack(state, axis=1, dtype=np.float64)
    return raw


def columns_of(joined: pl.DataFrame) -> dict[str, NDArray[Any]]:
    """The prediction columns a policy reads (STATE_COLUMNS but vgae_anomaly) of a joined table, as arrays."""
    return {c: joined[c].to_numpy() for c in STATE_COLUMNS if c != "vgae_anomaly"}


def state_matrix(joined: pl.DataFrame, anomaly: NDArray[np.float64]) -> NDArray[np.float64]:
    """[G, len(STATE_COLUMNS)] raw state of a joined table, before standardisation."""
    return raw_state(columns_of(joined), anomaly)


def standardise(raw: NDArray[np.float64], mean: NDArray[np.float64], std: NDArray[np.float64]) -> Tensor:
    """The Q-net's input: raw state standardised with the fitted rows' statistics, float32."""
    return torch.from_numpy(((raw - mean) / std).astype(np.float32))


def alpha_grid(n_actions: int) -> NDArray[np.float64]:
    return np.linspace(0.0, 1.0, n_actions)


# --- the policy ------------------------------------------------------------------------------------


@dataclass
class FusionPolicy:
    """All that fusing new prediction rows needs: Q-net, α grid, state standardisation, VGAE calibration."""

    qnet: QNet
    alphas: NDArray[np.float64]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    calibration: VGAECalibration
    gat_threshold: float  # the GAT's p_attack threshold on validation (gat_attack)
    guard_threshold: float | None = None  # the VGAE score beyond fusion.guard_fpr of benign val (None: off)
    vehicle_fpr: float = 0.0  # calibration.fpr: the share of a new vehicle's windows for_vehicle cuts at

    def for_vehicle(self, score_calibration: NDArray[Any], p_calibration: NDArray[Any]) -> FusionPolicy:
        """This policy on a vehicle it never saw: both inputs re-centred on that vehicle's calibration
        windows (the VGAE's and the GAT's thresholds at ``vehicle_fpr`` of their scores there,
        ``vehicle_threshold``), the guard, if any, at the VGAE's new cut, and α = 1 whatever the action:
        the fused score is then the larger of the two re-centred inputs (the GAT alone without a guard).
        Validation's α weighed a VGAE that read the byte ranges of the cars it was chosen on; on this car
        it reads none and its IDs through an alignment, and a mix ranks benign calibration windows above
        attacks its GAT alone ranks first (docs/study.md, the seeds). Left on validation's cuts, the VGAE
        would score the car's benign windows high and the guard would decide every window."""
        if self.vehicle_fpr <= 0:
            raise FusionError(
                "the policy holds no calibration.fpr to cut a new car's windows at (refit or re-export it)"
            )
        t_vgae = vehicle_threshold(score_calibration, self.vehicle_fpr)
        return dataclasses.replace(
            self,
            alphas=np.ones_like(self.alphas),
            calibration=dataclasses.replace(self.calibration, threshold=t_vgae),
            gat_threshold=vehicle_threshold(p_calibration, self.vehicle_fpr),
            guard_threshold=None if self.guard_threshold is None else t_vgae,
        )

    def guard(self, score: NDArray[Any]) -> NDArray[np.float64] | None:
        """The guard's score (0.5 at guard_threshold, the VGAE's scale), None without a guard."""
        if self.guard_threshold is None:
            return None
        return vgae_anomaly(score, self.guard_threshold, self.calibration.scale)

    def states(self, columns: Mapping[str, NDArray[Any]]) -> tuple[Tensor, NDArray[np.float64]]:
        """(standardised state tensor, vgae_anomaly) of prediction rows (``columns_of``)."""
        anomaly = vgae_anomaly(columns["vgae_score"], self.calibration.threshold, self.calibration.scale)
        return standardise(raw_state(columns, anomaly), self.mean, self.std), anomaly

    @torch.no_grad()
    def actions(self, states: Tensor) -> NDArray[np.int64]:
        self.qnet.eval()
        out: NDArray[np.int64] = self.qnet(states).argmax(dim=1).numpy()
        return out

    def decisions(self, columns: Mapping[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        """THE policy on prediction rows given as arrays (``columns_of``: vgae_* and gat_* by name): per row
        vgae_anomaly, p_attack, gat_attack, action, alpha, guard (0 without one), fused, decision.
        ``predict`` is this on a table; the detector calls it as it is, once per window on a live bus, where
        a table would cost it more than its three models (docs/edge.md)."""
        states, anomaly = self.states(columns)
        action = self.actions(states)
        p = np.asarray(columns["gat_p_attack"]).astype(np.float64)
        calibrated = gat_attack(p, self.gat_threshold)
        guard = self.guard(columns["vgae_score"])
        fused = guarded(fuse(anomaly, calibrated, self.alphas[action]), guard)
        return {
            "vgae_anomaly": anomaly,
            "p_attack": p,
            "gat_attack": calibrated,
            "action": action.astype(np.int32),
            "alpha": self.alphas[action],
            "guard": np.zeros_like(fused) if guard is None else guard,
            "fused": fused,
            "decision": decide(fused).astype(np.int8),
        }

    def predict(self, joined: pl.DataFrame) -> pl.DataFrame:
        """Per graph: split, index, y, y_type, vgae_anomaly, p_attack, gat_attack, action, alpha, guard,
        fused, decision; the unseen vehicle's rows (``CALIBRATION_SPLIT``, ``*CALIBRATED_SUFFIX``) through
        ``for_vehicle`` on its calibration rows, when the table holds them."""
        columns = columns_of(joined)
        out = self.decisions(columns)
        split = joined["split"].to_numpy()
        on_car = split == CALIBRATION_SPLIT
        if on_car.any():
            rows = on_car | np.char.endswith(split.astype(str), CALIBRATED_SUFFIX)
            car = self.for_vehicle(columns["vgae_score"][on_car], columns["gat_p_attack"][on_car])
            for k, v in car.decisions({c: a[rows] for c, a in columns.items()}).items():
                out[k][rows] = v
        return joined.select(*KEY, "y", "y_type").with_columns(pl.Series(k, v) for k, v in out.items())

    def save(self, dest: Path, scale_name: str, extra: dict[str, Any]) -> None:
        blob = {
            "format": 1,
            "kind": "fusion",
            "scale": self.qnet.scale.model_dump(),
            "scale_name": scale_name,
            "state_dict": self.qnet.state_dict(),
            "n_state": self.qnet.n_state,
            "n_actions": self.qnet.n_actions,
            "alphas": self.alphas.tolist(),
            "state_columns": list(STATE_COLUMNS),
            "state_mean": self.mean.tolist(),
            "state_std": self.std.tolist(),
            "vgae_threshold": self.calibration.threshold,
            "vgae_scale": self.calibration.scale,
            "vgae_threshold_method": self.calibration.method,
            "vgae_youden_j": self.calibration.youden_j,
            "gat_threshold": self.gat_threshold,
            "guard_threshold": self.guard_threshold,
            "vehicle_fpr": self.vehicle_fpr,
            "decision_threshold": DECISION_THRESHOLD,
            **extra,
        }
        with atomic_path(dest) as tmp:
            torch.save(blob, tmp)


def load_policy(path: Path) -> FusionPolicy:
    """A policy saved by ``fusion_train.train_fusion`` (plain tensors and numbers: weights_only loads it)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if blob.get("state_columns") != list(STATE_COLUMNS):
        raise FusionError(
            f"{path}: state columns {blob.get('state_columns')} differ from {list(STATE_COLUMNS)}"
        )
    qnet = QNet(DQNScale(**blob["scale"]), blob["n_state"], blob["n_actions"])
    qnet.load_state_dict(blob["state_dict"])
    cal = VGAECalibration(
        blob["vgae_threshold"], blob["vgae_scale"], blob["vgae_threshold_method"], blob["vgae_youden_j"]
    )
    return FusionPolicy(
        qnet,
        np.array(blob["alphas"]),
        np.array(blob["state_mean"]),
        np.array(blob["state_std"]),
        cal,
        blob["gat_threshold"],
        blob.get("guard_threshold"),
        blob.get("vehicle_fpr", 0.0),
    )
