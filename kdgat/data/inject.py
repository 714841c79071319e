"""Dataset `wrx_inject`: attacks injected into real benign traffic, as the Car-Hacking dataset was made.

`build_injected(src_dir, out_dir, params)` reads the benign captures of `src_dir` (the six 2016 Subaru
WRX candump logs; any format kdgat.data.formats reads will do), cuts each capture in time — the first
`train_fraction` for training, the rest for testing, so no benign frame is in both — and writes a
can-train-and-test dataset (same CSV writer and manifest as kdgat.data.synth):

    train_01_attack_free/<capture>/attack-free.csv             training part, as recorded
    train_02_with_attacks/<capture>/<kind>-<k>.csv              training part + bursts of a known kind
    test_01_known_vehicle_known_attack/<capture>/attack-free.csv, <kind>-1.csv   same on the test part
    test_03_known_vehicle_unknown_attack/<capture>/<holdout>-1.csv                holdout on the test part

Known kinds are Car-Hacking's, at its injection intervals (kdgat.data.synth_attacks): DoS (ID 0x000,
every 0.3 ms), fuzzy (random ID and payload, every 0.5 ms), gear and rpm spoofing (one fixed payload on a
real ID, every 1 ms). One car, so no unknown-vehicle scenario.

Every part is reused once per attack kind (`train_copies` times in training), each with its own seed
stream: a WRX capture lasts 10–36 s, and one attack file per part and kind already gives every known kind
hundreds of training windows. The copies share their benign frames with train_01 by construction; train
and test never do. Caveat: split.by=time_block cuts each file at a share of its *windows*, and injected
frames shift that cut in time, so sibling copies of a part are cut a few hundred ms apart (seed 0: 127 of
1,178 val windows start within 0.1 s of a training window of a sibling file).

Spoofing targets. The WRX notes this data comes from do not identify the gear or rpm signal, so "gear"
and "rpm" spoof two distinct IDs that every capture carries at a period of at most 50 ms, each on one of
its changing bytes; the pair is drawn once per dataset from the seed and kept for every file, as
Car-Hacking kept its two IDs fixed (the manifest records them).

Holdout attack: suspension by default. It stops one ID sent every 10–20 ms, so a 100-frame window
(about 0.1 s of traffic with the engine running, 0.6 s on the engine-off doors log) lacks a node that
should appear 5–30 times, and every frame of the interval is labelled, so label and evidence coincide
(seed 0: 152 of the 180 labelled windows lack the target entirely; the rest straddle an interval edge).
Replay picks IDs of up to 100 ms period: one of those adds about one frame per window, inside the normal
phase jitter (seed 0: 15 % of replay-labelled windows hold at most 2 replayed frames; masquerade: 41 %).

Streams: numpy SeedSequence keys (seed, STREAM_INJECT, crc32 of the capture path, part, kind, copy), so
adding a capture changes no other file. The folder is replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from kdgat.config import InjectParams
from kdgat.data.formats import capture_files, read_capture
from kdgat.data.frames import BENIGN, BYTE_COLUMNS, FrameError
from kdgat.data.layout import SCENARIO_FOLDERS, TRAIN_FOLDERS
from kdgat.data.synth import MANIFEST, write_cantt
from kdgat.data.synth_attacks import ATTACKS, TARGET_MAX_PERIOD_S, Burst, inject_attacks_with_plan
from kdgat.data.synth_bus import stream
from kdgat.io import atomic_path, check_output

KNOWN_ATTACKS = ("dos", "fuzzy", "gear", "rpm")
SPOOF_KINDS = ("gear", "rpm")
STREAM_INJECT = 4  # after synth_bus's STREAM_PLATFORM, STREAM_VEHICLE, STREAM_CAPTURE
PARTS = ("train", "test")
KNOWN_FOLDER = SCENARIO_FOLDERS["known"]
HOLDOUT_FOLDER = SCENARIO_FOLDERS["unknown_attack"]
SCENARIOS = ("known", "unknown_attack")


@dataclass(frozen=True)
class Capture:
    name: str  # path relative to the source folder, e.g. "gas-pedal.log"
    frames: pl.DataFrame  # benign, sorted by time
    cut: float  # first timestamp of the test part
    sha256: str

    @property
    def stem(self) -> str:
        return self.name.rsplit(".", 1)[0]

    def part(self, which: str) -> pl.DataFrame:
        ts = pl.col("timestamp")
        return self.frames.filter(ts < self.cut if which == "train" else ts >= self.cut)


@dataclass(frozen=True)
class PlannedFile:
    folder: str
    capture: str  # Capture.name
    part: str  # "train" | "test"
    attack: str  # BENIGN or a kind
    copy: int  # 1.. for attack files, 0 for benign ones

    def path(self, stem: str) -> str:
        name = "attack-free.csv" if self.attack == BENIGN else f"{self.attack}-{self.copy}.csv"
        return f"{self.folder}/{stem}/{name}"


def read_captures(src_dir: str | Path, train_fraction: float) -> list[Capture]:
    """Every capture under `src_dir`, benign-checked and cut at `train_fraction` of its duration."""
    src = Path(src_dir)
    if not src.is_dir():
        raise FileNotFoundError(
            f"{src}: folder of benign CAN captures not found (looked in {src.resolve()}); put the 2016 "
            "Subaru WRX candump logs (afreiday/2016-wrx-can-ids, logs/*.log) there, or point inject.source "
            "in params.yaml elsewhere"
        )
    out = []
    for path in capture_files(src):
        name = path.relative_to(src).as_posix()
        frames, _ = read_capture(path, fmt="auto", source=name)
        if int(frames["label"].max() or 0) > 0:  # type: ignore[arg-type]
            raise FrameError(path, "holds attack frames; injection needs benign captures")
        t0, t1 = float(frames["timestamp"][0]), float(frames["timestamp"][-1])
        cap = Capture(
            name, frames, t0 + train_fraction * (t1 - t0), hashlib.sha256(path.read_bytes()).hexdigest()
        )
        if min(cap.part("train").height, cap.part("test").height) < 2:
            raise FrameError(path, f"too short to cut at {train_fraction:.0%} of its {t1 - t0:.3f} s")
        out.append(cap)
    return out


def plan_files(captures: list[Capture], params: InjectParams) -> list[PlannedFile]:
    """The files of the dataset, capture by capture (see the module docstring)."""
    plan: list[PlannedFile] = []
    for cap in captures:
        plan.append(PlannedFile(TRAIN_FOLDERS[0], cap.name, "train", BENIGN, 0))
        plan += [
            PlannedFile(TRAIN_FOLDERS[1], cap.name, "train", kind, k)
            for kind in KNOWN_ATTACKS
            for k in range(1, params.train_copies + 1)
        ]
        plan.append(PlannedFile(KNOWN_FOLDER, cap.name, "test", BENIGN, 0))
        plan += [PlannedFile(KNOWN_FOLDER, cap.name, "test", kind, 1) for kind in KNOWN_ATTACKS]
        plan.append(PlannedFile(HOLDOUT_FOLDER, cap.name, "test", params.holdout_attack, 1))
    return plan


def pick_spoof_roles(captures: list[Capture], rng: np.random.Generator) -> dict[str, tuple[int, int]]:
    """(CAN ID, byte) for gear and rpm spoofing: distinct IDs present in every capture at a period of at
    most TARGET_MAX_PERIOD_S["gear"], each on a byte that changes somewhere in the captures.

    Fewer than two such IDs: the rule relaxes to any ID in every capture (a single one serves both
    kinds); none: {} (the injector then picks a target per file)."""
    pooled = pl.concat([c.frames for c in captures])
    stats = (
        pooled.group_by("source", "can_id")
        .agg(pl.col("timestamp").diff().median().alias("period_s"))
        .group_by("can_id")
        .agg(pl.len().alias("captures"), pl.col("period_s").max())
    )
    everywhere = stats.filter(pl.col("captures") == len(captures))
    fast = everywhere.filter(pl.col("period_s") <= TARGET_MAX_PERIOD_S["gear"])
    pool = (fast if fast.height >= len(SPOOF_KINDS) else everywhere)["can_id"].sort().to_numpy()
    if pool.size == 0:
        return {}
    ids = rng.choice(pool, min(pool.size, len(SPOOF_KINDS)), replace=False)
    roles: dict[str, tuple[int, int]] = {}
    for kind, cid in zip(SPOOF_KINDS, np.resize(ids, len(SPOOF_KINDS)), strict=True):
        rows = pooled.filter(pl.col("can_id") == int(cid))
        dlc = max(1, int(rows["dlc"].max() or 0))  # type: ignore[arg-type]
        varying = [j for j in range(dlc) if rows[BYTE_COLUMNS[j]].n_unique() > 1]
        roles[kind] = (int(cid), int(rng.choice(varying or list(range(dlc)))))
    return roles


def _rng(seed: int, item: PlannedFile) -> np.random.Generator:
    key = zlib.crc32(item.capture.encode())
    return stream(seed, STREAM_INJECT, key, PARTS.index(item.part), ATTACKS.index(item.attack), item.copy)


def build_injected(
    src_dir: str | Path, out_dir: str | Path, params: InjectParams, force: bool = False
) -> dict[str, Any]:
    """Write the injected dataset to `out_dir` (replaced atomically; see frames.check_output) and
    return its manifest."""
    check_output(out_dir, folder=True, force=force, inputs=[src_dir])
    captures = read_captures(src_dir, params.train_fraction)
    if not captures:
        raise FrameError(src_dir, "no capture files in this folder")
    by_name = {c.name: c for c in captures}
    roles = pick_spoof_roles(captures, stream(params.seed, STREAM_INJECT, 0))
    plan = plan_files(captures, params)
    files: list[dict[str, Any]] = []
    with atomic_path(out_dir, folder=True, force=force, inputs=[src_dir]) as tmp:
        tmp.mkdir(parents=True)
        for item in tqdm(plan, desc="inject", unit="file", disable=None):
            cap = by_name[item.capture]
            rel = item.path(cap.stem)
            frames = cap.part(item.part).with_columns(source=pl.lit(rel))
            bursts: list[Burst] = []
            if item.attack != BENIGN:
                frames, bursts = inject_attacks_with_plan(
                    frames, [item.attack], _rng(params.seed, item), roles=roles
                )
            write_cantt(frames, tmp / rel)
            t0 = float(frames["timestamp"][0])
            files.append(
                {
                    "path": rel,
                    "folder": item.folder,
                    "capture": item.capture,
                    "part": item.part,
                    "attack": item.attack,
                    "frames": frames.height,
                    "attack_frames": int(frames["label"].sum()),
                    "duration_s": round(float(frames["timestamp"][-1]) - t0, 6),
                    "start_time": t0,
                    "bursts": [b.to_json(t0) for b in bursts],
                }
            )
        manifest = _manifest(src_dir, params, captures, roles, files)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def _manifest(
    src_dir: str | Path,
    params: InjectParams,
    captures: list[Capture],
    roles: dict[str, tuple[int, int]],
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    def span(df: pl.DataFrame) -> list[float]:
        return [float(df["timestamp"][0]), float(df["timestamp"][-1])]

    return {
        "dataset": "wrx_inject",
        "generator": "kdgat.data.inject",
        "source": str(src_dir),
        "seed": params.seed,
        "params": params.model_dump(mode="json"),
        "scenarios": list(SCENARIOS),
        "known_attacks": list(KNOWN_ATTACKS),
        "holdout": {"attack": params.holdout_attack},
        "spoof_roles": {k: {"can_id": f"{cid:03X}", "byte": b} for k, (cid, b) in roles.items()},
        "captures": [
            {
                "name": c.name,
                "sha256": c.sha256,
                "frames": c.frames.height,
                "cut_time": c.cut,
                "train": {"frames": c.part("train").height, "span": span(c.part("train"))},
                "test": {"frames": c.part("test").height, "span": span(c.part("test"))},
            }
            for c in captures
        ],
        "files": files,
        "totals": {
            "files": len(files),
            "frames": sum(f["frames"] for f in files),
            "attack_frames": sum(f["attack_frames"] for f in files),
        },
    }
