"""Per-ID byte ranges of reference traffic, which RANGE_FEATURES (windows.byte_ranges) read.

A forged signal that keeps its ID's period, counter and checksum (masquerade) still has to put some value
in the byte it forges, and a value the vehicle never sends stands out only against the levels it does
send. A range is [lowest, highest] value of each payload byte of each ID in the benign frames of a
vehicle's training captures. Each drive's slow signals sit at their own levels, so the windows of a
training capture read the ranges of the vehicle's other captures (leave one capture out): their benign
windows then show the drift a new drive brings, and the models learn it is not an attack. Test captures
read the ranges of all of them. The unseen vehicle's one calibration drive cannot bound another drive's
levels, so its windows read ranges that bound nothing (no_ranges).

A union of a few drives still does not bound the next one: on the real WRX logs each drive left the others'
ranges by more than 24 in 31–100 % of its windows (docs/study.md). So each side of a range is widened by
``margin`` times the farthest any one of the vehicle's captures lies beyond the others on that side (its
leave-one-out excess): a byte whose drives agree keeps a tight range, one that drifts from drive to drive
gets room in proportion, and a slot only one capture sends bounds nothing. The graphs stage counts a
recording once (`recordings`): attacked copies of one drive share its times and would agree by design.

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
    out = _empty(n_vocab)
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
    margin: float = 0.0,
) -> np.ndarray:
    """[P, V, 2, 8] ranges of each vehicle profile: the union of its captures' capture_ranges, without
    capture ``leave_out``, each side widened by ``margin`` × its largest leave-one-out excess (see above);
    a slot no capture holds (with a margin: fewer than two) bounds nothing."""
    out = np.empty((n_profiles, n_vocab, 2, 8), dtype=np.float32)
    unbounded = np.zeros((n_profiles, n_vocab), dtype=bool)
    for p in range(n_profiles):
        own = np.stack(
            [r for f, r in captures.items() if f != leave_out and vehicle_of[f] == p] or [_empty(n_vocab)]
        )
        out[p] = union(own)
        if margin > 0:
            out[p] += margin * _spread(own)
            unbounded[p] = _present(own)[:, :, 0].sum(axis=0) < 2
    empty = ~_present(out).all(axis=-1) | unbounded
    out[empty, 0], out[empty, 1] = 0.0, 255.0
    return out


def _empty(n_vocab: int) -> np.ndarray:
    out = np.empty((n_vocab, 2, 8), dtype=np.float32)
    out[:, 0], out[:, 1] = _EMPTY
    return out


def union(ranges: np.ndarray) -> np.ndarray:
    """[V, 2, 8] union of [C, V, 2, 8] ranges (empty slots hold (255, 0) and drop out)."""
    return np.stack([ranges[:, :, 0].min(axis=0), ranges[:, :, 1].max(axis=0)], axis=1)


def _present(ranges: np.ndarray) -> np.ndarray:
    """[..., 8] whether each byte of [..., 2, 8] ranges holds a value (low <= high)."""
    return ranges[..., 0, :] <= ranges[..., 1, :]


def _spread(ranges: np.ndarray) -> np.ndarray:
    """[V, 2, 8] how far the farthest capture of [C, V, 2, 8] lies beyond the union of the others, below the
    lowest (negative, row 0) and above the highest (row 1); 0 where none does or a slot is empty in it."""
    below = above = np.zeros((ranges.shape[1], 8), dtype=np.float32)
    if len(ranges) < 2:  # a lone capture: nothing to lie beyond
        return np.stack([below, above], axis=1)
    for i in range(len(ranges)):
        others = union(np.delete(ranges, i, axis=0))
        beyond = np.where((_present(ranges[i]) & _present(others))[:, None], ranges[i] - others, 0.0)
        below, above = np.minimum(below, beyond[:, 0]), np.maximum(above, beyond[:, 1])
    return np.stack([below, above], axis=1)


def recordings(span: Mapping[int, tuple[float, float]], vehicle_of: Mapping[int, int]) -> dict[int, int]:
    """Each capture's recording: captures of one vehicle whose (first, last) benign timestamps overlap,
    chained, share the number of the earliest of them (an attacked copy of a drive keeps its times)."""
    out: dict[int, int] = {}
    for p in set(vehicle_of.values()):
        end, current = -np.inf, -1  # the open recording: its latest end and its number
        for f in sorted((f for f in vehicle_of if vehicle_of[f] == p), key=lambda f: span[f]):
            lo, hi = span[f]
            if lo > end:
                current = f
            out[f] = current
            end = max(end, hi)
    return out
