"""The study's GAT and VGAE recomputed on padded dense blocks, the form the ONNX files are exported in.

A window's graph has a few dozen nodes (its distinct CAN IDs). PyG's sparse message passing exports to
ONNX ScatterElements with reductions, which ONNX Runtime runs element by element: 70–75 % of the student
GAT's time went there. Here each graph of a batch becomes one block of ``M`` slots (M = its largest
graph's node count): node states [G, M, F], an adjacency mask [G, M, M] and the attention logits of every
(receiver, sender) pair, so a GATConv layer is a masked softmax over each row and one batched MatMul, and
pooling is a reduction over the slots. Same weights, same arithmetic up to float rounding (sums taken in
another order); the parity report and tests/test_edge_padded.py hold it to the sparse model.

The one assumption beyond the exported files' inputs: a graph holds each directed edge at most once (the
graphs stage keeps distinct consecutive ID pairs, and training adds a self-loop only where missing), since
a dense block has one cell per node pair. ``edges_are_distinct`` checks that.
"""

from __future__ import annotations

from typing import Any, NamedTuple, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import GATConv

from kdgat.models import GAT, VGAE, anomaly_score
from kdgat.models.encoder import GATEncoder
from kdgat.models.vgae import DEFAULT_NEG_SHIFTS, LOGVAR_CLAMP
from kdgat.train.data import Batch
from kdgat.train.infer import _gat_rows
from kdgat.train.weights import vgae_weights

# PyG's softmax adds this to every denominator (torch_geometric/utils/_softmax.py): kept for equal values
SOFTMAX_EPS = 1e-16


# added to the logits of node pairs without an edge: their softmax weight underflows to exactly 0
NO_EDGE = -1e30


class Layout(NamedTuple):
    """Where a batch's nodes and edges sit in the padded blocks."""

    node: Tensor  # [G·M] int64: the node in each slot (0 for an empty slot)
    valid: Tensor  # [G, M] float 0/1: the slot holds a node
    counts: Tensor  # [G] float: nodes per graph
    adj: Tensor  # [G, 1, M, M] float 0/1: adj[g, 0, i, j] = 1 when edge j → i (row: receiver)
    no_edge: Tensor  # [G, 1, M, M] float: 0 on an edge, NO_EDGE elsewhere
    edge_attr: Tensor  # [G, Fe, M·M] float: each edge's attributes in its (receiver, sender) cell, else 0


def layout(edge_index: Tensor, edge_attr: Tensor, batch: Tensor, num_graphs: int) -> Layout:
    """The padded layout of a batch (``batch`` sorted, as collate and the detector give it)."""
    n = batch.shape[0]
    # per-graph counts by comparison, not by a scatter: [G, N] is small and ONNX Runtime runs it at once
    member = batch.unsqueeze(0) == torch.arange(num_graphs).unsqueeze(1)
    counts = member.sum(dim=1)
    first = torch.cumsum(counts, 0) - counts
    # .item() (typed as a number, a SymInt while exporting): the exporter keeps the block size symbolic,
    # where int() would freeze it
    m = cast(int, counts.max().item())
    slots = torch.arange(m)
    valid = slots.unsqueeze(0) < counts.unsqueeze(1)
    node = torch.where(
        valid, first.unsqueeze(1) + slots.unsqueeze(0), torch.zeros_like(valid, dtype=torch.long)
    )
    local = torch.arange(n) - first[batch]
    src, dst = edge_index[0], edge_index[1]
    cell = (batch[dst] * m + local[dst]) * m + local[src]
    cells = num_graphs * m * m
    adj = torch.zeros(cells).index_put((cell,), torch.ones_like(cell, dtype=torch.float32))
    adj = adj.view(num_graphs, 1, m, m)
    fe = edge_attr.shape[1]
    attr = torch.zeros(cells, fe).index_put((cell,), edge_attr).view(num_graphs, m * m, fe)
    return Layout(
        node.view(-1),
        valid.float(),
        counts.float(),
        adj,
        (1 - adj) * NO_EDGE,
        attr.transpose(1, 2),
    )


