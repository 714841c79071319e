"""Per-window computation: windows of one capture's frames → graph arrays (nodes, edges, labels, hashes).

A window is ``size`` consecutive frames of one capture. Its nodes are its distinct CAN IDs; its directed
edges the distinct consecutive pairs ID(t) → ID(t+1), self-loops included when an ID repeats. No other
self-loops are added here: the model adds them where its layers need them.

Everything is vectorized over blocks of many windows. Because every window has the same size, the
(window, frame) table is a [W, size] matrix: sorting each row by ID code groups a window's frames by
node (a stable sort keeps them in time order), and a cumulative sum over "row starts a new ID" flags
numbers the nodes of all windows in one pass. Per-node and per-edge statistics are then sums over
those numbers (np.bincount, or differences of running sums along the sorted rows). Standard deviations
are population ones.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from kdgat.data.splits import content_hashes
from kdgat.data.vocab import UNKNOWN

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
# With windows.byte_ranges: how far the node's bytes lie outside its ID's levels in reference traffic
RANGE_FEATURES = [
    "range_excess",  # the largest distance of a byte mean outside the ID's reference range, in range widths
    "window_range_excess",  # the largest range_excess in the window (the same on every node of it)
]
# range_excess is a distance over (the range's width + this): a byte every drive holds at one value is not
# out by a whole width when a new drive sends the next value (an eighth of a byte's 256 levels)
RANGE_FLOOR = 32.0
# With windows.absent_ids: what the window lacks of its vehicle's steady traffic (absence_features)
ABSENCE_FEATURES = [
    "absent_expected",  # expected IDs (period ≤ window duration / EXPECT_FRAMES) absent from the window
    "absent_frames",  # frames those absent IDs should have sent in the window
    "rate_vs_expected",  # log2(frames of this ID / frames its period predicts), clipped; 0 if not expected
]
EXPECT_FRAMES = 2.0  # an ID is expected in a window that lasts this many of its periods or more
RATE_CLIP = 3.0  # rate_vs_expected within ±3 (an eighth .. 8 times the expected frames)
EDGE_FEATURES = [
    "count",  # transitions u → v in the window
    "dt_mean",  # seconds from the u frame to the following v frame
    "dt_std",
]


@dataclass
class Columns:
    """numpy views of the frames of one capture (or of the whole table)."""

    key: np.ndarray  # int64 ID key (vocab.id_keys)
    code: np.ndarray  # dense ID code (int8, 16 or 32): position of key in the sorted distinct keys
    ts: np.ndarray  # float64
    payload: np.ndarray  # [n, 8] uint8, C order
    dlc: np.ndarray  # uint8
    label: np.ndarray  # uint8
    tcode: np.ndarray  # int16 attack-type index, 0 for benign frames

    def rows(self, lo: int, hi: int) -> Columns:
        return Columns(*(getattr(self, f.name)[lo:hi] for f in fields(self)))

    def windows(self, starts: np.ndarray, size: int) -> Columns:
        """The frames of the windows beginning at rows ``starts``, window after window.

        Windows that tile the rows (stride == size) are a plain slice; overlapping ones are gathered,
        once for every column.
        """
        W = len(starts)
        if W == 1 or starts[1] - starts[0] == size:
            return self.rows(int(starts[0]), int(starts[0]) + W * size)
        idx = (starts[:, None] + np.arange(size)).ravel()
        return Columns(*(getattr(self, f.name).take(idx, axis=0) for f in fields(self)))


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
    hashes: np.ndarray  # [G, 2] uint64 content hash (splits.content_hashes), for splits.drop_duplicates

    def __len__(self) -> int:
        return len(self.y)


def window_starts(n_frames: int, size: int, stride: int) -> np.ndarray:
    """Start rows of the complete windows of a capture of ``n_frames`` frames."""
    n = (n_frames - size) // stride + 1 if n_frames >= size else 0
    return np.arange(n, dtype=np.int64) * stride


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


def _segment_sums(a: np.ndarray, last: np.ndarray, row_first: np.ndarray) -> np.ndarray:
    """Sums over the segments of the rows of ``a`` [W, L, ...] (overwritten), as [n_segments, ...].

    Segments are runs of consecutive positions that tile each row; ``last`` holds the flat position
    (row * L + column) of each segment's last element and ``row_first`` the segments that begin a row.
    A segment's sum is the difference of two running row sums, so integer lanes packed into uint64
    words (see _byte_stats) add correctly as long as a whole row's total fits a lane.
    """
    W, L = a.shape[:2]
    running = np.cumsum(a, axis=1, out=a).reshape(W * L, -1)  # in place: half the memory traffic
    ends = running.take(last, axis=0)
    sums = ends.copy()
    sums[1:] -= ends[:-1]
    sums[row_first] = ends[row_first]
    return sums.reshape(len(last), *a.shape[2:])


def _byte_stats(
    payload_sorted: np.ndarray,
    last: np.ndarray,
    row_first: np.ndarray,
    count: np.ndarray,
    mean_out: np.ndarray,
    std_out: np.ndarray,
) -> None:
    """Per-segment mean and std of the 8 payload bytes [W, L, 8], written into [n_segments, 8] columns.

    The bytes and their squares are widened to lanes just wide enough for a row's total and summed as
    whole uint64 words (_segment_sums): no carry crosses a lane, so one pass adds all eight columns at
    integer speed. The variance n·Σx² − (Σx)² is then exact in integers.
    """

    def lane_sums(values: np.ndarray) -> np.ndarray:  # [W, L, 8] → [n_segments, 8], same lanes
        return _segment_sums(values.view(np.uint64), last, row_first).view(values.dtype)

    L = payload_sorted.shape[1]
    total = lane_sums(payload_sorted.astype(_lane(L * 255)))
    squares = payload_sorted.astype(_lane(L * 255 * 255))
    total_sq = lane_sums(np.multiply(squares, squares, out=squares))
    exact = np.int32 if L * L * 255 * 255 < 2**31 else np.int64
    var_n2: np.ndarray = total_sq.astype(exact)
    var_n2 *= count.astype(exact)[:, None]
    total = total.astype(exact)
    var_n2 -= total * total  # n·Σx² − (Σx)² = n² · variance
    n = count.astype(np.float32)[:, None]
    np.divide(total.astype(np.float32), n, out=mean_out)  # dividing keeps a constant byte's mean exact
    std = var_n2.astype(np.float32)
    np.divide(np.sqrt(std, out=std), n, out=std_out)


def _lane(largest: int) -> type[np.unsignedinteger]:
    """The narrowest unsigned type of at least 16 bits that holds ``largest``."""
    return next(t for t in (np.uint16, np.uint32, np.uint64) if largest <= np.iinfo(t).max)


def expected_periods(profiles: list[tuple[np.ndarray, np.ndarray]], n_vocab: int) -> np.ndarray:
    """[P, n_vocab] float64 period in seconds of each vocabulary slot in each vehicle profile, inf where
    the vehicle does not send it. A profile is (slots, periods) of one vehicle's IDs: a known vehicle's
    from its training traffic, an unseen one's from its calibration traffic through its ID alignment.
    The unknown slot is never expected; two IDs on one slot keep the shorter period."""
    out = np.full((len(profiles), n_vocab), np.inf)
    for p, (slots, periods) in enumerate(profiles):
        slots = np.asarray(slots, dtype=np.int64)
        keep = slots != UNKNOWN
        np.minimum.at(out[p], slots[keep], np.asarray(periods, dtype=np.float64)[keep])
    return out


def range_features(
    n_nodes: np.ndarray,
    node_vocab: np.ndarray,
    byte_mean: np.ndarray,
    ranges: np.ndarray,
    profile: np.ndarray,
) -> np.ndarray:
    """[N, 2] RANGE_FEATURES: how far each node's byte means [N, 8] lie outside its slot's ranges in the
    window's vehicle profile (``profile`` [W], window_profiles), and the window's largest such distance on
    every node (as the absence counts: one forged ID then weighs on the whole graph, not on one node of
    thirty). A distance counts in widths of its range (+ RANGE_FLOOR): a byte whose levels move from
    drive to drive over a hundred values steps further out on a new drive than one whose every drive
    keeps to a few; ``ranges`` [P, V, 2, 8] holds each profile's lowest and highest value of every byte per
    vocabulary slot (kdgat/data/ranges.py)."""
    out = np.zeros((len(node_vocab), len(RANGE_FEATURES)), dtype=np.float32)
    if not len(node_vocab):
        return out
    graph = np.repeat(np.arange(len(n_nodes)), n_nodes)
    bounds = ranges[profile[graph], node_vocab]  # [N, 2, 8]
    excess = np.maximum(bounds[:, 0] - byte_mean, byte_mean - bounds[:, 1])
    width = bounds[:, 1] - bounds[:, 0] + RANGE_FLOOR
    out[:, 0] = np.maximum((excess / width).max(axis=1), 0.0)
    starts = np.cumsum(n_nodes) - n_nodes
    out[:, 1] = np.repeat(np.maximum.reduceat(out[:, 0], starts), n_nodes)
    return out


def window_profiles(
    n_nodes: np.ndarray, node_vocab: np.ndarray, duration: np.ndarray, expected: np.ndarray
) -> np.ndarray:
    """[W] the vehicle profile that best explains each window: fewest of its IDs outside the profile, then
    fewest expected IDs absent (``expected`` = expected_periods(...) [P, V])."""
    return _profile_fit(n_nodes, node_vocab, duration, expected)[0]


def _profile_fit(
    n_nodes: np.ndarray, node_vocab: np.ndarray, duration: np.ndarray, expected: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """window_profiles, and per window and profile the frames each slot should send [W, P, V], which
    expected slots are absent [W, P, V] and how many [W, P]."""
    W = len(n_nodes)
    P, V = expected.shape
    graph = np.repeat(np.arange(W), n_nodes)
    present = np.zeros((W, V), dtype=bool)
    present[graph, node_vocab] = True
    present[:, UNKNOWN] = False
    member = np.isfinite(expected)  # [P, V]
    outside = present.astype(np.float32) @ (~member).T.astype(np.float32)  # [W, P] IDs it cannot explain
    due = duration[:, None, None] / expected[None]  # [W, P, V] frames each slot should send; 0 off-profile
    absent = (due >= EXPECT_FRAMES) & ~present[:, None, :]
    n_absent = absent.sum(axis=2)  # [W, P]
    profile = np.lexsort((n_absent, outside), axis=-1)[:, 0] if P > 1 else np.zeros(W, dtype=np.int64)
    return profile, due, absent, n_absent


def absence_features(
    n_nodes: np.ndarray,
    node_vocab: np.ndarray,
    count: np.ndarray,
    duration: np.ndarray,
    expected: np.ndarray,
) -> np.ndarray:
    """[N, 3] ABSENCE_FEATURES of the nodes of windows with ``n_nodes`` nodes each, ``count`` frames per
    node and ``duration`` seconds per window, given ``expected`` = expected_periods(...) [P, V].

    Each window is read against the vehicle profile that best explains it: fewest of its IDs outside the
    profile, then fewest expected IDs absent. An ID is expected when the window lasts EXPECT_FRAMES of its
    periods or more; the first two features (the same on every node of the window: a graph-level signal
    the pooling carries to the readout) count the expected IDs absent and the frames they should have
    sent, whichever IDs they are; the third compares each node's frames with its period's prediction.
    """
    W, N = len(n_nodes), len(node_vocab)
    out = np.zeros((N, len(ABSENCE_FEATURES)), dtype=np.float32)
    if W == 0 or len(expected) == 0:
        return out
    profile, due, absent, n_absent = _profile_fit(n_nodes, node_vocab, duration, expected)
    graph = np.repeat(np.arange(W), n_nodes)
    rows = np.arange(W)
    due_w = due[rows, profile]  # [W, V]
    absent_w = absent[rows, profile]
    out[:, 0] = np.repeat(n_absent[rows, profile], n_nodes)
    out[:, 1] = np.repeat(np.where(absent_w, due_w, 0.0).sum(axis=1), n_nodes)
    node_due = due_w[graph, node_vocab]
    ok = node_due >= EXPECT_FRAMES
    ratio = np.log2(count[ok] / node_due[ok])
    out[ok, 2] = np.clip(ratio, -RATE_CLIP, RATE_CLIP)
    return out


def graphs_of_windows(
    c: Columns,
    starts: np.ndarray,
    size: int,
    n_types: int,
    code_vocab: np.ndarray,
    expected: np.ndarray | None = None,
    ranges: np.ndarray | None = None,
) -> GraphBatch:
    """The graphs of the windows of one capture beginning at rows ``starts`` (file_idx left 0).

    ``n_types`` is the number of attack types (benign included); ``code_vocab`` maps a dense ID code to
    its vocabulary index. With ``ranges`` (kdgat/data/ranges.py, for the profiles of ``expected``)
    the nodes carry RANGE_FEATURES after NODE_FEATURES; with ``expected`` (expected_periods, over the same
    vocabulary) ABSENCE_FEATURES last.
    """
    W, S = len(starts), size
    if ranges is not None and (expected is None or ranges.shape[:2] != expected.shape):
        raise ValueError("byte ranges need the expected periods of the same vehicle profiles")
    n_range = len(RANGE_FEATURES) if ranges is not None else 0
    n_absence = len(ABSENCE_FEATURES) if expected is not None else 0
    if W == 0:
        return empty_batch(len(NODE_FEATURES) + n_range + n_absence)
    w = c.windows(starts, S)
    M = W * S
    ts = w.ts.reshape(W, S)
    order, scode, new = _row_groups(w.code.reshape(W, S))  # order: flat slot of each sorted position
    flat_new = new.ravel()
    first = np.flatnonzero(flat_new)  # sorted position of each node's first frame
    N = len(first)
    count = np.diff(first, append=M)
    last = first + count - 1
    n_nodes = new.sum(axis=1)
    node_start = np.cumsum(n_nodes) - n_nodes
    node_sorted = np.cumsum(flat_new)  # node number of each sorted position
    node_sorted -= 1
    node = np.empty(M, dtype=np.int64)
    node[order] = node_sorted  # node number of each slot, in time order

    n_feat = len(NODE_FEATURES)
    x = np.empty((N, n_feat + n_range + n_absence), dtype=np.float32)
    payload_sorted = w.payload.take(order, axis=0).reshape(W, S, 8)
    _byte_stats(payload_sorted, last, node_start, count, x[:, 0:8], x[:, 8:16])
    x[:, 16] = count / S
    sts = ts.ravel().take(order)
    gap = np.empty(M)
    np.subtract(sts[1:], sts[:-1], out=gap[1:])
    gap[first] = 0.0  # a node's first frame has no predecessor of the same ID
    gap *= gap
    iat_total = sts.take(last) - sts.take(first)
    _mean_std(iat_total, np.bincount(node_sorted, gap, N), count - 1, x[:, 17], x[:, 18])
    x[:, 19] = order.take(last) % S / S
    x[:, 22] = np.bincount(node, w.dlc, N) / count

    # Edges: consecutive (local src, local dst) pairs, grouped per row like the nodes.
    local = (node.reshape(W, S) - node_start[:, None]).astype(np.int16 if S * S < 2**15 else np.int64)
    ekey = local[:, :-1] * local.dtype.type(S)
    ekey += local[:, 1:]
    eorder, sekey, enew = _row_groups(ekey)  # int16 keys: numpy sorts the rows by radix
    efirst = np.flatnonzero(enew.ravel())
    edge_sorted = np.cumsum(enew.ravel())
    edge_sorted -= 1
    n_edges = enew.sum(axis=1).astype(np.int64)
    E = len(efirst)
    gaps = np.diff(ts, axis=1)
    dt = gaps.ravel().take(eorder)
    ecount = np.diff(efirst, append=W * (S - 1))
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
    np.divmod(sekey.ravel().take(efirst), S, out=(edge_index[0], edge_index[1]))
    edge_win_start = np.repeat(node_start, n_edges)
    x[:, 20] = np.bincount(edge_index[1] + edge_win_start, minlength=N)
    x[:, 21] = np.bincount(edge_index[0] + edge_win_start, minlength=N)

    node_vocab = code_vocab.take(scode.ravel().take(first))
    duration = ts[:, -1] - ts[:, 0]
    if ranges is not None:
        assert expected is not None
        profile = window_profiles(n_nodes, node_vocab, duration, expected)
        x[:, n_feat : n_feat + n_range] = range_features(n_nodes, node_vocab, x[:, 0:8], ranges, profile)
    if expected is not None:
        x[:, n_feat + n_range :] = absence_features(n_nodes, node_vocab, count, duration, expected)

    y = w.label.reshape(W, S).max(axis=1).astype(np.int64)
    y_type = np.zeros(W, dtype=np.int64)
    if y.any():  # most frequent attack type among the attack frames; ties go to the lower index
        tc = w.tcode.reshape(W, S).astype(np.int64)
        per = np.bincount((tc + (np.arange(W) * n_types)[:, None]).ravel(), minlength=W * n_types)
        per = per.reshape(W, n_types)
        per[:, 0] = 0
        y_type = np.where(y > 0, per.argmax(axis=1), 0)

    return GraphBatch(
        n_nodes=n_nodes,
        n_edges=n_edges,
        x=x,
        node_vocab=node_vocab,
        edge_index=edge_index,
        edge_attr=edge_attr,
        y=y,
        y_type=y_type,
        t_start=ts[:, 0].copy(),
        start_row=starts.copy(),
        file_idx=np.zeros(W, dtype=np.int64),
        hashes=_content_hashes(w, gaps),
    )


def _content_hashes(w: Columns, gaps: np.ndarray) -> np.ndarray:
    """Hashes of windows given as ``w`` = their frames, window after window, and their [W, S - 1] gaps."""
    shape = (gaps.shape[0], gaps.shape[1] + 1)
    return content_hashes(
        w.key.reshape(shape), w.dlc.reshape(shape), w.payload.view(np.uint64).reshape(shape), gaps
    )


def empty_batch(n_node_features: int = len(NODE_FEATURES)) -> GraphBatch:
    z = np.zeros(0, dtype=np.int64)
    return GraphBatch(
        z,
        z,
        np.zeros((0, n_node_features), np.float32),
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
