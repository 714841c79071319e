"""Attack injection over any benign capture (synthetic or real), in bursts, with per-frame labels.

Car-Hacking kinds, at that dataset's injection intervals:
  dos         ID 0x000, eight 0x00 bytes, every 0.3 ms
  fuzzy       a random ID (11-bit, or 29-bit on an extended-ID bus) and 8 random bytes, every 0.5 ms
  gear, rpm   one fixed payload on the ID carrying the gear / rpm signal, every 1 ms
Harder kinds:
  replay      frames of 1–3 IDs recorded earlier in the same capture are sent again, shifted in time, on
              top of the legitimate traffic (so those IDs briefly run at double rate)
  masquerade  the legitimate sender of one ID falls silent and the attacker takes its place at the same
              instants (timing stays normal), holding one payload byte at a forged constant value; given
              the ID's payload layout (`layouts`), the attacker continues the rolling counter and
              recomputes the checksum, so every forged frame is valid under the ID's own rules
  suspension  one ID stops being sent

Labels: every injected frame has label 1 and attack_type = the attack's name; benign frames keep label 0
and attack_type "none". For masquerade the attacker's frames (the rewritten ones) are labelled 1. A
suspension injects nothing, so every frame inside the suspension interval (all IDs) is labelled 1 with
attack_type "suspension": the bus is under attack then and a window detector can only see it there.

Attacks come in bursts (`BurstSchedule`: a benign lead-in, then on/off periods of seconds), as in
Car-Hacking; the burst list with targets and frame counts is returned for the dataset manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from kdgat.data.frames import BYTE_COLUMNS, conform
from kdgat.data.synth_bus import IdSpec, read_counter, seal_payload, write_counter

ATTACKS = ("dos", "fuzzy", "gear", "rpm", "replay", "masquerade", "suspension")
INJECTION_INTERVAL_S = {"dos": 0.0003, "fuzzy": 0.0005, "gear": 0.001, "rpm": 0.001}
# Suspension targets a fast ID: a 100-frame window spans ~0.1 s of traffic, so only an ID that should
# appear several times in it can be missed observably (a 100 ms ID's absence looks like normal phase).
TARGET_MAX_PERIOD_S = {"gear": 0.05, "rpm": 0.05, "replay": 0.1, "masquerade": 0.1, "suspension": 0.02}


@dataclass(frozen=True)
class BurstSchedule:
    """Durations in seconds, each drawn uniformly from its (low, high) range."""

    lead_s: tuple[float, float] = (1.0, 2.0)  # benign traffic before the first burst (replay's history)
    on_s: tuple[float, float] = (0.8, 2.0)
    off_s: tuple[float, float] = (1.0, 2.5)
    tail_s: float = 0.3  # benign traffic kept after the last burst

    def windows(self, t0: float, t1: float, rng: np.random.Generator) -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        t = t0 + rng.uniform(*self.lead_s)
        while True:
            end = min(t + rng.uniform(*self.on_s), t1 - self.tail_s)
            if end - t < 0.5 * self.on_s[0]:
                break
            out.append((t, end))
            t = end + rng.uniform(*self.off_s)
        if not out:  # capture shorter than lead-in + one burst: attack its middle third
            out.append((t0 + (t1 - t0) / 3, t0 + 2 * (t1 - t0) / 3))
        return out


@dataclass(frozen=True)
class Burst:
    kind: str
    start: float
    end: float
    target_ids: tuple[int, ...] = ()
    frames: int = 0  # frames injected (masquerade: rewritten; suspension: labelled)

    def to_json(self, t0: float = 0.0) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "start_s": round(self.start - t0, 6),
            "end_s": round(self.end - t0, 6),
            "target_ids": [f"{i:03X}" for i in self.target_ids],
            "frames": self.frames,
        }


def inject_attacks(
    frames: pl.DataFrame,
    kinds: Sequence[str],
    rng: np.random.Generator,
    *,
    roles: Mapping[str, tuple[int, int]] | None = None,
    schedule: BurstSchedule | None = None,
    layouts: Iterable[IdSpec] | None = None,
) -> pl.DataFrame:
    """`frames` (one benign capture) with attack bursts added; see `inject_attacks_with_plan`."""
    return inject_attacks_with_plan(frames, kinds, rng, roles=roles, schedule=schedule, layouts=layouts)[0]


def inject_attacks_with_plan(
    frames: pl.DataFrame,
    kinds: Sequence[str],
    rng: np.random.Generator,
    *,
    roles: Mapping[str, tuple[int, int]] | None = None,
    schedule: BurstSchedule | None = None,
    layouts: Iterable[IdSpec] | None = None,
) -> tuple[pl.DataFrame, list[Burst]]:
    """Inject bursts of `kinds` (cycled burst by burst) into one benign capture.

    roles: optional attack kind → (CAN ID, payload byte) naming the ID to spoof and the byte holding
    its signal ("gear", "rpm", "masquerade", "suspension"); kinds without one pick a periodic ID of the
    capture at random. Returns the time-sorted frame table and the bursts as placed.

    layouts: the payload layouts of the capture's IDs (`VehicleSpec.ids` for a synthetic capture). The
    masquerade then never forges a counter or checksum byte, numbers its frames from the last counter
    the legitimate sender put on the bus, and recomputes each frame's checksum; a role that names a
    counter or checksum byte is a ValueError. Without a layout for the target ID (real traffic such as
    the WRX logs, whose rules are unknown), the forged frames keep every other byte of the frames they
    replace: the counter stays in sequence unless the forged byte holds it, and a checksum byte is left
    stale, so a detector that knows the rule would see it. gear / rpm spoofing ignores layouts: as in
    Car-Hacking it repeats one fixed payload.
    """
    bad = [k for k in kinds if k not in ATTACKS]
    if not kinds or bad:
        raise ValueError(f"unknown attack kind(s) {bad or '(none given)'}; choose from {ATTACKS}")
    frames = conform(frames).sort("timestamp", maintain_order=True)
    if frames.height < 2 or frames["source"].n_unique() > 1:
        raise ValueError("inject_attacks needs one capture (a single source) with at least two frames")
    if int(frames["label"].max() or 0) > 0:  # type: ignore[arg-type]
        raise ValueError(f"{frames['source'][0]}: inject_attacks expects benign frames (label 0 only)")
    roles = roles or {}
    rules = {s.can_id: s for s in layouts or ()}
    sched = schedule or BurstSchedule()
    t0, t1 = float(frames["timestamp"][0]), float(frames["timestamp"][-1])
    ids = _id_table(frames)
    extended = bool(frames["extended"].all())
    targets: dict[str, tuple[int, int, int]] = {}  # kind → (ID, byte, forged value), fixed per capture
    spoof: dict[str, np.ndarray] = {}  # gear / rpm: the one payload sent in every burst of the capture

    work, blocks, bursts = frames, [], []
    for n, (start, end) in enumerate(sched.windows(t0, t1, rng)):
        kind = kinds[n % len(kinds)]
        if kind in INJECTION_INTERVAL_S:
            if kind in ("gear", "rpm") and kind not in spoof:
                targets[kind] = _forge(frames, ids, kind, roles, rng, {})  # fixed payload: no rules
                cid, byte, value = targets[kind]
                spoof[kind] = _sample_payload(frames, cid, rng)
                spoof[kind][byte] = value
            block = _periodic(frames, kind, start, end, rng, extended, spoof.get(kind), targets.get(kind))
            blocks.append(block)
            hit = () if kind == "fuzzy" else tuple(sorted(set(block["can_id"].to_list())))
            bursts.append(Burst(kind, start, end, hit, block.height))
        elif kind == "replay":
            block, burst = _replay(frames, ids, start, end, t0, rng)
            blocks.append(block)
            bursts.append(burst)
        else:
            masq = rules if kind == "masquerade" else {}
            if kind not in targets:
                targets[kind] = _forge(frames, ids, kind, roles, rng, masq)
            work, count = _take_over(work, kind, start, end, targets[kind], masq.get(targets[kind][0]))
            bursts.append(Burst(kind, start, end, (targets[kind][0],), count))
    out = pl.concat([work, *[conform(b) for b in blocks]], how="vertical")
    return out.sort("timestamp", maintain_order=True), bursts


def _periodic(
    frames: pl.DataFrame,
    kind: str,
    start: float,
    end: float,
    rng: np.random.Generator,
    extended: bool,
    spoof_row: np.ndarray | None,
    target: tuple[int, int, int] | None,
) -> pl.DataFrame:
    """DoS / fuzzy / gear / rpm frames at the kind's fixed interval over [start, end)."""
    interval = INJECTION_INTERVAL_S[kind]
    ts = np.arange(start, end, interval)
    ts = ts + rng.uniform(0.0, 0.1, ts.size) * interval  # small jitter that stays inside the window
    ts = ts[ts < end]
    dlc = np.full(ts.size, 8, np.uint8)
    if kind == "dos":
        can = np.zeros(ts.size, np.uint32)
        pay = np.zeros((ts.size, 8), np.uint8)
    elif kind == "fuzzy":
        can = rng.integers(0, 2**29 if extended else 2**11, ts.size).astype(np.uint32)
        pay = rng.integers(0, 256, (ts.size, 8)).astype(np.uint8)
    else:
        assert spoof_row is not None and target is not None
        can = np.full(ts.size, target[0], np.uint32)
        pay = np.tile(spoof_row, (ts.size, 1))
        dlc[:] = int(frames.filter(pl.col("can_id") == target[0])["dlc"].to_numpy().max())
    return _block(ts, can, dlc, pay, kind, frames, extended and kind != "dos")


