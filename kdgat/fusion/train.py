"""Fitting the fusion policy: a one-step DQN (contextual bandit) over the α grid, and its baselines.

The reward of α for a graph is −cost_fn for a missed attack, −cost_fp for a false alarm, reward_correct
otherwise, decided by kdgat/fusion/policy.py's ``fuse`` + ``decide``; there is no next state (γ = 0), so
Q(s, a) is regressed on the reward itself. Every action's reward is known for a logged graph, so by default
(feedback: full) Q(s, ·) is fitted to the whole reward vector; feedback: bandit is the ε-greedy variant that
only sees the chosen action's reward.

Which rows teach what. Both models fitted their weights on TRAIN, where they are over-confident (the GAT is
right on nearly every train graph), so a policy fitted there learns "always trust the GAT" and the fusion
collapses to the GAT alone. The policy is therefore fitted on graphs neither model trained on: VAL is cut in
two halves, stratified by (y, y_type) and drawn from train.seed (``fit_select_split``). The Q-net and its
state statistics are fitted on the "fit" half; its epoch is chosen on the "select" half (best mean reward of
the greedy policy; ties go to the better fit, then to the earlier epoch; all epochs run, they are cheap).
``include_train=True`` adds TRAIN to the fitted rows (more data, biased towards the GAT). The VGAE threshold
and scale and the fixed-α baseline use the whole of VAL. The report records this under "fit_data".

The prior. Where every α earns the same reward (both inputs right, most graphs) the regression leaves the
Q-values level and the argmax falls anywhere, the VGAE alone included; a test graph only one input flags then
gets whichever input the noise chose. Validation's verdict on the weighting is the best fixed α, so the Q-net
is fitted (and its epoch selected) on rewards less ``fusion.prior_cost``·|α − that α| (``prior_rewards``):
it leaves the validated α only where the fitted rows show a larger gain. A Q-net extrapolates, though: on a
test graph unlike any validation graph (an input alarming where it never did on validation) its argmax can
still leave that α. With ``fusion.fallback`` the policy is therefore the fixed α itself (``constant_qnet``)
unless the Q-net's greedy policy earns more on the select half, under the same prior, than the fixed α does
there: the DQN must show a gain on rows it was not fitted on. The report records the choice under "policy";
the epochs CSV, "best_select_reward" and "policy" hold prior rewards, "comparison" the unpenalised ones.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from numpy.typing import NDArray
from torch import Tensor

from kdgat.config import DQNScale, FusionParams, Params, TrainParams
from kdgat.fusion.compare import calibrated_comparison, comparison
from kdgat.fusion.dqn import QNet, build_qnet, constant_qnet
from kdgat.fusion.policy import (
    GAT_COLUMNS,
    STATE_COLUMNS,
    VGAE_COLUMNS,
    FusionError,
    FusionPolicy,
    alpha_grid,
    calibrate_vgae,
    decide,
    fuse,
    gat_attack,
    gat_calibration,
    join_predictions,
    read_predictions,
    standardise,
    state_matrix,
    vehicle_threshold,
    vgae_anomaly,
)
from kdgat.io import write_csv, write_json, write_parquet
from kdgat.train.torch_setup import deterministic, device_of


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


def prior_rewards(
    reward: NDArray[np.float64], alphas: NDArray[np.float64], prior_alpha: float, cost: float
) -> NDArray[np.float64]:
    """The rewards the Q-net is fitted on: ``reward`` less ``cost`` per unit of |α − ``prior_alpha``|."""
    return reward - cost * np.abs(alphas - prior_alpha)[None, :]


def fit_select_split(
    y: NDArray[np.int64], y_type: NDArray[np.int64], seed: int
) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """(fit, select) masks halving the rows within every (y, y_type) stratum, in a random order drawn from
    ``seed`` (an odd stratum gives its extra row to fit). Same inputs and seed → same halves."""
    _, stratum = np.unique(np.column_stack([np.asarray(y), np.asarray(y_type)]), axis=0, return_inverse=True)
    stratum = stratum.reshape(-1)
    order = np.lexsort((np.random.default_rng(seed).random(stratum.size), stratum))
    sorted_strata = stratum[order]
    starts = np.flatnonzero(np.r_[True, sorted_strata[1:] != sorted_strata[:-1]])
    rank = np.arange(stratum.size) - np.repeat(starts, np.diff(np.r_[starts, stratum.size]))
    fit = np.zeros(stratum.size, bool)
    fit[order] = rank % 2 == 0
    return fit, ~fit


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
    select_states: Tensor,
    select_reward: Tensor,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> tuple[QNet, list[dict[str, float]], int]:
    """Q-net regressed on the rewards of ``states`` (MSE, Adam, shuffled minibatches), kept at the epoch
    whose greedy policy earns the best mean reward on ``select_states`` (ties: the best on ``states``, then
    the first); returns it, the epoch history (train_loss, fit_reward on the fitted rows, select_reward on
    the selection rows) and that epoch. ``on_epoch`` gets each history row as it is made (a tracker)."""
    device = device_of(train.accelerator)
    qnet = build_qnet(scale, states.shape[1], reward.shape[1], seed=train.seed).to(device)
    states, reward = states.to(device), reward.to(device)
    select_states, select_reward = select_states.to(device), select_reward.to(device)
    # foreach: the per-tensor Adam hits denormal second moments on this tiny net and runs ~18× slower on CPU
    opt = torch.optim.Adam(qnet.parameters(), lr=train.lr, weight_decay=train.weight_decay, foreach=True)
    gen = torch.Generator().manual_seed(train.seed)
    history: list[dict[str, float]] = []
    best, best_epoch, best_state = (-np.inf, -np.inf), 0, copy.deepcopy(qnet.state_dict())
    for epoch in range(fusion.epochs):
        eps = epsilon_at(fusion, epoch) if fusion.feedback == "bandit" else 0.0
        qnet.train()
        total, seen = 0.0, 0
        # every draw from the CPU generator, on any device: the same minibatches and exploration as on a CPU
        for idx in torch.randperm(len(states), generator=gen).to(device).split(train.batch_size):
            q, r = qnet(states[idx]), reward[idx]
            if fusion.feedback == "full":
                loss = torch.nn.functional.mse_loss(q, r)
            else:
                greedy = q.detach().argmax(dim=1)
                random = torch.randint(0, q.shape[1], greedy.shape, generator=gen).to(device)
                explore = (torch.rand(greedy.shape, generator=gen) < eps).to(device)
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
            "fit_reward": _policy_reward(qnet, states, reward),
            "select_reward": _policy_reward(qnet, select_states, select_reward),
        }
        history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        # ties on the small selection half are common (the policy often matches the GAT there): the better
        # fit breaks them, so an early, under-fitted epoch does not win by merely reaching the plateau first
        key = (row["select_reward"], row["fit_reward"])
        if key > best:
            best, best_epoch, best_state = key, epoch, copy.deepcopy(qnet.state_dict())
    qnet.load_state_dict(best_state)
    qnet.cpu().eval()  # the policy is saved, applied and exported from the CPU
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


def train_fusion(
    params: Params,
    vgae_pred: Path,
    gat_pred: Path,
    scale: str,
    out: Path,
    *,
    report: Path,
    predictions: Path,
    include_train: bool = False,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train the fusion policy on ``vgae_pred`` + ``gat_pred`` (predictions/D/M.parquet) and write:
    ``out`` the policy checkpoint (Q-net + everything ``load_policy`` needs), ``report`` a JSON summary (plus
    ``<report stem>.epochs.csv``), ``predictions`` the fusion's per-graph table. Rows used: module docstring.
    ``on_epoch`` receives each row of the epochs CSV as the epoch ends. Returns the report."""
    started, started_at = time.perf_counter(), datetime.now(UTC).isoformat(timespec="milliseconds")
    deterministic(params.train.threads)
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
    y = joined["y"].to_numpy().astype(np.int64)
    is_train, is_val = split == "train", split == "val"
    if is_val.sum() < 2:
        raise FusionError(
            f"{vgae_pred}: {is_val.sum()} 'val' rows; at least 2 are needed (one half fits the policy, "
            "the other selects its epoch, all of val calibrates the VGAE)"
        )
    if include_train and not is_train.any():
        raise FusionError(f"{vgae_pred}: no 'train' rows, but include_train asks for them")
    val_fit, val_select = fit_select_split(
        y[is_val], joined["y_type"].to_numpy()[is_val].astype(np.int64), params.train.seed
    )
    fit_rows, select_rows = np.zeros_like(is_val), np.zeros_like(is_val)
    fit_rows[np.flatnonzero(is_val)[val_fit]] = True
    select_rows[np.flatnonzero(is_val)[val_select]] = True
    if include_train:
        fit_rows |= is_train

    score = joined["vgae_score"].to_numpy()
    cal = calibrate_vgae(score[is_val], y[is_val])
    anomaly = vgae_anomaly(score, cal.threshold, cal.scale)
    p_raw = joined["gat_p_attack"].to_numpy().astype(np.float64)
    gat_threshold = gat_calibration(p_raw[is_val], y[is_val])
    p = gat_attack(p_raw, gat_threshold)  # both inputs at 0.5 where their validation thresholds are
    guard = vehicle_threshold(score[is_val & (y == 0)], fusion.guard_fpr) if fusion.guard_fpr > 0 else None
    raw = state_matrix(joined, anomaly)
    mean, std = raw[fit_rows].mean(axis=0), raw[fit_rows].std(axis=0)
    std[std < 1e-8] = 1.0  # a constant feature stays constant (zero) instead of blowing up
    states = standardise(raw, mean, std)
    alphas = alpha_grid(fusion.actions)
    reward = rewards(y, anomaly, p, alphas, fusion)
    fixed, fixed_f1 = tune_fixed_alpha(y[is_val], anomaly[is_val], p[is_val], alphas)
    r = torch.from_numpy(prior_rewards(reward, alphas, fixed, fusion.prior_cost).astype(np.float32))
    fit_t, select_t = torch.from_numpy(fit_rows), torch.from_numpy(select_rows)
    qnet, history, best_epoch = fit_qnet(
        dqn, fusion, params.train, states[fit_t], r[fit_t], states[select_t], r[select_t], on_epoch
    )
    fixed_action = int(np.argmin(np.abs(alphas - fixed)))
    held_out = {
        "dqn": history[best_epoch]["select_reward"],
        "fixed_alpha": float(r[select_t][:, fixed_action].mean()),
    }
    chosen = "fixed_alpha" if fusion.fallback and held_out["dqn"] <= held_out["fixed_alpha"] else "dqn"
    if chosen == "fixed_alpha":
        qnet = constant_qnet(dqn, states.shape[1], alphas.size, fixed_action)
    policy = FusionPolicy(qnet, alphas, mean, std, cal, gat_threshold, guard, params.calibration.fpr)
    table = policy.predict(joined)

    alpha_of: dict[str, NDArray[np.float64] | float] = {
        "dqn": table["alpha"].to_numpy(),
        "gat_alone": 1.0,
        "vgae_alone": 0.0,
        "fixed_alpha": fixed,
    }
    splits = list(dict.fromkeys(split.tolist()))
    groups = {s: split == s for s in splits} | {"val_fit": fit_rows & is_val, "val_select": select_rows}
    counts = table.group_by("split", "alpha").len().sort("split", "alpha").rows()
    fit_data = {
        "fit": "val half" + (" + train" if include_train else ""),
        "select": "other val half",
        "stratified_by": ["y", "y_type"],
        "seed": params.train.seed,
        "include_train": include_train,
        "n_fit": int(fit_rows.sum()),
        "n_select": int(select_rows.sum()),
        "state_stats": "fit rows",
        "vgae_calibration": "val",
        "gat_threshold": "val",
        "guard_threshold": "val benign",
        "fixed_alpha": "val",
        "prior": "fixed_alpha",
    }
    result: dict[str, Any] = {
        "scale": scale,
        "dqn": dqn.model_dump(),
        "fusion": fusion.model_dump(),
        "inputs": {"vgae": str(vgae_pred), "gat": str(gat_pred)},
        "fit_data": fit_data,
        "n_state": len(STATE_COLUMNS),
        "state_columns": list(STATE_COLUMNS),
        "alphas": alphas.tolist(),
        "params": sum(w.numel() for w in qnet.parameters()),
        "vgae_calibration": dataclasses.asdict(cal),
        "gat_threshold": gat_threshold,
        "guard_threshold": guard,  # the VGAE score at fusion.guard_fpr of benign val (None: no guard)
        "epochs_run": len(history),
        "best_epoch": best_epoch,
        "best_select_reward": history[best_epoch]["select_reward"],
        "fixed_alpha": fixed,
        # the deployed policy and the select half's mean prior reward of both candidates
        "policy": {"chosen": chosen, "select_reward": held_out},
        "fixed_alpha_val_f1": {f"{a:g}": f for a, f in zip(alphas.tolist(), fixed_f1, strict=True)},
        "alpha_counts": {s: {f"{a:g}": n for s2, a, n in counts if s2 == s} for s in splits},
        "comparison": comparison(groups, alpha_of, y, anomaly, p, reward, alphas, table["fused"].to_numpy()),
        # the unseen vehicle's calibrated splits, inputs on its own thresholds (kdgat/fusion/compare.py)
        "comparison_calibrated": calibrated_comparison(joined, policy, fixed, table["fused"].to_numpy()),
        "wall_s": round(time.perf_counter() - started, 3),
        "started_at": started_at,  # UTC (the results' run timeline)
        "finished_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
    }
    info = {"inputs": result["inputs"], "fit_data": fit_data}
    policy.save(out, scale, {"fixed_alpha": fixed, "info": info})
    write_parquet(table, predictions)
    write_csv(pl.DataFrame(history), report.with_name(report.stem + ".epochs.csv"))
    write_json(result, report)
    return result
