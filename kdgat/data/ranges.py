"""Per-ID byte ranges of reference traffic, which RANGE_FEATURES (windows.byte_ranges) read.

A forged signal that keeps its ID's period, counter and checksum (masquerade) still has to put some value
in the byte it forges, and a value the vehicle never sends stands out only against the levels it does
send. A range is [lowest, highest] value of each payload byte of each ID in the benign frames of a
vehicle's training captures. Each drive's slow signals sit at their own levels, so the windows of a
training capture read the ranges of the vehicle's other captures (leave one capture out): their benign
windows then show the drift a new drive brings, and the models learn it is not an attack. Test captures
read the ranges of all of them. The unseen vehicle's one calibration drive cannot bound another drive's
levels, so its windows read ranges that bound nothing (no_ranges).

Arrays are [P, V, 2, 8]: per vehicle profile and vocabulary slot the low and high value of each byte; a
slot without reference frames spans 0..255 (no excess).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import polars as pl

from kdgat.data.vocab import UNKNOWN

_EMPTY = (255.0, 0.0)  # (low, high) of a slot with no frame yet: any union replaces it


def no_ranges(n_profiles: int, n_vocab: int) -> np.ndarray:
    """Ranges that bound nothing: range_excess 0 on every node."""
    out = np.zeros((n_profiles, n_vocab, 2, 8), dtype=np.float32)
    out[:, :, 1] = 255.0
    return out


def capture_ranges(key: np.ndarray, payload: np.ndarray, slots_of: np.ndarray, n_vocab: int) -> np.ndarray:
    """[V, 2, 8] byte ranges of one capture's (benign) frames by vocabulary slot; ``slots_of`` maps each
    frame's key to its slot. Slots without frames hold the empty range (255, 0)."""
    out = np.empty((n_vocab, 2, 8), dtype=np.float32)
    out[:, 0], out[:, 1] = _EMPTY
    if not len(key):
        return out
    per = (
        pl.DataFrame({"slot": slots_of, **{f"b{i}": payload[:, i] for i in range(8)}})
        .group_by("slot")
        .agg(
            *(pl.col(f"b{i}").min().alias(f"lo{i}") for i in range(8)),
            *(pl.col(f"b{i}").max().alias(f"hi{i}") for i in range(8)),
        )
        .filter(pl.col("slot") != UNKNOWN)
    )
    slots = per["slot"].to_numpy()
    out[slots, 0] = per.select(f"lo{i}" for i in range(8)).to_numpy()
    out[slots, 1] = per.select(f"hi{i}" for i in range(8)).to_numpy()
    return out


def vehicle_ranges(
    captures: Mapping[int, np.ndarray],
    vehicle_of: Mapping[int, int],
    n_profiles: int,
    n_vocab: int,
    leave_out: int | None = None,
) -> np.ndarray:
    """[P, V, 2, 8] ranges of each vehicle profile: the union of its captures' capture_ranges, without
    capture ``leave_out``; a slot no capture holds bounds nothing."""
    out = np.empty((n_profiles, n_vocab, 2, 8), dtype=np.float32)
    out[:, :, 0], out[:, :, 1] = _EMPTY
    for f, r in captures.items():
        if f != leave_out:
            p = vehicle_of[f]
            np.minimum(out[p, :, 0], r[:, 0], out=out[p, :, 0])
            np.maximum(out[p, :, 1], r[:, 1], out=out[p, :, 1])
    empty = out[:, :, 0] > out[:, :, 1]
    out[:, :, 0][empty], out[:, :, 1][empty] = 0.0, 255.0
    return out
