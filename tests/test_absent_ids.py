"""windows.absent_ids: the expected IDs a window lacks (kdgat/data/features.absence_features), by hand and
through the graphs stage on periodic traffic with one ID suspended."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch
from support.tiny_project import study_params

from kdgat.config import VGAEScale, WindowParams
from kdgat.data.features import ABSENCE_FEATURES, NODE_FEATURES, absence_features, expected_periods
from kdgat.data.frames import conform
from kdgat.data.graphs import build_graphs, expected_of_meta
from kdgat.data.shards import load_meta, load_split
from kdgat.models.vgae import build_vgae

STUDY = study_params()


def test_expected_periods_by_hand() -> None:
    e = expected_periods(
        [(np.array([1, 3, 0, 3]), np.array([0.01, 0.5, 0.001, 0.2])), (np.array([2]), np.array([0.02]))], 5
    )
    assert e.shape == (2, 5)
    # the unknown slot is never expected; two IDs on slot 3 keep the shorter period
    np.testing.assert_array_equal(e[0], [np.inf, 0.01, np.inf, 0.2, np.inf])
    np.testing.assert_array_equal(e[1], [np.inf, np.inf, 0.02, np.inf, np.inf])
    assert expected_periods([], 3).shape == (0, 3)


def test_absence_features_by_hand() -> None:
    expected = expected_periods(
        [(np.array([1, 2, 3]), np.array([0.01, 0.02, 1.0])), (np.array([4, 5]), np.array([0.01, 0.01]))], 6
    )
    n_nodes = np.array([2, 3, 1])
    node_vocab = np.array([1, 3, 0, 4, 5, 1])  # window 1 holds an unknown ID
    count = np.array([10, 1, 3, 5, 2, 1])
    duration = np.array([0.1, 0.05, 0.001])
    out = absence_features(n_nodes, node_vocab, count, duration, expected)
    assert out.shape == (6, len(ABSENCE_FEATURES))
    # window 0, the first vehicle's: slot 2 (5 frames due) is absent, slot 3 (0.1 due) is not expected
    np.testing.assert_allclose(out[:2, 0], 1)
    np.testing.assert_allclose(out[:2, 1], 5)
    np.testing.assert_allclose(out[:2, 2], [0, 0], atol=1e-6)  # 10 frames of 10 due; slot 3 not expected
    # window 1, the second vehicle's (fewest IDs outside the profile): nothing absent; slot 5 sent 2 of 5
    np.testing.assert_allclose(out[2:5, :2], 0)
    np.testing.assert_allclose(out[2:5, 2], [0, 0, np.log2(2 / 5)], atol=1e-6)
    # window 2 lasts too short for any ID to be expected
    np.testing.assert_allclose(out[5], 0)
    # far too many frames (a flood on a known slot) is clipped
    flood = absence_features(np.array([1]), np.array([4]), np.array([99]), np.array([0.02]), expected)
    assert flood[0, 2] == pytest.approx(3.0)


def test_profile_choice_prefers_fewest_absent_among_equal_fits() -> None:
    # slot 1 is in both profiles; the second also expects slot 2: a window of slot 1 alone is the first's
    one, two = (np.array([1]), np.array([0.01])), (np.array([1, 2]), np.array([0.01, 0.01]))
    expected = expected_periods([one, two], 3)
    out = absence_features(np.array([1]), np.array([1]), np.array([10]), np.array([0.1]), expected)
    np.testing.assert_allclose(out[0], [0, 0, 0], atol=1e-6)


PERIODS = {0x100: 0.010, 0x200: 0.020, 0x300: 0.080, 0x400: 0.500}  # 0x100, 0x200 expected in 0.1 s windows


def periodic(seconds: float, source: str, suspend: tuple[float, float] | None = None) -> pl.DataFrame:
    """Each ID every period (phase-shifted); with ``suspend``, 0x100 is silent then and every frame of that
    interval is labelled a suspension attack (as kdgat/data/synth_attacks.py labels it)."""
    rows = []
    for k, (key, period) in enumerate(PERIODS.items()):
        for t in np.arange(0.001 * k, seconds, period):
            rows.append((float(t), key))
    rows.sort()
    ts = np.array([r[0] for r in rows])
    can_id = np.array([r[1] for r in rows])
    label = np.zeros(len(rows), dtype=np.uint8)
    if suspend is not None:
        inside = (ts >= suspend[0]) & (ts < suspend[1])
        keep = ~(inside & (can_id == 0x100))
        ts, can_id, label = ts[keep], can_id[keep], inside[keep].astype(np.uint8)
    n = len(ts)
    return conform(
        pl.DataFrame(
            {
                "timestamp": 1.6e9 + ts,
                "can_id": can_id,
                "extended": np.zeros(n, bool),
                "dlc": np.full(n, 8),
                **{f"b{i}": np.zeros(n, np.uint8) for i in range(8)},
                "label": label,
                "attack_type": np.where(label == 1, "suspension", "none"),
                "source": [source] * n,
            }
        )
    )


def build(tmp_path: Path, absent_ids: bool) -> Path:
    frames = pl.concat(
        [
            periodic(30.0, "train_01_attack_free/car.log"),
            periodic(30.0, "train_02_with_attacks/suspension-1.csv", suspend=(10.0, 14.0)),
            periodic(20.0, "test_01_known_vehicle_known_attack/suspension-1.csv", suspend=(5.0, 9.0)),
        ]
    )
    out = tmp_path / ("on" if absent_ids else "off")
    build_graphs(
        frames,
        WindowParams(size=20, stride=20, absent_ids=absent_ids, byte_ranges=False, range_margin=0.0),
        STUDY.split,
        STUDY.vocab,
        out,
        progress=False,
    )
    return out


def test_graphs_stage_marks_the_suspended_windows_only(tmp_path: Path) -> None:
    root = build(tmp_path, absent_ids=True)
    meta = load_meta(root)
    assert meta["node_features"] == NODE_FEATURES + ABSENCE_FEATURES
    (known,) = meta["expected_ids"]["known"]  # one vehicle: one distinct ID set among the training captures
    slots = dict(zip(known["slots"], known["periods"], strict=True))
    vocab = meta["vocab"]["ids"]
    assert {vocab[s - 1]: p for s, p in slots.items()} == pytest.approx(
        {f"{k:03X}": p for k, p in PERIODS.items()}
    )
    assert meta["expected_ids"]["unseen_vehicle"] is None
    assert expected_of_meta(meta["expected_ids"]["known"], meta["vocab_size"]).shape == (
        1,
        meta["vocab_size"],
    )
    # benign windows never lack an expected ID: the scaler leaves the two counts in their own units
    col = len(NODE_FEATURES)
    assert meta["scalers"]["node"]["mean"][col : col + 2] == [0.0, 0.0]
    assert meta["scalers"]["node"]["std"][col : col + 2] == [1.0, 1.0]
    for split in meta["counts"]:
        s = load_split(root, split)
        first = np.asarray(s.node_ptr[:-1])
        absent = np.asarray(s.x)[first, col]
        y = np.asarray(s.y)
        assert (absent[y == 0] == 0).all(), split
        if (y == 1).any():  # a 20-frame window lasts about 0.12 s: 0x100 owes it some 12 frames
            inside = absent[y == 1][1:-1]  # the first and last may hold 0x100 before or after its silence
            assert len(inside) > 5 and (inside == 1).all(), split


def test_off_keeps_the_graphs_as_they_were(tmp_path: Path) -> None:
    on, off = build(tmp_path, absent_ids=True), build(tmp_path, absent_ids=False)
    meta = load_meta(off)
    assert meta["node_features"] == NODE_FEATURES and meta["expected_ids"] is None
    for split in meta["counts"]:
        a, b = load_split(on, split), load_split(off, split)
        assert np.asarray(b.x).shape[1] == len(NODE_FEATURES)
        np.testing.assert_array_equal(np.asarray(a.x)[:, : len(NODE_FEATURES)], np.asarray(b.x))
        np.testing.assert_array_equal(np.asarray(a.edge_attr), np.asarray(b.edge_attr))


def test_a_vgae_without_absent_ids_reads_none_of_them() -> None:
    meta: dict[str, Any] = {
        "vocab_size": 5,
        "node_features": NODE_FEATURES + ABSENCE_FEATURES,
        "absence_features": ABSENCE_FEATURES,
        "edge_features": ["count", "dt_mean", "dt_std"],
    }
    sizes = {"embed_dim": 4, "hidden": 4, "heads": 1, "layers": 1, "latent": 3, "dropout": 0.0}
    off = build_vgae(VGAEScale(**sizes, absent_ids=False), meta, seed=0).eval()
    on = build_vgae(VGAEScale(**sizes, absent_ids=True), meta, seed=0).eval()
    assert (off.n_inputs, on.n_inputs) == (len(NODE_FEATURES), len(NODE_FEATURES) + len(ABSENCE_FEATURES))
    x = torch.randn(3, len(meta["node_features"]))
    vocab, edges, attr = torch.tensor([1, 2, 0]), torch.tensor([[0, 1, 2], [1, 2, 0]]), torch.randn(3, 3)
    other = x.clone()
    other[:, len(NODE_FEATURES) :] += 5.0  # only the absence features differ
    a, b = off(x, vocab, edges, attr), off(other, vocab, edges, attr)
    assert a.x_hat.shape == (3, len(NODE_FEATURES))
    torch.testing.assert_close(a.mu, b.mu)
    assert not torch.allclose(on(x, vocab, edges, attr).mu, on(other, vocab, edges, attr).mu)
