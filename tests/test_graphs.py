"""Windows → graphs: exact features of a window built by hand, a loop-based reference on random traffic
(overlapping windows included), file boundaries, the vocabulary's unknown slot, scalers, shards, meta.json
and the atomic write."""

from __future__ import annotations

import hashlib
import itertools
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from support.tiny_project import study_params

from kdgat.config import WindowParams
from kdgat.data import graphs as graphs_module
from kdgat.data.frames import conform
from kdgat.data.graphs import EDGE_FEATURES, NODE_FEATURES, build_graphs
from kdgat.data.shards import ARRAYS, GraphSplit, load_meta, load_split
from kdgat.data.vocab import Vocabulary, build_vocab, format_id, id_cooccurrence, id_keys, parse_id

STUDY = study_params()  # the repository's params.yaml

TEST_KNOWN = "test_01_known_vehicle_known_attack"


def frames_of(rows: list[tuple], source: str) -> pl.DataFrame:
    """Rows (t, can_id, b0, label[, attack_type]) → a canonical table; b1..b7 = 0, dlc 8."""
    return conform(
        pl.DataFrame(
            {
                "timestamp": [r[0] for r in rows],
                "can_id": [r[1] for r in rows],
                "extended": [False] * len(rows),
                "dlc": [8] * len(rows),
                "b0": [r[2] for r in rows],
                **{f"b{i}": [0] * len(rows) for i in range(1, 8)},
                "label": [r[3] for r in rows],
                "attack_type": [r[4] if len(r) > 4 else ("dos" if r[3] else "none") for r in rows],
                "source": [source] * len(rows),
            }
        )
    )


def traffic(
    source: str,
    n: int,
    seed: int,
    ids: tuple[int, ...] = (0x100, 0x110, 0x2A0, 0x3F1, 0x7E0),
    attack_every: int = 0,
) -> pl.DataFrame:
    """Random traffic: IDs drawn with unequal weights, random payloads and DLCs, jittered times."""
    rng = np.random.default_rng(seed)
    weights = np.arange(1, len(ids) + 1, dtype=float)
    can_id = rng.choice(np.array(ids), n, p=weights / weights.sum())
    label = np.zeros(n, dtype=np.uint8)
    if attack_every:
        label[::attack_every] = 1
        can_id[::attack_every] = 0x000
    payload = rng.integers(0, 256, (n, 8))
    return conform(
        pl.DataFrame(
            {
                "timestamp": 1.6e9 + np.cumsum(rng.uniform(1e-4, 3e-3, n)),
                "can_id": can_id,
                "extended": np.zeros(n, bool),
                "dlc": rng.integers(0, 9, n),
                **{f"b{i}": payload[:, i] for i in range(8)},
                "label": label,
                "attack_type": np.where(label == 1, "dos", "none"),
                "source": [source] * n,
            }
        )
    )


