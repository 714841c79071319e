"""Windows of CAN frames → graphs, written as memory-mappable shards (see shards.py for the layout).

Each capture file is cut into windows of ``size`` frames every ``stride`` frames (never across files; an
incomplete tail is dropped). A window's nodes are its distinct CAN IDs; its directed edges the distinct
consecutive pairs ID(t) → ID(t+1), self-loops included when an ID repeats. No other self-loops are added
here: the model adds them where its layers need them.

Everything is vectorized over blocks of many windows. Because every window has the same size, the
(window, frame) table is a [W, size] matrix: sorting each row by ID code groups a window's frames by
node (a stable sort keeps them in time order), and a cumulative sum over "row starts a new ID" flags
numbers the nodes of all windows in one pass. Per-node and per-edge statistics are then sums over
those numbers (np.bincount, or np.add.reduceat over the sorted rows). Standard deviations are
population ones.

Order of work, chosen so that nothing from evaluation data reaches training: splits (splits.py) →
vocabulary from the benign frames of train windows → graphs and content hashes → removal of val/test
windows that duplicate train (or val) ones → scalers from benign train graphs → shards (shards.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
from tqdm import tqdm

from kdgat.config import SplitParams, VocabParams, WindowParams
from kdgat.data.frames import BENIGN, BYTE_COLUMNS, atomic_path, conform
from kdgat.data.layout import role_of
from kdgat.data.shards import SCHEMA_VERSION, write_meta, write_split
from kdgat.data.splits import SplitPlan, assign_splits, content_hashes, drop_duplicates
from kdgat.data.vocab import Vocabulary, id_keys, vocab_from_counts

NODE_FEATURES = [
    *(f"byte{i}_mean" for i in range(8)),  # over the ID's frames in the window
    *(f"byte{i}_std" for i in range(8)),
    "count",  # frames of this ID / window size
    "iat_mean",  # seconds between consecutive frames of this ID in the window (0 if it appears once)
    "iat_std",
    "last_pos",  # position of the ID's last frame in the window / window size
    "in_degree",  # distinct edges into the node (a self-loop counts)
    "out_degree",
    "dlc_mean",
]
EDGE_FEATURES = [
    "count",  # transitions u → v in the window
    "dt_mean",  # seconds from the u frame to the following v frame
    "dt_std",
]
UNKNOWN_ATTACK = "unknown"  # attack_type given to attack frames whose type the reader did not know
CHUNK_SLOTS = 1 << 17  # (window, frame) slots processed at once


@dataclass
class Columns:
    """numpy views of the frames of one capture (or of the whole table)."""

    key: np.ndarray  # int64 ID key (vocab.id_keys)
    code: np.ndarray  # dense ID code (int16 or int32): position of key in the sorted distinct keys
    ts: np.ndarray  # float64
    payload: np.ndarray  # [n, 8] uint8, C order
    dlc: np.ndarray  # uint8
    label: np.ndarray  # uint8
    tcode: np.ndarray  # int16 attack-type index, 0 for benign frames

    def rows(self, lo: int, hi: int) -> Columns:
        return Columns(*(getattr(self, f.name)[lo:hi] for f in fields(self)))


@dataclass
class GraphBatch:
    """Graphs of consecutive windows (node and edge arrays ragged, counted per graph)."""

    n_nodes: np.ndarray  # [G] int64
    n_edges: np.ndarray  # [G] int64
    x: np.ndarray  # [N, F] float32
    node_vocab: np.ndarray  # [N] int64 vocabulary index of the node's ID (0 = unknown)
    edge_index: np.ndarray  # [2, E] int64, local node indices
    edge_attr: np.ndarray  # [E, Fe] float32
    y: np.ndarray  # [G] int64
    y_type: np.ndarray  # [G] int64
    t_start: np.ndarray  # [G] float64
    start_row: np.ndarray  # [G] int64, row of the first frame within its capture
    file_idx: np.ndarray  # [G] int64
    hashes: np.ndarray  # [G, 2] uint64 content hash (window_hashes), for splits.drop_duplicates

    def __len__(self) -> int:
        return len(self.y)

    def take(self, sel: np.ndarray) -> GraphBatch:
        """The graphs at the sorted indices ``sel`` (views, not copies, when they form one run)."""
        node_ptr = np.concatenate([[0], np.cumsum(self.n_nodes)])
        edge_ptr = np.concatenate([[0], np.cumsum(self.n_edges)])
        g: slice | np.ndarray
        nodes: slice | np.ndarray
        edges: slice | np.ndarray
        if len(sel) and sel[-1] - sel[0] + 1 == len(sel):
            lo, hi = int(sel[0]), int(sel[-1]) + 1
            g, nodes, edges = slice(lo, hi), slice(*node_ptr[[lo, hi]]), slice(*edge_ptr[[lo, hi]])
        else:
            g, nodes, edges = sel, _ranges(node_ptr, self.n_nodes, sel), _ranges(edge_ptr, self.n_edges, sel)
        return GraphBatch(
            self.n_nodes[g],
            self.n_edges[g],
            self.x[nodes],
            self.node_vocab[nodes],
            self.edge_index[:, edges],
            self.edge_attr[edges],
            self.y[g],
            self.y_type[g],
            self.t_start[g],
            self.start_row[g],
            self.file_idx[g],
            self.hashes[g],
        )


def _ranges(offsets: np.ndarray, counts: np.ndarray, sel: np.ndarray) -> np.ndarray:
    """Concatenated aranges offsets[s] .. offsets[s] + counts[s] for s in sel."""
    c = counts[sel]
    total = int(c.sum())
    shift = np.repeat(offsets[sel] - (np.cumsum(c) - c), c)
    return shift + np.arange(total, dtype=np.int64)


def window_starts(n_frames: int, size: int, stride: int) -> np.ndarray:
    """Start rows of the complete windows of a capture of ``n_frames`` frames."""
    n = (n_frames - size) // stride + 1 if n_frames >= size else 0
    return np.arange(n, dtype=np.int64) * stride


def _window_gather(starts: np.ndarray, size: int) -> Callable[[np.ndarray], np.ndarray]:
    """Function taking a per-frame array to its [len(starts) * size, ...] (window, position) rows.

    Windows that tile the rows (stride == size) are a plain slice; overlapping ones are gathered.
    """
    W = len(starts)
    if W == 1 or starts[1] - starts[0] == size:
        lo = int(starts[0])
        return lambda a: a[lo : lo + W * size]
    idx = (starts[:, None] + np.arange(size)).ravel()
    return lambda a: a.take(idx, axis=0)


def _row_groups(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group equal keys within each row of a [W, L] matrix.

    Returns the flat permutation that sorts every row stably (so equal keys stay in time order), the
    sorted keys [W, L], and flags [W, L] marking where a new key starts in the sorted rows.
    """
    W, L = keys.shape
    order = np.argsort(keys, axis=1, kind="stable")
    order += (np.arange(W, dtype=order.dtype) * L)[:, None]
    flat = order.ravel()
    skeys = keys.ravel().take(flat).reshape(W, L)  # 1-d take: far cheaper than take_along_axis
    new = np.empty((W, L), dtype=bool)
    new[:, 0] = True
    np.not_equal(skeys[:, 1:], skeys[:, :-1], out=new[:, 1:])
    return flat, skeys, new