def _replay(
    frames: pl.DataFrame, ids: pl.DataFrame, start: float, end: float, t0: float, rng: np.random.Generator
) -> tuple[pl.DataFrame, Burst]:
    """Frames of 1–3 periodic IDs from an earlier stretch of the capture, moved to the burst."""
    chosen = _candidates(ids, "replay")
    pick = rng.choice(chosen, min(chosen.size, int(rng.integers(1, 4))), replace=False)
    length = min(end - start, start - t0)  # only what was recorded before the burst can be replayed
    src = rng.uniform(t0, start - length)
    rec = frames.filter(
        pl.col("can_id").is_in(pick.tolist()) & pl.col("timestamp").is_between(src, src + length, "left")
    ).with_columns(
        pl.col("timestamp") + (start - src), label=pl.lit(1, pl.UInt8), attack_type=pl.lit("replay")
    )
    return rec, Burst("replay", start, start + length, tuple(sorted(int(i) for i in pick)), rec.height)


def _take_over(
    work: pl.DataFrame,
    kind: str,
    start: float,
    end: float,
    target: tuple[int, int, int],
    spec: IdSpec | None = None,
) -> tuple[pl.DataFrame, int]:
    """Masquerade (forge one byte of the target's frames) or suspension (drop them) inside the window."""
    cid, byte, value = target
    in_win = pl.col("timestamp").is_between(start, end, "left")
    hit = in_win & (pl.col("can_id") == cid)
    if kind == "masquerade" and spec is not None:
        mark = hit
        work = _masquerade_valid(work, start, end, target, spec)
    elif kind == "masquerade":  # payload rules unknown: only the forged byte changes
        col = BYTE_COLUMNS[byte]
        mark = hit
        work = work.with_columns(pl.when(hit).then(pl.lit(value, pl.UInt8)).otherwise(pl.col(col)).alias(col))
    else:  # suspension: nothing is injected; the whole interval is the attack
        mark = in_win
        work = work.filter(~hit)
    work = work.with_columns(
        pl.when(mark).then(1).otherwise(pl.col("label")).cast(pl.UInt8).alias("label"),
        pl.when(mark).then(pl.lit(kind)).otherwise(pl.col("attack_type")).alias("attack_type"),
    )
    return work, work.filter(mark).height


