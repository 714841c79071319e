"""Graph splits in memory and mini-batches cut from them by vectorized slicing.

A split is held as one big disconnected graph (global node indices; edges never cross windows), so the
self-loops every GATConv needs are added once at load time for the whole split, and a batch is a few
gathers: no per-graph Python loop, no PyG ``Data`` objects. PyG's DataLoader collates graph by graph
and is several times slower on graphs this small.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch_geometric.utils import add_remaining_self_loops

from kdgat.data.shards import load_split

STREAM_SHUFFLE = 1  # seed streams: one per independent use of randomness in an epoch
STREAM_SAMPLE = 2
STREAM_TORCH = 3


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed that depends only on (seed, stream, epoch), so a resumed run redraws the same."""
    return int(np.random.SeedSequence([seed, stream, epoch]).generate_state(2, np.uint64)[0] >> 1)


@dataclass(frozen=True)
class Batch:
    """Graphs of one mini-batch; edge_index holds batch-global node indices, self-loops included."""

    x: Tensor  # [N, F] float32
    node_vocab: Tensor  # [N] int64
    edge_index: Tensor  # [2, E] int64
    edge_attr: Tensor  # [E, Fe] float32
    batch: Tensor  # [N] int64, graph of each node
    y: Tensor  # [G] int64
    y_type: Tensor  # [G] int64
    num_graphs: int

    def inputs(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """The positional arguments of the models' forward / embed / attention."""
        return self.x, self.node_vocab, self.edge_index, self.edge_attr, self.batch

    def to(self, device: torch.device | str) -> Batch:
        """The batch on ``device``. To a GPU through pinned memory: a copy from pageable memory makes the
        host wait for every step queued before it, so the next batch could not be prepared meanwhile."""
        pin = torch.device(device).type == "cuda"
        moved = {f.name: getattr(self, f.name) for f in fields(self)}
        for k, v in moved.items():
            if isinstance(v, Tensor):
                moved[k] = (v.pin_memory() if pin else v).to(device, non_blocking=True)
        return Batch(**moved)


@dataclass(frozen=True)
class GraphSet:
    """One split in memory: graph g owns nodes node_ptr[g]:node_ptr[g+1], edges edge_ptr[g]:edge_ptr[g+1]."""

    name: str
    x: Tensor
    node_vocab: Tensor
    edge_index: Tensor  # [2, E] GLOBAL node indices within the split, self-loops added
    edge_attr: Tensor
    node_ptr: Tensor  # [G+1]
    edge_ptr: Tensor  # [G+1]
    y: Tensor
    y_type: Tensor

    def __len__(self) -> int:
        return len(self.y)

    @property
    def n_node_features(self) -> int:
        return int(self.x.shape[1])

    @property
    def n_edge_features(self) -> int:
        return int(self.edge_attr.shape[1])


def _tensor(a: np.ndarray) -> Tensor:
    return torch.from_numpy(np.array(a))  # a copy: the shards are read-only memory maps


def _ranges(starts: Tensor, counts: Tensor) -> Tensor:
    """Concatenation of arange(s, s + c) for each (s, c), without a Python loop."""
    offsets = torch.cumsum(counts, 0) - counts
    total = int(counts.sum())
    return torch.arange(total, dtype=torch.long) + torch.repeat_interleave(starts - offsets, counts)


def load_graphs(root: str | Path, split: str) -> GraphSet:
    """Read one split of a graph folder into memory and add the missing self-loops to every node.

    A loop added to a node gets the mean attributes of the node's incoming edges (zeros if none); the
    loops already in the data (an ID following itself) keep their own attributes.
    """
    s = load_split(root, split)
    node_ptr, edge_ptr = _tensor(s.node_ptr), _tensor(s.edge_ptr)
    G = len(s.y)
    n_nodes, n_edges = node_ptr.diff(), edge_ptr.diff()
    edge_graph = torch.repeat_interleave(torch.arange(G), n_edges)
    local = _tensor(s.edge_index)
    bad = (local < 0).any(0) | (local >= n_nodes[edge_graph]).any(0)
    if bool(bad.any()):
        e = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"{Path(root) / split}/edge_index.npy: edge {e} of graph {int(edge_graph[e])} points outside "
            f"its graph's {int(n_nodes[edge_graph[e]])} nodes"
        )
    N = int(node_ptr[-1]) if G else 0
    node_graph = torch.repeat_interleave(torch.arange(G), n_nodes)
    edge_index, edge_attr = add_remaining_self_loops(
        local + node_ptr[edge_graph], _tensor(s.edge_attr), fill_value="mean", num_nodes=N
    )
    assert edge_attr is not None
    # add_remaining_self_loops appends all loops after the other edges: regroup the edges by graph.
    owner = node_graph[edge_index[0]]
    order = torch.argsort(owner, stable=True)
    counts = torch.bincount(owner, minlength=G)
    return GraphSet(
        name=split,
        x=_tensor(s.x),
        node_vocab=_tensor(s.node_vocab),
        edge_index=edge_index[:, order].contiguous(),
        edge_attr=edge_attr[order].contiguous(),
        node_ptr=node_ptr,
        edge_ptr=torch.cat([torch.zeros(1, dtype=torch.long), torch.cumsum(counts, 0)]),
        y=_tensor(s.y),
        y_type=_tensor(s.y_type),
    )


def collate(graphs: GraphSet, indices: Sequence[int] | np.ndarray | Tensor) -> Batch:
    """The graphs ``indices`` of a split as one batch (in the order given)."""
    idx = torch.as_tensor(np.asarray(indices), dtype=torch.long).reshape(-1)
    n0, e0 = graphs.node_ptr[idx], graphs.edge_ptr[idx]
    n, e = graphs.node_ptr[idx + 1] - n0, graphs.edge_ptr[idx + 1] - e0
    nodes, edges = _ranges(n0, n), _ranges(e0, e)
    new_start = torch.cumsum(n, 0) - n  # where each graph's nodes begin in the batch
    shift = torch.repeat_interleave(new_start - n0, e)
    return Batch(
        x=graphs.x[nodes],
        node_vocab=graphs.node_vocab[nodes],
        edge_index=graphs.edge_index[:, edges] + shift,
        edge_attr=graphs.edge_attr[edges],
        batch=torch.repeat_interleave(torch.arange(len(idx)), n),
        y=graphs.y[idx],
        y_type=graphs.y_type[idx],
        num_graphs=len(idx),
    )


class GraphLoader:
    """Batches of the graphs ``indices``; shuffled (by ``seed`` alone) when asked. Re-iterable."""

    def __init__(
        self,
        graphs: GraphSet,
        indices: Sequence[int] | np.ndarray | Tensor | None = None,
        batch_size: int = 64,
        shuffle: bool = False,
        seed: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        all_idx = torch.arange(len(graphs)) if indices is None else torch.as_tensor(np.asarray(indices))
        self.graphs, self.indices = graphs, all_idx.to(torch.long).reshape(-1)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def order(self) -> Tensor:
        if not self.shuffle:
            return self.indices
        gen = torch.Generator().manual_seed(self.seed)
        return self.indices[torch.randperm(len(self.indices), generator=gen)]

    def __iter__(self) -> Iterator[Batch]:
        order = self.order()
        for start in range(0, len(order), self.batch_size):
            yield collate(self.graphs, order[start : start + self.batch_size])