def edges_are_distinct(edge_index: Tensor) -> bool:
    """Whether no directed edge appears twice (the condition under which the padded form is exact)."""
    return bool(torch.unique(edge_index, dim=1).shape[1] == edge_index.shape[1])


class PaddedConv(nn.Module):
    """A trained GATConv (GATEncoder's configuration) for padded blocks, its attention vectors folded into
    the projections: ⟨W x, a⟩ = x · (Wᵀ a), so one MatMul gives the messages and both attention terms."""

    proj: Tensor  # [F, H·C + 2H]: W ‖ W·att_src ‖ W·att_dst, per head
    edge_att: Tensor  # [H, Fe]: lin_edge folded with att_edge
    bias: Tensor  # [H·C]

    def __init__(self, conv: GATConv) -> None:
        super().__init__()
        if conv.lin is None or conv.res is not None or not conv.concat or conv.lin_edge is None:
            raise ValueError(
                "padded GATConv: needs one shared input projection, edge features, concatenated heads and "
                "no residual (the GATEncoder configuration)"
            )
        H, C = conv.heads, conv.out_channels
        self.heads, self.channels, self.slope = H, C, conv.negative_slope
        with torch.no_grad():
            w = conv.lin.weight.view(H, C, -1)  # [H, C, F]
            fold = [(w * a.view(H, C, 1)).sum(dim=1) for a in (conv.att_src, conv.att_dst)]  # [H, F] each
            self.register_buffer("proj", torch.cat([conv.lin.weight, *fold]).t().contiguous())
            we = conv.lin_edge.weight.view(H, C, -1)
            self.register_buffer("edge_att", (we * conv.att_edge.view(H, C, 1)).sum(dim=1))
            bias = conv.bias if conv.bias is not None else torch.zeros(H * C)
            self.register_buffer("bias", bias.detach().clone())

    def forward(self, h: Tensor, lay: Layout) -> Tensor:
        """Padded node states [G, M, F] → [G, M, H·C]: PyG's edge_update and propagate (gat_conv.py) with
        a receiver's edges in its row of the block."""
        G, M, _ = h.shape
        H, C = self.heads, self.channels
        xw, att = (h @ self.proj).split([H * C, 2 * H], dim=-1)
        a_src, a_dst = att.transpose(1, 2).split(H, dim=1)  # [G, H, M] each
        a_edge = (self.edge_att @ lay.edge_attr).view(G, H, M, M)
        # alpha_j + alpha_i, then + alpha_edge, in PyG's order (j: sender = column, i: receiver = row)
        logits = F.leaky_relu(a_src.unsqueeze(2) + a_dst.unsqueeze(3) + a_edge, self.slope)
        # softmax over the row's edges; a row without edges (no self-loop either) weighs nothing. PyG adds
        # 1e-16 to the denominator, which is >= 1 here (its largest term is exp(0)): no change in float32
        alpha = torch.softmax(logits + lay.no_edge, dim=-1) * lay.adj  # [G, H, M(i), M(j)]
        out = alpha @ xw.view(G, M, H, C).transpose(1, 2)  # Σ_j alpha[i, j] · xw[j]: [G, H, M, C]
        return out.transpose(1, 2).reshape(G, M, H * C) + self.bias


class PaddedEncoder(nn.Module):
    """GATEncoder in eval mode on padded blocks."""

    def __init__(self, enc: GATEncoder) -> None:
        super().__init__()
        self.id_embedding = enc.id_embedding
        self.convs = nn.ModuleList(PaddedConv(c) for c in enc.convs)

    def forward(self, x: Tensor, node_vocab: Tensor, lay: Layout) -> list[Tensor]:
        """Every layer's states [G, M, width], first to last (empty slots hold values that are never used
        unmasked)."""
        G, M = lay.valid.shape
        h = torch.cat([self.id_embedding(node_vocab), x], dim=-1).index_select(0, lay.node).view(G, M, -1)
        states = []
        for conv in self.convs:
            h = F.elu(conv(h, lay))
            states.append(h)
        return states