def _mean_std(
    total: np.ndarray, sq: np.ndarray, n: np.ndarray, mean_out: np.ndarray, std_out: np.ndarray
) -> None:
    """Population mean and std from float64 sums (overwritten), into the given columns; n may be 0."""
    inv = 1.0 / np.maximum(n, 1)  # a zero count comes with zero sums: mean and std 0
    total *= inv
    sq *= inv
    sq -= total * total
    np.maximum(sq, 0.0, out=sq)  # rounding can dip a zero variance below 0
    mean_out[...] = total
    std_out[...] = np.sqrt(sq, out=sq)


def _byte_stats(
    payload_sorted: np.ndarray,
    first: np.ndarray,
    count: np.ndarray,
    size: int,
    mean_out: np.ndarray,
    std_out: np.ndarray,
) -> None:
    """Per-segment mean and std of the 8 payload bytes, written into [n_segments, 8] columns.

    The bytes are widened to lanes just wide enough for a segment's total of byte values (at most
    ``size`` frames) and the lanes are summed as whole uint64 words: no carry crosses a lane, so one
    reduceat adds all eight columns at integer speed. Squares (< 2^16) are summed the same way as
    their high and low bytes. The variance n·Σx² − (Σx)² is then exact in integers.
    """
    lane = next(t for t in (np.uint16, np.uint32, np.uint64) if size * 255 < np.iinfo(t).max)

    def lane_sums(a: np.ndarray) -> np.ndarray:
        return np.add.reduceat(a.view(np.uint64), first, axis=0).view(lane)

    wide: np.ndarray = payload_sorted.astype(lane)
    total = lane_sums(wide)
    np.multiply(wide, wide, out=wide)  # 255² still fits the lane
    low = np.bitwise_and(wide, 255)
    np.right_shift(wide, 8, out=wide)
    exact = np.int32 if size * size * 255 * 255 < 2**31 else np.int64
    var_n2 = lane_sums(wide).astype(exact) * 256 + lane_sums(low)  # Σx²
    var_n2 *= count.astype(exact)[:, None]
    total = total.astype(exact)
    var_n2 -= total * total  # n·Σx² − (Σx)² = n² · variance
    inv = (1.0 / count).astype(np.float32)[:, None]
    np.multiply(total.astype(np.float32), inv, out=mean_out)  # int32 · float32 would promote to float64
    std = var_n2.astype(np.float32)
    np.multiply(np.sqrt(std, out=std), inv, out=std_out)