def unscaled(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    meta = load_meta(root)
    s = load_split(root, split)
    node, edge = meta["scalers"]["node"], meta["scalers"]["edge"]
    x = np.asarray(s.x, dtype=np.float64) * node["std"] + node["mean"]
    return x, np.asarray(s.edge_attr, dtype=np.float64) * edge["std"] + edge["mean"]


def scaled(meta: dict, kind: str, raw: list) -> np.ndarray:
    scaler = meta["scalers"][kind]
    return (np.asarray(raw) - scaler["mean"]) / scaler["std"]


def build(frames: pl.DataFrame, out: Path, size: int = 6, stride: int | None = None, **split: object) -> dict:
    return build_graphs(
        frames,
        WindowParams(size=size, stride=stride or size, absent_ids=False, byte_ranges=False, range_margin=0.0),
        STUDY.split.model_copy(update=split),
        STUDY.vocab,
        out,
        progress=False,
    )


# --- a window built by hand -------------------------------------------------------------------------

A, B, C = 0x100, 0x200, 0x300
HAND = [  # A B A A C B: C is an injected frame
    (0.000, A, 10, 0),
    (0.010, B, 20, 0),
    (0.020, A, 30, 0),
    (0.030, A, 50, 0),
    (0.045, C, 7, 1),
    (0.050, B, 40, 0),
]
BENIGN_TAIL = [(0.060 + 0.01 * i, [A, B][i % 2], i, 0) for i in range(6)]


def test_window_built_by_hand(tmp_path: Path) -> None:
    meta = build(frames_of(HAND + BENIGN_TAIL, "car.log"), tmp_path / "g")
    assert meta["counts"]["train"]["graphs"] == 2  # too short to split: both windows stay in train
    s = load_split(tmp_path / "g", "train")
    g = s.graph(0)
    x, e = unscaled(tmp_path / "g", "train")
    x, e = x[: s.node_ptr[1]], e[: s.edge_ptr[1]]
    col = {name: i for i, name in enumerate(NODE_FEATURES)}

    # Nodes in ID order A, B, C; C only ever appears in an attack frame, so it is outside the vocabulary.
    assert g.node_vocab.tolist() == [1, 2, 0]
    assert meta["vocab"]["ids"] == ["100", "200"]
    expected = {  # feature: (A, B, C)
        "byte0_mean": (30, 30, 7),
        "byte0_std": (np.sqrt(800 / 3), 10, 0),
        "byte1_mean": (0, 0, 0),
        "count": (3 / 6, 2 / 6, 1 / 6),
        "iat_mean": (0.015, 0.040, 0),
        "iat_std": (0.005, 0, 0),
        "last_pos": (3 / 6, 5 / 6, 4 / 6),
        "in_degree": (2, 2, 1),
        "out_degree": (3, 1, 1),
        "dlc_mean": (8, 8, 8),
    }
    for name, values in expected.items():
        np.testing.assert_allclose(x[:, col[name]], values, rtol=1e-5, atol=1e-6, err_msg=name)

    # Edges A→A, A→B, A→C, B→A, C→B (sorted), each seen once, with the time to the next frame.
    assert g.edge_index.T.tolist() == [[0, 0], [0, 1], [0, 2], [1, 0], [2, 1]]
    np.testing.assert_allclose(e[:, 0], 1, rtol=1e-6)
    np.testing.assert_allclose(e[:, 1], [0.010, 0.010, 0.015, 0.010, 0.005], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(e[:, 2], 0, atol=1e-7)
    assert (g.y, g.y_type) == (1, meta["attack_types"].index("dos"))
    assert s.graph(1).y == 0 and s.t_start[0] == 0.0 and s.start_row.tolist() == [0, 6]


# --- a loop-based reference on random traffic ----------------------------------------------------------


def reference_window(w: pl.DataFrame) -> tuple[dict[int, list[float]], dict[tuple[int, int], list[float]]]:
    """Node and edge features of one window, one frame at a time."""
    ids, ts = w["can_id"].to_list(), w["timestamp"].to_list()
    pay, dlc, n = w.select([f"b{i}" for i in range(8)]).to_numpy(), w["dlc"].to_list(), len(ids)
    pairs = Counter(itertools.pairwise(ids))
    nodes = {}
    for v in sorted(set(ids)):
        pos = [i for i in range(n) if ids[i] == v]
        iat = np.diff([ts[i] for i in pos])
        nodes[v] = [
            *pay[pos].mean(0),
            *pay[pos].std(0),
            len(pos) / n,
            iat.mean() if len(iat) else 0.0,
            iat.std() if len(iat) else 0.0,
            pos[-1] / n,
            sum(1 for (_, d) in pairs if d == v),
            sum(1 for (s_, _) in pairs if s_ == v),
            float(np.mean([dlc[i] for i in pos])),
        ]
    edges = {}
    for u, v in sorted(pairs):
        dts = [ts[i + 1] - ts[i] for i in range(n - 1) if (ids[i], ids[i + 1]) == (u, v)]
        edges[(u, v)] = [len(dts), float(np.mean(dts)), float(np.std(dts))]
    return nodes, edges


def assert_matches_reference(meta: dict, s: GraphSplit, i: int, w: pl.DataFrame) -> None:
    """Graph i of split s is the graph of window w, feature by feature."""
    assert s.t_start[i] == w["timestamp"][0]
    nodes, edges = reference_window(w)
    n0, n1, e0, e1 = s.node_ptr[i], s.node_ptr[i + 1], s.edge_ptr[i], s.edge_ptr[i + 1]
    np.testing.assert_allclose(s.x[n0:n1], scaled(meta, "node", list(nodes.values())), atol=1e-4)
    ids = list(nodes)
    assert [(ids[u], ids[v]) for u, v in s.edge_index[:, e0:e1].T] == list(edges)
    np.testing.assert_allclose(s.edge_attr[e0:e1], scaled(meta, "edge", list(edges.values())), atol=1e-4)
    assert s.y[i] == w["label"].to_numpy().max()


@pytest.mark.parametrize(("size", "stride"), [(20, 20), (20, 7)])
def test_matches_reference_and_stays_in_its_file(tmp_path: Path, size: int, stride: int) -> None:
    files = {"a.log": traffic("a.log", 203, seed=1, attack_every=9), "b.log": traffic("b.log", 88, seed=2)}
    frames = pl.concat(files.values())
    meta = build(frames, tmp_path / "g", size=size, stride=stride)
    assert [f["source"] for f in meta["files"]] == ["a.log", "b.log"]
    seen = []
    for split in meta["counts"]:
        s = load_split(tmp_path / "g", split)
        for i in range(len(s)):
            src = meta["files"][int(s.file_idx[i])]["source"]
            start = int(s.start_row[i])
            assert start % stride == 0 and start + size <= len(files[src])  # never crosses a file, no tail
            assert_matches_reference(meta, s, i, files[src].slice(start, size))
            seen.append((src, start))
    # Every complete window of each file is stored or accounted for (embargo gaps, duplicates).
    total = sum((len(f) - size) // stride + 1 for f in files.values())
    dropped = meta["embargo_dropped"] + sum(meta["duplicates_dropped"].values())
    assert len(seen) == len(set(seen)) == total - dropped


def test_long_windows_match_reference(tmp_path: Path) -> None:
    """Windows of 300 frames: byte sums outgrow 16-bit lanes and n·Σx² outgrows int32."""
    high = pl.lit(250).cast(pl.UInt8).alias("b3")  # ~200 frames of one ID: n·Σx² ≈ 200² · 250²
    frames = traffic("a.log", 3000, seed=15, ids=(0x100, 0x200)).with_columns(high)
    meta = build(frames, tmp_path / "g", size=300)
    assert sum(c["graphs"] for c in meta["counts"].values()) >= 5
    for split in meta["counts"]:
        s = load_split(tmp_path / "g", split)
        for i in range(len(s)):
            assert_matches_reference(meta, s, i, frames.slice(int(s.start_row[i]), 300))


def test_graphs_around_dropped_duplicates_stay_intact(tmp_path: Path) -> None:
    """Val windows that repeat a train window are cut out of the middle of a block of graphs; the graphs
    between them keep their own nodes and edges."""
    pattern = [A, B, A, C, B, A, A, C, B, A]
    novel = {33, 35, 37, 39}  # of the 40 windows: 0-30 train, 31 embargo, 32-39 val
    rows = []
    for i in range(400):
        w, p = divmod(i, 10)
        rows.append((i * 0.001, pattern[p], 100 + w if w in novel and p == 0 else p, 0))
    frames = frames_of(rows, "a.log")
    test = traffic(f"{TEST_KNOWN}/c.log", 100, seed=14)
    meta = build(pl.concat([frames, test]), tmp_path / "g", size=10)
    assert meta["duplicates_dropped"]["val"] == 4
    s = load_split(tmp_path / "g", "val")
    assert s.start_row.tolist() == [330, 350, 370, 390]
    for i in range(len(s)):
        assert_matches_reference(meta, s, i, frames.slice(int(s.start_row[i]), 10))


# --- vocabulary, scalers, shards, metadata ------------------------------------------------------------


def test_unknown_ids_map_to_zero_and_test_data_never_changes_vocab_or_scalers(tmp_path: Path) -> None:
    train = pl.concat(
        [
            traffic("train_01_attack_free/a.log", 400, seed=3),
            traffic("train_02_with_attacks/b.log", 300, seed=4, attack_every=5),
        ]
    )
    test = traffic(f"{TEST_KNOWN}/c.log", 300, seed=5, ids=(0x100, 0x5A5, 0x6B6))
    other_test = traffic(f"{TEST_KNOWN}/c.log", 300, seed=6, ids=(0x7E0, 0x444)).with_columns(
        (pl.col("b0") // 4).alias("b0")
    )
    one = build(pl.concat([train, test]), tmp_path / "one", size=10)
    two = build(pl.concat([train, other_test]), tmp_path / "two", size=10)

    # 0x000 only in attack frames, 0x5A5/0x6B6/0x444 only in test captures: none enters the vocabulary.
    assert one["vocab"]["ids"] == ["100", "110", "2A0", "3F1", "7E0"]
    assert one["vocab"] == two["vocab"] and one["scalers"] == two["scalers"]
    assert set(np.asarray(load_split(tmp_path / "one", "test_known").node_vocab).tolist()) == {0, 1}
    assert set(np.asarray(load_split(tmp_path / "two", "test_known").node_vocab).tolist()) == {0, 5}
    assert not one["heldout_test"]


def test_scalers_fitted_on_benign_train_nodes_only(tmp_path: Path) -> None:
    benign = traffic("train_01_attack_free/a.log", 600, seed=6)
    attack = traffic("train_02_with_attacks/b.log", 400, seed=7, attack_every=3).with_columns(
        pl.lit(255).cast(pl.UInt8).alias("b2")
    )
    test = traffic(f"{TEST_KNOWN}/c.log", 200, seed=8).with_columns(pl.lit(250).cast(pl.UInt8).alias("b1"))
    meta = build(pl.concat([benign, attack, test]), tmp_path / "g", size=10, by="file")
    train = load_split(tmp_path / "g", "train")
    benign_nodes = np.repeat(np.asarray(train.y) == 0, np.diff(train.node_ptr))
    x = np.asarray(train.x, dtype=np.float64)[benign_nodes]
    constant = np.asarray(meta["scalers"]["node"]["std"]) == 1.0
    np.testing.assert_allclose(x.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(x.std(0)[~constant], 1, rtol=1e-3)
    # The attack graphs and the test split do not follow the benign-train scaling.
    assert np.asarray(train.x)[~benign_nodes, NODE_FEATURES.index("byte2_mean")].min() > 1
    test_x = np.asarray(load_split(tmp_path / "g", "test_known").x)
    assert test_x[:, NODE_FEATURES.index("byte1_mean")].min() > 1
    assert meta["scalers"]["edge"]["features"] == EDGE_FEATURES


def test_meta_and_shards(tmp_path: Path) -> None:
    frames = pl.concat(
        [
            traffic("train_01_attack_free/a.log", 500, seed=9),
            traffic("train_02_with_attacks/b.log", 500, seed=10, attack_every=4),
            traffic(f"{TEST_KNOWN}/c.log", 200, seed=11, attack_every=6),
        ]
    )
    meta = build(frames, tmp_path / "g", size=10, stride=5)
    on_disk = json.loads((tmp_path / "g" / "meta.json").read_text())
    assert on_disk == json.loads(json.dumps(meta)) and load_meta(tmp_path / "g") == on_disk
    assert on_disk["schema_version"] == 1
    assert on_disk["params"] == {
        "windows": {"size": 10, "stride": 5, "absent_ids": False, "byte_ranges": False, "range_margin": 0.0},
        "split": {"by": "time_block", "val_fraction": 0.2, "seed": 0},
        "vocab": {"min_count": 1},
    }
    assert list(on_disk["counts"]) == ["train", "val", "test_known"]
    assert on_disk["node_features"] == NODE_FEATURES and on_disk["attack_types"] == ["none", "dos"]
    ids = on_disk["vocab"]["ids"]
    assert on_disk["vocab"]["sha256"] == hashlib.sha256("\n".join(ids).encode()).hexdigest()
    assert on_disk["vocab_size"] == len(ids) + 1 and on_disk["embargo_windows"] == 2
    for split, counts in on_disk["counts"].items():
        s = load_split(tmp_path / "g", split)
        assert isinstance(s.x, np.memmap)
        assert (len(s), counts["benign"] + counts["attack"]) == (counts["graphs"], counts["graphs"])
        assert (s.node_ptr[-1], s.edge_ptr[-1]) == (counts["nodes"], counts["edges"])
        assert {n: (getattr(s, n).dtype, getattr(s, n).ndim) for n in ARRAYS} == {
            n: (spec.dtype, spec.ndim) for n, spec in ARRAYS.items()
        }
        assert s.x.shape[1] == len(NODE_FEATURES) and s.edge_attr.shape[1] == len(EDGE_FEATURES)
        assert counts["attack"] == sum(counts["attack_types"].values()) == int(np.sum(s.y_type > 0))
        g = s.graph(len(s) - 1)
        assert g.edge_index.max() < len(g.x) and np.isfinite(s.x).all()
    with pytest.raises(FileNotFoundError, match="available: test_known, train, val"):
        load_split(tmp_path / "g", "test_unknown_vehicle")
    train = load_split(tmp_path / "g", "train")
    cooc = id_cooccurrence(np.diff(train.node_ptr), train.node_vocab, train.y == 0, on_disk["vocab_size"])
    np.testing.assert_allclose(on_disk["id_cooccurrence"], cooc, atol=5e-5)


def test_id_cooccurrence_by_hand() -> None:
    # four graphs over vocabulary 0..3: {1, 2}, {1, 2, 0}, {1, 3} benign; {3} an attack (not counted)
    n_nodes = np.array([2, 3, 2, 1])
    node_vocab = np.array([1, 2, 1, 2, 0, 1, 3, 3])
    c = id_cooccurrence(n_nodes, node_vocab, np.array([True, True, True, False]), 4)
    want = np.zeros((4, 4))  # n(u and v) / (n(u) + 1)
    want[1, 1], want[1, 2], want[1, 3] = 3 / 4, 2 / 4, 1 / 4  # 1 is in 3 benign graphs, with 2 in two of them
    want[2, 1], want[2, 2] = 2 / 3, 2 / 3
    want[3, 1], want[3, 3] = 1 / 2, 1 / 2
    np.testing.assert_allclose(c, want, rtol=1e-6)  # the unknown slot 0 neither predicts nor is expected


def test_atomic_write_keeps_previous_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = pl.concat([traffic("a.log", 300, seed=12)])
    out = tmp_path / "g"
    first = build(frames, out, size=10)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    calls = []

    def failing(folder: Path, parts: list) -> None:
        calls.append(folder)
        if len(calls) == 2:
            raise RuntimeError("disk full")
        original(folder, parts)

    original = graphs_module.write_split
    monkeypatch.setattr(graphs_module, "write_split", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        build(frames, out, size=20)
    after = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert after == before and load_meta(out)["params"] == first["params"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["g"]  # no temporary folder left behind


def test_bad_input_is_named(tmp_path: Path) -> None:
    frames = traffic("a.log", 50, seed=13)
    with pytest.raises(ValueError, match="complete window of 100 frames"):
        build(frames, tmp_path / "g", size=100)
    shuffled = pl.concat([frames.slice(0, 20), traffic("b.log", 30, seed=1), frames.slice(20)])
    with pytest.raises(ValueError, match=r"'a\.log' occurs in several separate runs"):
        build(shuffled, tmp_path / "g")
    backwards = frames.with_columns(pl.col("timestamp").reverse())
    with pytest.raises(ValueError, match=r"a\.log: timestamps decrease at frame 1"):
        build(backwards, tmp_path / "g")
    with pytest.raises(ValueError, match="no benign window in the train split"):
        build(traffic("a.log", 60, seed=1, attack_every=2), tmp_path / "g")


# --- vocabulary unit tests ------------------------------------------------------------------------------


def test_vocabulary() -> None:
    keys = id_keys(
        np.array([0x100, 0x100, 0x1FFFFFFF, 0x100, 0x7FF], np.uint32),
        np.array([False, True, True, False, False]),
    )
    assert keys[0] != keys[1]  # 11-bit 0x100 and 29-bit 0x100 are different IDs
    vocab = build_vocab(keys, min_count=1)
    assert vocab.ids == ["100", "7FF", "00000100", "1FFFFFFF"] and len(vocab) == 5
    assert [format_id(k) for k in keys[:2]] == ["100", "00000100"]
    assert all(parse_id(format_id(k)) == k for k in keys)
    assert vocab.lookup(np.array([keys[0], keys[1], 0x123])).tolist() == [1, 3, 0]
    assert build_vocab(keys, min_count=2).ids == ["100"]
    assert Vocabulary.from_meta(vocab.to_meta()).sha256 == vocab.sha256
    assert Vocabulary(np.zeros(0, np.int64)).lookup(keys).tolist() == [0] * 5
    with pytest.raises(ValueError, match="sha256"):
        Vocabulary.from_meta({**vocab.to_meta(), "sha256": "0" * 64})


# --- real traffic ---------------------------------------------------------------------------------------


def test_real_capture(can_data: Path, tmp_path: Path) -> None:
    from kdgat.data.formats import read_capture

    frames, _ = read_capture(can_data / "wrx-2016" / "doors-open-close.log")
    meta = build(frames, tmp_path / "g", size=100)
    n_ids = frames["can_id"].n_unique()
    assert meta["vocab_size"] <= n_ids + 1 and meta["counts"]["train"]["graphs"] > 10
    s = load_split(tmp_path / "g", "train")
    assert np.diff(s.node_ptr).max() <= n_ids and np.isfinite(s.x).all() and np.isfinite(s.edge_attr).all()


def test_bench_prints_one_json_object() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kdgat.bench.speed", "--frames", "20000", "--repeats", "1", "--skip-models"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["frames"] == 20000 and result["graphs"] > 150
    keys = {"preprocess_frames_per_s", "preprocess_vs_parse", "parse_s", "read_capture_s", "graphs_s"}
    assert keys <= set(result)
    assert result["threads"]["POLARS_MAX_THREADS"] == "1"
