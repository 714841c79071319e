"""Splits without leakage: time blocks with an embargo, whole-file splits (deterministic, stratified), one
split per test scenario, a held-out test block when there is none, and cross-split duplicate removal."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from support.tiny_project import study_params

from kdgat.config import SplitParams, WindowParams
from kdgat.data.frames import conform
from kdgat.data.graphs import build_graphs
from kdgat.data.shards import load_split
from kdgat.data.splits import (
    NOT_STORED,
    SplitError,
    SplitPlan,
    assign_splits,
    check_splits,
    drop_duplicates,
    embargo,
    split_warnings,
)

STUDY = study_params()  # the repository's params.yaml

REPO = Path(__file__).resolve().parents[1]
TRAIN, VAL, TEST = 0, 1, 2


def runs(code: np.ndarray) -> list[tuple[int, int]]:
    """(code, length) of each run of equal codes."""
    edges = np.flatnonzero(np.diff(code)) + 1
    return [(int(c[0]), len(c)) for c in np.split(code, edges)]


def test_time_block_with_test_captures() -> None:
    plan = assign_splits(
        ["train", "known"],
        [20, 7],
        [False, True],
        WindowParams(size=4, stride=2, absent_ids=False, byte_ranges=False, range_margin=0.0),
        STUDY.split.model_copy(update={"val_fraction": 0.2}),
    )
    assert plan.names == ["train", "val", "test_known"] and not plan.heldout_test
    assert runs(plan.code) == [(TRAIN, 14), (NOT_STORED, 2), (VAL, 4), (TEST, 7)]
    assert plan.embargo_windows == 2 and plan.embargo_dropped == 2


def test_held_out_test_block_when_there_is_no_test_capture() -> None:
    plan = assign_splits(
        ["train"],
        [20],
        [False],
        WindowParams(size=4, stride=2, absent_ids=False, byte_ranges=False, range_margin=0.0),
        STUDY.split.model_copy(update={"val_fraction": 0.2}),
    )
    assert plan.heldout_test and plan.names == ["train", "val", "test_known"]
    # [train | gap | val | gap | test]: the test block is cut first, val from what is left.
    assert runs(plan.code) == [(TRAIN, 9), (NOT_STORED, 2), (VAL, 3), (NOT_STORED, 2), (TEST, 4)]


@pytest.mark.parametrize(("size", "stride"), [(100, 100), (100, 50), (100, 30), (10, 1), (7, 3)])
def test_embargo_keeps_blocks_frame_disjoint(size: int, stride: int) -> None:
    windows = WindowParams(size=size, stride=stride, absent_ids=False, byte_ranges=False, range_margin=0.0)
    plan = assign_splits(
        ["train"], [200], [False], windows, STUDY.split.model_copy(update={"val_fraction": 0.25})
    )
    first_row = np.arange(200) * stride
    for a, b in [(TRAIN, VAL), (VAL, TEST), (TRAIN, TEST)]:
        last_end = first_row[plan.code == a].max() + size  # one past the last frame of block a
        assert last_end <= first_row[plan.code == b].min()
    assert plan.embargo_windows == embargo(windows) == -(-size // stride)


def test_scenarios_get_their_own_splits_in_a_fixed_order() -> None:
    roles = ["unknown_both", "train", "known", "unknown_vehicle", "train"]
    plan = assign_splits(
        roles,
        [5, 30, 5, 5, 30],
        [True, False, True, True, True],
        WindowParams(size=10, stride=10, absent_ids=False, byte_ranges=False, range_margin=0.0),
        STUDY.split,
    )
    assert plan.names == ["train", "val", "test_known", "test_unknown_vehicle", "test_unknown_both"]
    assert set(plan.code[:5]) == {4} and set(plan.code[35:40]) == {2} and set(plan.code[40:45]) == {3}


def test_file_split_is_deterministic_stratified_and_whole_file() -> None:
    n_files = 10  # training captures, plus one test capture so that no test block is held out
    has_attack = np.array([False] * 6 + [True] * 4 + [True])
    roles, counts = ["train"] * n_files + ["known"], [5 + i for i in range(n_files)] + [3]
    offsets = np.concatenate([[0], np.cumsum(counts)])

    def val_files(seed: int) -> frozenset[int]:
        plan = assign_splits(
            roles,
            counts,
            has_attack,
            WindowParams(size=10, stride=10, absent_ids=False, byte_ranges=False, range_margin=0.0),
            SplitParams(by="file", val_fraction=0.3, seed=seed),
        )
        per_file = [set(plan.code[offsets[f] : offsets[f + 1]].tolist()) for f in range(n_files)]
        assert all(len(s) == 1 for s in per_file)  # whole captures, no embargo needed
        picked = frozenset(f for f, s in enumerate(per_file) if s == {VAL})
        assert picked & set(range(6)) and picked & set(range(6, 10))  # both kinds reach val
        assert len(picked) == 2 + 1 and not plan.notes  # round(0.3·6) benign + round(0.3·4) attack
        return picked

    assert val_files(0) == val_files(0)
    assert len({val_files(seed) for seed in range(8)}) > 1


def test_file_split_with_a_single_capture_of_a_kind_says_so() -> None:
    plan = assign_splits(
        ["train"] * 3 + ["known"],
        [10, 10, 10, 4],
        [False, False, True, True],
        WindowParams(size=10, stride=10, absent_ids=False, byte_ranges=False, range_margin=0.0),
        SplitParams(by="file", val_fraction=0.5, seed=0),
    )
    assert set(plan.code[20:30].tolist()) == {TRAIN} and {0, 1} <= set(plan.code[:20].tolist())
    assert plan.notes == ["only one attack training capture: it stays in train, so val has no attack capture"]


def test_drop_duplicates_counts_and_marks() -> None:
    def h(*values: int) -> list[list[int]]:
        return [[v, v * 7] for v in values]

    hashes = np.array(h(1, 2, 3) + h(2, 4) + h(4, 5, 3, 9) + h(9, 1), dtype=np.uint64)
    code = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3], dtype=np.int8)
    plan = SplitPlan(["train", "val", "test_known", "test_unknown_vehicle"], code, False, 1)
    dropped = drop_duplicates(hashes, plan)
    # val drops its copy of a train window; tests drop copies of train or val windows, not of each other.
    assert dropped == {"val": 1, "test_known": 2, "test_unknown_vehicle": 1}
    assert plan.code.tolist() == [0, 0, 0, -1, 1, -1, 2, -1, 2, 3, -1]


# --- end to end: no window content appears in two splits ------------------------------------------


def periodic(source: str, cycles: int, t0: float) -> pl.DataFrame:
    """A bus replaying the same 4-frame cycle at an exact 1 ms period: every 8-frame window is alike."""
    n = 4 * cycles
    ids = np.tile([0x100, 0x200, 0x300, 0x400], cycles)
    return conform(
        pl.DataFrame(
            {
                "timestamp": t0 + np.arange(n) * 1e-3,
                "can_id": ids,
                "extended": np.zeros(n, bool),
                "dlc": np.full(n, 8),
                **{f"b{i}": (ids >> 4) % 256 + i for i in range(8)},
                "label": np.zeros(n, np.uint8),
                "attack_type": ["none"] * n,
                "source": [source] * n,
            }
        )
    )


def noisy(source: str, n: int, seed: int) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    label = (rng.random(n) < 0.05).astype(np.uint8)
    return conform(
        pl.DataFrame(
            {
                "timestamp": np.cumsum(rng.uniform(1e-4, 2e-3, n)),
                "can_id": rng.choice([0x100, 0x200, 0x7E0], n),
                "extended": np.zeros(n, bool),
                "dlc": np.full(n, 8),
                **{f"b{i}": rng.integers(0, 256, n) for i in range(8)},
                "label": label,
                "attack_type": np.where(label == 1, "fuzzy", "none"),
                "source": [source] * n,
            }
        )
    )


def window_content(w: pl.DataFrame) -> str:
    """An independent key of a window's content: IDs, DLCs, payloads and µs-rounded gaps."""
    gaps = np.rint(np.diff(w["timestamp"].to_numpy()) * 1e6).astype(np.int64)
    parts = [w.select("can_id", "dlc", *[f"b{i}" for i in range(8)]).to_numpy().tobytes(), gaps.tobytes()]
    return hashlib.sha256(b"|".join(parts)).hexdigest()


