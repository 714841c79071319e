"""Traffic statistics of a CAN capture, and the reference figures the synthetic bus is calibrated on.

`traffic_stats` summarises the benign frames of one capture (ID count, bus load, per-ID periods and
jitter, how often each ID's payload changes); `compare_stats` checks one summary against another within
stated tolerances. The synthetic generator draws its vehicles from the WRX_* constants below, which were
measured on the four engine-running logs of the 2016 Subaru WRX capture set (../shared/data/can/wrx-2016:
brake-pedal, car-running-idle, gas-pedal, steering-wheel); tests re-measure them there when the logs exist.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from kdgat.data.frames import BYTE_COLUMNS

# Nominal per-ID periods (ms) of the 31 IDs seen while the WRX engine runs, one entry per ID.
WRX_PERIODS_MS: tuple[float, ...] = (
    (10.0,) * 3
    + (20.0,) * 10
    + (48.0,)
    + (50.0,) * 5
    + (60.0,)
    + (100.0,) * 3
    + (500.0,)
    + (1000.0,) * 6
    + (1200.0,)
)
# DLC of those IDs: 28 carry 8 bytes, one each 7, 4 and 1.
WRX_DLC_WEIGHTS: dict[int, float] = {8: 28 / 31, 7: 1 / 31, 4: 1 / 31, 1: 1 / 31}
# Share of IDs whose payload changes in every frame (a counter), in (almost) no frame, and in between.
WRX_CHANGE_CLASSES: dict[str, float] = {"always": 0.45, "static": 0.37, "partial": 0.18}
# Per-ID standard deviation of the inter-arrival time: median about 0.4 ms, spread 0.06 … 1.1 ms.
WRX_JITTER_MS_MEDIAN = 0.4
# Headline figures (`flatten` names) pooled (median) over the four running logs, as measured there.
WRX_REFERENCE: dict[str, float] = {
    "n_ids": 31.0,
    "frames_per_s": 976.9,
    "period_ms_q50": 49.99,
    "jitter_ms_median": 0.404,
    "change_rate_mean": 0.509,
    "change_rate_static": 0.371,
    "change_rate_always": 0.452,
}
WRX_RUNNING_LOGS = ("brake-pedal.log", "car-running-idle.log", "gas-pedal.log", "steering-wheel.log")

STATIC_MAX = 0.01  # change rate at or below which an ID counts as static
ALWAYS_MIN = 0.99  # change rate at or above which an ID counts as always changing


def per_id_stats(frames: pl.DataFrame) -> pl.DataFrame:
    """One row per CAN ID: frame count, median period, inter-arrival std and payload change rate."""
    if "label" in frames.columns:
        frames = frames.filter(pl.col("label") == 0)
    payload_changed = pl.any_horizontal(
        [pl.col(c) != pl.col(c).shift(1) for c in [*BYTE_COLUMNS, "dlc"]]
    ).over("can_id")
    return (
        frames.sort("timestamp", maintain_order=True)
        .with_columns(
            pl.col("timestamp").diff().over("can_id").alias("dt"),
            payload_changed.alias("changed"),
        )
        .group_by("can_id")
        .agg(
            pl.len().alias("frames"),
            pl.col("dt").median().alias("period_s"),
            pl.col("dt").std().alias("jitter_s"),
            # The first frame of an ID has no predecessor (null), so it is left out of the rate.
            pl.col("changed").drop_nulls().mean().alias("change_rate"),
        )
        .sort("can_id")
    )


def traffic_stats(frames: pl.DataFrame) -> dict[str, Any]:
    """Summary of the benign frames of ONE capture (attack frames, label 1, are ignored).

    Periods are per-ID medians of the inter-arrival time, so the quantiles describe the distribution of
    periods over IDs, not over frames. Change rate = fraction of consecutive frames of an ID whose
    payload differs; IDs with a single frame have none and are left out of it.
    """
    if "label" in frames.columns:
        frames = frames.filter(pl.col("label") == 0)
    if frames.height < 2:
        raise ValueError("traffic_stats needs at least two benign frames")
    ts = frames["timestamp"].to_numpy()
    duration = float(ts.max() - ts.min())
    ids = per_id_stats(frames)
    periodic = ids.filter(pl.col("frames") >= 3)
    periods_ms = periodic["period_s"].to_numpy() * 1000.0
    rates = ids["change_rate"].drop_nulls().to_numpy()
    q = np.quantile(periods_ms, [0.1, 0.25, 0.5, 0.75, 0.9]) if periods_ms.size else np.full(5, np.nan)
    return {
        "frames": frames.height,
        "duration_s": duration,
        "n_ids": ids.height,
        "frames_per_s": frames.height / duration if duration > 0 else float("nan"),
        "period_ms": {k: float(v) for k, v in zip(("q10", "q25", "q50", "q75", "q90"), q, strict=True)},
        "jitter_ms_median": float(np.median(periodic["jitter_s"].to_numpy()) * 1000.0)
        if periodic.height
        else float("nan"),
        "change_rate": {
            "mean": float(rates.mean()) if rates.size else float("nan"),
            "static": float((rates <= STATIC_MAX).mean()) if rates.size else float("nan"),
            "always": float((rates >= ALWAYS_MIN).mean()) if rates.size else float("nan"),
            "per_id": {
                int(i): round(float(r), 4)
                for i, r in ids.select("can_id", "change_rate").drop_nulls().iter_rows()
            },
        },
    }


def pool_stats(stats: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Median of the headline figures over several captures (e.g. the four running WRX logs)."""
    flat = [flatten(s) for s in stats]
    return {k: float(np.median([f[k] for f in flat])) for k in flat[0]}


