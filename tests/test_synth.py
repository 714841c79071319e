"""The synthetic CAN bus: determinism, attack labels, held-out folders, calibration against the WRX logs."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from support.tiny_project import study_params

from kdgat.data.calibration import (
    DEFAULT_TOLERANCES,
    WRX_PERIODS_MS,
    WRX_REFERENCE,
    WRX_RUNNING_LOGS,
    compare_stats,
    flatten,
    pool_stats,
    traffic_stats,
)
from kdgat.data.formats import read_capture
from kdgat.data.frames import BENIGN, BYTE_COLUMNS, conform
from kdgat.data.layout import SCENARIO_FOLDERS, TRAIN_FOLDERS, attack_of_filename
from kdgat.data.synth import CALIBRATION_FOLDER, MANIFEST, attack_roles, generate, plan_dataset, to_cantt
from kdgat.data.synth_attacks import ATTACKS, inject_attacks, inject_attacks_with_plan
from kdgat.data.synth_bus import (
    STREAM_CAPTURE,
    IdSpec,
    make_vehicle,
    payload_checksum,
    read_counter,
    simulate_vehicle,
    stream,
)
from kdgat.io import OUTPUT_MARK

STUDY = study_params()  # the repository's params.yaml

PARAMS = STUDY.synth.model_copy(update={"seed": 7, "minutes": 1.0, "vehicles": 3})

# Tolerances of the synthetic-vs-real comparison (DEFAULT_TOLERANCES in kdgat/data/calibration.py):
# IDs and bus load within ±30 %, median per-ID period within a factor 1.5, inter-arrival jitter within a
# factor 2, payload change rate (mean, share of static IDs, share of always-changing IDs) within ±0.15.
assert DEFAULT_TOLERANCES["n_ids"].rel == 0.30 and DEFAULT_TOLERANCES["period_ms_q50"].factor == 1.5


# ---------------------------------------------------------------- helpers


def _read_cantt(path: Path) -> pl.DataFrame:
    """A generated capture through the project's reader, plus its payload as the hex text of the file."""
    frames, report = read_capture(path, fmt="cantt")
    assert report.bad_lines == 0, path
    return frames.with_columns(data=to_cantt(frames)["data_field"])


def _read_candump(path: Path) -> pl.DataFrame:
    return read_capture(path, fmt="candump")[0]


def _in_bursts(ts: pl.Expr, bursts: list[dict[str, Any]], t0: float) -> pl.Expr:
    cond = pl.lit(False)
    for b in bursts:
        cond = cond | ts.is_between(t0 + b["start_s"] - 1e-6, t0 + b["end_s"] + 1e-6)
    return cond


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("synth") / "synth"
    start = time.perf_counter()
    manifest = generate(out, PARAMS)
    seconds = time.perf_counter() - start
    frames = manifest["totals"]["frames"]
    print(f"\nsynth: {frames} frames in {seconds:.2f} s = {frames / seconds:,.0f} frames/s")
    return out, manifest


@pytest.fixture(scope="module")
def wrx_frames(can_data: Path) -> list[pl.DataFrame]:
    wrx = can_data / "wrx-2016"
    if not wrx.is_dir():
        pytest.skip(f"real WRX captures not found at {wrx}")
    return [_read_candump(wrx / name) for name in WRX_RUNNING_LOGS]


def _files(manifest: dict[str, Any], attack: str) -> list[dict[str, Any]]:
    return [f for f in manifest["files"] if f["attack"] == attack]


# ---------------------------------------------------------------- determinism and layout


def test_same_seed_gives_identical_files_and_other_seed_differs(tmp_path: Path) -> None:
    small = STUDY.synth.model_copy(update={"seed": 3, "minutes": 0.3, "vehicles": 2})
    generate(tmp_path / "a", small)
    generate(tmp_path / "b", small)
    generate(tmp_path / "c", small.model_copy(update={"seed": 4}))
    files_a, files_b = (
        sorted(
            p.relative_to(tmp_path / d)
            for p in (tmp_path / d).rglob("*")
            if p.is_file() and p.name != OUTPUT_MARK
        )
        for d in "ab"
    )
    assert files_a == files_b and len(files_a) > 10
    for rel in files_a:
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    differing = [
        rel for rel in files_a if (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()
    ]
    assert len(differing) == len(files_a)


def test_generate_replaces_output_atomically(tmp_path: Path) -> None:
    out = tmp_path / "ds"
    out.mkdir()
    (out / OUTPUT_MARK).write_text("")  # a folder kdgat wrote before: replaced whole
    (out / "stale.csv").write_text("old")
    generate(out, STUDY.synth.model_copy(update={"seed": 1, "minutes": 0.2, "vehicles": 2}))
    assert not (out / "stale.csv").exists() and (out / MANIFEST).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]  # no temp folder left behind