def test_no_window_content_in_two_splits(tmp_path: Path) -> None:
    frames = pl.concat(
        [
            periodic("train_01_attack_free/replay.log", 200, t0=0.0),
            noisy("train_02_with_attacks/drive.log", 800, seed=1),
            periodic("test_01_known_vehicle_known_attack/replay.log", 50, t0=5000.0),  # the same bus, later
            noisy("test_01_known_vehicle_known_attack/drive.log", 400, seed=2),
        ]
    )
    by_source = frames.partition_by("source", as_dict=True)
    meta = build_graphs(
        frames,
        WindowParams(size=8, stride=4, absent_ids=False, byte_ranges=False, range_margin=0.0),
        STUDY.split,
        STUDY.vocab,
        tmp_path / "g",
        progress=False,
    )
    assert meta["duplicates_dropped"]["val"] > 0 and meta["duplicates_dropped"]["test_known"] >= 24
    content: dict[str, set[str]] = {}
    for split in meta["counts"]:
        s = load_split(tmp_path / "g", split)
        keys = set()
        for f, start in zip(s.file_idx.tolist(), s.start_row.tolist(), strict=True):
            keys.add(window_content(by_source[(meta["files"][f]["source"],)].slice(start, 8)))
        content[split] = keys
    assert not content["train"] & content["val"]
    assert not content["train"] & content["test_known"]
    assert not content["val"] & content["test_known"]
    assert len(content["test_known"]) > 50  # the genuinely new test windows survive


