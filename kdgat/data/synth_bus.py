"""Synthetic vehicles and their benign CAN traffic, calibrated on the 2016 Subaru WRX captures.

A vehicle is a fixed set of CAN IDs, each with a period, a DLC, a timing jitter and a payload layout;
the same vehicle keeps its layout across captures while the driving (speed, rpm, steering, ...) and the
phases differ per capture. Distributions come from kdgat.data.calibration (WRX_* constants):

- IDs: 27..35 per vehicle (WRX: 31); part are drawn from a shared "platform" pool, so vehicles overlap.
- Periods: stratified draws from the WRX per-ID period list (10 ms … 1.2 s), shorter periods going
  mostly to lower (higher-priority) IDs, each with its own small clock error.
- Payload classes in WRX proportions: IDs with a rolling counter (payload changes every frame, often
  with a checksum byte), static IDs (constant bytes, sometimes a rarely toggling flag) and IDs whose
  payload is a stepwise signal that changes in only part of the frames.
- Six IDs carry the physical signals of one smooth driving profile (rpm, gear, speed, steering,
  throttle, brake); `VehicleSpec.roles` names them, so gear/RPM spoofing can target the right ID.

Everything is vectorized per ID (numpy arrays of timestamps and payload bytes), then merge-sorted.
The counter and checksum rules of an ID (`read_counter`, `write_counter`, `payload_checksum`,
`seal_payload`) are public: the masquerade attack in kdgat.data.synth_attacks keeps them valid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from kdgat.data.calibration import WRX_CHANGE_CLASSES, WRX_DLC_WEIGHTS, WRX_JITTER_MS_MEDIAN, WRX_PERIODS_MS
from kdgat.data.frames import BENIGN, BYTE_COLUMNS, conform

# Stream keys of numpy SeedSequence spawn keys: one independent stream per purpose and index.
STREAM_PLATFORM, STREAM_VEHICLE, STREAM_CAPTURE = 1, 2, 3

# Signal roles in assignment order (rpm gets the fastest eligible ID) and their width in bytes.
ROLE_BYTES: dict[str, int] = {"rpm": 2, "gear": 1, "speed": 2, "steering": 2, "throttle": 1, "brake": 1}
ROLE_MAX_PERIOD_S = 0.05
PLATFORM_POOL = 24  # IDs a "manufacturer" reuses across its vehicles
N_IDS_RANGE = (27, 35)  # inclusive; WRX has 31
PROFILE_DT = 0.05  # driving profile resolution, seconds
GEAR_SPEEDS = (1.0, 15.0, 30.0, 50.0, 70.0, 95.0)  # km/h upshift points: gear 0 (stopped) .. 6
GEAR_RPM_PER_KMH = (0.0, 120.0, 75.0, 52.0, 40.0, 32.0, 26.0)


def stream(seed: int, *key: int) -> np.random.Generator:
    """An independent, reproducible random stream for (seed, key...) — no reliance on Python hash()."""
    return np.random.default_rng(np.random.SeedSequence(seed & 0xFFFF_FFFF_FFFF_FFFF, spawn_key=key))


@dataclass(frozen=True)
class Signal:
    source: str  # a role name, "walk" (stepwise random walk) or "toggle" (a rarely flipping flag bit)
    byte: int  # first byte (big-endian when nbytes == 2)
    nbytes: int = 1
    change_prob: float = 0.0  # walk / toggle: probability that a frame carries a new value


@dataclass(frozen=True)
class IdSpec:
    can_id: int
    period_s: float
    dlc: int
    jitter_s: float
    base: tuple[int, ...]  # constant bytes, overwritten where a field lives
    counter: tuple[int, int, int] | None = None  # (byte, bit shift, width in bits)
    checksum: tuple[int, str] | None = None  # (byte, "sum" | "xor") over the other bytes, seeded by the ID
    signal: Signal | None = None


@dataclass(frozen=True)
class VehicleSpec:
    index: int
    ids: tuple[IdSpec, ...]
    roles: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # role → (CAN ID, first byte)

    @property
    def name(self) -> str:
        return f"vehicle-{self.index}"

    def summary(self) -> dict[str, Any]:
        """JSON-ready description for the dataset manifest."""
        return {
            "name": self.name,
            "n_ids": len(self.ids),
            "ids": [f"{s.can_id:03X}" for s in self.ids],
            "period_ms": [round(s.period_s * 1000, 4) for s in self.ids],
            "dlc": [s.dlc for s in self.ids],
            "roles": {r: {"id": f"{i:03X}", "byte": b} for r, (i, b) in self.roles.items()},
            "frames_per_s": round(sum(1.0 / s.period_s for s in self.ids), 2),
        }


# Payload rules of one ID, shared by the simulator and the attack injector (a masquerading attacker
# keeps them valid). `pay` is an (n, 8) integer array of payload bytes, one row per frame.


def read_counter(spec: IdSpec, pay: np.ndarray) -> np.ndarray:
    """The rolling counter of each row (int64); ValueError if the ID has none."""
    if spec.counter is None:
        raise ValueError(f"ID {spec.can_id:03X} has no rolling counter")
    byte, shift, bits = spec.counter
    return (pay[:, byte].astype(np.int64) >> shift) & ((1 << bits) - 1)


def write_counter(spec: IdSpec, pay: np.ndarray, values: np.ndarray) -> None:
    """Set the counter field of every row of `pay` in place (values taken modulo the field width)."""
    if spec.counter is None:
        raise ValueError(f"ID {spec.can_id:03X} has no rolling counter")
    byte, shift, bits = spec.counter
    mask = ((1 << bits) - 1) << shift
    packed = (np.asarray(values, dtype=np.int64) << shift) & mask
    pay[:, byte] = (pay[:, byte].astype(np.int64) & ~mask & 0xFF) | packed


def payload_checksum(spec: IdSpec, pay: np.ndarray) -> np.ndarray:
    """The checksum byte each row must carry: sum or XOR of the ID's other bytes, seeded by the ID."""
    if spec.checksum is None:
        raise ValueError(f"ID {spec.can_id:03X} has no checksum byte")
    byte, how = spec.checksum
    others = np.delete(pay[:, : spec.dlc].astype(np.int64), byte, axis=1)
    if how == "sum":
        return (others.sum(axis=1) + spec.can_id) & 0xFF
    return np.bitwise_xor.reduce(others, axis=1) ^ (spec.can_id & 0xFF)


