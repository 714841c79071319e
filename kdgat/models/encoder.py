"""The node encoder the GAT and the VGAE share: CAN-ID embedding ‖ node features → stacked GAT layers.

Self-loops must already be in ``edge_index`` (added in preprocessing with the mean of the node's incoming
edge attributes): ``GATConv(add_self_loops=False)`` keeps the forward free of data-dependent branches, which
is what lets ``torch.onnx.export(dynamo=True)`` trace it for any number of graphs and nodes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from kdgat.config import GATScale, VGAEScale


class GATEncoder(nn.Module):
    def __init__(
        self,
        n_vocab: int,
        n_node_features: int,
        n_edge_features: int,
        *,
        embed_dim: int,
        hidden: int,
        heads: int,
        layers: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.dropout = dropout
        self.width = hidden * heads  # heads are concatenated
        self.id_embedding = nn.Embedding(n_vocab, embed_dim)
        self.convs = nn.ModuleList(
            GATConv(
                embed_dim + n_node_features if i == 0 else self.width,
                hidden,
                heads=heads,
                concat=True,
                dropout=dropout,
                add_self_loops=False,
                edge_dim=n_edge_features,
            )
            for i in range(layers)
        )

    @classmethod
    def from_scale(
        cls, scale: GATScale | VGAEScale, n_vocab: int, n_node_features: int, n_edge_features: int
    ) -> GATEncoder:
        return cls(
            n_vocab,
            n_node_features,
            n_edge_features,
            embed_dim=scale.embed_dim,
            hidden=scale.hidden,
            heads=scale.heads,
            layers=scale.layers,
            dropout=scale.dropout,
        )

    def forward(self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor) -> list[Tensor]:
        """Every layer's node states [N, width], first to last."""
        h = torch.cat([self.id_embedding(node_vocab), x], dim=-1)
        states = []
        for conv in self.convs:
            h = F.dropout(F.elu(conv(h, edge_index, edge_attr)), p=self.dropout, training=self.training)
            states.append(h)
        return states

    @torch.no_grad()
    def attention(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """Per layer, (edge_index [2, E], alpha [E, heads]) as the layer saw them (dropout as per mode)."""
        h = torch.cat([self.id_embedding(node_vocab), x], dim=-1)
        out: list[tuple[Tensor, Tensor]] = []
        for conv in self.convs:
            h, (ei, alpha) = conv(h, edge_index, edge_attr, return_attention_weights=True)
            h = F.dropout(F.elu(h), p=self.dropout, training=self.training)
            out.append((ei, alpha))
        return out


def meta_sizes(meta: Mapping[str, Any]) -> tuple[int, int, int]:
    """(n_vocab, n_node_features, n_edge_features) from a dataset's meta.json."""
    try:
        return int(meta["vocab_size"]), len(meta["node_features"]), len(meta["edge_features"])
    except KeyError as err:
        raise KeyError(
            f"meta.json lacks {err.args[0]!r} (needs vocab_size, node_features, edge_features)"
        ) from None


@contextmanager
def seeded(seed: int | None) -> Iterator[None]:
    # fork_rng: a seeded build must not shift the caller's random stream
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
