"""PyG's row scatters lowered to ONNX ScatterND (kdgat/edge/scatter.py): the lowering computes what PyTorch
computes, and the exported study models equal the PyTorch models on random graphs with isolated nodes (no
edge at all, or only outgoing ones), self-loops on some nodes only, duplicate edges, one-node graphs and
batches of mixed sizes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from support.tiny_project import study_params
from torch_geometric.utils import scatter

from kdgat.config import VGAETrainParams
from kdgat.edge.export import export_rows
from kdgat.edge.runtime import run_rows, session
from kdgat.edge.scatter import _row_index, rows_as_scatter_nd, scatter_rows_max
from kdgat.models import GAT, VGAE, build_gat, build_vgae
from kdgat.train.data import Batch
from kdgat.train.infer import _gat_rows, _vgae_rows
from kdgat.train.weights import save_model

STUDY = study_params()
N_VOCAB, N_FEAT, N_EDGE = 30, 23, 3
META = {
    "vocab_size": N_VOCAB,
    "node_features": [f"f{i}" for i in range(N_FEAT)],
    "edge_features": ["count", "dt_mean", "dt_std"],
    "id_cooccurrence": np.random.default_rng(0).uniform(0, 1, (N_VOCAB, N_VOCAB)).round(3).tolist(),
    "counts": {"train": {"benign": 40}},
}
VGAE_TRAIN = VGAETrainParams(w_feat=1.0, w_id=0.5, w_nbr=0.5, w_kl=0.01)
BLOB = {"vgae_train": VGAE_TRAIN.model_dump()}


@pytest.mark.parametrize("include_self", [True, False])
def test_scatter_rows_max_is_scatter_reduce_amax(include_self: bool) -> None:
    target = torch.randn(6, 4)
    rows = torch.tensor([0, 2, 2, 5, 0])  # rows 1, 3, 4 receive nothing
    src = torch.randn(5, 4) - 3  # below target: include_self shows
    index = rows.view(-1, 1).expand_as(src)
    want = target.clone().scatter_reduce_(0, index, src, "amax", include_self=include_self)
    assert torch.equal(scatter_rows_max(target, rows, src, include_self), want)


def test_only_broadcast_row_indices_are_row_scatters() -> None:
    src = torch.randn(5, 3)
    rows = torch.tensor([1, 0, 1, 2, 2])
    assert torch.equal(_row_index(0, rows.view(-1, 1).expand_as(src), src), rows)  # type: ignore[arg-type]
    assert torch.equal(_row_index(0, rows, rows.float()), rows)  # type: ignore[arg-type]
    assert _row_index(0, torch.randint(0, 3, (5, 3)), src) is None  # element-wise index
    assert _row_index(1, rows.view(-1, 1).expand_as(src), src) is None  # along another dimension
    assert _row_index(0, rows.view(-1, 1).expand(5, 2), src) is None  # a part of src only


def test_pyg_scatters_compute_the_same_under_the_lowering() -> None:
    src = torch.randn(7, 4, 3)
    index = torch.tensor([0, 3, 3, 1, 0, 3, 1])  # row 2 receives nothing
    elementwise = torch.randint(0, 4, (7, 4, 3))
    outside = {r: scatter(src, index, 0, dim_size=4, reduce=r) for r in ("sum", "mean", "max")}
    outside_el = torch.zeros(4, 4, 3).scatter_add_(0, elementwise, src)
    methods = {n: getattr(torch.Tensor, n) for n in ("scatter_add_", "scatter_reduce_")}
    with rows_as_scatter_nd():
        inside = {r: scatter(src, index, 0, dim_size=4, reduce=r) for r in outside}
        inside_el = torch.zeros(4, 4, 3).scatter_add_(0, elementwise, src)
    assert all(getattr(torch.Tensor, n) is m for n, m in methods.items())  # put back
    for r, want in outside.items():
        assert torch.equal(inside[r], want), r
    assert torch.equal(inside_el, outside_el)


def random_batch(sizes: list[int], seed: int) -> Batch:
    """Graphs of the given node counts: directed edges drawn at random (some twice), a self-loop on about
    half the nodes, and in every graph of three or more nodes one node with no edge at all and one with
    outgoing edges only."""
    rng = np.random.default_rng(seed)
    xs, vocab, edges, batch, first = [], [], [], [], 0
    for g, n in enumerate(sizes):
        pairs = [(int(s), int(t)) for s, t in rng.integers(0, n, (3 * n, 2)) if s != t]
        pairs += [(i, i) for i in range(n) if rng.random() < 0.5]
        if n >= 3:
            # node n−1 isolated, node n−2 only sends
            pairs = [(s, t) for s, t in pairs if n - 1 not in (s, t) and t != n - 2]
        rng.shuffle(pairs)  # any edge order
        edges += [(first + s, first + t) for s, t in pairs]
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


BATCHES = {
    "mixed sizes": ([5, 1, 17, 3, 9, 2], 0),
    "one window": ([24], 1),
    "one-node graphs": ([1, 1, 1], 2),
    "a large graph": ([60, 4], 3),
}


def _models() -> dict[str, GAT | VGAE]:
    """The study's student and teacher GAT and student VGAE, seeded, with every bias moved off its initial
    value (a GAT layer's starts at 0): a sum taken over the wrong rows would show."""
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
            m.eval()
    return models


@pytest.mark.slow  # torch.export and the ONNX translation: seconds per model
@pytest.mark.parametrize("scatters", ["rows", "elements"])
def test_exported_models_equal_pytorch_on_random_graphs(tmp_path: Path, scatters: str) -> None:
    batches = {name: random_batch(*BATCHES[name]) for name in BATCHES}
    example = random_batch([7, 5, 9], 9)
    for model_name, model in _models().items():
        weights, dest = tmp_path / f"{model_name}.pt", tmp_path / f"{model_name}.onnx"
        save_model(model, weights, {}, VGAE_TRAIN)
        export_rows(weights, example, dest, opset=18, scatters=scatters)
        ops = [n.op_type for n in onnx.load(str(dest)).graph.node]
        # no Python stack of the export in the file: it would hold this checkout's absolute paths
        assert str(Path.cwd()).encode() not in dest.read_bytes(), model_name
        if scatters == "rows" and isinstance(model, GAT):
            assert "ScatterElements" not in ops and "ScatterND" in ops, model_name
        sess = session(dest)
        for name, b in batches.items():
            names = ("x", "node_vocab", "edge_index", "edge_attr", "batch")
            got = run_rows(sess, dict(zip(names, (t.numpy() for t in b.inputs()), strict=True)))
            with torch.no_grad():
                want = _gat_rows(model, b) if isinstance(model, GAT) else _vgae_rows(model, b, BLOB)
            assert set(got) == set(want)
            for col, w in want.items():
                assert got[col].shape == (len(BATCHES[name][0]),)
                # float32 outputs of two runtimes: relative 1e-5 (emb_norm sums hundreds of squares)
                np.testing.assert_allclose(
                    got[col], w.numpy(), rtol=1e-5, atol=1e-5, err_msg=f"{model_name} {name} {col}"
                )


def test_unknown_scatter_form_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="one of rows, elements"):
        export_rows(tmp_path / "none.pt", random_batch([3], 0), tmp_path / "x.onnx", 18, scatters="dense")