def seal_payload(spec: IdSpec, pay: np.ndarray) -> np.ndarray:
    """`pay` with its checksum byte recomputed in place (unchanged if the ID has none); returns `pay`."""
    if spec.checksum is not None:
        pay[:, spec.checksum[0]] = payload_checksum(spec, pay)
    return pay


def make_vehicle(index: int, seed: int) -> VehicleSpec:
    """Vehicle `index` of the fleet defined by `seed` (same arguments → same vehicle)."""
    pool = stream(seed, STREAM_PLATFORM).choice(np.arange(0x010, 0x7F0), PLATFORM_POOL, replace=False)
    rng = stream(seed, STREAM_VEHICLE, index)
    n = int(rng.integers(N_IDS_RANGE[0], N_IDS_RANGE[1] + 1))
    shared = rng.choice(pool, round(n * rng.uniform(0.35, 0.6)), replace=False)
    own = rng.choice(np.setdiff1d(np.arange(0x001, 0x800), shared), n - shared.size, replace=False)
    ids = np.sort(np.concatenate([shared, own]))  # 0x000 never appears: it is the DoS ID

    ref = np.sort(np.asarray(WRX_PERIODS_MS))
    periods = ref[((np.arange(n) + rng.uniform(size=n)) / n * ref.size).astype(int)]  # stratified
    rank = np.argsort(np.argsort(np.arange(n) + rng.normal(0.0, 3.0, n)))  # low ID ≈ short period
    period_s = periods[rank] / 1000.0 * (1.0 + rng.normal(0.0, 1e-4, n))
    dlcs = rng.choice(list(WRX_DLC_WEIGHTS), n, p=list(WRX_DLC_WEIGHTS.values()))
    # WRX_JITTER_MS_MEDIAN is the std of inter-arrival times, i.e. sqrt(2) × the per-frame timing noise.
    sigma_ms = WRX_JITTER_MS_MEDIAN / np.sqrt(2.0)
    jitter = np.clip(np.exp(rng.normal(np.log(sigma_ms), 0.5, n)), 0.04, 0.8) / 1000.0

    eligible = [
        int(i) for i in np.lexsort((rng.uniform(size=n), period_s)) if period_s[i] <= ROLE_MAX_PERIOD_S
    ]
    if len(eligible) < 2:
        raise RuntimeError(f"vehicle {index}: too few fast IDs for the rpm/gear roles")
    role_of = {idx: role for role, idx in zip(ROLE_BYTES, eligible, strict=False)}
    rest = rng.permutation([i for i in range(n) if i not in role_of])
    n_counter = max(0, round(n * WRX_CHANGE_CLASSES["always"]) - len(role_of))
    n_static = round(n * WRX_CHANGE_CLASSES["static"])
    kind = {int(i): "counter" for i in rest[:n_counter]}
    kind |= {int(i): "static" for i in rest[n_counter : n_counter + n_static]}
    kind |= {int(i): "partial" for i in rest[n_counter + n_static :]}

    specs, roles = [], {}
    for i in range(n):
        role = role_of.get(i)
        dlc = 8 if role else int(dlcs[i])
        spec = _layout(
            rng, int(ids[i]), float(period_s[i]), dlc, float(jitter[i]), kind.get(i, "counter"), role
        )
        if role and spec.signal:
            roles[role] = (spec.can_id, spec.signal.byte)
        specs.append(spec)
    return VehicleSpec(index=index, ids=tuple(specs), roles=roles)


