"""The padded form the GAT and VGAE are exported in (kdgat/edge/padded.py) computes the study models'
prediction columns, in PyTorch and through ONNX Runtime, on random graphs with isolated nodes (no edge at
all, or only outgoing ones), self-loops on some nodes only, one-node graphs and batches of mixed sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from support.tiny_project import study_params
from torch_geometric.nn import GATConv

from kdgat.config import VGAETrainParams
from kdgat.edge.export import export_rows
from kdgat.edge.padded import PaddedConv, edges_are_distinct, layout, padded_model
from kdgat.edge.runtime import run_rows, session
from kdgat.models import GAT, VGAE, build_gat, build_vgae
from kdgat.train.data import Batch
from kdgat.train.infer import _gat_rows, _vgae_rows
from kdgat.train.weights import save_model

STUDY = study_params()
N_VOCAB, N_FEAT, N_EDGE = 30, 23, 3
COOC = np.random.default_rng(0).uniform(0, 1, (N_VOCAB, N_VOCAB)).round(3).tolist()
META = {
    "vocab_size": N_VOCAB,
    "node_features": [f"f{i}" for i in range(N_FEAT)],
    "edge_features": ["count", "dt_mean", "dt_std"],
    "id_cooccurrence": COOC,
    "counts": {"train": {"benign": 40}},
}
VGAE_TRAIN = VGAETrainParams(w_feat=1.0, w_id=0.5, w_nbr=0.5, w_kl=0.01)


def random_batch(sizes: list[int], seed: int) -> Batch:
    """Graphs of the given node counts: distinct directed edges drawn at random, a self-loop on about half
    the nodes, and in every graph of three or more nodes one node with no edge at all and one with
    outgoing edges only."""
    rng = np.random.default_rng(seed)
    xs, vocab, edges, batch, first = [], [], [], [], 0
    for g, n in enumerate(sizes):
        pairs = {(int(s), int(t)) for s, t in rng.integers(0, n, (3 * n, 2)) if s != t}
        pairs |= {(i, i) for i in range(n) if rng.random() < 0.5}
        if n >= 3:
            pairs = {
                (s, t) for s, t in pairs if n - 1 not in (s, t) and t != n - 2
            }  # n−1 isolated, n−2 sends
        for s, t in sorted(pairs, key=lambda _: rng.random()):  # any edge order
            edges.append((first + s, first + t))
        xs.append(rng.normal(0, 1.5, (n, N_FEAT)))
        vocab.append(rng.integers(0, N_VOCAB, n))
        batch += [g] * n
        first += n
    ei = torch.tensor(edges, dtype=torch.long).t().reshape(2, -1)
    G = len(sizes)
    return Batch(
        torch.tensor(np.concatenate(xs), dtype=torch.float32),
        torch.from_numpy(np.concatenate(vocab)),
        ei,
        torch.tensor(rng.normal(0, 1, (ei.shape[1], N_EDGE)), dtype=torch.float32),
        torch.tensor(batch),
        torch.zeros(G, dtype=torch.long),
        torch.zeros(G, dtype=torch.long),
        G,
    )


def _models() -> dict[str, GAT | VGAE]:
    """The study's student and teacher GAT and student VGAE, seeded, with the GAT layers' biases (0 at
    initialisation) moved off 0: a bias added in the wrong place would show."""
    models: dict[str, GAT | VGAE] = {
        "gat_small": build_gat(STUDY.models.gat.small, META, seed=0),
        "gat_large": build_gat(STUDY.models.gat.large, META, seed=1),
        "vgae_small": build_vgae(STUDY.models.vgae.small, META, seed=2),
    }
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for m in models.values():
            for name, p in m.named_parameters():
                if name.endswith("bias"):
                    p.add_(0.1 * torch.randn(p.shape, generator=gen))
    for m in models.values():
        m.eval()
    return models


def _sparse(model: GAT | VGAE, b: Batch) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        if isinstance(model, GAT):
            return _gat_rows(model, b)
        return _vgae_rows(model, b, {"vgae_train": VGAE_TRAIN.model_dump()})


BATCHES = {
    "mixed sizes": ([5, 1, 17, 3, 9, 2], 0),
    "one window": ([24], 1),
    "one-node graphs": ([1, 1, 1], 2),
    "large block": ([60, 4], 3),
}


@pytest.mark.parametrize("name", sorted(BATCHES))
def test_padded_form_equals_the_sparse_model(name: str) -> None:
    sizes, seed = BATCHES[name]
    b = random_batch(sizes, seed)
    assert edges_are_distinct(b.edge_index)
    for model_name, model in _models().items():
        blob = {"vgae_train": VGAE_TRAIN.model_dump()}
        expected = _sparse(model, b)
        with torch.no_grad():
            got = padded_model(model, blob)(*b.inputs())
        assert set(got) == set(expected), model_name
        for col, want in expected.items():
            assert got[col].shape == (len(sizes),), (model_name, col)
            assert torch.isfinite(got[col]).all(), (model_name, col)
            # float32 sums in another order: relative 1e-5 (emb_norm sums hundreds of squares)
            torch.testing.assert_close(got[col], want, rtol=1e-5, atol=1e-5, msg=f"{model_name} {col}")


def test_isolated_nodes_get_the_sparse_layers_bias_only() -> None:
    # a node without incoming edges aggregates nothing in PyG: its layer output is the bias alone
    model = _models()["gat_small"]
    conv = model.encoder.convs[0]
    assert isinstance(conv, GATConv)
    b = random_batch([6], 4)
    h = torch.randn(6, conv.in_channels)
    with torch.no_grad():
        sparse = conv(h, b.edge_index, b.edge_attr)
        lay = layout(b.edge_index, b.edge_attr, b.batch, 1)
        dense = PaddedConv(conv)(h.unsqueeze(0), lay)[0]
    torch.testing.assert_close(dense, sparse, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(dense[5], conv.bias)  # node 5: no edge at all


def test_duplicate_edges_are_detected() -> None:
    assert edges_are_distinct(torch.tensor([[0, 1, 1], [1, 0, 1]]))
    assert not edges_are_distinct(torch.tensor([[0, 1, 0], [1, 0, 1]]))


def test_padded_form_needs_eval_mode_and_a_graph_model() -> None:
    model = build_gat(STUDY.models.gat.small, META, seed=0)
    with pytest.raises(ValueError, match="eval mode"):
        padded_model(model.train(), {})
    with pytest.raises(TypeError, match="GAT or VGAE"):
        padded_model(torch.nn.Linear(2, 2), {})


@pytest.mark.slow  # torch.export and the ONNX translation: seconds per model
def test_onnx_files_equal_the_sparse_model(tmp_path: Path) -> None:
    batches = {name: random_batch(*BATCHES[name]) for name in BATCHES}
    example = random_batch([7, 5, 9], 9)
    for model_name, model in _models().items():
        weights, dest = tmp_path / f"{model_name}.pt", tmp_path / f"{model_name}.onnx"
        save_model(model, weights, {}, VGAE_TRAIN)
        export_rows(weights, example, dest, opset=18)
        sess = session(dest)
        for name, b in batches.items():
            inputs = dict(
                zip(
                    ("x", "node_vocab", "edge_index", "edge_attr", "batch"),
                    (t.numpy() for t in b.inputs()),
                    strict=True,
                )
            )
            got = run_rows(sess, inputs)
            for col, want in _sparse(model, b).items():
                np.testing.assert_allclose(
                    got[col], want.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{model_name} {name} {col}"
                )
