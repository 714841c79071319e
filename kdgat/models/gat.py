"""Supervised graph classifier: CAN-ID embedding ‖ node features → stacked GAT layers → jumping knowledge
→ pooling (mean ‖ max, optionally sum) ‖ ID profile (optional) → MLP → class logits.

The encoder (kdgat/models/encoder.py) is shared with the VGAE and exports to ONNX.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn.functional import one_hot
from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

from kdgat.config import GATScale
from kdgat.data.vocab import UNKNOWN
from kdgat.models.encoder import GATEncoder, meta_sizes, seeded

_POOL = {"mean": global_mean_pool, "max": global_max_pool, "sum": global_add_pool}


class GAT(nn.Module):
    absence_surprise: Tensor  # buffer [n_vocab, n_vocab]
    presence_surprise: Tensor  # buffer [n_vocab]

    def __init__(
        self,
        scale: GATScale,
        n_vocab: int,
        n_node_features: int,
        n_edge_features: int,
        n_classes: int = 2,
        id_cooccurrence: Tensor | None = None,
        benign_windows: int = 0,
        skip: tuple[int, int] = (0, 0),
    ) -> None:
        super().__init__()
        if n_vocab < 1 or n_node_features < 0 or n_edge_features < 1 or n_classes < 2:
            raise ValueError(
                f"GAT: need n_vocab >= 1, n_node_features >= 0, n_edge_features >= 1, n_classes >= 2 "
                f"(got {n_vocab}, {n_node_features}, {n_edge_features}, {n_classes})"
            )
        self.scale = scale
        self.n_vocab = n_vocab
        self.n_node_features = n_node_features
        self.n_edge_features = n_edge_features
        self.n_classes = n_classes
        # node-feature columns [start, stop) it does not read (build_gat: the range features unless the
        # scale's byte_ranges); the slices are fixed, so the exported graph holds them as constants
        self.skip = skip
        if not 0 <= skip[0] <= skip[1] <= n_node_features:
            raise ValueError(f"GAT: skip {skip} outside 0..{n_node_features}")
        n_node_features -= skip[1] - skip[0]
        self.encoder = GATEncoder.from_scale(scale, n_vocab, n_node_features, n_edge_features)
        width = self.encoder.width
        # each readout of the concatenation of every layer's node states
        self.graph_embed_dim = len(scale.pooling) * scale.layers * width + scale.id_profile
        # per graph: the IDs it holds, each ID times a learned score of its node (count, timing), how
        # surprising each absent ID's absence is given the IDs held (benign training co-occurrence, in
        # nats) and an unknown ID's presence, and the largest and summed surprise — the same two numbers
        # whichever ID went silent or appeared
        self.node_score = nn.Linear(n_node_features, 1) if scale.id_profile else None
        self.profile = (
            nn.Sequential(nn.Linear(3 * n_vocab + 2, scale.id_profile), nn.ELU())
            if scale.id_profile
            else None
        )
        cooc = torch.zeros(n_vocab, n_vocab) if id_cooccurrence is None else id_cooccurrence.float()
        if cooc.shape != (n_vocab, n_vocab):
            raise ValueError(f"GAT: id_cooccurrence is {tuple(cooc.shape)}, needs ({n_vocab}, {n_vocab})")
        # -log(1 - C[u, v]): the surprise of v's absence next to u (kdgat.data.vocab.id_cooccurrence);
        # a buffer, so it is saved with the weights and exported with the graph
        self.register_buffer("absence_surprise", -torch.log1p(-cooc.clamp(0, 1 - 1e-6)))
        # an unknown ID was in none of the benign training windows: log(n + 1), the same shrinkage
        presence = torch.zeros(n_vocab)
        presence[UNKNOWN] = math.log1p(benign_windows)
        self.register_buffer("presence_surprise", presence)
        self.head = nn.Sequential(
            nn.Linear(self.graph_embed_dim, scale.mlp_hidden),
            nn.ELU(),
            nn.Dropout(scale.dropout),
            nn.Linear(scale.mlp_hidden, n_classes),
        )

    def inputs(self, x: Tensor) -> Tensor:
        """The node-feature columns it reads (all but ``skip``)."""
        if self.skip[1] == self.skip[0]:
            return x
        return torch.cat([x[:, : self.skip[0]], x[:, self.skip[1] :]], dim=-1)

    def embed(
        self,
        x: Tensor,
        node_vocab: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        batch: Tensor,
        num_graphs: int | None = None,
    ) -> Tensor:
        """Pooled graph embedding [G, graph_embed_dim]: the input of the MLP head. ``num_graphs``, when the
        caller knows it, spares reading it back from the device (a GPU sync per forward)."""
        x = self.inputs(x)
        jk = torch.cat(self.encoder(x, node_vocab, edge_index, edge_attr), dim=-1)
        if num_graphs is None:
            # .item() rather than int(): the exporter keeps an unknown graph count symbolic instead of failing
            num_graphs = batch.max().item() + 1  # type: ignore[assignment]
        pooled = [_POOL[p](jk, batch, num_graphs) for p in self.scale.pooling]
        if self.profile is not None and self.node_score is not None:
            ids = one_hot(node_vocab, self.n_vocab).to(x.dtype)
            per_node = torch.cat([ids, ids * self.node_score(x)], dim=-1)
            held, scored = global_add_pool(per_node, batch, num_graphs).split(self.n_vocab, dim=-1)
            present = (held > 0).to(x.dtype)
            expected = (present.unsqueeze(2) * self.absence_surprise.unsqueeze(0)).amax(dim=1)
            surprise = (1 - present) * expected + present * self.presence_surprise
            summary = [surprise.amax(dim=-1, keepdim=True), surprise.sum(dim=-1, keepdim=True)]
            pooled.append(self.profile(torch.cat([held, scored, surprise, *summary], dim=-1)))
        return torch.cat(pooled, dim=-1)

    def forward(
        self,
        x: Tensor,
        node_vocab: Tensor,
        edge_index: Tensor,
        edge_attr: Tensor,
        batch: Tensor,
        num_graphs: int | None = None,
    ) -> Tensor:
        """Class logits [G, n_classes]; G is the number of distinct graphs in ``batch`` (0..G-1)."""
        return self.head(self.embed(x, node_vocab, edge_index, edge_attr, batch, num_graphs))

    @torch.no_grad()
    def attention(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """Per layer, (edge_index [2, E], alpha [E, heads]) as the layer saw them (dropout as per mode)."""
        del batch  # same arguments as forward, so callers can pass a batch unchanged
        return self.encoder.attention(self.inputs(x), node_vocab, edge_index, edge_attr)


def build_gat(scale: GATScale, meta: Mapping[str, Any], n_classes: int = 2, seed: int | None = None) -> GAT:
    """A GAT sized for the dataset; with ``seed`` its initial weights depend on the seed only."""
    n_vocab, n_feat, n_edge = meta_sizes(meta)
    skip = (0, 0) if scale.byte_ranges else range_columns(meta)
    # datasets made before these were recorded: no absence or unknown ID is surprising
    cooc = meta.get("id_cooccurrence")
    benign = int(meta.get("counts", {}).get("train", {}).get("benign", 0))
    with seeded(seed):
        return GAT(
            scale,
            n_vocab,
            n_feat,
            n_edge,
            n_classes,
            None if cooc is None else torch.tensor(cooc),
            benign,
            skip,
        )


def range_columns(meta: Mapping[str, Any]) -> tuple[int, int]:
    """[start, stop) of the graphs' range features (windows.byte_ranges): just before the absence features,
    which come last (kdgat/data/graphs.py); (n, n) when there are none."""
    n_feat = len(meta["node_features"])
    stop = n_feat - len(meta.get("absence_features", []))
    return stop - len(meta.get("range_features", [])), stop