def _layout(
    rng: np.random.Generator, can_id: int, period: float, dlc: int, jitter: float, kind: str, role: str | None
) -> IdSpec:
    u = rng.uniform(size=dlc)
    base = np.where(u < 0.55, 0, np.where(u < 0.6, 0xFF, rng.integers(0, 256, dlc)))
    free = list(range(dlc))

    def take(width: int) -> int | None:
        starts = [s for s in free if all(s + k in free for k in range(width))]
        if not starts:
            return None
        s = int(rng.choice(starts))
        for k in range(width):
            free.remove(s + k)
        return s

    counter = checksum = signal = None
    if kind == "counter":
        if dlc >= 4 and rng.random() < 0.5:
            checksum = (dlc - 1, str(rng.choice(["sum", "xor"])))
            free.remove(dlc - 1)
        if role:
            signal = Signal(role, take(ROLE_BYTES[role]) or 0, ROLE_BYTES[role])
        bits = int(rng.choice([4, 8, 3], p=[0.6, 0.25, 0.15]))
        byte = take(1)
        if byte is not None:
            counter = (byte, 0 if bits == 8 else int(rng.choice([0, 4])), bits)
        if not role and rng.random() < 0.5 and (b := take(1)) is not None:
            signal = Signal("walk", b, 1, float(rng.uniform(0.05, 0.9)))
    elif kind == "static":
        if period <= 0.1 and rng.random() < 0.3 and (b := take(1)) is not None:
            signal = Signal("toggle", b, 1, float(rng.uniform(0.001, 0.006)))
    else:
        width = 2 if dlc >= 2 and rng.random() < 0.5 else 1
        signal = Signal("walk", take(width) or 0, width, float(rng.uniform(0.05, 0.9)))
    return IdSpec(can_id, period, dlc, jitter, tuple(int(b) for b in base), counter, checksum, signal)


def _smooth(x: np.ndarray, tau_steps: float) -> np.ndarray:
    """Exponential smoothing of white noise by convolution (vectorized AR(1)-like low-pass)."""
    k = np.exp(-np.arange(int(5 * tau_steps) + 1) / tau_steps)
    y = np.convolve(x, k / np.sqrt((k**2).sum()), mode="full")[: x.size]
    return y


