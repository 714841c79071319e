"""DQN fusion of the VGAE and the GAT, as a one-step contextual bandit.

The one decision rule, used by training rewards, validation, test, the baselines and evaluation alike:
    fused = fuse(vgae_anomaly, p_attack, α) = (1 − α)·vgae_anomaly + α·p_attack;  attack iff fused >= 0.5.
vgae_anomaly maps the VGAE score to [0, 1] with 0.5 at the Youden-J threshold chosen on validation.

A graph's state is 16 numbers from the two models' prediction rows (STATE_COLUMNS); the action is an
index into an α grid over [0, 1]; the reward is −cost_fn for a missed attack, −cost_fp for a false alarm,
reward_correct otherwise; there is no next state (γ = 0), so Q(s, a) is regressed on the reward itself.
Every action's reward is known for a logged graph, so by default (feedback: full) Q(s, ·) is fitted to the
whole reward vector; feedback: bandit is the ε-greedy variant that only sees the chosen action's reward.

Data use: the Q-net trains on the TRAIN split, whose teacher predictions are over-confident (the GAT saw
those graphs), so it tends to over-trust the GAT there; the VGAE threshold, the fixed-α baseline and the
choice of epoch all use VAL, which neither model trained on.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray
from torch import Tensor

from kdgat.config import DQNScale, FusionParams, Params, TrainParams
from kdgat.data.frames import atomic_path
from kdgat.evaluate_metrics import binary_metrics, youden_threshold
from kdgat.models.dqn import QNet, build_qnet
from kdgat.reports import write_json

DECISION_THRESHOLD = 0.5
KEY = ("split", "index")
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


def calibrate_vgae(score_val: NDArray[np.float64], y_val: NDArray[np.int64]) -> VGAECalibration:
    """Threshold by Youden's J on validation (99th benign percentile if val lacks attacks or J <= 0);
    scale = robust spread (IQR / 1.349) of the benign validation scores, so ±1 scale ≈ ±1 benign σ."""
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


def state_matrix(joined: pl.DataFrame, anomaly: NDArray[np.float64]) -> NDArray[np.float64]:
    """[G, len(STATE_COLUMNS)] raw state, before standardisation."""
    cols = [
        (pl.col(c).sign() * pl.col(c).abs().log1p()) if c in _LOG_COLUMNS else pl.col(c)
        for c in STATE_COLUMNS
        if c != "vgae_anomaly"
    ]
    raw = joined.select(cols).to_numpy().astype(np.float64)
    return np.insert(raw, STATE_COLUMNS.index("vgae_anomaly"), anomaly, axis=1)


def standardise(raw: NDArray[np.float64], mean: NDArray[np.float64], std: NDArray[np.float64]) -> Tensor:
    """The Q-net's input: raw state standardised with the training split's statistics, float32."""
    return torch.from_numpy(((raw - mean) / std).astype(np.float32))


def alpha_grid(n_actions: int) -> NDArray[np.float64]:
    return np.linspace(0.0, 1.0, n_actions)


def rewards(
    y: NDArray[np.int64],
    anomaly: NDArray[np.float64],
    p_attack: NDArray[np.float64],
    alphas: NDArray[np.float64],
    fusion: FusionParams,
) -> NDArray[np.float64]:
    """[G, A] reward of every α for every graph, decided by ``fuse`` + ``decide``."""
    flagged = decide(fuse(anomaly[:, None], p_attack[:, None], alphas[None, :]))
    attack = (np.asarray(y) == 1)[:, None]
    out = np.full(flagged.shape, fusion.reward_correct)
    out[attack & ~flagged] = -fusion.cost_fn
    out[~attack & flagged] = -fusion.cost_fp
    return out


# --- the policy ------------------------------------------------------------------------------------


@dataclass
class FusionPolicy:
    """All that fusing new prediction rows needs: Q-net, α grid, state standardisation, VGAE calibration."""

    qnet: QNet
    alphas: NDArray[np.float64]
    mean: NDArray[np.float64]
    std: NDArray[np.float64]
    calibration: VGAECalibration

    def states(self, joined: pl.DataFrame) -> tuple[Tensor, NDArray[np.float64]]:
        """(standardised state tensor, vgae_anomaly) of joined prediction rows."""
        anomaly = vgae_anomaly(
            joined["vgae_score"].to_numpy(), self.calibration.threshold, self.calibration.scale
        )
        return standardise(state_matrix(joined, anomaly), self.mean, self.std), anomaly

    @torch.no_grad()
    def actions(self, states: Tensor) -> NDArray[np.int64]:
        self.qnet.eval()
        out: NDArray[np.int64] = self.qnet(states).argmax(dim=1).numpy()
        return out

    def predict(self, joined: pl.DataFrame) -> pl.DataFrame:
        """Per graph: split, index, y, y_type, vgae_anomaly, p_attack, action, alpha, fused, decision."""
        states, anomaly = self.states(joined)
        action = self.actions(states)
        p = joined["gat_p_attack"].to_numpy().astype(np.float64)
        fused = fuse(anomaly, p, self.alphas[action])
        return joined.select(*KEY, "y", "y_type").with_columns(
            pl.Series("vgae_anomaly", anomaly),
            pl.Series("p_attack", p),
            pl.Series("action", action, dtype=pl.Int32),
            pl.Series("alpha", self.alphas[action]),
            pl.Series("fused", fused),
            pl.Series("decision", decide(fused).astype(np.int8)),
        )

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
            "decision_threshold": DECISION_THRESHOLD,
            **extra,
        }
        with atomic_path(dest) as tmp:
            torch.save(blob, tmp)


def load_policy(path: Path) -> FusionPolicy:
    """A policy saved by ``train_fusion`` (plain tensors and numbers: loads with weights_only=True)."""
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
        qnet, np.array(blob["alphas"]), np.array(blob["state_mean"]), np.array(blob["state_std"]), cal
    )


# --- training --------------------------------------------------------------------------------------


def epsilon_at(fusion: FusionParams, epoch: int) -> float:
    """Linear decay from epsilon[0] (first epoch) to epsilon[1] (last epoch)."""
    first, last = fusion.epsilon
    return first + (last - first) * epoch / max(fusion.epochs - 1, 1)


def _policy_reward(qnet: QNet, states: Tensor, reward: Tensor) -> float:
    with torch.no_grad():
        qnet.eval()
        chosen = qnet(states).argmax(dim=1, keepdim=True)
        return float(reward.gather(1, chosen).mean())


def fit_qnet(
    scale: DQNScale,
    fusion: FusionParams,
    train: TrainParams,
    states: Tensor,
    reward: Tensor,
    val_states: Tensor,
    val_reward: Tensor,
) -> tuple[QNet, list[dict[str, float]], int]:
    """Q-net regressed on rewards (MSE, Adam, shuffled minibatches), kept at the epoch whose greedy policy
    earns the best mean validation reward (first on ties); returns it, the epoch history and that epoch."""
    qnet = build_qnet(scale, states.shape[1], reward.shape[1], seed=train.seed)
    # foreach: the per-tensor Adam hits denormal second moments on this tiny net and runs ~18× slower on CPU
    opt = torch.optim.Adam(qnet.parameters(), lr=train.lr, weight_decay=train.weight_decay, foreach=True)
    gen = torch.Generator().manual_seed(train.seed)
    history: list[dict[str, float]] = []
    best, best_epoch, best_state = -np.inf, 0, copy.deepcopy(qnet.state_dict())
    for epoch in range(fusion.epochs):
        eps = epsilon_at(fusion, epoch) if fusion.feedback == "bandit" else 0.0
        qnet.train()
        total, seen = 0.0, 0
        for idx in torch.randperm(len(states), generator=gen).split(train.batch_size):
            q, r = qnet(states[idx]), reward[idx]
            if fusion.feedback == "full":
                loss = torch.nn.functional.mse_loss(q, r)
            else:
                greedy = q.detach().argmax(dim=1)
                random = torch.randint(0, q.shape[1], greedy.shape, generator=gen)
                explore = torch.rand(greedy.shape, generator=gen) < eps
                a = torch.where(explore, random, greedy).unsqueeze(1)
                loss = torch.nn.functional.mse_loss(q.gather(1, a), r.gather(1, a))
            opt.zero_grad()
            loss.backward()
            opt.step()
            total, seen = total + loss.item() * len(idx), seen + len(idx)
        row = {
            "epoch": epoch,
            "epsilon": eps,
            "train_loss": total / max(seen, 1),
            "train_reward": _policy_reward(qnet, states, reward),
            "val_reward": _policy_reward(qnet, val_states, val_reward),
        }
        history.append(row)
        if row["val_reward"] > best:
            best, best_epoch, best_state = row["val_reward"], epoch, copy.deepcopy(qnet.state_dict())
    qnet.load_state_dict(best_state)
    qnet.eval()
    return qnet, history, best_epoch


def tune_fixed_alpha(
    y: NDArray[np.int64],
    anomaly: NDArray[np.float64],
    p_attack: NDArray[np.float64],
    alphas: NDArray[np.float64],
) -> tuple[float, list[float | None]]:
    """The grid α with the best F1 on these (validation) graphs, first on ties; F1 per α alongside (None where
    undefined: no attack and no alarm)."""
    flagged = decide(fuse(anomaly[:, None], p_attack[:, None], alphas[None, :]))
    attack = (np.asarray(y) == 1)[:, None]
    tp, fp, fn = (flagged & attack).sum(0), (flagged & ~attack).sum(0), (~flagged & attack).sum(0)
    den = 2 * tp + fp + fn
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), -np.inf)
    return float(alphas[int(np.argmax(f1))]), [float(f) if np.isfinite(f) else None for f in f1]


_SUMMARY = ("n", "n_attack", "f1", "precision", "recall", "fpr", "mcc", "roc_auc")


def _summary(
    y: NDArray[np.int64], fused: NDArray[np.float64], reward_of: NDArray[np.float64]
) -> dict[str, Any]:
    m = binary_metrics(y, fused, decide(fused).astype(np.int64))
    return {**{k: m[k] for k in _SUMMARY}, "mean_reward": float(reward_of.mean()) if y.size else None}


def train_fusion(
    params: Params,
    vgae_pred: Path,
    gat_pred: Path,
    scale: str,
    out: Path,
    *,
    report: Path,
    predictions: Path,
) -> dict[str, Any]:
    """Train the fusion policy on ``vgae_pred`` + ``gat_pred`` (predictions/D/M.parquet) and write:
    ``out`` the policy checkpoint (Q-net + everything ``load_policy`` needs), ``report`` a JSON summary (plus
    ``<report stem>.epochs.csv``), ``predictions`` the fusion's per-graph table. Returns the report."""
    started = time.perf_counter()
    torch.set_num_threads(params.train.threads)
    if scale not in ("large", "small"):
        raise FusionError(f"scale must be 'large' or 'small', not {scale!r}")
    dqn: DQNScale = getattr(params.models.dqn, scale)
    fusion = params.fusion
    joined = join_predictions(
        read_predictions(vgae_pred, VGAE_COLUMNS, str(vgae_pred)),
        read_predictions(gat_pred, GAT_COLUMNS, str(gat_pred)),
        f"{vgae_pred} + {gat_pred}",
    )
    split = joined["split"].to_numpy()
    is_train, is_val = split == "train", split == "val"
    for name, rows in (("train", is_train), ("val", is_val)):
        if not rows.any():
            raise FusionError(
                f"{vgae_pred}: no '{name}' rows (train fits the policy, val calibrates and selects)"
            )
    y = joined["y"].to_numpy().astype(np.int64)
    cal = calibrate_vgae(joined["vgae_score"].to_numpy()[is_val], y[is_val])
    anomaly = vgae_anomaly(joined["vgae_score"].to_numpy(), cal.threshold, cal.scale)
    p = joined["gat_p_attack"].to_numpy().astype(np.float64)
    raw = state_matrix(joined, anomaly)
    mean, std = raw[is_train].mean(axis=0), raw[is_train].std(axis=0)
    std[std < 1e-8] = 1.0  # a constant feature stays constant (zero) instead of blowing up
    states = standardise(raw, mean, std)
    alphas = alpha_grid(fusion.actions)
    reward = rewards(y, anomaly, p, alphas, fusion)
    r = torch.from_numpy(reward.astype(np.float32))
    qnet, history, best_epoch = fit_qnet(
        dqn, fusion, params.train, states[is_train], r[is_train], states[is_val], r[is_val]
    )
    policy = FusionPolicy(qnet, alphas, mean, std, cal)
    table = policy.predict(joined)
    fixed, fixed_f1 = tune_fixed_alpha(y[is_val], anomaly[is_val], p[is_val], alphas)

    # every contender through the same rule; its reward read from the same [G, A] table (all α on the grid)
    alpha_of = {"dqn": table["alpha"].to_numpy(), "gat_alone": 1.0, "vgae_alone": 0.0, "fixed_alpha": fixed}
    comparison: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys(split.tolist()):
        rows = split == name
        comparison[name] = {}
        for who, a in alpha_of.items():
            a_rows = np.broadcast_to(np.asarray(a, np.float64), y.shape)[rows]
            col = np.searchsorted(alphas, a_rows).clip(0, alphas.size - 1)
            fused = fuse(anomaly[rows], p[rows], a_rows)
            comparison[name][who] = _summary(y[rows], fused, reward[rows][np.arange(rows.sum()), col])
    counts = table.group_by("split", "alpha").len().sort("split", "alpha").rows()
    result: dict[str, Any] = {
        "scale": scale,
        "dqn": dqn.model_dump(),
        "fusion": fusion.model_dump(),
        "inputs": {"vgae": str(vgae_pred), "gat": str(gat_pred)},
        "n_state": len(STATE_COLUMNS),
        "state_columns": list(STATE_COLUMNS),
        "alphas": alphas.tolist(),
        "params": sum(w.numel() for w in qnet.parameters()),
        "vgae_calibration": dataclasses.asdict(cal),
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_val_reward": history[best_epoch]["val_reward"],
        "fixed_alpha": fixed,
        "fixed_alpha_val_f1": {f"{a:g}": f for a, f in zip(alphas.tolist(), fixed_f1, strict=True)},
        "alpha_counts": {
            s: {f"{a:g}": n for s2, a, n in counts if s2 == s} for s in dict.fromkeys(split.tolist())
        },
        "comparison": comparison,
        "wall_s": round(time.perf_counter() - started, 3),
    }
    policy.save(out, scale, {"fixed_alpha": fixed, "info": {"inputs": result["inputs"]}})
    with atomic_path(predictions) as tmp:
        table.write_parquet(tmp, compression="zstd")
    with atomic_path(report.with_name(report.stem + ".epochs.csv")) as tmp:
        pl.DataFrame(history).write_csv(tmp)
    write_json(result, report)
    return result
