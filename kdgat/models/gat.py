"""Supervised graph classifier: CAN-ID embedding ‖ node features → stacked GAT layers → jumping knowledge
→ mean ‖ max pooling → MLP → class logits.

Self-loops must already be in ``edge_index`` (added in preprocessing with the mean of the node's incoming
edge attributes): ``GATConv(add_self_loops=False)`` keeps the forward free of data-dependent branches, which
is what lets ``torch.onnx.export(dynamo=True)`` trace it for any number of graphs and nodes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv, global_max_pool, global_mean_pool

from kdgat.config import GATScale


class GAT(nn.Module):
    def __init__(
        self, scale: GATScale, n_vocab: int, n_node_features: int, n_edge_features: int, n_classes: int = 2
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
        self.dropout = scale.dropout
        self.id_embedding = nn.Embedding(n_vocab, scale.embed_dim)
        width = scale.hidden * scale.heads
        self.convs = nn.ModuleList(
            GATConv(
                scale.embed_dim + n_node_features if i == 0 else width,
                scale.hidden,
                heads=scale.heads,
                concat=True,
                dropout=scale.dropout,
                add_self_loops=False,
                edge_dim=n_edge_features,
            )
            for i in range(scale.layers)
        )
        # mean and max of the concatenation of every layer's node states
        self.graph_embed_dim = 2 * scale.layers * width
        self.head = nn.Sequential(
            nn.Linear(self.graph_embed_dim, scale.mlp_hidden),
            nn.ELU(),
            nn.Dropout(scale.dropout),
            nn.Linear(scale.mlp_hidden, n_classes),
        )

    def _node_input(self, x: Tensor, node_vocab: Tensor) -> Tensor:
        return torch.cat([self.id_embedding(node_vocab), x], dim=-1)

    def _layer(self, i: int, h: Tensor, edge_index: Tensor, edge_attr: Tensor) -> Tensor:
        h = F.elu(self.convs[i](h, edge_index, edge_attr))
        return F.dropout(h, p=self.dropout, training=self.training)

    def embed(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> Tensor:
        """Pooled graph embedding [G, graph_embed_dim]: the input of the MLP head."""
        h = self._node_input(x, node_vocab)
        states = []
        for i in range(len(self.convs)):
            h = self._layer(i, h, edge_index, edge_attr)
            states.append(h)
        jk = torch.cat(states, dim=-1)
        # .item() rather than int(): the exporter keeps an unknown graph count symbolic instead of failing
        num_graphs = batch.max().item() + 1
        return torch.cat(
            [global_mean_pool(jk, batch, num_graphs), global_max_pool(jk, batch, num_graphs)], dim=-1
        )

    def forward(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> Tensor:
        """Class logits [G, n_classes]; G is the number of distinct graphs in ``batch`` (0..G-1)."""
        return self.head(self.embed(x, node_vocab, edge_index, edge_attr, batch))

    @torch.no_grad()
    def attention(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> list[tuple[Tensor, Tensor]]:
        """Per layer, (edge_index [2, E], alpha [E, heads]) as the layer saw them (dropout as per mode)."""
        del batch  # same arguments as forward, so callers can pass a batch unchanged
        h = self._node_input(x, node_vocab)
        out: list[tuple[Tensor, Tensor]] = []
        for conv in self.convs:
            h, (ei, alpha) = conv(h, edge_index, edge_attr, return_attention_weights=True)
            h = F.dropout(F.elu(h), p=self.dropout, training=self.training)
            out.append((ei, alpha))
        return out
