"""Variational graph auto-encoder trained on benign graphs; its reconstruction error is the anomaly score.

Encoder: CAN-ID embedding ‖ node features → stacked GAT layers → per-node μ and log σ² (clamped to ±10 so
exp() stays finite). Decoders read z (= μ in eval mode, so scores are deterministic): an MLP for the node
features, a linear classifier for the node's CAN ID (vocabulary row), and an inner product for the
neighbour set.

Neighbour BCE, per graph: the mean over positive pairs (edges with source ≠ target: every node carries an
added self-loop, so a self-loop says nothing about the window) plus the mean over negative pairs (node
pairs of the same graph that are not edges). Negatives come from ``sample_negative_pairs`` (random,
reproducible from a torch.Generator: for training) or, by default, ``shifted_pairs`` (node i with node
(i + s) mod n of its own graph for s = 1..k: fixed, so a graph's score does not depend on its batch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.utils import scatter

from kdgat.config import VGAEScale, VGAETrainParams
from kdgat.models.encoder import GATEncoder, meta_sizes, seeded

LOGVAR_CLAMP = 10.0
DEFAULT_NEG_SHIFTS = 3


class VGAEOutput(NamedTuple):
    mu: Tensor  # [N, latent]
    logvar: Tensor  # [N, latent], within ±LOGVAR_CLAMP
    z: Tensor  # [N, latent]
    x_hat: Tensor  # [N, F]
    id_logits: Tensor  # [N, n_vocab]


class VGAE(nn.Module):
    def __init__(
        self,
        scale: VGAEScale,
        n_vocab: int,
        n_node_features: int,
        n_edge_features: int,
        n_inputs: int | None = None,
    ) -> None:
        super().__init__()
        if n_vocab < 1 or n_node_features < 1 or n_edge_features < 1:
            raise ValueError(
                f"VGAE: need n_vocab, n_node_features, n_edge_features >= 1 "
                f"(got {n_vocab}, {n_node_features}, {n_edge_features})"
            )
        self.scale = scale
        self.n_vocab = n_vocab
        self.n_node_features = n_node_features
        self.n_edge_features = n_edge_features
        # the node features it reads and reconstructs: the first n_inputs columns (build_vgae: all but the
        # absence features unless the scale's absent_ids)
        self.n_inputs = n_node_features if n_inputs is None else n_inputs
        if not 1 <= self.n_inputs <= n_node_features:
            raise ValueError(f"VGAE: n_inputs {self.n_inputs} outside 1..{n_node_features}")
        n_node_features = self.n_inputs
        self.encoder = GATEncoder.from_scale(scale, n_vocab, n_node_features, n_edge_features)
        width = self.encoder.width
        self.mu_head = nn.Linear(width, scale.latent)
        self.logvar_head = nn.Linear(width, scale.latent)
        self.feat_decoder = nn.Sequential(
            nn.Linear(scale.latent, width), nn.ELU(), nn.Linear(width, n_node_features)
        )
        self.id_decoder = nn.Linear(scale.latent, n_vocab)

    def encode(
        self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor
    ) -> tuple[Tensor, Tensor]:
        h = self.encoder(x[:, : self.n_inputs], node_vocab, edge_index, edge_attr)[-1]
        logvar = self.logvar_head(h).clamp(-LOGVAR_CLAMP, LOGVAR_CLAMP)
        return self.mu_head(h), logvar

    def forward(self, x: Tensor, node_vocab: Tensor, edge_index: Tensor, edge_attr: Tensor) -> VGAEOutput:
        mu, logvar = self.encode(x, node_vocab, edge_index, edge_attr)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        return VGAEOutput(mu, logvar, z, self.feat_decoder(z), self.id_decoder(z))

    @staticmethod
    def neighbour_logits(z: Tensor, pairs: Tensor) -> Tensor:
        """Inner-product decoder: logit that pairs[0] → pairs[1] is an edge, [P]."""
        return (z[pairs[0]] * z[pairs[1]]).sum(dim=-1)

    def graph_errors(
        self,
        out: VGAEOutput,
        x: Tensor,
        node_vocab: Tensor,
        edge_index: Tensor,
        batch: Tensor,
        num_graphs: int,
        neg_pairs: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Per-graph errors, each [num_graphs] and >= 0: feat_mse, id_ce, nbr_bce, kl (per node, summed
        over latent dimensions, averaged over the graph's nodes)."""
        if neg_pairs is None:
            neg_pairs = shifted_pairs(batch, num_graphs)

        def per_graph(values: Tensor, index: Tensor, weight: Tensor | None = None) -> Tensor:
            if weight is None:
                return scatter(values, index, dim=0, dim_size=num_graphs, reduce="mean")
            total = scatter(values * weight, index, dim=0, dim_size=num_graphs, reduce="sum")
            count = scatter(weight, index, dim=0, dim_size=num_graphs, reduce="sum")
            return total / count.clamp(min=1.0)

        feat = F.mse_loss(out.x_hat, x[:, : self.n_inputs], reduction="none").mean(dim=-1)
        ident = F.cross_entropy(out.id_logits, node_vocab, reduction="none")
        kl = -0.5 * (1 + out.logvar - out.mu.pow(2) - out.logvar.exp()).sum(dim=-1)

        pos_w = (edge_index[0] != edge_index[1]).to(x.dtype)
        pos_bce = F.softplus(-self.neighbour_logits(out.z, edge_index))  # -log σ(logit)
        neg_w = (~_is_edge(neg_pairs, edge_index, x.shape[0])).to(x.dtype)
        neg_bce = F.softplus(self.neighbour_logits(out.z, neg_pairs))  # -log(1 - σ(logit))
        nbr = per_graph(pos_bce, batch[edge_index[0]], pos_w) + per_graph(neg_bce, batch[neg_pairs[0]], neg_w)
        return {
            "feat_mse": per_graph(feat, batch),
            "id_ce": per_graph(ident, batch),
            "nbr_bce": nbr,
            "kl": per_graph(kl, batch).clamp(min=0.0),  # exact KL is >= 0; clamp only rounding
        }