def test_layout_holdout_vehicle_and_attack_only_in_their_folders(
    dataset: tuple[Path, dict[str, Any]],
) -> None:
    root, manifest = dataset
    assert json.loads((root / MANIFEST).read_text()) == manifest
    unknown_v, hold_a = manifest["holdout"]["vehicle"], manifest["holdout"]["attack"]
    assert unknown_v == f"vehicle-{PARAMS.vehicles - 1}" and hold_a == "masquerade"
    known = set(ATTACKS) - {hold_a}
    by_folder: dict[str, list[dict[str, Any]]] = {}
    for f in manifest["files"]:
        by_folder.setdefault(f["folder"], []).append(f)
        assert attack_of_filename(Path(f["path"]).name) == f["attack"]
        assert (root / f["path"]).is_file()
    assert set(by_folder) == {*TRAIN_FOLDERS, *SCENARIO_FOLDERS.values(), CALIBRATION_FOLDER}
    expect = {  # folder → (unknown vehicle?, attacks allowed)
        TRAIN_FOLDERS[0]: (False, {BENIGN}),
        TRAIN_FOLDERS[1]: (False, known),
        SCENARIO_FOLDERS["known"]: (False, known | {BENIGN}),
        SCENARIO_FOLDERS["unknown_vehicle"]: (True, known),
        SCENARIO_FOLDERS["unknown_attack"]: (False, {hold_a}),
        SCENARIO_FOLDERS["unknown_both"]: (True, {hold_a}),
        CALIBRATION_FOLDER: (True, {BENIGN}),  # before deployment, apart in time from every test capture
    }
    for folder, (unknown, attacks) in expect.items():
        files = by_folder[folder]
        assert {f["attack"] for f in files} == attacks, folder
        assert all((f["vehicle"] == unknown_v) == unknown for f in files), folder
        if folder.startswith("test_"):  # every test scenario holds benign traffic too
            benign = sum(f["frames"] - f["attack_frames"] for f in files)
            assert benign > 1000, folder
    # Known vehicles × known attacks: every pair present in training and in test_01.
    known_v = {f"vehicle-{i}" for i in range(PARAMS.vehicles - 1)}
    for folder in (TRAIN_FOLDERS[1], SCENARIO_FOLDERS["known"]):
        pairs = {(f["vehicle"], f["attack"]) for f in by_folder[folder] if f["attack"] != BENIGN}
        assert pairs == {(v, a) for v in known_v for a in known}
    # Attack files hold several bursts; frame counts in the manifest match the CSV files.
    for f in manifest["files"]:
        if f["attack"] != BENIGN:
            assert len(f["bursts"]) >= 2, f["path"]
    for f in (manifest["files"][0], manifest["files"][-1]):
        df = _read_cantt(root / f["path"])
        assert df.height == f["frames"] and int(df["label"].sum()) == f["attack_frames"]
        types = set(df.filter(pl.col("label") == 1)["attack_type"].unique().to_list())
        assert types == ({f["attack"]} if f["attack_frames"] else set())


def test_cantt_text_format() -> None:
    veh = make_vehicle(0, 0)
    frames = simulate_vehicle(veh, 1.0, stream(0, STREAM_CAPTURE, 0), t0=1_600_000_000.0, source="x.csv")
    ext = frames.head(1).with_columns(can_id=pl.lit(0x18DAF110, pl.UInt32), extended=pl.lit(True))
    text = to_cantt(pl.concat([frames, ext]))
    assert text.columns == ["timestamp", "arbitration_id", "data_field", "attack"]
    assert text["timestamp"].str.contains(r"^\d{10}\.\d{6}$").all()
    assert text["arbitration_id"].head(frames.height).str.contains(r"^[0-9A-F]{3}$").all()
    assert text["arbitration_id"][-1] == "18DAF110"
    lengths = text["data_field"].str.len_chars().to_numpy()
    assert (lengths == 2 * pl.concat([frames, ext])["dlc"].to_numpy()).all()
    assert text["data_field"].str.contains(r"^[0-9A-F]*$").all()