def graphs_of_windows(
    c: Columns, starts: np.ndarray, size: int, n_types: int, code_vocab: np.ndarray
) -> GraphBatch:
    """The graphs of the windows of one capture beginning at rows ``starts`` (file_idx left 0).

    ``n_types`` is the number of attack types (benign included); ``code_vocab`` maps a dense ID code to
    its vocabulary index.
    """
    W, S = len(starts), size
    if W == 0:
        return _empty_batch()
    take = _window_gather(starts, S)
    M = W * S
    code, ts = take(c.code).reshape(W, S), take(c.ts).reshape(W, S)
    order, scode, new = _row_groups(code)  # order: flat slot of each sorted position
    flat_new = new.ravel()
    node_sorted = np.cumsum(flat_new) - 1  # node number of each sorted position
    n_nodes = new.sum(axis=1).astype(np.int64)
    N = int(n_nodes.sum())
    first = np.flatnonzero(flat_new)
    last = np.append(first[1:], M) - 1
    node = np.empty(M, dtype=np.int64)
    node[order] = node_sorted  # node number of each slot, in time order
    count = np.diff(np.append(first, M))

    x = np.empty((N, len(NODE_FEATURES)), dtype=np.float32)
    _byte_stats(take(c.payload).take(order, axis=0), first, count, S, x[:, 0:8], x[:, 8:16])
    x[:, 16] = count / S
    sts = ts.ravel().take(order)
    gap = np.empty(M)
    gap[0] = 0.0
    np.subtract(sts[1:], sts[:-1], out=gap[1:])
    gap *= ~flat_new  # a node's first frame has no predecessor of the same ID
    gap *= gap
    _mean_std(sts[last] - sts[first], np.bincount(node_sorted, gap, N), count - 1, x[:, 17], x[:, 18])
    x[:, 19] = (order[last] % S) / S
    x[:, 22] = np.bincount(node, take(c.dlc), N) / count

    # Edges: consecutive (local src, local dst) pairs, grouped per row like the nodes.
    node_start = np.cumsum(n_nodes) - n_nodes
    local = node.reshape(W, S) - node_start[:, None]
    ekey = (local[:, :-1] * S + local[:, 1:]).astype(np.int16 if S * S < 2**15 else np.int64)
    eorder, sekey, enew = _row_groups(ekey)  # int16 keys: numpy sorts the rows by radix
    efirst = np.flatnonzero(enew.ravel())
    edge_sorted = np.cumsum(enew.ravel()) - 1
    n_edges = enew.sum(axis=1).astype(np.int64)
    E = len(efirst)
    gaps = np.diff(ts, axis=1)
    dt = gaps.ravel().take(eorder)
    ecount = np.diff(np.append(efirst, W * (S - 1)))
    edge_attr = np.empty((E, len(EDGE_FEATURES)), dtype=np.float32)
    edge_attr[:, 0] = ecount
    _mean_std(
        np.bincount(edge_sorted, dt, E),
        np.bincount(edge_sorted, dt * dt, E),
        ecount,
        edge_attr[:, 1],
        edge_attr[:, 2],
    )
    edge_index = np.empty((2, E), dtype=np.int64)
    np.divmod(sekey.ravel()[efirst], S, out=(edge_index[0], edge_index[1]))
    edge_win_start = np.repeat(node_start, n_edges)
    x[:, 20] = np.bincount(edge_index[1] + edge_win_start, minlength=N)
    x[:, 21] = np.bincount(edge_index[0] + edge_win_start, minlength=N)

    y = take(c.label).reshape(W, S).max(axis=1).astype(np.int64)
    y_type = np.zeros(W, dtype=np.int64)
    if y.any():  # most frequent attack type among the attack frames; ties go to the lower index
        tc = take(c.tcode).reshape(W, S).astype(np.int64)
        per = np.bincount((tc + (np.arange(W) * n_types)[:, None]).ravel(), minlength=W * n_types)
        per = per.reshape(W, n_types)
        per[:, 0] = 0
        y_type = np.where(y > 0, per.argmax(axis=1), 0)

    return GraphBatch(
        n_nodes=n_nodes,
        n_edges=n_edges,
        x=x,
        node_vocab=code_vocab[scode.ravel()[first]],
        edge_index=edge_index,
        edge_attr=edge_attr,
        y=y,
        y_type=y_type,
        t_start=ts[:, 0].copy(),
        start_row=starts.copy(),
        file_idx=np.zeros(W, dtype=np.int64),
        hashes=_content_hashes(take, c, gaps),
    )


