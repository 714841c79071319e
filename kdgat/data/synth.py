"""The embedded default dataset (catalogue name "synth"): a synthetic CAN bus, can-train-and-test layout.

`generate(out_dir, params)` simulates `params.vehicles` vehicles (kdgat.data.synth_bus), injects attack
bursts (kdgat.data.synth_attacks) and writes can-train-and-test CSV captures
(`timestamp,arbitration_id,data_field,attack`) plus a `manifest.json`, so the dataset goes through the
same reader as the real ones. The last vehicle is the unknown vehicle and `params.holdout_attack` the
unknown attack:

    train_01_attack_free/                    benign captures of the known vehicles
    train_02_with_attacks/                   known vehicles × known attacks
    test_01_known_vehicle_known_attack/      fresh captures of known vehicles × known attacks, + benign
    test_02_unknown_vehicle_known_attack/    unknown vehicle × known attacks
    test_03_known_vehicle_unknown_attack/    known vehicles × holdout attack
    test_04_unknown_vehicle_unknown_attack/  unknown vehicle × holdout attack
    calibration_unknown_vehicle/             up to CALIBRATION_S of the unknown vehicle's benign traffic

Attack files also hold benign stretches (lead-in and gaps between bursts), so every test folder has
benign traffic. Masquerade frames keep valid counters and checksums (the attacker knows the layout). See
kdgat.data.synth_attacks for the labelling rules (suspension labels the frames
inside its interval). `params.minutes` is split 60 % training (a third of it benign) / 40 % test, the
test share over the four scenarios in proportion to the square root of their file counts. No file is
shorter than MIN_FILE_S (room for a lead-in and a few bursts), so small `minutes` values yield more
traffic than asked (12 minutes → about 13; the manifest records every file's duration). The calibration
capture comes on top, last in the plan, so the other captures are the same with or without it.
Everything derives from `params.seed` through numpy SeedSequence streams: the same params give
byte-identical files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from kdgat.config import SynthParams
from kdgat.data.frames import BENIGN, BYTE_COLUMNS
from kdgat.data.layout import SCENARIO_FOLDERS, TRAIN_FOLDERS
from kdgat.data.synth_attacks import ATTACKS, Burst, inject_attacks_with_plan
from kdgat.data.synth_bus import STREAM_CAPTURE, VehicleSpec, make_vehicle, simulate_vehicle, stream
from kdgat.io import atomic_path, check_output

CANTT_COLUMNS = ("timestamp", "arbitration_id", "data_field", "attack")
MANIFEST = "manifest.json"
TRAIN_SHARE = 0.6
BENIGN_SHARE_OF_TRAIN = 1 / 3
BENIGN_FILE_S = 30.0  # target length of one benign training capture
MIN_FILE_S = 10.0
EPOCH0 = 1_600_000_000.0  # captures get epoch-like timestamps, one hour apart
CALIBRATION_S = 90.0  # more than calibration.seconds uses by default (60); less for a short dataset

FOLDERS = (*TRAIN_FOLDERS, *SCENARIO_FOLDERS.values())
CALIBRATION_FOLDER = "calibration_unknown_vehicle"


@dataclass(frozen=True)
class Capture:
    folder: str
    name: str
    vehicle: int
    attack: str  # BENIGN or an attack kind
    duration_s: float
    index: int  # position in the plan: seed stream and start time


def plan_dataset(params: SynthParams) -> list[Capture]:
    """Which capture goes where, for how long (see the module docstring for the folder contents)."""
    known_v = list(range(params.vehicles - 1))
    unknown_v = [params.vehicles - 1]
    known_a = [a for a in ATTACKS if a != params.holdout_attack]
    hold_a = [params.holdout_attack]
    train_s = params.minutes * 60.0 * TRAIN_SHARE
    test_s = params.minutes * 60.0 - train_s

    benign_s = train_s * BENIGN_SHARE_OF_TRAIN
    per_vehicle = max(1, round(benign_s / len(known_v) / BENIGN_FILE_S))
    groups: list[tuple[str, list[tuple[int, str]], float]] = [
        (FOLDERS[0], [(v, BENIGN) for v in known_v for _ in range(per_vehicle)], benign_s),
        (FOLDERS[1], [(v, a) for v in known_v for a in known_a], train_s - benign_s),
    ]
    tests: list[list[tuple[int, str]]] = [
        [(v, a) for v in known_v for a in known_a] + [(v, BENIGN) for v in known_v],
        [(v, a) for v in unknown_v for a in known_a],
        [(v, a) for v in known_v for a in hold_a],
        [(v, a) for v in unknown_v for a in hold_a],
    ]
    # Scenario budgets grow with the square root of their file count: test_01 (many files) does not
    # starve the single-file unknown-vehicle × unknown-attack scenario.
    weights = np.sqrt([len(t) for t in tests])
    groups += [
        (f, t, test_s * w / weights.sum()) for f, t, w in zip(FOLDERS[2:], tests, weights, strict=True)
    ]
    calibration_s = min(CALIBRATION_S, params.minutes * 60.0 / 8)  # 12 minutes: 90 s; a test's minute: 10 s
    groups.append((CALIBRATION_FOLDER, [(v, BENIGN) for v in unknown_v], calibration_s * len(unknown_v)))

    plan: list[Capture] = []
    for folder, items, budget in groups:
        duration = round(float(max(MIN_FILE_S, budget / len(items))), 3)
        seen: dict[str, int] = {}
        for vehicle, attack in items:
            seen[attack] = seen.get(attack, 0) + 1
            stem = "attack-free" if attack == BENIGN else attack
            plan.append(Capture(folder, f"{stem}-{seen[attack]}.csv", vehicle, attack, duration, len(plan)))
    return plan


def attack_roles(vehicle: VehicleSpec) -> dict[str, tuple[int, int]]:
    """Fixed targets per vehicle, as in Car-Hacking: gear/rpm spoofing on their signal IDs, masquerade
    forges the speed signal, suspension silences the engine ECU's fast rpm ID (a random ID per capture
    would make "known attack" mean a different missing ID in every test file)."""
    pairs = {"gear": "gear", "rpm": "rpm", "masquerade": "speed", "suspension": "rpm"}
    return {kind: vehicle.roles[role] for kind, role in pairs.items() if role in vehicle.roles}


def to_cantt(frames: pl.DataFrame) -> pl.DataFrame:
    """Canonical frames → can-train-and-test columns (µs timestamps, uppercase hex ID and payload)."""
    us = pl.Series(np.rint(frames["timestamp"].to_numpy() * 1e6).astype(np.int64))
    pay = np.ascontiguousarray(frames.select(BYTE_COLUMNS).to_numpy().astype(np.uint8))
    hexes = np.frombuffer(pay.tobytes().hex().upper().encode("ascii"), dtype="S16").astype("U16")
    # One string per distinct (ID, extended) pair, not per frame: 3 hex digits, 8 for a 29-bit ID.
    key = frames["can_id"].cast(pl.UInt64) + frames["extended"].cast(pl.UInt64) * (1 << 32)
    uniq = key.unique().sort().to_list()
    names = [f"{k & 0xFFFFFFFF:08X}" if k >> 32 else f"{k:03X}" for k in uniq]
    return pl.DataFrame(
        {
            "timestamp": (us // 1_000_000).cast(pl.String)
            + "."
            + (us % 1_000_000).cast(pl.String).str.zfill(6),
            "arbitration_id": key.replace_strict(uniq, names, return_dtype=pl.String),
            "data_field": pl.Series(hexes).str.slice(0, frames["dlc"].cast(pl.Int64) * 2),
            "attack": frames["label"],
        }
    )


def write_cantt(frames: pl.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    to_cantt(frames).write_csv(path)


def generate(out_dir: str | Path, params: SynthParams, force: bool = False) -> dict[str, Any]:
    """Write the synthetic dataset to `out_dir` (replaced atomically; see frames.check_output) and
    return its manifest."""
    check_output(out_dir, folder=True, force=force)
    vehicles = [make_vehicle(i, params.seed) for i in range(params.vehicles)]
    plan = plan_dataset(params)
    files: list[dict[str, Any]] = []
    with atomic_path(out_dir, folder=True, force=force) as tmp:
        tmp.mkdir(parents=True)
        for cap in tqdm(plan, desc="synth", unit="file", disable=None):
            rel = f"{cap.folder}/{cap.name}"
            vehicle = vehicles[cap.vehicle]
            rng = stream(params.seed, STREAM_CAPTURE, cap.index)
            t0 = EPOCH0 + 3600.0 * cap.index
            frames = simulate_vehicle(vehicle, cap.duration_s, rng, t0=t0, source=rel)
            bursts: list[Burst] = []
            if cap.attack != BENIGN:
                frames, bursts = inject_attacks_with_plan(
                    frames, [cap.attack], rng, roles=attack_roles(vehicle), layouts=vehicle.ids
                )
            write_cantt(frames, tmp / rel)
            files.append(
                {
                    "path": rel,
                    "folder": cap.folder,
                    "vehicle": vehicle.name,
                    "attack": cap.attack,
                    "frames": frames.height,
                    "attack_frames": int(frames["label"].sum()),
                    "duration_s": cap.duration_s,
                    "start_time": t0,
                    "bursts": [b.to_json(t0) for b in bursts],
                }
            )
        manifest = {
            "dataset": "synth",
            "generator": "kdgat.data.synth",
            "seed": params.seed,
            "params": params.model_dump(mode="json"),
            "holdout": {"vehicle": vehicles[-1].name, "attack": params.holdout_attack},
            "known_attacks": [a for a in ATTACKS if a != params.holdout_attack],
            "vehicles": [v.summary() | {"known": v.index < params.vehicles - 1} for v in vehicles],
            "files": files,
            "totals": {
                "files": len(files),
                "frames": sum(f["frames"] for f in files),
                "attack_frames": sum(f["attack_frames"] for f in files),
                "duration_s": round(sum(f["duration_s"] for f in files), 3),
            },
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest
