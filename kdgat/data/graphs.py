"""A dataset's frame table → window graphs, written as memory-mappable shards (layout in shards.py).

Each capture file is cut into windows of ``size`` frames every ``stride`` frames (never across files; an
incomplete tail is dropped); features.py turns blocks of windows into graphs.

Order of work, chosen so that nothing from evaluation data reaches training: splits (splits.py) →
vocabulary from the benign frames of train windows → graphs and content hashes → removal of val/test
windows that duplicate train (or val) ones → scalers from benign train graphs → shards (shards.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from kdgat.config import CalibrationParams, SplitParams, VocabParams, WindowParams
from kdgat.data.alignment import Alignment, Profiles, align, distinct_references, id_profiles
from kdgat.data.features import (
    ABSENCE_FEATURES,
    EDGE_FEATURES,
    NODE_FEATURES,
    RANGE_FEATURES,
    Columns,
    GraphBatch,
    empty_batch,
    expected_periods,
    graphs_of_windows,
    window_starts,
)
from kdgat.data.frames import BENIGN, BYTE_COLUMNS, conform
from kdgat.data.layout import CALIBRATION, TRAIN, role_of
from kdgat.data.ranges import capture_ranges, no_ranges, recordings, union, vehicle_ranges
from kdgat.data.shards import SCHEMA_VERSION, write_meta, write_split
from kdgat.data.splits import (
    CALIBRATION_SPLIT,
    SplitPlan,
    assign_splits,
    check_splits,
    drop_duplicates,
    scenario_split,
)
from kdgat.data.vocab import Vocabulary, id_cooccurrence, id_keys, vocab_from_counts
from kdgat.io import atomic_path, check_output

__all__ = ["EDGE_FEATURES", "NODE_FEATURES", "UNKNOWN_ATTACK", "attack_types", "build_graphs"]

UNKNOWN_ATTACK = "unknown"  # attack_type given to attack frames whose type the reader did not know
CHUNK_SLOTS = 1 << 16  # (window, frame) slots processed at once
TILE_ROWS = 64  # feature rows handled as one by the scalers (_tiles)
# A known vehicle's ID profile (periods, DLC, change rates, byte levels) settles within a minute of its
# traffic, as long as an unseen vehicle's calibration gives by default; profiling whole training captures
# cost 0.3 s per million frames, as much as building the graphs.
REFERENCE_SECONDS = 60.0
# The unseen vehicle's captures: with calibration.align_ids their windows are also built through its ID
# alignment, as test_<scenario>_calibrated splits and as the calibration split itself
UNSEEN_VEHICLE = ("unknown_vehicle", "unknown_both")
CALIBRATED_SUFFIX = "_calibrated"


def _dense_codes(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and each key's position among them, in the narrowest integer type: numpy
    sorts 8- and 16-bit rows by radix, one pass per byte."""
    if len(key) and int(key.max()) < 2**22:  # plain 11-bit traffic: a lookup table beats sorting
        present = np.zeros(int(key.max()) + 1, dtype=bool)
        present[key] = True
        uniq = np.flatnonzero(present).astype(np.int64)
        table = np.zeros(len(present), dtype=_code_type(len(uniq)))
        table[uniq] = np.arange(len(uniq))
        return uniq, table[key]
    uniq, codes = np.unique(key, return_inverse=True)
    return uniq, codes.astype(_code_type(len(uniq)))


def _code_type(n_codes: int) -> type[np.signedinteger]:
    return next(t for t in (np.int8, np.int16, np.int32) if n_codes <= np.iinfo(t).max + 1)


def attack_types(frames: pl.DataFrame) -> tuple[list[str], np.ndarray]:
    """Attack-type names (index 0 = benign) and the int16 type index of every frame."""
    label = frames["label"].to_numpy()
    attack_rows = np.flatnonzero(label == 1)
    names = frames["attack_type"].gather(attack_rows).replace(BENIGN, UNKNOWN_ATTACK)
    types = [BENIGN, *sorted(names.unique().to_list())]
    tcode = np.zeros(len(label), dtype=np.int16)
    index = names.replace_strict(types, list(range(len(types))), return_dtype=pl.Int16)
    tcode[attack_rows] = index.to_numpy()
    return types, tcode


