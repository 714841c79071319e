"""windows.byte_ranges: how far a node's bytes lie outside its ID's levels in reference traffic
(kdgat/data/ranges.py, features.range_features), by hand and through the graphs stage, whose training
captures read their vehicle's other captures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.tiny_project import study_params

from kdgat.config import WindowParams
from kdgat.data.features import ABSENCE_FEATURES, NODE_FEATURES, RANGE_FEATURES, RANGE_FLOOR, range_features
from kdgat.data.frames import conform
from kdgat.data.graphs import build_graphs, expected_of_meta
from kdgat.data.ranges import capture_ranges, no_ranges, recordings, vehicle_ranges
from kdgat.data.shards import load_meta, load_split
from kdgat.data.vocab import Vocabulary, id_keys
from kdgat.edge.stream import Chunk, window_graphs

pytestmark = pytest.mark.unit
STUDY = study_params()


def test_capture_and_vehicle_ranges_by_hand() -> None:
    pay = np.zeros((4, 8), dtype=np.uint8)
    pay[:, 0] = [10, 30, 200, 7]
    a = capture_ranges(np.array([5, 5, 6, 9]), pay, np.array([1, 1, 2, 0]), 4)  # key 9: unknown slot
    assert a.shape == (4, 2, 8)
    assert (a[1, 0, 0], a[1, 1, 0]) == (10, 30) and (a[2, 0, 0], a[2, 1, 0]) == (200, 200)
    assert a[0, 0, 0] > a[0, 1, 0] and a[3, 0, 0] > a[3, 1, 0]  # no frame: empty until a union fills it
    b = capture_ranges(np.array([5]), np.full((1, 8), 50, np.uint8), np.array([1]), 4)
    both = vehicle_ranges({0: a, 1: b}, {0: 0, 1: 0}, 1, 4)
    assert (both[0, 1, 0, 0], both[0, 1, 1, 0]) == (10, 50)
    np.testing.assert_array_equal(both[0, 3], no_ranges(1, 4)[0, 3])  # a slot no capture holds: 0..255
    loco = vehicle_ranges({0: a, 1: b}, {0: 0, 1: 0}, 1, 4, leave_out=1)
    np.testing.assert_array_equal(loco[0, 1, :, 0], [10, 30])
    np.testing.assert_array_equal(loco[0, 2], both[0, 2])


def test_range_margin_widens_each_side_by_the_farthest_leave_one_out_excess() -> None:
    def one(low: int, high: int, slot2: bool = False) -> np.ndarray:
        pay = np.zeros((2, 8), dtype=np.uint8)
        pay[:, 0] = [low, high]
        slots = np.array([1, 2 if slot2 else 1])
        return capture_ranges(np.array([5, 6]), pay, slots, 3)

    caps = {0: one(10, 20), 1: one(12, 26), 2: one(4, 22, slot2=True)}
    # slot 1 byte 0: capture 1 rises 26 - 20 = 6 above the others, capture 2 sinks 10 - 4 = 6 below; byte 1
    # (always 0) never leaves them; slot 2 is held by capture 2 alone
    out = vehicle_ranges(caps, dict.fromkeys(caps, 0), 1, 3, margin=2.0)
    np.testing.assert_array_equal(out[0, 1, :, 0], [4 - 12, 26 + 12])
    np.testing.assert_array_equal(out[0, 1, :, 1], [0, 0])
    np.testing.assert_array_equal(out[0, 2], no_ranges(1, 3)[0, 2])  # one capture: no drift known, no bound
    plain = vehicle_ranges(caps, dict.fromkeys(caps, 0), 1, 3)
    np.testing.assert_array_equal(plain[0, 1, :, 0], [4, 26])  # margin 0: the union, as before
    np.testing.assert_array_equal(plain[0, 2, :, 0], [22, 22])
    # leave capture 2 out: capture 0 sinks 12 - 10 = 2 below capture 1, which rises 6 above it
    loco = vehicle_ranges(caps, dict.fromkeys(caps, 0), 1, 3, leave_out=2, margin=1.0)
    np.testing.assert_array_equal(loco[0, 1, :, 0], [10 - 2, 26 + 6])


def test_recordings_join_captures_whose_times_overlap() -> None:
    # 0 and its attacked copy 2 share their times; 3 starts inside 2's; 1 is another drive; 4 the same
    # times as 0 on another vehicle
    span = {0: (0.0, 10.0), 1: (20.0, 30.0), 2: (0.0, 10.0), 3: (9.0, 15.0), 4: (0.0, 10.0)}
    assert recordings(span, {0: 0, 1: 0, 2: 0, 3: 0, 4: 1}) == {0: 0, 2: 0, 3: 0, 1: 1, 4: 4}


def test_range_features_by_hand() -> None:
    ranges = no_ranges(2, 3)
    ranges[0, 1, :, 0] = [20, 40]  # profile 0, slot 1, byte 0
    ranges[1, 1, :, 2] = [0, 10]  # profile 1, slot 1, byte 2
    means = np.full((3, 8), 30.0, np.float32)
    means[1, 0], means[2, 2] = 45.0, 13.5
    out = range_features(np.array([2, 1]), np.array([1, 1, 1]), means, ranges, np.array([0, 1]))
    assert out.shape == (3, len(RANGE_FEATURES))
    # in widths of the range + RANGE_FLOOR: 5 beyond [20, 40]; window 1 (profile 1): byte 2 at 13.5 vs ≤ 10
    w0, w1 = 5.0 / (20 + RANGE_FLOOR), 3.5 / (10 + RANGE_FLOOR)
    np.testing.assert_allclose(out[:, 0], [0.0, w0, w1], rtol=1e-6)
    np.testing.assert_allclose(out[:, 1], [w0, w0, w1], rtol=1e-6)  # the window's largest, on each node


def test_byte_ranges_need_the_vehicle_profiles() -> None:
    with pytest.raises(ValueError, match="byte_ranges needs absent_ids"):
        WindowParams(size=10, stride=10, absent_ids=False, byte_ranges=True, range_margin=0.0)


def capture(
    source: str, level: int, forged: tuple[float, float] | None = None, value: int = 250, hour: int = 0
) -> pl.DataFrame:
    """6 s of 0x100 every 10 ms with byte 0 at ``level`` (this drive's), 0x200 every 20 ms, recorded in
    its own ``hour``; with ``forged``, 0x100's byte 0 is ``value`` then and those frames are labelled
    masquerade."""
    rows = sorted(
        [(t, 0x100) for t in np.arange(0.0, 6.0, 0.01)] + [(t, 0x200) for t in np.arange(0.005, 6.0, 0.02)]
    )
    ts, can_id = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    b0 = np.where(can_id == 0x100, level, 3).astype(np.uint8)
    label = np.zeros(len(ts), np.uint8)
    if forged is not None:
        hit = (can_id == 0x100) & (ts >= forged[0]) & (ts < forged[1])
        b0[hit], label[hit] = value, 1
    n = len(ts)
    return conform(
        pl.DataFrame(
            {
                "timestamp": 1.6e9 + 3600 * hour + ts,
                "can_id": can_id,
                "extended": np.zeros(n, bool),
                "dlc": np.full(n, 8),
                "b0": b0,
                **{f"b{i}": np.zeros(n, np.uint8) for i in range(1, 8)},
                "label": label,
                "attack_type": np.where(label == 1, "masquerade", "none"),
                "source": [source] * n,
            }
        )
    )


def test_graphs_stage_reads_other_captures_and_the_detector_the_same(tmp_path: Path) -> None:
    frames = pl.concat(
        [
            capture("train_01_attack_free/a.log", 10),
            capture("train_01_attack_free/b.log", 20, hour=1),
            capture("train_01_attack_free/c.log", 30, hour=2),
            capture("train_02_with_attacks/masquerade-1.csv", 15, forged=(2.0, 4.0), hour=3),
            # an attacked copy of drive a (its times): one recording with a, so a never reads its own level
            capture("train_02_with_attacks/masquerade-2.csv", 10, forged=(1.0, 2.0)),
            capture(
                "test_03_known_vehicle_unknown_attack/masquerade-1.csv",
                25,
                forged=(2.0, 4.0),
                value=240,
                hour=4,
            ),
        ]
    )
    out = tmp_path / "g"
    build_graphs(
        frames,
        WindowParams(size=15, stride=15, absent_ids=True, byte_ranges=True, range_margin=0.0),
        STUDY.split,
        STUDY.vocab,
        out,
        progress=False,
    )
    meta = load_meta(out)
    assert meta["node_features"] == NODE_FEATURES + RANGE_FEATURES + ABSENCE_FEATURES
    assert meta["range_features"] == RANGE_FEATURES
    col = len(NODE_FEATURES)
    scaler = meta["scalers"]["node"]
    k = scaler["features"].index("range_excess")
    slot = meta["vocab"]["ids"].index("100") + 1
    (known,) = np.asarray(meta["byte_ranges"])  # one vehicle: all its benign training frames
    np.testing.assert_array_equal(known[slot, :, 0], [10, 30])
    widened = tmp_path / "widened"
    windows = WindowParams(size=15, stride=15, absent_ids=True, byte_ranges=True, range_margin=1.0)
    build_graphs(frames, windows, STUDY.split, STUDY.vocab, widened, progress=False)
    # c (30) rises 10 above the others, a (10) sinks 5 below the masquerade capture's benign 15
    np.testing.assert_array_equal(np.asarray(load_meta(widened)["byte_ranges"])[0, slot, :, 0], [5, 40])

    def excess(split: str) -> tuple[np.ndarray, np.ndarray]:
        g = load_split(out, split)
        x = np.asarray(g.x)[:, col] * scaler["std"][k] + scaler["mean"][k]
        node = np.asarray(g.node_vocab) == slot
        return x[node], np.asarray(g.y)[np.repeat(np.arange(len(g.y)), np.diff(np.asarray(g.node_ptr)))][node]

    # capture a (level 10) reads b, c and the masquerade capture's benign frames (15..30): 5 below, in widths
    train_x, train_y = excess("train")
    benign = train_x[train_y == 0]
    assert np.isclose(benign, 5.0 / (15 + RANGE_FLOOR)).any() and np.isclose(benign, 0.0, atol=1e-6).any()
    test_x, test_y = excess("test_unknown_attack")
    np.testing.assert_allclose(test_x[test_y == 0], 0.0, atol=1e-4)  # 25 lies within 10..30
    assert test_x[test_y == 1].max() == pytest.approx(210.0 / (20 + RANGE_FLOOR), abs=1e-4)  # 240 vs 10..30

    # `kdgat detect` builds the test capture's graphs the same from the bundle's ranges
    test = capture(
        "test_03_known_vehicle_unknown_attack/masquerade-1.csv", 25, forged=(2.0, 4.0), value=240, hour=4
    )
    chunk = Chunk(
        test["timestamp"].to_numpy(),
        id_keys(test["can_id"].to_numpy(), test["extended"].to_numpy()),
        test["dlc"].to_numpy(),
        np.ascontiguousarray(test.select(f"b{i}" for i in range(8)).to_numpy()),
        test["label"].to_numpy(),
    )
    starts = np.arange(0, len(chunk) - 14, 15)
    vocab = Vocabulary.from_meta(meta["vocab"])
    expected = expected_of_meta(meta["expected_ids"]["known"], len(vocab))
    live = window_graphs(
        chunk, starts, 15, vocab, meta["scalers"], expected, np.asarray(meta["byte_ranges"], np.float32)
    )
    stage = load_split(out, "test_unknown_attack")
    np.testing.assert_allclose(live.x, np.asarray(stage.x)[: len(live.x)], atol=1e-5)