def drive_profile(duration_s: float, rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One smooth driving session on a PROFILE_DT grid: physical values per role."""
    n = int(np.ceil(duration_s / PROFILE_DT)) + 2
    t = np.arange(n) * PROFILE_DT
    warm = int(10 / PROFILE_DT)  # discard the filter's start-up so values are stationary from t = 0
    accel = _smooth(rng.normal(size=n + warm), 3.0 / PROFILE_DT)[warm:] * 0.9  # m/s²
    raw = rng.uniform(0, 100) + np.cumsum(accel * 3.6 * PROFILE_DT)  # km/h before folding into range
    speed = 130.0 - np.abs(np.mod(raw, 260.0) - 130.0)  # reflect into [0, 130]
    gear = np.digitize(speed, GEAR_SPEEDS)
    rpm = 750.0 + speed * np.asarray(GEAR_RPM_PER_KMH)[gear] + 300.0 * np.clip(accel, 0, None)
    steering = np.clip(_smooth(rng.normal(size=n + warm), 2.0 / PROFILE_DT)[warm:] * 60.0, -450, 450)
    throttle = np.clip(5.0 + 40.0 * accel, 0, 100)
    brake = np.clip(-60.0 * accel, 0, 255)
    return t, {
        "rpm": rpm,
        "gear": gear.astype(float),
        "speed": speed,
        "steering": steering,
        "throttle": throttle,
        "brake": brake,
    }


def _encode_role(role: str, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    if role == "rpm":  # 0.25 rpm per bit, with sensor noise so it moves every frame
        return np.clip(np.rint(v * 4 + rng.normal(0, 3, v.size)), 0, 0xFFFF).astype(np.int64)
    if role == "speed":
        return np.clip(np.rint(v * 100), 0, 0xFFFF).astype(np.int64)
    if role == "steering":  # 0.1° per bit, two's complement
        return np.rint(v * 10).astype(np.int64) & 0xFFFF
    if role == "throttle":
        return np.rint(v * 2.55).astype(np.int64)
    return np.rint(v).astype(np.int64)  # gear, brake


def _payloads(
    spec: IdSpec,
    t_rel: np.ndarray,
    profile: tuple[np.ndarray, dict[str, np.ndarray]],
    rng: np.random.Generator,
) -> np.ndarray:
    n = t_rel.size
    p = np.zeros((n, 8), dtype=np.int64)
    p[:, : spec.dlc] = spec.base
    s = spec.signal
    if s is not None:
        if s.source in ROLE_BYTES:
            v = _encode_role(s.source, np.interp(t_rel, profile[0], profile[1][s.source]), rng)
        elif s.source == "walk":
            steps = (rng.random(n) < s.change_prob) * rng.choice([-3, -2, -1, 1, 2, 3], n)
            v = (int(rng.integers(0, 256**s.nbytes)) + np.cumsum(steps)) % (256**s.nbytes)
        else:  # toggle: flip bit 0 now and then
            v = spec.base[s.byte] ^ (np.cumsum(rng.random(n) < s.change_prob) & 1)
        for k in range(s.nbytes):
            p[:, s.byte + k] = (v >> (8 * (s.nbytes - 1 - k))) & 0xFF
    if spec.counter is not None:
        bits = spec.counter[2]
        write_counter(spec, p, (int(rng.integers(0, 2**bits)) + np.arange(n)) % (2**bits))
    return seal_payload(spec, p).astype(np.uint8)


def simulate_vehicle(
    vehicle: VehicleSpec, duration_s: float, rng: np.random.Generator, *, t0: float = 0.0, source: str = ""
) -> pl.DataFrame:
    """Benign traffic of `vehicle` over [t0, t0 + duration_s) as a canonical frame table, time-sorted."""
    profile = drive_profile(duration_s, rng)
    times, payloads, ids, dlcs = [], [], [], []
    for spec in vehicle.ids:
        phase = rng.uniform(0, spec.period_s)
        k = np.arange(int(np.ceil((duration_s - phase) / spec.period_s)))
        lim = min(3 * spec.jitter_s, spec.period_s / 4)
        t_rel = phase + k * spec.period_s + np.clip(rng.normal(0, spec.jitter_s, k.size), -lim, lim)
        t_rel = t_rel[(t_rel >= 0) & (t_rel < duration_s)]
        times.append(t_rel)
        payloads.append(_payloads(spec, t_rel, profile, rng))
        ids.append(np.full(t_rel.size, spec.can_id, dtype=np.uint32))
        dlcs.append(np.full(t_rel.size, spec.dlc, dtype=np.uint8))
    t_all = np.concatenate(times)
    order = np.argsort(t_all, kind="stable")
    pay = np.concatenate(payloads)[order]
    df = pl.DataFrame(
        {
            "timestamp": t0 + t_all[order],
            "can_id": np.concatenate(ids)[order],
            "extended": np.zeros(order.size, dtype=bool),
            "dlc": np.concatenate(dlcs)[order],
            **{c: pay[:, j] for j, c in enumerate(BYTE_COLUMNS)},
            "label": np.zeros(order.size, dtype=np.uint8),
        }
    ).with_columns(attack_type=pl.lit(BENIGN), source=pl.lit(source))
    return conform(df)