def _masquerade_valid(
    work: pl.DataFrame, start: float, end: float, target: tuple[int, int, int], spec: IdSpec
) -> pl.DataFrame:
    """Forge the target's frames in [start, end) keeping its counter sequence and checksum valid."""
    cid, byte, value = target
    rows = np.flatnonzero(work["can_id"].to_numpy() == cid)  # the ID's frames, in time order
    ts = work["timestamp"].to_numpy()[rows]
    win = (ts >= start) & (ts < end)
    if not win.any():
        return work
    pay = work.select(BYTE_COLUMNS).to_numpy(writable=True)
    forged = pay[rows[win]].astype(np.int64)
    forged[:, byte] = value
    if spec.counter is not None:
        # The attacker counts on from the last frame it saw; the legitimate sender, silent meanwhile,
        # resumes its own sequence after the burst, which lines up because both sent one frame per slot.
        before = rows[ts < start]
        first = read_counter(spec, pay[before[-1:]])[0] + 1 if before.size else read_counter(spec, forged)[0]
        write_counter(spec, forged, first + np.arange(forged.shape[0]))
    pay[rows[win]] = seal_payload(spec, forged)
    return work.with_columns(pl.Series(c, pay[:, j], pl.UInt8) for j, c in enumerate(BYTE_COLUMNS))