def _slot_sum(v: Tensor, lay: Layout) -> Tensor:
    """Σ over a graph's nodes of per-slot values [G, M, ...] (empty slots do not count)."""
    w = lay.valid.view(*lay.valid.shape, *([1] * (v.dim() - 2)))
    return (v * w).sum(dim=1)


def _graph_mean(v: Tensor, lay: Layout) -> Tensor:
    """Mean over a graph's nodes of per-slot values [G, M, ...] (as a scatter mean: 0 without nodes)."""
    total = _slot_sum(v, lay)
    return total / lay.counts.clamp(min=1).view(-1, *([1] * (total.dim() - 1)))


def _padded(v: Tensor, lay: Layout) -> Tensor:
    """Per-node values [N, ...] → per slot [G, M, ...]."""
    return v.index_select(0, lay.node).view(*lay.valid.shape, *v.shape[1:])


def _num_graphs(batch: Tensor) -> int:
    # .item(): the exporter keeps the graph count symbolic (int() would freeze it)
    return cast(int, batch.max().item()) + 1


class PaddedGAT(nn.Module):
    """A trained GAT's prediction-table columns (kdgat/train/infer.py), computed on padded blocks."""

    def __init__(self, model: GAT) -> None:
        super().__init__()
        if model.training:
            raise ValueError("PaddedGAT: the model must be in eval mode (no dropout in the exported files)")
        self.model = model
        self.encoder = PaddedEncoder(model.encoder)

    def embed(self, x: Tensor, node_vocab: Tensor, lay: Layout) -> Tensor:
        """GAT.embed: the pooled graph embedding [G, graph_embed_dim]."""
        model = self.model
        jk = torch.cat(self.encoder(x, node_vocab, lay), dim=-1)
        pools = {
            "sum": lambda: _slot_sum(jk, lay),
            "mean": lambda: _graph_mean(jk, lay),
            # + NO_EDGE on empty slots: below every real state, and exact on the others
            "max": lambda: (jk + ((1 - lay.valid) * NO_EDGE).unsqueeze(-1)).amax(dim=1),
        }
        pooled = [pools[p]() for p in model.scale.pooling]
        if model.profile is not None and model.node_score is not None:
            # the ID profile as GAT.embed builds it, summed over slots instead of scattered over nodes
            ids = F.one_hot(node_vocab, model.n_vocab).to(x.dtype)
            per_node = torch.cat([ids, ids * model.node_score(x)], dim=-1)
            held, scored = _slot_sum(_padded(per_node, lay), lay).split(model.n_vocab, dim=-1)
            present = (held > 0).to(x.dtype)
            expected = (present.unsqueeze(2) * model.absence_surprise.unsqueeze(0)).amax(dim=1)
            surprise = (1 - present) * expected + present * model.presence_surprise
            summary = [surprise.amax(dim=-1, keepdim=True), surprise.sum(dim=-1, keepdim=True)]
            pooled.append(model.profile(torch.cat([held, scored, surprise, *summary], dim=-1)))
        return torch.cat(pooled, dim=-1)

    def head(self, emb: Tensor) -> Tensor:
        return self.model.head(emb)

    def forward(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> dict[str, Tensor]:
        num_graphs = _num_graphs(batch)
        lay = layout(edge_index, edge_attr, batch, num_graphs)
        # the prediction table's own code (infer._gat_rows) with this object as the GAT: it calls only
        # embed(inputs, num_graphs=...) and head
        b = Batch(x, node_vocab, edge_index, edge_attr, batch, batch, batch, num_graphs)
        return _gat_rows(_Embedder(self, lay), b)  # type: ignore[arg-type]


class _Embedder:
    """PaddedGAT with GAT's embed/head interface, over a layout already built."""

    def __init__(self, padded: PaddedGAT, lay: Layout) -> None:
        self.padded, self.lay, self.head = padded, lay, padded.head

    def embed(self, x: Tensor, node_vocab: Tensor, *_: Tensor, num_graphs: int | None = None) -> Tensor:
        del num_graphs  # the layout holds it
        return self.padded.embed(x, node_vocab, self.lay)


class PaddedVGAE(nn.Module):
    """A trained VGAE's prediction-table columns (kdgat/train/infer.py: VGAE.forward and graph_errors in
    eval mode, z = μ, the fixed shifted negative pairs), computed on padded blocks."""

    def __init__(self, model: VGAE, blob: dict[str, Any]) -> None:
        super().__init__()
        if model.training:
            raise ValueError("PaddedVGAE: the model must be in eval mode (z = μ in the exported files)")
        self.model, self.blob = model, blob
        self.encoder = PaddedEncoder(model.encoder)

    def forward(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor, batch: Tensor
    ) -> dict[str, Tensor]:
        model = self.model
        lay = layout(edge_index, edge_attr, batch, _num_graphs(batch))
        h = self.encoder(x, node_vocab, lay)[-1]
        mu = model.mu_head(h)
        logvar = model.logvar_head(h).clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)
        feat = (model.feat_decoder(mu) - _padded(x, lay)).pow(2).mean(dim=-1)
        logp = F.log_softmax(model.id_decoder(mu), dim=-1)
        ident = -logp.gather(-1, _padded(node_vocab, lay).unsqueeze(-1)).squeeze(-1)
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)
        errors = {
            "feat_mse": _graph_mean(feat, lay),
            "id_ce": _graph_mean(ident, lay),
            "nbr_bce": self._neighbour_bce(mu, lay),
            "kl": _graph_mean(kl, lay).clamp(min=0.0),
        }
        # infer._vgae_rows' columns (tests/test_edge_padded.py holds the two equal)
        mean = _graph_mean(mu.mean(dim=-1), lay)
        sq = _graph_mean(mu.pow(2).mean(dim=-1), lay)
        return {
            "score": anomaly_score(errors, vgae_weights(self.blob)),
            **errors,
            "latent_mean": mean,
            "latent_std": (sq - mean.pow(2)).clamp(min=0).sqrt(),
            "latent_norm": _graph_mean(mu.norm(dim=-1), lay),
        }

    @staticmethod
    def _neighbour_bce(mu: Tensor, lay: Layout) -> Tensor:
        """graph_errors' nbr_bce over every (source, target) pair of a block: logits z_s · z_t; positives
        the edges without self-loops, negatives the shifted pairs that are not edges."""
        M = mu.shape[1]
        logits = mu @ mu.transpose(1, 2)  # [G, M(s), M(t)]
        edge = lay.adj.squeeze(1).transpose(
            1, 2
        )  # source → target (the attention mask runs receiver → sender)
        slots = torch.arange(M)
        off_diagonal = (slots.unsqueeze(0) != slots.unsqueeze(1)).to(mu.dtype)
        pos_w = edge * off_diagonal
        pos = (F.softplus(-logits) * pos_w).sum(dim=(1, 2)) / pos_w.sum(dim=(1, 2)).clamp(min=1.0)
        # shifted_pairs: source i with target (i + s) mod n for s = 1..k; a pair drawn by several s counts
        # as often as it is drawn
        n = lay.counts.to(torch.int64).clamp(min=1).view(-1, 1, 1)
        step = (slots.view(1, 1, M) - slots.view(1, M, 1)) % n  # (t − s) mod n
        drawn = sum((step == s % n).to(mu.dtype) for s in range(1, DEFAULT_NEG_SHIFTS + 1))
        both = lay.valid.unsqueeze(2) * lay.valid.unsqueeze(1)
        neg_w = drawn * both * (1 - edge)
        neg = (F.softplus(logits) * neg_w).sum(dim=(1, 2)) / neg_w.sum(dim=(1, 2)).clamp(min=1.0)
        return pos + neg


def padded_model(model: nn.Module, blob: dict[str, Any]) -> PaddedGAT | PaddedVGAE:
    """The padded form of a study GAT or VGAE (``load_model``'s model and blob)."""
    if isinstance(model, GAT):
        return PaddedGAT(model)
    if isinstance(model, VGAE):
        return PaddedVGAE(model, blob)
    raise TypeError(f"padded form: a GAT or VGAE, not {type(model).__name__}")