def _is_edge(pairs: Tensor, edge_index: Tensor, num_nodes: int) -> Tensor:
    """[P] bool: whether each pair is an edge of edge_index (global indices)."""
    keys = edge_index[0] * num_nodes + edge_index[1]
    return torch.isin(pairs[0] * num_nodes + pairs[1], keys)


def _graph_layout(batch: Tensor, num_graphs: int) -> tuple[Tensor, Tensor]:
    """Per node: the first node of its graph and its graph's node count (batch must be sorted)."""
    counts = torch.bincount(batch, minlength=num_graphs)
    starts = torch.cumsum(counts, 0) - counts
    return starts[batch], counts[batch]


def shifted_pairs(batch: Tensor, num_graphs: int, shifts: int = DEFAULT_NEG_SHIFTS) -> Tensor:
    """Fixed candidate negatives [2, shifts·N]: node i with node (i + s) mod n of its graph, s = 1..shifts.
    Pairs that are edges (or self-pairs in tiny graphs) are discarded by the loss, not here."""
    start, count = _graph_layout(batch, num_graphs)
    local = torch.arange(batch.numel(), device=batch.device) - start
    src = torch.arange(batch.numel(), device=batch.device).repeat(shifts)
    step = torch.arange(1, shifts + 1, device=batch.device).repeat_interleave(batch.numel())
    dst = start.repeat(shifts) + (local.repeat(shifts) + step) % count.repeat(shifts)
    return torch.stack([src, dst])


def sample_negative_pairs(
    batch: Tensor,
    num_graphs: int,
    per_node: int = DEFAULT_NEG_SHIFTS,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Random candidate negatives [2, per_node·N]: each node with uniformly drawn nodes of its own graph;
    the same generator state gives the same pairs. Pairs that are edges are discarded by the loss."""
    start, count = _graph_layout(batch, num_graphs)
    n = batch.numel()
    src = torch.arange(n, device=batch.device).repeat(per_node)
    # drawn on the generator's own device (a CPU generator cannot feed a CUDA draw), then moved
    gen_device = generator.device if generator is not None else batch.device
    u = torch.rand(per_node * n, generator=generator, device=gen_device).to(batch.device)
    offset = (u * count.repeat(per_node)).long().clamp(max=count.repeat(per_node) - 1)
    return torch.stack([src, start.repeat(per_node) + offset])


def anomaly_score(errors: dict[str, Tensor], weights: VGAETrainParams) -> Tensor:
    """[G] reconstruction score of each graph (no KL term): higher is more anomalous."""
    return (
        weights.w_feat * errors["feat_mse"]
        + weights.w_id * errors["id_ce"]
        + weights.w_nbr * errors["nbr_bce"]
    )


def vgae_loss(errors: dict[str, Tensor], weights: VGAETrainParams) -> Tensor:
    """Scalar training loss: the mean over graphs of the anomaly score plus the weighted KL."""
    return (anomaly_score(errors, weights) + weights.w_kl * errors["kl"]).mean()


def build_vgae(scale: VGAEScale, meta: Mapping[str, Any], seed: int | None = None) -> VGAE:
    """A VGAE sized for the dataset; with ``seed`` its initial weights depend on the seed only."""
    n_vocab, n_feat, n_edge = meta_sizes(meta)
    # the graphs stage's absence features (windows.absent_ids) come last; a VGAE without absent_ids skips them
    n_inputs = n_feat if scale.absent_ids else n_feat - len(meta.get("absence_features", []))
    with seeded(seed):
        return VGAE(scale, n_vocab, n_feat, n_edge, n_inputs)