def _file_runs(frames: pl.DataFrame, ts: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Capture names and their row offsets [n_files + 1]; checks the (source, timestamp) order."""
    runs = frames.select(pl.col("source").rle()).unnest("source")  # a literal column stays unexpanded
    sources = runs["value"].to_list()
    if len(set(sources)) != len(sources):
        repeated = next(s for s in sources if sources.count(s) > 1)
        raise ValueError(f"frames not sorted by source: {repeated!r} occurs in several separate runs")
    offsets = np.concatenate([[0], np.cumsum(runs["len"].to_numpy())]).astype(np.int64)
    back = np.flatnonzero(ts[1:] < ts[:-1]) + 1
    back = back[~np.isin(back, offsets)]
    if len(back):
        f = int(np.searchsorted(offsets, back[0], side="right")) - 1
        raise ValueError(
            f"{sources[f]}: timestamps decrease at frame {int(back[0] - offsets[f])} "
            "(frames must be sorted by source, timestamp)"
        )
    return sources, offsets


def _tiles(a: np.ndarray) -> list[tuple[np.ndarray, int]]:
    """(view, k) pairs covering [N, F] ``a``: views whose rows are k rows of ``a`` end to end (k = TILE_ROWS,
    then 1 for the rest). numpy loops along the last axis; 3-wide edge rows made scaling 3-5x slower."""
    whole = len(a) - len(a) % TILE_ROWS if a.flags.c_contiguous else 0  # so the reshape is a view
    return [(a[:whole].reshape(-1, TILE_ROWS * a.shape[1]), TILE_ROWS), (a[whole:], 1)]


def _fit_scaler(blocks: list[np.ndarray], names: list[str]) -> dict[str, Any]:
    """Per-column mean and std over row blocks (float64 sums of float32 features: E[x²] − E[x]² keeps
    about 1e-16 · mean² / var relative error, far below what a scaler needs)."""
    total, total_sq = np.zeros(len(names)), np.zeros(len(names))
    for rows, reps in (tile for b in blocks for tile in _tiles(b)):
        total += np.einsum("ij->j", rows, dtype=np.float64).reshape(reps, -1).sum(axis=0)
        total_sq += np.einsum("ij,ij->j", rows, rows, dtype=np.float64).reshape(reps, -1).sum(axis=0)
    n = sum(len(b) for b in blocks)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))
    std = np.where(std < 1e-6, 1.0, std)  # constant features pass through centred, not blown up
    return {"features": names, "mean": mean.tolist(), "std": std.tolist()}


def _apply(a: np.ndarray, scaler: dict[str, Any]) -> None:
    mean = np.asarray(scaler["mean"], dtype=a.dtype)
    if a.ndim == 2 and a.shape[1] != len(mean):  # e.g. byte ranges in the bundle but not passed
        names = scaler["features"]
        raise ValueError(f"{a.shape[1]} feature columns, but the scaler holds {len(mean)}: {names}")
    inv = (1.0 / np.asarray(scaler["std"])).astype(a.dtype)
    for rows, reps in _tiles(a):
        rows -= np.tile(mean, reps)
        rows *= np.tile(inv, reps)


def _fit_scalers(train: list[GraphBatch], node_features: list[str]) -> dict[str, Any]:
    """Scalers from the nodes and edges of the benign train graphs only."""
    nodes, edges = [], []
    for b in train:
        benign = b.y == 0
        if benign.all():
            nodes.append(b.x)
            edges.append(b.edge_attr)
        elif benign.any():
            nodes.append(b.x.compress(np.repeat(benign, b.n_nodes), axis=0))
            edges.append(b.edge_attr.compress(np.repeat(benign, b.n_edges), axis=0))
    if not nodes:
        raise ValueError("no benign window in the train split: cannot fit the feature scalers")
    return {
        "fitted_on": "nodes and edges of the benign graphs of the train split",
        "node": _fit_scaler(nodes, node_features),
        "edge": _fit_scaler(edges, EDGE_FEATURES),
    }


def _split_counts(parts: list[GraphBatch], types: list[str]) -> dict[str, Any]:
    y = np.concatenate([p.y for p in parts])
    per_type = np.bincount(np.concatenate([p.y_type for p in parts]), minlength=len(types))
    return {
        "graphs": len(y),
        "benign": int((y == 0).sum()),
        "attack": int((y == 1).sum()),
        "nodes": sum(len(p.x) for p in parts),
        "edges": sum(p.edge_index.shape[1] for p in parts),
        "attack_types": {t: int(n) for t, n in zip(types[1:], per_type[1:], strict=True) if n},
    }


def _prepare(frames: pl.DataFrame) -> tuple[list[str], np.ndarray, Columns, np.ndarray, list[str]]:
    """Capture names, their row offsets, the numpy columns, the distinct ID keys and attack types."""
    ts = frames["timestamp"].to_numpy()
    sources, offsets = _file_runs(frames, ts)
    key = id_keys(frames["can_id"].to_numpy(), frames["extended"].to_numpy())
    uniq_keys, code = _dense_codes(key)
    types, tcode = attack_types(frames)
    payload = np.empty((len(ts), 8), dtype=np.uint8)  # row-major, so a frame's payload is one uint64
    for i, col in enumerate(BYTE_COLUMNS):
        payload[:, i] = frames[col].to_numpy()
    cols = Columns(key, code, ts, payload, frames["dlc"].to_numpy(), frames["label"].to_numpy(), tcode)
    return sources, offsets, cols, uniq_keys, types


def _train_vocab(
    cols: Columns,
    window_rows: np.ndarray,
    in_train: np.ndarray,
    size: int,
    uniq_keys: np.ndarray,
    min_count: int,
) -> Vocabulary:
    """Vocabulary over the benign frames that some train window covers (each frame counted once)."""
    lo = window_rows[in_train]  # ascending
    counts = np.zeros(len(uniq_keys), dtype=np.int64)
    if len(lo):
        # Train windows that overlap or touch merge into runs of covered rows: about one per capture.
        ends = np.flatnonzero(lo[1:] > lo[:-1] + size)
        run_lo, run_hi = lo[np.r_[0, ends + 1]], lo[np.r_[ends, len(lo) - 1]] + size
        for a, b in zip(run_lo.tolist(), run_hi.tolist(), strict=True):
            counts += np.bincount(cols.code[a:b][cols.label[a:b] == 0], minlength=len(uniq_keys))
    return vocab_from_counts(uniq_keys, counts, min_count)


def _select(b: GraphBatch, sel: np.ndarray) -> GraphBatch:
    """The graphs of ``b`` at the sorted indices ``sel`` (views, not copies, when they form one run)."""
    node_ptr = np.concatenate([[0], np.cumsum(b.n_nodes)])
    edge_ptr = np.concatenate([[0], np.cumsum(b.n_edges)])
    g: slice | np.ndarray
    nodes: slice | np.ndarray
    edges: slice | np.ndarray
    if len(sel) and sel[-1] - sel[0] + 1 == len(sel):
        lo, hi = int(sel[0]), int(sel[-1]) + 1
        g, nodes, edges = slice(lo, hi), slice(*node_ptr[[lo, hi]]), slice(*edge_ptr[[lo, hi]])
    else:
        g, nodes, edges = sel, _ranges(node_ptr, b.n_nodes, sel), _ranges(edge_ptr, b.n_edges, sel)
    return GraphBatch(
        b.n_nodes[g],
        b.n_edges[g],
        b.x[nodes],
        b.node_vocab[nodes],
        b.edge_index[:, edges],
        b.edge_attr[edges],
        b.y[g],
        b.y_type[g],
        b.t_start[g],
        b.start_row[g],
        b.file_idx[g],
        b.hashes[g],
    )


def _train_cooccurrence(train: list[GraphBatch], size: int) -> np.ndarray:
    if not train:
        return np.zeros((size, size), dtype=np.float32)
    n_nodes, node_vocab, y = (
        np.concatenate([getattr(b, k) for b in train]) for k in ("n_nodes", "node_vocab", "y")
    )
    return id_cooccurrence(n_nodes, node_vocab, y == 0, size)


def _ranges(offsets: np.ndarray, counts: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Concatenated aranges offsets[s] .. offsets[s] + counts[s] for s in sel."""
    c = counts[sel]
    total = int(c.sum())
    shift = np.repeat(offsets[sel] - (np.cumsum(c) - c), c)
    return shift + np.arange(total, dtype=np.int64)


def _by_split(batches: list[GraphBatch], plan: SplitPlan) -> list[list[GraphBatch]]:
    """Each split's graphs as a list of blocks in window order (views of ``batches`` where possible)."""
    parts: list[list[GraphBatch]] = [[] for _ in plan.names]
    first_window = 0
    for batch in batches:
        code = plan.code[first_window : first_window + len(batch)]
        first_window += len(batch)
        for c in np.unique(code[code >= 0]):
            parts[c].append(_select(batch, np.flatnonzero(code == c)))
    return parts


def _profiles(name: str, c: Columns) -> Profiles:
    benign = c.label == 0
    return id_profiles(name, c.key[benign], c.ts[benign], c.dlc[benign], c.payload[benign])


def _references(
    cols: Columns, offsets: np.ndarray, sources: list[str], roles: list[str]
) -> tuple[list[Profiles], dict[int, int]]:
    """One ID profile per distinct ID set among the training captures, from the benign frames of the
    first REFERENCE_SECONDS of each; and the reference (vehicle) of each training capture."""
    own = {
        f: _profiles(s, _leading(cols.rows(int(offsets[f]), int(offsets[f + 1])), REFERENCE_SECONDS))
        for f, (s, r) in enumerate(zip(sources, roles, strict=True))
        if r == TRAIN
    }
    refs = distinct_references(own.values())
    index = {r.keys.tobytes(): i for i, r in enumerate(refs)}
    return refs, {f: index[p.keys.tobytes()] for f, p in own.items()}


def _training_ranges(
    cols: Columns,
    offsets: np.ndarray,
    vehicle_of: dict[int, int],
    n_profiles: int,
    code_vocab: np.ndarray,
    n_vocab: int,
    margin: float,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """windows.byte_ranges (kdgat/data/ranges.py): each vehicle's byte ranges over all its training
    recordings, for test windows, and per training capture those of its vehicle's other recordings, each
    widened by windows.range_margin. A recording is a set of captures whose benign frames overlap in time:
    attacked copies of one drive (wrx_inject) are one drive, not several that agree."""
    per: dict[int, np.ndarray] = {}
    span: dict[int, tuple[float, float]] = {}
    for f in vehicle_of:
        c = cols.rows(int(offsets[f]), int(offsets[f + 1]))
        benign = c.label == 0
        per[f] = capture_ranges(c.key[benign], c.payload[benign], code_vocab[c.code[benign]], n_vocab)
        ts = c.ts[benign]
        span[f] = (float(ts.min()), float(ts.max())) if len(ts) else (np.inf, -np.inf)
    rec = recordings(span, vehicle_of)
    merged = {r: union(np.stack([per[f] for f in vehicle_of if rec[f] == r])) for r in set(rec.values())}
    profile = {rec[f]: p for f, p in vehicle_of.items()}
    known = vehicle_ranges(merged, profile, n_profiles, n_vocab, margin=margin)
    return known, {
        f: vehicle_ranges(merged, profile, n_profiles, n_vocab, leave_out=rec[f], margin=margin)
        for f in vehicle_of
    }


def _leading(c: Columns, seconds: float) -> Columns:
    """The frames of the first ``seconds`` of one capture (time-ordered)."""
    return c.rows(0, int(np.searchsorted(c.ts, c.ts[0] + seconds))) if len(c.ts) else c


def expected_meta(name: str, slots: np.ndarray, profile: Profiles) -> dict[str, Any]:
    """A vehicle profile for absence_features, as meta.json and the detector's bundle keep it."""
    return {"name": name, "slots": slots.tolist(), "periods": np.round(10 ** profile.rows[:, 0], 6).tolist()}


def expected_of_meta(profiles: list[dict[str, Any]], n_vocab: int) -> np.ndarray:
    """expected_periods from expected_meta entries (the graphs stage's and `kdgat detect`'s)."""
    return expected_periods([(np.asarray(p["slots"]), np.asarray(p["periods"])) for p in profiles], n_vocab)


def _vehicle_alignment(
    cols: Columns,
    offsets: np.ndarray,
    roles: list[str],
    voc: Vocabulary,
    seconds: float,
    refs: list[Profiles],
) -> tuple[Alignment, Profiles]:
    """The unseen vehicle's ID alignment (kdgat/data/alignment.py) from the first ``seconds`` of its
    calibration captures, against one reference per distinct ID set among the training captures; and
    the calibration traffic's own ID profiles."""
    parts = []
    for f in (f for f, r in enumerate(roles) if r == CALIBRATION):
        c = cols.rows(int(offsets[f]), int(offsets[f + 1]))
        parts.append(_leading(c, seconds))
    c = Columns(*(np.concatenate([getattr(p, k) for p in parts]) for k in vars(parts[0])))
    # calibration traffic is used without its labels (all frames), training traffic's benign frames only
    target = id_profiles(CALIBRATION, c.key, c.ts, c.dlc, c.payload)
    return align(voc, target, refs), target


def build_graphs(
    frames: pl.DataFrame,
    windows: WindowParams,
    split: SplitParams,
    vocab: VocabParams,
    out_dir: Path,
    progress: bool = True,
    force: bool = False,
    batch_size: int | None = None,
    calibration: CalibrationParams | None = None,
) -> dict[str, Any]:
    """Cut a dataset's frame table into window graphs and write the shards + meta.json to ``out_dir``.

    ``frames`` is the canonical table of a whole dataset, sorted by (source, timestamp). The folder is
    replaced atomically: a failure leaves any previous output intact. Returns the metadata written.
    Given the training ``batch_size`` (the stage and `kdgat graphs` give it), splits that cannot work
    (splits.check_splits) fail before any graph is built, and again should dropping duplicate windows
    empty a class; None skips the checks (a unit test's hand-made windows). Of a calibration capture
    only the windows that start within ``calibration.seconds`` of its first frame are kept (all of them
    without ``calibration``); with ``calibration.align_ids`` the unseen vehicle's windows are built through
    its ID alignment too (``_vehicle_alignment``): the calibration split, and test_<s>_calibrated beside
    each of its test scenarios.
    """
    check_output(out_dir, folder=True, force=force)
    S = windows.size
    sources, offsets, cols, uniq_keys, types = _prepare(conform(frames))
    n_frames = np.diff(offsets)
    starts = [window_starts(int(n), S, windows.stride) for n in n_frames]
    if not any(len(st) for st in starts):
        raise ValueError(
            f"no capture holds a complete window of {S} frames ({int(n_frames.sum())} frames in all)"
        )
    roles = [role_of(s) for s in sources]
    if calibration is not None:
        starts = [
            st[cols.ts[st + offsets[f]] < cols.ts[offsets[f]] + calibration.seconds]
            if r == CALIBRATION
            else st
            for f, (st, r) in enumerate(zip(starts, roles, strict=True))
        ]
    has_attack = [bool(cols.label[lo:hi].any()) for lo, hi in itertools.pairwise(offsets)]
    label_sum = np.concatenate([[0], np.cumsum(cols.label, dtype=np.int64)])
    window_attack = np.concatenate(
        [label_sum[st + offsets[f] + S] > label_sum[st + offsets[f]] for f, st in enumerate(starts)]
    )
    plan = assign_splits(
        roles, [len(st) for st in starts], has_attack, windows, split, sources, window_attack
    )
    if batch_size is not None:
        check_splits(plan, window_attack, split, batch_size)
    window_rows = np.concatenate([st + offsets[f] for f, st in enumerate(starts)])
    voc = _train_vocab(cols, window_rows, plan.code == 0, S, uniq_keys, vocab.min_count)
    code_vocab = voc.lookup(uniq_keys)
    alignment: Alignment | None = None
    references: list[Profiles] = []
    vehicle_of: dict[int, int] = {}
    target: Profiles | None = None
    with_alignment = calibration is not None and calibration.align_ids and CALIBRATION in roles
    if with_alignment or windows.absent_ids:
        references, vehicle_of = _references(cols, offsets, sources, roles)
    if with_alignment:
        assert calibration is not None
        alignment, target = _vehicle_alignment(cols, offsets, roles, voc, calibration.seconds, references)
    aligned_roles = (CALIBRATION, *UNSEEN_VEHICLE) if alignment else ()
    # windows.absent_ids: each known vehicle's steady IDs from its training traffic; the unseen vehicle's
    # (through its alignment) from its calibration traffic
    expected_ids: dict[str, Any] | None = None
    known_expected = vehicle_expected = None
    node_features = list(NODE_FEATURES)
    # windows.byte_ranges: each training capture reads its vehicle's other captures' ranges, others all
    known_ranges: np.ndarray | None = None
    loco_ranges: dict[int, np.ndarray] = {}
    if windows.byte_ranges:
        node_features += RANGE_FEATURES
        known_ranges, loco_ranges = _training_ranges(
            cols, offsets, vehicle_of, len(references), code_vocab, len(voc), windows.range_margin
        )
    if windows.absent_ids:
        node_features += ABSENCE_FEATURES
        expected_ids = {
            "known": [expected_meta(r.name, voc.lookup(r.keys), r) for r in references],
            "unseen_vehicle": None,
        }
        known_expected = expected_of_meta(expected_ids["known"], len(voc))
        if alignment is not None and target is not None:
            expected_ids["unseen_vehicle"] = expected_meta(CALIBRATION, alignment.lookup(target.keys), target)
            vehicle_expected = expected_of_meta([expected_ids["unseen_vehicle"]], len(voc))

    # Blocks of about CHUNK_SLOTS frames keep the temporaries small enough to stay in cache and be
    # reused by the allocator (whole-file temporaries were ~40 % slower, mostly in page faults); of
    # 2^14 .. 2^17 slots, 2^16 ran the bench fastest (2^17: 6 % slower, scaling and writing included).
    per_chunk = max(1, CHUNK_SLOTS // S)
    blocks = [(f, st[i : i + per_chunk]) for f, st in enumerate(starts) for i in range(0, len(st), per_chunk)]
    batches, aligned = [], []
    for f, st in tqdm(blocks, desc="windows → graphs", unit="block", disable=not progress):
        rows = cols.rows(int(offsets[f]), int(offsets[f + 1]))
        ranges = loco_ranges.get(f, known_ranges)
        batches.append(graphs_of_windows(rows, st, S, len(types), code_vocab, known_expected, ranges))
        batches[-1].file_idx[:] = f
        aligned.append(batches[-1])
        if alignment is not None and roles[f] in aligned_roles:
            aligned[-1] = graphs_of_windows(
                rows,
                st,
                S,
                len(types),
                alignment.lookup(uniq_keys),
                vehicle_expected,
                None if known_ranges is None else no_ranges(1, len(voc)),
            )
            aligned[-1].file_idx[:] = f
    dropped = drop_duplicates(np.concatenate([b.hashes for b in batches]), plan)
    if batch_size is not None:
        check_splits(plan, window_attack, split, batch_size)
    parts = _by_split(batches, plan)
    names = list(plan.names)
    if alignment is not None:
        through = _by_split(aligned, plan)
        for i, name in enumerate(plan.names):
            if name == CALIBRATION_SPLIT:
                parts[i] = through[i]
            elif name in {scenario_split(s) for s in UNSEEN_VEHICLE}:
                names.append(name + CALIBRATED_SUFFIX)
                parts.append(through[i])
    scalers = _fit_scalers(parts[0], node_features)
    cooc = _train_cooccurrence(parts[0], len(voc))
    for batch in (b for split_parts in parts for b in split_parts):
        _apply(batch.x, scalers["node"])
        _apply(batch.edge_attr, scalers["edge"])

    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "params": {"windows": windows.model_dump(), "split": split.model_dump(), "vocab": vocab.model_dump()},
        "node_features": node_features,
        "absence_features": ABSENCE_FEATURES if windows.absent_ids else [],  # the last node features
        "range_features": RANGE_FEATURES if windows.byte_ranges else [],  # just before them
        # windows.byte_ranges: each known vehicle's byte ranges [P, V, 2, 8], profiles as expected_ids'
        "byte_ranges": None if known_ranges is None else known_ranges.astype(int).tolist(),
        "edge_features": EDGE_FEATURES,
        "vocab_size": len(voc),
        "vocab": voc.to_meta(),
        "id_cooccurrence": np.round(cooc, 4).tolist(),  # [vocab, vocab], see vocab.id_cooccurrence
        # what `kdgat detect --calibrate` needs to align a new vehicle, and this dataset's own alignment
        "alignment": {
            "references": [r.to_meta() for r in references] if with_alignment else [],
            "unseen_vehicle": alignment.to_meta() if alignment else None,
        },
        # windows.absent_ids: the vehicle profiles absence_features reads (`kdgat detect` too)
        "expected_ids": expected_ids,
        "attack_types": types,
        "scalers": scalers,
        "counts": {},  # per split, in split order
        "duplicates_dropped": dropped,
        "embargo_windows": plan.embargo_windows,
        "embargo_dropped": plan.embargo_dropped,
        "heldout_test": plan.heldout_test,
        "notes": plan.notes
        + (
            ["no test captures: test_known is the last block of each training capture"]
            if plan.heldout_test
            else []
        ),
        "files": [
            {"source": s, "role": r, "frames": int(n), "windows": len(st), "has_attack": a}
            for s, r, n, st, a in zip(sources, roles, n_frames, starts, has_attack, strict=True)
        ],
    }
    with atomic_path(out_dir, folder=True, force=force) as tmp:
        tmp.mkdir()
        for name, split_parts in zip(names, parts, strict=True):
            split_parts = split_parts or [empty_batch(len(node_features))]
            write_split(tmp / name, [vars(p) for p in split_parts])
            meta["counts"][name] = _split_counts(split_parts, types)
        write_meta(tmp, meta)
    return meta
