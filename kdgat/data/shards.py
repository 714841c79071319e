"""Graph shards on disk: one folder per dataset, one sub-folder of .npy arrays per split.

    data/graphs/<dataset>/
        meta.json                  counts, feature names, vocabulary, attack types, scalers, parameters
        train/  val/  test_<scenario>/
            node_ptr.npy   [G+1] int64    graph g owns nodes node_ptr[g] : node_ptr[g+1]
            edge_ptr.npy   [G+1] int64    ... and edges edge_ptr[g] : edge_ptr[g+1]
            x.npy          [N, F] float32 scaled node features (meta["node_features"])
            node_vocab.npy [N] int64      vocabulary index of the node's CAN ID (0 = unknown)
            edge_index.npy [2, E] int64   source/target as LOCAL node indices within the graph
            edge_attr.npy  [E, Fe] float32 scaled edge features (meta["edge_features"])
            y.npy          [G] int64      1 if any frame of the window is an attack
            y_type.npy     [G] int64      index into meta["attack_types"] (0 = "none")
            file_idx.npy   [G] int64      index into meta["files"]
            t_start.npy    [G] float64    timestamp of the window's first frame
            start_row.npy  [G] int64      row of the window's first frame within its capture

A few large arrays per split rather than a file per graph: loading is a memory map, and a graph is a
pair of slices. The dataset folder is written as a whole and swapped in atomically (graphs.build_graphs).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from numpy.lib import format as npformat

SCHEMA_VERSION = 1
META_FILE = "meta.json"


class ArraySpec(NamedTuple):
    dtype: np.dtype
    ndim: int
    per: str  # what one row (one column of edge_index) stands for: "graph", "node", "edge", or "ptr"


ARRAYS: dict[str, ArraySpec] = {
    "node_ptr": ArraySpec(np.dtype(np.int64), 1, "ptr"),
    "edge_ptr": ArraySpec(np.dtype(np.int64), 1, "ptr"),
    "x": ArraySpec(np.dtype(np.float32), 2, "node"),
    "node_vocab": ArraySpec(np.dtype(np.int64), 1, "node"),
    "edge_index": ArraySpec(np.dtype(np.int64), 2, "edge"),
    "edge_attr": ArraySpec(np.dtype(np.float32), 2, "edge"),
    "y": ArraySpec(np.dtype(np.int64), 1, "graph"),
    "y_type": ArraySpec(np.dtype(np.int64), 1, "graph"),
    "file_idx": ArraySpec(np.dtype(np.int64), 1, "graph"),
    "t_start": ArraySpec(np.dtype(np.float64), 1, "graph"),
    "start_row": ArraySpec(np.dtype(np.int64), 1, "graph"),
}


@dataclass(frozen=True)
class Graph:
    x: np.ndarray  # [n, F] float32
    node_vocab: np.ndarray  # [n] int64
    edge_index: np.ndarray  # [2, e] int64, local
    edge_attr: np.ndarray  # [e, Fe] float32
    y: int
    y_type: int


@dataclass(frozen=True)
class GraphSplit:
    """One split's arrays (memory-mapped, read-only); ``graph(i)`` slices out one window's graph."""

    name: str
    node_ptr: np.ndarray
    edge_ptr: np.ndarray
    x: np.ndarray
    node_vocab: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    y: np.ndarray
    y_type: np.ndarray
    file_idx: np.ndarray
    t_start: np.ndarray
    start_row: np.ndarray

    def __len__(self) -> int:
        return len(self.y)

    def graph(self, i: int) -> Graph:
        if not -len(self) <= i < len(self):
            raise IndexError(f"graph {i} out of range for split {self.name!r} of {len(self)} graphs")
        i %= len(self)
        n0, n1 = int(self.node_ptr[i]), int(self.node_ptr[i + 1])
        e0, e1 = int(self.edge_ptr[i]), int(self.edge_ptr[i + 1])
        return Graph(
            np.asarray(self.x[n0:n1]),
            np.asarray(self.node_vocab[n0:n1]),
            np.asarray(self.edge_index[:, e0:e1]),
            np.asarray(self.edge_attr[e0:e1]),
            int(self.y[i]),
            int(self.y_type[i]),
        )


def write_split(folder: Path, parts: Sequence[Mapping[str, np.ndarray]]) -> None:
    """Write one split from blocks of consecutive graphs, streamed into each .npy (no concatenation).

    Each part holds ``n_nodes`` and ``n_edges`` per graph plus every array of ARRAYS except the two
    pointer arrays, with the part's own rows (edge_index [2, e] in local node indices). Pass at least
    one part; an empty one gives an empty split.
    """
    if not parts:
        raise ValueError("write_split needs at least one (possibly empty) part")
    folder.mkdir(parents=True, exist_ok=True)
    n_nodes = np.concatenate([p["n_nodes"] for p in parts]).astype(np.int64)
    n_edges = np.concatenate([p["n_edges"] for p in parts]).astype(np.int64)
    for name, counts in (("node_ptr", n_nodes), ("edge_ptr", n_edges)):
        np.save(folder / f"{name}.npy", np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    expected = {"node": int(n_nodes.sum()), "edge": int(n_edges.sum()), "graph": len(n_nodes)}
    for name, (dtype, ndim, per) in ARRAYS.items():
        if per == "ptr":
            continue
        blocks = [p[name] for p in parts]
        for b in blocks:
            if b.dtype != dtype or b.ndim != ndim:
                raise ValueError(f"{name}: expected {ndim}-d {dtype}, got {b.ndim}-d {b.dtype}")
        if name == "edge_index":  # [2, E]: all sources first, then all targets
            shape: tuple[int, ...] = (2, sum(b.shape[1] for b in blocks))
            rows, length = [b[r] for r in (0, 1) for b in blocks], shape[1]
        else:
            shape = (sum(len(b) for b in blocks), *blocks[0].shape[1:])
            rows, length = blocks, shape[0]
        if length != expected[per]:
            raise ValueError(f"{name}: {length} entries for {expected[per]} {per}s")
        with open(folder / f"{name}.npy", "wb") as f:
            header = {"descr": npformat.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
            npformat.write_array_header_1_0(f, header)
            for r in rows:
                f.write(np.ascontiguousarray(r).data)


def load_split(root: str | Path, split: str) -> GraphSplit:
    """Memory-map one split of a dataset's graph folder."""
    folder = Path(root) / split
    if not folder.is_dir():
        have = sorted(p.name for p in Path(root).iterdir() if p.is_dir()) if Path(root).is_dir() else []
        raise FileNotFoundError(f"{folder}: no such split (available: {', '.join(have) or 'none'})")
    arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in ARRAYS}
    return GraphSplit(split, **arrays)


def write_meta(root: Path, meta: dict[str, Any]) -> None:
    (root / META_FILE).write_text(json.dumps(meta, indent=1) + "\n")


def load_meta(root: str | Path) -> dict[str, Any]:
    path = Path(root) / META_FILE
    meta: dict[str, Any] = json.loads(path.read_text())
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"{path}: schema version {meta.get('schema_version')}, this code reads {SCHEMA_VERSION}"
        )
    return meta