# --- issue 16, item 5: splits that cannot work fail in the graphs stage, with what to change ----------


def test_segment_split_keeps_the_class_balance() -> None:
    """A capture attacked near its end: the tail cut moves most attack windows to val; cutting every
    benign and attack run keeps about val_fraction of each class in val, with an embargo after each
    val block."""
    attack = np.zeros(100, bool)
    attack[40:45] = attack[70:] = True
    windows, tail = (
        WindowParams(size=4, stride=2, absent_ids=False, byte_ranges=False, range_margin=0.0),
        SplitParams(by="time_block", val_fraction=0.2, seed=0),
    )
    by_tail = assign_splits(["train"] * 1 + ["known"], [100, 10], [True, True], windows, tail)
    seg = assign_splits(
        ["train", "known"],
        [100, 10],
        [True, True],
        windows,
        SplitParams(by="segment", val_fraction=0.2, seed=0),
        window_attack=np.r_[attack, np.ones(10, bool)],
    )
    in_train = lambda plan: int(((plan.code[:100] == TRAIN) & attack).sum())  # noqa: E731
    in_val = lambda plan: int(((plan.code[:100] == VAL) & attack).sum())  # noqa: E731
    assert (in_train(by_tail), in_val(by_tail)) == (13, 20)  # the last run is mostly in the tail
    assert (in_train(seg), in_val(seg)) == (23, 6)  # about val_fraction of each run, less the gaps
    code = seg.code[:100]
    for i in np.flatnonzero((code[:-1] == VAL) & (code[1:] != VAL)):  # after every val block: the gap
        assert (code[i + 1 : i + 1 + seg.embargo_windows] == NOT_STORED).all()


def _plan(val_attack: int, test_benign: int) -> tuple[SplitPlan, np.ndarray]:
    code = np.array([TRAIN] * 10 + [VAL] * 4 + [TEST] * 4, np.int8)
    attack = np.array([True] * 6 + [False] * 4 + [True] * val_attack + [False] * (4 - val_attack)
                      + [False] * test_benign + [True] * (4 - test_benign))  # fmt: skip
    return SplitPlan(["train", "val", "test_known"], code, False, 1), attack


def test_check_splits_names_every_unworkable_split_and_the_fix() -> None:
    plan, attack = _plan(val_attack=2, test_benign=2)
    tail = SplitParams(by="time_block", val_fraction=0.2, seed=0)
    assert check_splits(plan, attack, tail, batch_size=6) == {
        "train": {"benign": 4, "attack": 6},
        "val": {"benign": 2, "attack": 2},
        "test_known": {"benign": 2, "attack": 2},
    }
    plan, attack = _plan(val_attack=0, test_benign=0)
    with pytest.raises(SplitError) as err:
        check_splits(plan, attack, tail, batch_size=64)
    msg = str(err.value)
    assert "train has 6 attack windows, fewer than a batch (64)" in msg and "train.batch_size" in msg
    assert "val has no attack window (4 benign, 0 attack)" in msg and "split.by (now time_block" in msg
    assert "test_known has no benign window" in msg and "to its folder" in msg
    assert "\n" not in msg


def test_graphs_command_refuses_an_unworkable_split(tmp_path: Path) -> None:
    """End to end: one training capture attacked only early, a tail validation block without attacks;
    `kdgat graphs` says so in one line and writes nothing; split.by segment fixes it."""
    from support.can_logs import kdgat

    n = 3000
    label = np.zeros(n, np.uint8)
    label[200:1400] = 1
    frames = _frames(n, label, "train_02_with_attacks/a.csv") + _frames(800, None, "test_01_x/b.csv", 1)
    pl.concat(frames).write_parquet(tmp_path / "f.parquet")
    params = tmp_path / "params.yaml"
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["windows"] = {"size": 50, "stride": 50, "absent_ids": False, "byte_ranges": False}
    raw["windows"]["range_margin"] = 0.0
    raw["train"]["batch_size"] = 4
    params.write_text(yaml.safe_dump(raw))
    r = kdgat("graphs", tmp_path / "f.parquet", "-o", tmp_path / "g", "--params", params)
    assert r.returncode == 2 and "val has no attack window" in r.stderr and "Traceback" not in r.stderr
    assert not (tmp_path / "g").exists()
    raw["split"]["by"] = "segment"
    params.write_text(yaml.safe_dump(raw))
    r = kdgat("graphs", tmp_path / "f.parquet", "-o", tmp_path / "g", "--params", params)
    assert r.returncode == 2 and "test_known has no attack window" in r.stderr  # the test capture is benign


