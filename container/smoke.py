"""Smoke test of an installed environment (the container's %test; tests/test_env_files.py runs it here):
the student GAT at its default size fits 8 random window graphs in 15 Adam steps on the CPU, and on the
GPU too when one is visible, after checking that this torch build has kernels for that GPU (a V100 is
sm_70, which newer CUDA builds leave out)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
from torch_geometric.utils import add_remaining_self_loops

from kdgat.config import load_params
from kdgat.models import build_gat

N_VOCAB, N_FEATURES, N_EDGE_FEATURES = 76, 23, 3  # the default dataset's sizes
META = {
    "vocab_size": N_VOCAB,
    "node_features": [f"f{i}" for i in range(N_FEATURES)],
    "edge_features": [f"e{i}" for i in range(N_EDGE_FEATURES)],
}


def batch(n_graphs: int = 8, nodes: int = 20, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    edges = torch.randint(0, nodes, (2, 3 * nodes), generator=gen)
    edge_index, edge_attr = add_remaining_self_loops(
        edges, torch.rand(edges.shape[1], N_EDGE_FEATURES, generator=gen), fill_value="mean", num_nodes=nodes
    )
    offsets = [g * nodes for g in range(n_graphs)]
    return (
        torch.randn(n_graphs * nodes, N_FEATURES, generator=gen),
        torch.randint(1, N_VOCAB, (n_graphs * nodes,), generator=gen),
        torch.cat([edge_index + o for o in offsets], dim=1),
        edge_attr.repeat(n_graphs, 1),
        torch.arange(n_graphs).repeat_interleave(nodes),
        torch.arange(n_graphs) % 2,  # labels
    )


def fit(device: str, steps: int = 15) -> tuple[float, float]:
    torch.manual_seed(0)
    small = load_params(Path(__file__).resolve().parents[1] / "params.yaml").models.gat.small
    model = build_gat(small, META, seed=0).to(device)
    *inputs, labels = (t.to(device) for t in batch())
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(*inputs), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], losses[-1]


def main() -> int:
    devices = ["cpu"]
    if torch.cuda.is_available():
        major, minor = torch.cuda.get_device_capability()
        arch = f"sm_{major}{minor}"
        if arch not in torch.cuda.get_arch_list():
            print(f"FAIL: torch {torch.__version__} has no kernels for {arch}: {torch.cuda.get_arch_list()}")
            return 1
        devices.append("cuda")
    for device in devices:
        t0 = time.perf_counter()
        first, last = fit(device)
        print(f"{device}: loss {first:.3f} -> {last:.3f} in {time.perf_counter() - t0:.1f} s")
        if not last < 0.5 * first:
            print(f"FAIL: the GAT did not fit 8 graphs on {device}")
            return 1
    print(f"ok: torch {torch.__version__}, cuda {torch.version.cuda}, devices {devices}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
