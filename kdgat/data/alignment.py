"""ID alignment: give an unseen vehicle's CAN IDs the vocabulary slots of known IDs that behave alike.

A manufacturer picks its numeric IDs freely, so a vehicle the models never saw arrives with IDs that are
all unknown to the vocabulary (or known numbers with another meaning), and every window looks like
fuzzing. From that vehicle's calibration traffic (benign, recorded before deployment, used without
labels) each of its IDs is described by what it does — period, DLC, how often its payload and each byte
change, its byte levels — and paired one to one (Hungarian assignment) with the IDs of the training
capture whose IDs pair best as a whole. An ID absent from calibration stays unknown, so injected IDs
(fuzzing, DoS on 0x000) keep looking new. The result replaces ``Vocabulary.lookup`` for that vehicle's
windows only: the graphs stage for its test and calibration splits, ``kdgat detect --calibrate`` on a car.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from scipy.optimize import linear_sum_assignment

from kdgat.data.vocab import UNKNOWN, Vocabulary, format_id, parse_id

# Weights of the profile's parts in the pairing cost: a decade of period counts as much as a payload
# that changes always vs never; DLC and byte levels break ties between IDs of the same rhythm.
_W_PERIOD, _W_DLC, _W_CHANGE, _W_BYTES, _W_LEVEL = 2.0, 0.5, 1.0, 1.0, 0.5
_MIN_FRAMES = 3  # an ID needs this many frames for a period
# An unpaired ID (a slot two IDs share, or an expected ID that never comes: the models notice both) costs
# this on top of its nearest partner, about a decade of period: a reference of the vehicle's size wins
_UNPAIRED = 2.0
_DIGITS = 4  # profiles are stored rounded: they describe rhythms, not exact values


@dataclass(frozen=True)
class Profiles:
    """What each ID of one traffic source does: rows [n_ids, 19] = log10 period (s), DLC/8, payload change
    rate, per-byte change rates (8), per-byte mean level/255 (8); keys sorted."""

    name: str
    keys: np.ndarray
    rows: np.ndarray

    def to_meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ids": [format_id(k) for k in self.keys],
            "rows": np.round(self.rows, _DIGITS).tolist(),
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> Profiles:
        keys = np.array([parse_id(t) for t in meta["ids"]], dtype=np.int64)
        return cls(meta["name"], keys, np.asarray(meta["rows"], dtype=np.float64).reshape(len(keys), -1))


def id_profiles(name: str, key: np.ndarray, ts: np.ndarray, dlc: np.ndarray, payload: np.ndarray) -> Profiles:
    """The profiles of the IDs with at least three frames among the given (benign, time-ordered) frames."""
    f = pl.DataFrame({"key": key, "ts": ts, "dlc": dlc, **{f"b{i}": payload[:, i] for i in range(8)}}).sort(
        "ts", maintain_order=True
    )
    changed = [(pl.col(f"b{i}") != pl.col(f"b{i}").shift(1)).over("key").cast(pl.Float64) for i in range(8)]
    agg = (
        f.with_columns(
            pl.col("ts").diff().over("key").alias("dt"), *(c.alias(f"ch{i}") for i, c in enumerate(changed))
        )
        .group_by("key")
        .agg(
            pl.len().alias("n"),
            pl.col("dt").median().alias("period"),
            pl.col("dlc").cast(pl.Float64).mean().alias("dlc"),
            pl.max_horizontal(*(pl.col(f"ch{i}") for i in range(8))).drop_nulls().mean().alias("change"),
            *(pl.col(f"ch{i}").drop_nulls().mean() for i in range(8)),
            *(pl.col(f"b{i}").cast(pl.Float64).mean() for i in range(8)),
        )
        .filter(pl.col("n") >= _MIN_FRAMES)
        .sort("key")
        .fill_null(0.0)
    )
    rows = np.column_stack(
        [
            np.log10(np.maximum(agg["period"].to_numpy(), 1e-4)),
            agg["dlc"].to_numpy() / 8.0,
            agg["change"].to_numpy(),
            *(agg[f"ch{i}"].to_numpy() for i in range(8)),
            *(agg[f"b{i}"].to_numpy() / 255.0 for i in range(8)),
        ]
    ).reshape(agg.height, 19)
    return Profiles(name, agg["key"].to_numpy().astype(np.int64), rows)


def distinct_references(profiles: Iterable[Profiles]) -> list[Profiles]:
    """One reference per distinct ID set (captures of one vehicle share it), the first of each."""
    seen: dict[bytes, Profiles] = {}
    for p in profiles:
        seen.setdefault(p.keys.tobytes(), p)
    return list(seen.values())


def pair_cost(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """[len(a), len(b)] cost of giving an ID with profile row a[i] the slot of an ID with profile b[j]."""

    def d(lo: int, hi: int) -> np.ndarray:
        return np.abs(a[:, None, lo:hi] - b[None, :, lo:hi]).mean(axis=-1)

    return (
        _W_PERIOD * d(0, 1)
        + _W_DLC * d(1, 2)
        + _W_CHANGE * d(2, 3)
        + _W_BYTES * d(3, 11)
        + _W_LEVEL * d(11, 19)
    )


@dataclass(frozen=True)
class Alignment:
    """A vocabulary seen through a vehicle's pairing: ``lookup`` as ``Vocabulary.lookup``."""

    vocab: Vocabulary
    pairs: dict[int, int]  # vehicle key → reference key
    reference: str
    cost: float  # mean pairing cost per ID, unpaired IDs included

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """A paired ID takes its partner's slot; any other ID is UNKNOWN, even one whose number the
        vocabulary knows: on this vehicle it means something else."""
        keys = np.asarray(keys, dtype=np.int64)
        partner = np.array([self.pairs.get(int(k), -1) for k in keys.ravel()], dtype=np.int64)
        idx = self.vocab.lookup(np.maximum(partner, 0))
        return np.where(partner >= 0, idx, UNKNOWN).reshape(keys.shape).astype(np.int64)

    def to_meta(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "cost": round(self.cost, _DIGITS),
            "pairs": {format_id(k): format_id(v) for k, v in sorted(self.pairs.items())},
        }