def window_hashes(c: Columns, starts: np.ndarray, size: int) -> np.ndarray:
    """Content hash [W, 2] uint64 of the windows beginning at rows ``starts`` (splits.content_hashes)."""
    if len(starts) == 0:
        return np.zeros((0, 2), dtype=np.uint64)
    take = _window_gather(starts, size)
    return _content_hashes(take, c, np.diff(take(c.ts).reshape(len(starts), size), axis=1))


def _content_hashes(take: Callable[[np.ndarray], np.ndarray], c: Columns, gaps: np.ndarray) -> np.ndarray:
    shape = (gaps.shape[0], gaps.shape[1] + 1)
    return content_hashes(
        take(c.key).reshape(shape),
        take(c.dlc).reshape(shape),
        take(c.payload).view(np.uint64).reshape(shape),
        gaps,
    )


def _empty_batch() -> GraphBatch:
    z = np.zeros(0, dtype=np.int64)
    return GraphBatch(
        z,
        z,
        np.zeros((0, len(NODE_FEATURES)), np.float32),
        z,
        np.zeros((2, 0), np.int64),
        np.zeros((0, len(EDGE_FEATURES)), np.float32),
        z,
        z,
        np.zeros(0),
        z,
        z,
        np.zeros((0, 2), np.uint64),
    )