def _id_table(frames: pl.DataFrame) -> pl.DataFrame:
    """Per ID: median period, DLC and which payload bytes vary (candidates for a forged signal byte)."""
    return (
        frames.group_by("can_id")
        .agg(
            pl.col("timestamp").diff().median().alias("period_s"),
            pl.len().alias("frames"),
            pl.col("dlc").max(),
            *[(pl.col(c).n_unique() > 1).alias(c) for c in BYTE_COLUMNS],
        )
        .sort("can_id")
    )


def _candidates(ids: pl.DataFrame, kind: str) -> np.ndarray:
    ok = ids.filter((pl.col("period_s") <= TARGET_MAX_PERIOD_S[kind]) & (pl.col("frames") >= 3))
    return (ok if ok.height else ids)["can_id"].to_numpy()


def _forge(
    frames: pl.DataFrame,
    ids: pl.DataFrame,
    kind: str,
    roles: Mapping[str, tuple[int, int]],
    rng: np.random.Generator,
    rules: Mapping[int, IdSpec],
) -> tuple[int, int, int]:
    """(target ID, byte, forged value) for a spoofing kind; the value differs from the byte's usual one.

    IDs with a layout in `rules` never have their counter or checksum byte forged.
    """
    if kind in roles:
        cid, byte = roles[kind]
        if byte in _reserved(rules.get(cid)):
            raise ValueError(f"{kind} role: byte {byte} of ID {cid:03X} is its counter or checksum byte")
    else:
        cands = _candidates(ids, kind)
        dlc = dict(zip(ids["can_id"].to_list(), ids["dlc"].to_list(), strict=True))
        free = [c for c in cands if set(range(max(1, dlc[int(c)]))) - _reserved(rules.get(int(c)))]
        cid = int(rng.choice(free or cands))
        row = ids.filter(pl.col("can_id") == cid).row(0, named=True)
        reserved = _reserved(rules.get(cid))
        varying = [j for j in range(int(row["dlc"])) if row[BYTE_COLUMNS[j]] and j not in reserved]
        fallback = [j for j in range(max(1, int(row["dlc"]))) if j not in reserved]
        byte = int(rng.choice(varying or fallback or [0]))
    usual = frames.filter(pl.col("can_id") == cid)[BYTE_COLUMNS[byte]].mode().sort()
    base = int(usual[0]) if usual.len() else 0
    return int(cid), int(byte), (base + int(rng.integers(64, 192))) & 0xFF


def _reserved(spec: IdSpec | None) -> set[int]:
    """Bytes of an ID that a rule recomputes (counter, checksum): forging them would be undone."""
    out: set[int] = set()
    if spec is not None and spec.counter is not None:
        out.add(spec.counter[0])
    if spec is not None and spec.checksum is not None:
        out.add(spec.checksum[0])
    return out


def _sample_payload(frames: pl.DataFrame, cid: int, rng: np.random.Generator) -> np.ndarray:
    rows = frames.filter(pl.col("can_id") == cid).select(BYTE_COLUMNS).to_numpy()
    return rows[int(rng.integers(0, len(rows)))].astype(np.uint8).copy()


def _block(
    ts: np.ndarray,
    can: np.ndarray,
    dlc: np.ndarray,
    pay: np.ndarray,
    kind: str,
    frames: pl.DataFrame,
    extended: bool,
) -> pl.DataFrame:
    pay = pay.copy()
    pay[np.arange(8)[None, :] >= dlc[:, None]] = 0  # bytes beyond the DLC are 0 in the canonical table
    return conform(
        pl.DataFrame(
            {
                "timestamp": ts,
                "can_id": can,
                "extended": np.full(ts.size, extended),
                "dlc": dlc,
                **{c: pay[:, j] for j, c in enumerate(BYTE_COLUMNS)},
                "label": np.ones(ts.size, np.uint8),
            }
        ).with_columns(attack_type=pl.lit(kind), source=pl.lit(frames["source"][0]))
    )