def align(vocab: Vocabulary, target: Profiles, references: Sequence[Profiles]) -> Alignment:
    """Pair ``target``'s IDs with those of the best of ``references``: each is paired one to one, the
    vehicle's IDs beyond its size taking their nearest reference ID; the lowest mean cost per ID wins."""
    if not len(target.keys):
        raise ValueError(
            f"ID alignment: {target.name} has no ID with {_MIN_FRAMES} frames or more "
            "(longer calibration.seconds, or calibration.align_ids: false)"
        )
    best: Alignment | None = None
    for ref in references:
        if not len(ref.keys):
            continue
        cost = pair_cost(target.rows, ref.rows)
        ti, ri = linear_sum_assignment(cost)
        left = np.setdiff1d(np.arange(len(target.keys)), ti)
        nearest = cost[left].argmin(axis=1)
        r_left = np.setdiff1d(np.arange(len(ref.keys)), ri)
        total = cost[ti, ri].sum() + cost[left, nearest].sum() + _UNPAIRED * (len(left) + len(r_left))
        if len(r_left):
            total += cost[:, r_left].min(axis=0).sum()
        mean = float(total / (len(ti) + len(left) + len(r_left)))
        if best is None or mean < best.cost:
            pairs = {int(target.keys[i]): int(ref.keys[j]) for i, j in zip(ti, ri, strict=True)}
            pairs |= {int(target.keys[i]): int(ref.keys[j]) for i, j in zip(left, nearest, strict=True)}
            best = Alignment(vocab, pairs, ref.name, mean)
    if best is None:
        raise ValueError(
            f"ID alignment: no training capture has an ID with {_MIN_FRAMES} frames or more "
            "(calibration.align_ids: false turns alignment off)"
        )
    return best