def _dense_codes(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and each key's position among them (int16 when few, for radix row sorts)."""
    if len(key) and int(key.max()) < 2**22:  # plain 11-bit traffic: a lookup table beats sorting
        present = np.zeros(int(key.max()) + 1, dtype=bool)
        present[key] = True
        uniq = np.flatnonzero(present).astype(np.int64)
        table = np.zeros(len(present), dtype=np.int16 if len(uniq) < 2**15 else np.int32)
        table[uniq] = np.arange(len(uniq))
        return uniq, table[key]
    uniq, codes = np.unique(key, return_inverse=True)
    return uniq, codes.astype(np.int16 if len(uniq) < 2**15 else np.int32)


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
    runs = frames["source"].rle().struct.unnest()
    sources = runs["value"].to_list()
    if len(set(sources)) != len(sources):
        repeated = next(s for s in sources if sources.count(s) > 1)
        raise ValueError(f"frames not sorted by source: {repeated!r} occurs in several separate runs")
    offsets = np.concatenate([[0], np.cumsum(runs["len"].to_numpy())]).astype(np.int64)
    back = np.flatnonzero(np.diff(ts) < 0) + 1
    back = back[~np.isin(back, offsets)]
    if len(back):
        f = int(np.searchsorted(offsets, back[0], side="right")) - 1
        raise ValueError(
            f"{sources[f]}: timestamps decrease at frame {int(back[0] - offsets[f])} "
            "(frames must be sorted by source, timestamp)"
        )
    return sources, offsets


def _fit_scaler(blocks: list[np.ndarray], names: list[str]) -> dict[str, Any]:
    """Per-column mean and std over row blocks (float64 sums of float32 features: E[x²] − E[x]² keeps
    about 1e-16 · mean² / var relative error, far below what a scaler needs)."""
    n = sum(len(b) for b in blocks)
    mean = sum(np.einsum("ij->j", b, dtype=np.float64) for b in blocks) / n
    mean_sq = sum(np.einsum("ij,ij->j", b, b, dtype=np.float64) for b in blocks) / n
    std = np.sqrt(np.maximum(mean_sq - mean * mean, 0.0))
    std = np.where(std < 1e-6, 1.0, std)  # constant features pass through centred, not blown up
    return {"features": names, "mean": mean.tolist(), "std": std.tolist()}


def _apply(a: np.ndarray, scaler: dict[str, Any]) -> None:
    a -= np.asarray(scaler["mean"], dtype=a.dtype)
    a *= (1.0 / np.asarray(scaler["std"])).astype(a.dtype)


def _fit_scalers(train: list[GraphBatch]) -> dict[str, Any]:
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
        "node": _fit_scaler(nodes, NODE_FEATURES),
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
    lo = window_rows[in_train]
    n = len(cols.ts)
    covered = np.cumsum(np.bincount(lo, minlength=n + 1) - np.bincount(lo + size, minlength=n + 1))[:-1] > 0
    counts = np.bincount(cols.code[covered & (cols.label == 0)], minlength=len(uniq_keys))
    return vocab_from_counts(uniq_keys, counts, min_count)


def _by_split(batches: list[GraphBatch], plan: SplitPlan) -> list[list[GraphBatch]]:
    """Each split's graphs as a list of blocks in window order (views of ``batches`` where possible)."""
    parts: list[list[GraphBatch]] = [[] for _ in plan.names]
    first_window = 0
    for batch in batches:
        code = plan.code[first_window : first_window + len(batch)]
        first_window += len(batch)
        for c in np.unique(code[code >= 0]):
            parts[c].append(batch.take(np.flatnonzero(code == c)))
    return parts


def build_graphs(
    frames: pl.DataFrame,
    windows: WindowParams,
    split: SplitParams,
    vocab: VocabParams,
    out_dir: Path,
    progress: bool = True,
) -> dict[str, Any]:
    """Cut a dataset's frame table into window graphs and write the shards + meta.json to ``out_dir``.

    ``frames`` is the canonical table of a whole dataset, sorted by (source, timestamp). The folder is
    replaced atomically: a failure leaves any previous output intact. Returns the metadata written.
    """
    S = windows.size
    sources, offsets, cols, uniq_keys, types = _prepare(conform(frames))
    n_frames = np.diff(offsets)
    starts = [window_starts(int(n), S, windows.stride) for n in n_frames]
    if not any(len(st) for st in starts):
        raise ValueError(
            f"no capture holds a complete window of {S} frames ({int(n_frames.sum())} frames in all)"
        )
    roles = [role_of(s) for s in sources]
    has_attack = [bool(cols.label[lo:hi].any()) for lo, hi in itertools.pairwise(offsets)]
    plan = assign_splits(roles, [len(st) for st in starts], has_attack, windows, split, sources)
    window_rows = np.concatenate([st + offsets[f] for f, st in enumerate(starts)])
    voc = _train_vocab(cols, window_rows, plan.code == 0, S, uniq_keys, vocab.min_count)
    code_vocab = voc.lookup(uniq_keys)

    # Blocks of about CHUNK_SLOTS frames keep the temporaries small enough to stay in cache and be
    # reused by the allocator (whole-file temporaries were ~40 % slower, mostly in page faults).
    per_chunk = max(1, CHUNK_SLOTS // S)
    blocks = [(f, st[i : i + per_chunk]) for f, st in enumerate(starts) for i in range(0, len(st), per_chunk)]
    batches = []
    for f, st in tqdm(blocks, desc="windows → graphs", unit="block", disable=not progress):
        batches.append(
            graphs_of_windows(cols.rows(int(offsets[f]), int(offsets[f + 1])), st, S, len(types), code_vocab)
        )
        batches[-1].file_idx[:] = f
    dropped = drop_duplicates(np.concatenate([b.hashes for b in batches]), plan)
    parts = _by_split(batches, plan)
    scalers = _fit_scalers(parts[0])
    for batch in (b for split_parts in parts for b in split_parts):
        _apply(batch.x, scalers["node"])
        _apply(batch.edge_attr, scalers["edge"])

    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "params": {"windows": windows.model_dump(), "split": split.model_dump(), "vocab": vocab.model_dump()},
        "node_features": NODE_FEATURES,
        "edge_features": EDGE_FEATURES,
        "vocab_size": len(voc),
        "vocab": voc.to_meta(),
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
    with atomic_path(out_dir) as tmp:
        tmp.mkdir()
        for name, split_parts in zip(plan.names, parts, strict=True):
            split_parts = split_parts or [_empty_batch()]
            write_split(tmp / name, [vars(p) for p in split_parts])
            meta["counts"][name] = _split_counts(split_parts, types)
        write_meta(tmp, meta)
    return meta