def flatten(stats: Mapping[str, Any]) -> dict[str, float]:
    """Headline figures of a `traffic_stats` result as one flat name → number map."""
    return {
        "n_ids": float(stats["n_ids"]),
        "frames_per_s": float(stats["frames_per_s"]),
        "period_ms_q50": float(stats["period_ms"]["q50"]),
        "jitter_ms_median": float(stats["jitter_ms_median"]),
        "change_rate_mean": float(stats["change_rate"]["mean"]),
        "change_rate_static": float(stats["change_rate"]["static"]),
        "change_rate_always": float(stats["change_rate"]["always"]),
    }


@dataclass(frozen=True)
class Tolerance:
    """Allowed deviation: `rel` as a fraction of the reference, `factor` as a ratio, `abs` in units."""

    rel: float | None = None
    factor: float | None = None
    abs: float | None = None

    def accepts(self, value: float, reference: float) -> bool:
        if self.rel is not None and abs(value - reference) > self.rel * abs(reference):
            return False
        if self.factor is not None and not (reference / self.factor <= value <= reference * self.factor):
            return False
        return not (self.abs is not None and abs(value - reference) > self.abs)


DEFAULT_TOLERANCES: dict[str, Tolerance] = {
    "n_ids": Tolerance(rel=0.30),
    "frames_per_s": Tolerance(rel=0.30),
    "period_ms_q50": Tolerance(factor=1.5),
    "jitter_ms_median": Tolerance(factor=2.0),
    "change_rate_mean": Tolerance(abs=0.15),
    "change_rate_static": Tolerance(abs=0.15),
    "change_rate_always": Tolerance(abs=0.15),
}


def compare_stats(
    candidate: Mapping[str, Any],
    reference: Mapping[str, Any],
    tolerances: Mapping[str, Tolerance] = DEFAULT_TOLERANCES,
) -> dict[str, dict[str, Any]]:
    """Per headline figure: candidate value, reference value and whether it lies within tolerance.

    Either argument may be a `traffic_stats` result or an already flat map (e.g. from `pool_stats`).
    """
    c, r = _as_flat(candidate), _as_flat(reference)
    return {
        name: {"value": c[name], "reference": r[name], "ok": tol.accepts(c[name], r[name])}
        for name, tol in tolerances.items()
    }


def _as_flat(stats: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in stats.items()} if "period_ms_q50" in stats else flatten(stats)