def _frames(n: int, label: np.ndarray | None, source: str, seed: int = 0) -> list[pl.DataFrame]:
    rng = np.random.default_rng(seed)
    label = np.zeros(n, np.uint8) if label is None else label
    df = pl.DataFrame(
        {
            "timestamp": np.arange(n) * 1e-3,
            "can_id": rng.integers(0x100, 0x110, n).astype(np.uint32),
            "extended": np.zeros(n, bool),
            "dlc": np.full(n, 8, np.uint8),
            **{f"b{i}": rng.integers(0, 256, n).astype(np.uint8) for i in range(8)},
            "label": label,
            "attack_type": np.where(label == 1, "dos", "none"),
            "source": source,
        }
    )
    return [conform(df)]


def test_few_attack_batches_warn() -> None:
    """Issue 16, item 6: a training split of a few attack batches trains on a few steps per epoch."""
    counts = {"train": {"benign": 900, "attack": 36}, "val": {"benign": 100, "attack": 8}}
    (warning,) = split_warnings(counts, batch_size=64)
    assert (
        "train has 36 attack windows, under 10 batches of 64" in warning
        and "lower train.batch_size" in warning
    )
    assert split_warnings({"train": {"benign": 9, "attack": 640}}, batch_size=64) == []


# --- issue 10: the unknown vehicle's calibration capture ------------------------------------------------


def test_calibration_captures_form_their_own_split_after_the_scenarios() -> None:
    plan = assign_splits(
        ["calibration", "train", "unknown_vehicle"],
        [6, 30, 5],
        [False, True, True],
        WindowParams(size=10, stride=10, absent_ids=False, byte_ranges=False, range_margin=0.0),
        STUDY.split,
    )
    assert plan.names == ["train", "val", "test_unknown_vehicle", "calibration"] and not plan.heldout_test
    assert set(plan.code[:6]) == {3} and 3 not in set(plan.code[6:])


def test_calibration_keeps_its_first_seconds_and_refuses_attacks(tmp_path: Path) -> None:
    calibration = noisy("calibration_car_b/idle.log", 800, seed=4).with_columns(
        label=pl.lit(0, pl.UInt8), attack_type=pl.lit("none")
    )
    frames = pl.concat(
        [noisy("train_02_with_attacks/drive.log", 1600, seed=1), noisy("test_02_x/drive.log", 400, seed=2)]
    )
    ts = calibration["timestamp"].to_numpy()
    params = STUDY.calibration.model_copy(update={"seconds": float(ts[399] - ts[0])})
    meta = build_graphs(
        pl.concat([frames, calibration]),
        WindowParams(size=8, stride=8, absent_ids=False, byte_ranges=False, range_margin=0.0),
        STUDY.split,
        STUDY.vocab,
        tmp_path / "g",
        progress=False,
        calibration=params,
    )
    kept = load_split(tmp_path / "g", "calibration")
    assert meta["counts"]["calibration"]["attack"] == 0
    # align_ids: the unseen vehicle's test windows again, through its ID alignment
    assert meta["alignment"]["unseen_vehicle"]["reference"] == "train_02_with_attacks/drive.log"
    plain, aligned = (
        load_split(tmp_path / "g", s) for s in ("test_unknown_vehicle", "test_unknown_vehicle_calibrated")
    )
    assert np.array_equal(plain.start_row, aligned.start_row) and np.array_equal(plain.x, aligned.x)
    assert meta["counts"]["test_unknown_vehicle_calibrated"] == meta["counts"]["test_unknown_vehicle"]
    assert (
        len(kept.start_row) == 50 and kept.start_row.max() == 392
    )  # windows starting in the first 400 frames
    off = build_graphs(
        pl.concat([frames, calibration]),
        WindowParams(size=8, stride=8, absent_ids=False, byte_ranges=False, range_margin=0.0),
        STUDY.split,
        STUDY.vocab,
        tmp_path / "off",
        progress=False,
        calibration=params.model_copy(update={"align_ids": False}),
    )
    assert (
        "test_unknown_vehicle_calibrated" not in off["counts"] and off["alignment"]["unseen_vehicle"] is None
    )
    attacked = pl.concat([frames, noisy("calibration_car_b/idle.log", 800, seed=4)])
    with pytest.raises(SplitError, match=r"calibration has \d+ windows with attack frames"):
        build_graphs(
            attacked,
            WindowParams(size=8, stride=8, absent_ids=False, byte_ranges=False, range_margin=0.0),
            STUDY.split,
            STUDY.vocab,
            tmp_path / "h",
            batch_size=4,
        )