# ---------------------------------------------------------------- labels per attack kind (generated files)


def _capture(root: Path, f: dict[str, Any]) -> tuple[pl.DataFrame, pl.Expr]:
    df = _read_cantt(root / f["path"])
    return df, _in_bursts(pl.col("timestamp"), f["bursts"], f["start_time"])


def test_dos_frames_are_id0_zero_payload_every_0_3ms(dataset: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = dataset
    for f in _files(manifest, "dos"):
        df, inside = _capture(root, f)
        attack = df.filter(pl.col("label") == 1)
        assert (df["can_id"] == 0).to_numpy().tolist() == (df["label"] == 1).to_numpy().tolist()
        assert (attack["data"] == "0000000000000000").all()
        assert attack.filter(~inside).height == 0
        dt = attack["timestamp"].diff().drop_nulls().to_numpy()
        assert np.median(dt) == pytest.approx(0.0003, rel=0.05)


def test_fuzzy_rate_during_bursts(dataset: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = dataset
    for f in _files(manifest, "fuzzy"):
        df, inside = _capture(root, f)
        attack = df.filter(pl.col("label") == 1)
        on_s = sum(b["end_s"] - b["start_s"] for b in f["bursts"])
        assert attack.height / on_s == pytest.approx(1 / 0.0005, rel=0.02)
        assert attack.filter(~inside).height == 0
        assert attack["can_id"].n_unique() > 500 and attack["data"].n_unique() > 0.99 * attack.height


@pytest.mark.parametrize("kind", ["gear", "rpm"])
def test_spoofing_sends_one_fixed_payload_on_the_role_id_every_1ms(
    dataset: tuple[Path, dict[str, Any]], kind: str
) -> None:
    root, manifest = dataset
    vehicles = {v["name"]: v for v in manifest["vehicles"]}
    for f in _files(manifest, kind):
        df, inside = _capture(root, f)
        attack = df.filter(pl.col("label") == 1)
        role_id = int(vehicles[f["vehicle"]]["roles"][kind]["id"], 16)
        assert attack["can_id"].unique().to_list() == [role_id]
        assert attack["data"].n_unique() == 1  # one fixed payload for the whole capture
        assert attack["data"][0] not in set(
            df.filter((pl.col("label") == 0) & (pl.col("can_id") == role_id))["data"]
        )
        assert attack.filter(~inside).height == 0
        dt = attack["timestamp"].diff().drop_nulls().to_numpy()
        assert np.median(dt) == pytest.approx(0.001, rel=0.05)


def test_replay_resends_earlier_legitimate_frames(dataset: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = dataset
    for f in _files(manifest, "replay"):
        df, inside = _capture(root, f)
        for b in f["bursts"]:
            t_start = f["start_time"] + b["start_s"]
            burst = df.filter(
                pl.col("timestamp").is_between(t_start - 1e-6, f["start_time"] + b["end_s"] + 1e-6)
            )
            replayed = burst.filter(pl.col("label") == 1)
            assert replayed.height == b["frames"] > 0
            assert set(replayed["can_id"].unique().to_list()) <= {int(i, 16) for i in b["target_ids"]}
            earlier = df.filter((pl.col("label") == 0) & (pl.col("timestamp") < t_start))
            # Every replayed (ID, payload) was sent legitimately before the burst.
            missing = replayed.join(earlier, on=["can_id", "data"], how="anti")
            assert missing.height == 0
        assert df.filter((pl.col("label") == 1) & ~inside).height == 0


def test_masquerade_replaces_the_sender_at_its_period(dataset: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = dataset
    vehicles = {v["name"]: v for v in manifest["vehicles"]}
    for f in _files(manifest, "masquerade"):
        df, inside = _capture(root, f)
        target = int(vehicles[f["vehicle"]]["roles"]["speed"]["id"], 16)
        attack = df.filter(pl.col("label") == 1)
        assert attack["can_id"].unique().to_list() == [target]
        assert attack.filter(~inside).height == 0
        # The legitimate sender is silent inside the bursts ...
        assert df.filter(inside & (pl.col("can_id") == target) & (pl.col("label") == 0)).height == 0
        # ... and the attacker keeps the legitimate period, so the ID's timing looks normal.
        legit = df.filter(~inside & (pl.col("can_id") == target))["timestamp"].diff().median()
        forged = df.filter(inside & (pl.col("can_id") == target))["timestamp"].diff().median()
        assert forged == pytest.approx(legit, rel=0.05)


def _payload(df: pl.DataFrame) -> np.ndarray:
    return df.select(BYTE_COLUMNS).to_numpy().astype(np.int64)


def _counter_steps(spec: IdSpec, pay: np.ndarray) -> np.ndarray:
    return np.diff(read_counter(spec, pay)) % (1 << spec.counter[2]) if spec.counter else np.ones(1)


def test_masquerade_frames_obey_the_ids_counter_and_checksum(dataset: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = dataset
    plan = {f"{c.folder}/{c.name}": c for c in plan_dataset(PARAMS)}
    rules_seen: set[str] = set()
    for f in _files(manifest, "masquerade"):
        df, _ = _capture(root, f)
        cap = plan[f["path"]]
        vehicle = make_vehicle(cap.vehicle, PARAMS.seed)
        target, byte = attack_roles(vehicle)["masquerade"]
        spec = next(s for s in vehicle.ids if s.can_id == target)
        stream_ = df.filter(pl.col("can_id") == target)  # legitimate and forged frames of the ID, in order
        forged = stream_.filter(pl.col("label") == 1)
        assert forged.height == sum(b["frames"] for b in f["bursts"]) > 0
        if spec.checksum is not None:
            rules_seen.add("checksum")
            assert (payload_checksum(spec, _payload(forged)) == _payload(forged)[:, spec.checksum[0]]).all()
        if spec.counter is not None:  # one step per frame across the whole ID, bursts included
            rules_seen.add("counter")
            assert (_counter_steps(spec, _payload(stream_)) == 1).all(), f["path"]
        # Against what the legitimate sender would have sent at the same instants (same seed stream):
        # the forged byte differs in most frames; no byte but it and the checksum byte changes.
        rng = stream(PARAMS.seed, STREAM_CAPTURE, cap.index)
        legit = simulate_vehicle(vehicle, cap.duration_s, rng, t0=f["start_time"], source=f["path"])
        us = (pl.col("timestamp") * 1e6).round().cast(pl.Int64).alias("us")
        pair = forged.with_columns(us).join(legit.with_columns(us), on=["can_id", "us"], suffix="_legit")
        assert pair.height == forged.height
        a, b = _payload(pair), pair.select(f"{c}_legit" for c in BYTE_COLUMNS).to_numpy().astype(np.int64)
        assert (a[:, byte] != b[:, byte]).mean() > 0.9, f["path"]
        changed = set(np.flatnonzero((a != b).any(axis=0)).tolist())
        assert changed <= {byte, *([spec.checksum[0]] if spec.checksum else [])}, f["path"]
    assert rules_seen == {"checksum", "counter"}  # the dataset exercises both rules


def test_suspension_removes_the_id_and_labels_its_interval(dataset: tuple[Path, dict[str, Any]]) -> None:
    root, manifest = dataset
    for f in _files(manifest, "suspension"):
        df, inside = _capture(root, f)
        target = int(f["bursts"][0]["target_ids"][0], 16)
        strict = _in_bursts(pl.col("timestamp"), f["bursts"], f["start_time"])
        assert df.filter(strict & (pl.col("can_id") == target)).height == 0
        assert df.filter(~strict & (pl.col("can_id") == target)).height > 0
        assert df.filter(pl.col("label") == 1).height == sum(b["frames"] for b in f["bursts"])
        assert df.filter((pl.col("label") == 1) & ~inside).height == 0


# ---------------------------------------------------------------- the injector over any benign table


@pytest.fixture(scope="module")
def benign() -> pl.DataFrame:
    return simulate_vehicle(
        make_vehicle(1, 11), 12.0, stream(11, STREAM_CAPTURE, 99), t0=100.0, source="b.csv"
    )


def _key(df: pl.DataFrame) -> pl.DataFrame:
    return df.select("timestamp", "can_id", *BYTE_COLUMNS).sort("timestamp", "can_id")


@pytest.mark.parametrize("kind", ["dos", "fuzzy", "gear", "rpm", "replay"])
def test_injected_frames_are_exactly_the_labelled_ones(benign: pl.DataFrame, kind: str) -> None:
    out, bursts = inject_attacks_with_plan(benign, [kind], np.random.default_rng(5))
    assert _key(out.filter(pl.col("label") == 0)).equals(_key(benign))
    attack = out.filter(pl.col("label") == 1)
    assert attack.height == sum(b.frames for b in bursts) > 0
    assert (attack["attack_type"] == kind).all() and (
        out.filter(pl.col("label") == 0)["attack_type"] == BENIGN
    ).all()
    assert out["timestamp"].is_sorted()


def test_masquerade_and_suspension_touch_only_their_target(benign: pl.DataFrame) -> None:
    rng = np.random.default_rng(6)
    out, bursts = inject_attacks_with_plan(benign, ["masquerade", "suspension"], rng)
    assert {b.kind for b in bursts} == {"masquerade", "suspension"}
    for b in bursts:
        window = pl.col("timestamp").is_between(b.start, b.end, "left")
        hit = window & (pl.col("can_id") == b.target_ids[0])
        if b.kind == "masquerade":  # same instants as the legitimate frames, payload forged
            assert out.filter(hit)["timestamp"].equals(benign.filter(hit)["timestamp"])
            assert (out.filter(hit)["label"] == 1).all() and out.filter(hit).height == b.frames
            assert not _key(out.filter(hit)).equals(_key(benign.filter(hit)))
        else:
            assert out.filter(hit).height == 0 < benign.filter(hit).height
            assert (out.filter(window)["label"] == 1).all() and out.filter(window).height == b.frames
    untouched = pl.lit(True)
    for b in bursts:
        untouched = untouched & ~pl.col("timestamp").is_between(b.start, b.end, "left")
    assert _key(out.filter(untouched)).equals(_key(benign.filter(untouched)))
    assert (out.filter(untouched)["label"] == 0).all()


def test_masquerade_keeps_payload_rules_only_when_the_layout_is_known(benign: pl.DataFrame) -> None:
    vehicle = make_vehicle(1, 11)
    specs = {s.can_id: s for s in vehicle.ids}
    cid, byte = vehicle.roles["speed"]
    spec = specs[cid]
    assert spec.checksum is not None and spec.counter is not None  # the fixture's speed ID has both
    roles = {"masquerade": (cid, byte)}

    def forged(**kw: Any) -> np.ndarray:
        out = inject_attacks(benign, ["masquerade"], np.random.default_rng(3), roles=roles, **kw)
        return _payload(out.filter(pl.col("label") == 1))

    valid, stale = forged(layouts=vehicle.ids), forged()
    assert (payload_checksum(spec, valid) == valid[:, spec.checksum[0]]).all()
    # Without a layout (as on real traffic) the checksum byte is left as the legitimate frame had it.
    assert (payload_checksum(spec, stale) != stale[:, spec.checksum[0]]).mean() > 0.9
    assert (valid[:, byte] == stale[:, byte]).all()
    with pytest.raises(ValueError, match="counter or checksum byte"):
        inject_attacks(
            benign,
            ["masquerade"],
            np.random.default_rng(3),
            roles={"masquerade": (cid, spec.checksum[0])},
            layouts=vehicle.ids,
        )
    # Targets picked at random: never a rule byte, and the ID's rules hold over its whole stream.
    for seed in range(8):
        out, bursts = inject_attacks_with_plan(
            benign, ["masquerade"], np.random.default_rng(seed), layouts=vehicle.ids
        )
        s = specs[bursts[0].target_ids[0]]
        pay = _payload(out.filter(pl.col("can_id") == s.can_id))
        if s.checksum is not None:
            assert (payload_checksum(s, pay) == pay[:, s.checksum[0]]).all(), seed
        assert (_counter_steps(s, pay) == 1).all(), seed
        before = _payload(benign.filter(pl.col("can_id") == s.can_id))
        changed = set(np.flatnonzero((pay != before).any(axis=0)).tolist())
        assert changed and not changed & {s.counter[0] if s.counter else -1}, seed


def test_injector_rejects_bad_input(benign: pl.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown attack"):
        inject_attacks(benign, ["teleport"], np.random.default_rng(0))
    attacked = inject_attacks(benign, ["dos"], np.random.default_rng(0))
    with pytest.raises(ValueError, match="benign frames"):
        inject_attacks(attacked, ["dos"], np.random.default_rng(0))


def test_injector_works_on_real_wrx_traffic(wrx_frames: list[pl.DataFrame]) -> None:
    real = wrx_frames[1]  # car-running-idle
    roles = {"rpm": (0x140, 2)}
    for kind in ATTACKS:
        out = inject_attacks(real, [kind], np.random.default_rng(1), roles=roles)
        attack = out.filter(pl.col("label") == 1)
        assert attack.height > 0 and (attack["attack_type"] == kind).all(), kind
        if kind in ("dos", "fuzzy", "gear", "rpm", "replay"):
            assert _key(out.filter(pl.col("label") == 0)).equals(_key(real)), kind
    rpm = inject_attacks(real, ["rpm"], np.random.default_rng(1), roles=roles).filter(pl.col("label") == 1)
    assert rpm["can_id"].unique().to_list() == [0x140]


# ---------------------------------------------------------------- calibration


def test_traffic_stats_on_a_known_table() -> None:
    n = 200
    rows = {
        "timestamp": np.concatenate([np.arange(n) * 0.01, np.arange(n // 2) * 0.02 + 0.005]),
        "can_id": [1] * n + [2] * (n // 2),
        "extended": False,
        "dlc": 8,
        **{c: 0 for c in BYTE_COLUMNS[1:]},
        "b0": np.concatenate([np.arange(n) % 16, np.zeros(n // 2, int)]),  # ID 1 counts, ID 2 constant
        "label": 0,
        "attack_type": BENIGN,
        "source": "x",
    }
    stats = traffic_stats(conform(pl.DataFrame(rows)))
    assert stats["n_ids"] == 2 and stats["frames"] == 300
    assert stats["frames_per_s"] == pytest.approx(300 / 1.99, rel=1e-3)
    assert stats["change_rate"]["per_id"] == {1: 1.0, 2: 0.0}
    assert stats["change_rate"]["static"] == 0.5 and stats["change_rate"]["always"] == 0.5
    assert stats["period_ms"]["q10"] == pytest.approx(11.0) and stats["period_ms"]["q90"] == pytest.approx(
        19.0
    )
    assert all(v["ok"] for v in compare_stats(stats, stats).values())


def _synthetic_stats() -> list[dict[str, Any]]:
    return [
        traffic_stats(simulate_vehicle(make_vehicle(v, seed), 30.0, stream(seed, STREAM_CAPTURE, 1000 + v)))
        for seed in (0, 1, 2)
        for v in range(4)
    ]


def test_synthetic_vehicles_match_the_wrx_reference_figures() -> None:
    for stats in _synthetic_stats():
        report = compare_stats(stats, WRX_REFERENCE)
        assert all(r["ok"] for r in report.values()), report


def test_wrx_reference_figures_match_the_real_logs(wrx_frames: list[pl.DataFrame]) -> None:
    stats = [traffic_stats(f) for f in wrx_frames]
    pooled = pool_stats(stats)
    for name, value in WRX_REFERENCE.items():
        assert pooled[name] == pytest.approx(value, rel=0.02, abs=0.005), name
    periods = sorted(round(p / 10) * 10 if p < 100 else round(p / 100) * 100 for p in _nominal(wrx_frames[1]))
    assert periods == sorted(round(p / 10) * 10 if p < 100 else round(p / 100) * 100 for p in WRX_PERIODS_MS)


def _nominal(frames: pl.DataFrame) -> list[float]:
    per = frames.sort("timestamp").group_by("can_id").agg(pl.col("timestamp").diff().median() * 1000)
    return per["timestamp"].to_list()


def test_synthetic_traffic_matches_real_wrx_logs(wrx_frames: list[pl.DataFrame]) -> None:
    real = pool_stats([traffic_stats(f) for f in wrx_frames])
    synth = _synthetic_stats()
    for stats in synth:
        report = compare_stats(stats, real)
        assert all(r["ok"] for r in report.values()), report
    pooled = pool_stats(synth)
    print("\nmetric                 real      synthetic (median of 12 vehicle captures)")
    for name in real:
        print(f"{name:20s} {real[name]:9.3f} {pooled[name]:9.3f}")
    assert flatten(synth[0])["n_ids"] >= 27
