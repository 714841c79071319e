"""GAT and VGAE: shapes, gradients, sizes per scale, VGAE error terms, a tiny overfit, seeding, ONNX."""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import pytest
import torch
from support.tiny_project import study_params
from torch_geometric.utils import add_remaining_self_loops

from kdgat.config import GATScale, VGAEScale
from kdgat.models import (
    GAT,
    VGAE,
    anomaly_score,
    build_gat,
    build_vgae,
    count_parameters,
    sample_negative_pairs,
    shifted_pairs,
    vgae_loss,
)
from kdgat.models.gat import range_columns
from kdgat.train.weights import load_model, save_model

STUDY = study_params()  # the repository's params.yaml

META = {"vocab_size": 76, "node_features": [f"f{i}" for i in range(23)], "edge_features": ["c", "m", "s"]}
N_VOCAB, N_FEAT, N_EDGE = 76, 23, 3
SCALES = ["large", "small"]
TINY_GAT = GATScale(
    embed_dim=4,
    hidden=8,
    heads=2,
    layers=2,
    mlp_hidden=8,
    dropout=0.0,
    pooling=("mean", "max"),
    id_profile=0,
    byte_ranges=True,
)


class RandomBatch(NamedTuple):
    x: torch.Tensor
    node_vocab: torch.Tensor
    edge_index: torch.Tensor
    edge_attr: torch.Tensor
    batch: torch.Tensor
    num_graphs: int

    @property
    def inputs(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.x, self.node_vocab, self.edge_index, self.edge_attr, self.batch


def random_graph(n: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    e = int(torch.randint(0, 3 * n, (1,), generator=gen))
    ei = torch.randint(0, n, (2, e), generator=gen)
    ea = torch.rand(e, N_EDGE, generator=gen)
    ei, ea = add_remaining_self_loops(ei, ea, fill_value="mean", num_nodes=n)
    x = torch.randn(n, N_FEAT, generator=gen)
    vocab = torch.randint(1, N_VOCAB, (n,), generator=gen)
    return x, vocab, ei, ea


def collate(graphs: list[tuple[torch.Tensor, ...]]) -> RandomBatch:
    xs, vs, eis, eas, bs, offset = [], [], [], [], [], 0
    for g, (x, vocab, ei, ea) in enumerate(graphs):
        xs.append(x)
        vs.append(vocab)
        eis.append(ei + offset)
        eas.append(ea)
        bs.append(torch.full((x.shape[0],), g, dtype=torch.long))
        offset += x.shape[0]
    return RandomBatch(
        torch.cat(xs), torch.cat(vs), torch.cat(eis, 1), torch.cat(eas), torch.cat(bs), len(graphs)
    )


def random_batch(num_graphs: int, seed: int, max_nodes: int = 30) -> RandomBatch:
    gen = torch.Generator().manual_seed(seed)
    sizes = torch.randint(1, max_nodes, (num_graphs,), generator=gen).tolist()
    return collate([random_graph(n, gen) for n in sizes])


def all_grads_finite(model: torch.nn.Module) -> bool:
    return all(p.grad is not None and bool(torch.isfinite(p.grad).all()) for p in model.parameters())


@pytest.mark.parametrize("scale", SCALES)
def test_gat_forward_backward(scale: str) -> None:
    model = build_gat(getattr(STUDY.models.gat, scale), META, seed=0)
    b = random_batch(6, seed=1)
    logits = model(*b.inputs)
    assert logits.shape == (6, 2) and torch.isfinite(logits).all()
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 1, 0, 1, 1, 0])).backward()
    # every parameter, the embedding included, takes part in the prediction
    assert all_grads_finite(model)
    emb = model.embed(*b.inputs)
    assert emb.shape == (6, model.graph_embed_dim)


def test_gat_attention_is_a_softmax_over_incoming_edges() -> None:
    model = build_gat(STUDY.models.gat.small, META, seed=0).eval()
    b = random_batch(4, seed=2)
    att = model.attention(*b.inputs)
    assert len(att) == STUDY.models.gat.small.layers
    for ei, alpha in att:
        assert torch.equal(ei, b.edge_index)
        assert alpha.shape == (b.edge_index.shape[1], STUDY.models.gat.small.heads)
        sums = torch.zeros(b.x.shape[0], alpha.shape[1]).index_add_(0, ei[1], alpha)
        torch.testing.assert_close(sums, torch.ones_like(sums))


@pytest.mark.parametrize("id_profile", [0, 5])
def test_gat_is_batch_invariant_in_eval(id_profile: int) -> None:
    gen = torch.Generator().manual_seed(3)
    graphs = [random_graph(n, gen) for n in (5, 1, 17)]
    model = build_gat(TINY_GAT.model_copy(update={"id_profile": id_profile}), META, seed=0).eval()
    together = model(*collate(graphs).inputs)
    alone = torch.cat([model(*collate([g]).inputs) for g in graphs])
    torch.testing.assert_close(together, alone)


def test_gat_id_profile_holds_counts_scores_and_surprises() -> None:
    cooc = torch.zeros(N_VOCAB, N_VOCAB)
    cooc[3, 4], cooc[5, 4] = 0.9, 0.5  # ID 4 came with 90 % of the windows holding 3, half of those with 5
    meta = {**META, "id_cooccurrence": cooc.tolist(), "counts": {"train": {"benign": 99}}}
    model = build_gat(TINY_GAT.model_copy(update={"id_profile": 5}), meta, seed=0).eval()
    assert model.node_score is not None and model.profile is not None
    gen = torch.Generator().manual_seed(5)
    # lacks 4 while holding 3; holds both; lacks 4 holding only 5; holds an unknown ID (slot 0) and 3, 4
    ids = [[3, 5, 7], [3, 4], [5, 5, 9], [0, 0, 3, 4]]
    graphs: list[tuple[torch.Tensor, ...]] = [
        (x, torch.tensor(v), ei, ea) for v in ids for x, _, ei, ea in [random_graph(len(v), gen)]
    ]
    b = collate(graphs)
    emb = model.embed(*b.inputs)
    assert emb.shape == (4, model.graph_embed_dim) and model.graph_embed_dim == 2 * 2 * (8 * 2) + 5
    onehot = torch.nn.functional.one_hot(b.node_vocab, N_VOCAB).float()
    scored = onehot * model.node_score(b.x)
    surprise = torch.zeros(4, N_VOCAB)  # absent v: -log(1 - C[u, v]), max over held u; unknown: log(n + 1)
    surprise[0, 4], surprise[2, 4], surprise[3, 0] = -math.log(0.1), -math.log(0.5), math.log(100)
    held = torch.stack([onehot[b.batch == g].sum(0) for g in range(4)])
    assert held[2, 5] == 2 and held[3, 0] == 2  # counts, not flags
    summary = surprise.amax(1, keepdim=True).repeat(1, 2)  # largest and summed: one surprise per graph
    per_graph = [torch.cat([held[g], scored[b.batch == g].sum(0), surprise[g], summary[g]]) for g in range(4)]
    with torch.no_grad():
        torch.testing.assert_close(emb[:, -5:], model.profile(torch.stack(per_graph)))


def test_gat_rejects_a_cooccurrence_of_the_wrong_size() -> None:
    with pytest.raises(ValueError, match=r"id_cooccurrence is \(3, 3\), needs \(76, 76\)"):
        build_gat(TINY_GAT.model_copy(update={"id_profile": 5}), {**META, "id_cooccurrence": [[0.0] * 3] * 3})


@pytest.mark.parametrize("scale", SCALES)
def test_vgae_forward_backward_and_errors(scale: str) -> None:
    sc: VGAEScale = getattr(STUDY.models.vgae, scale)
    model = build_vgae(sc, META, seed=0)
    b = random_batch(5, seed=4)
    out = model(*b.inputs[:4])
    n = b.x.shape[0]
    assert out.mu.shape == out.logvar.shape == out.z.shape == (n, sc.latent)
    assert out.x_hat.shape == (n, N_FEAT) and out.id_logits.shape == (n, N_VOCAB)
    errors = model.graph_errors(out, b.x, b.node_vocab, b.edge_index, b.batch, b.num_graphs)
    assert set(errors) == {"feat_mse", "id_ce", "nbr_bce", "kl"}
    for name, value in errors.items():
        assert value.shape == (5,), name
        assert torch.isfinite(value).all() and (value >= 0).all(), name
    loss = vgae_loss(errors, STUDY.vgae_train)
    assert loss.shape == ()
    loss.backward()
    assert all_grads_finite(model)


def test_parameter_counts_per_scale() -> None:
    mp = STUDY.models
    counts = {
        f"{kind}_{s}": count_parameters(build(getattr(getattr(mp, kind), s), META))
        for kind, build in (("gat", build_gat), ("vgae", build_vgae))
        for s in SCALES
    }
    print(counts)
    assert counts["gat_small"] < counts["gat_large"] and counts["vgae_small"] < counts["vgae_large"]
    # the design's scales: ≈ 300k (teacher) vs ≈ 50k (student)
    assert 200_000 < counts["gat_large"] < 400_000 and 30_000 < counts["gat_small"] < 70_000
    assert count_parameters(build_gat(TINY_GAT, META)) < counts["gat_small"]


def test_logvar_is_clamped() -> None:
    model = build_vgae(STUDY.models.vgae.small, META, seed=0)
    b = random_batch(3, seed=5)
    for bias, bound in ((1e4, 10.0), (-1e4, -10.0)):
        with torch.no_grad():
            model.logvar_head.bias.fill_(bias)
        model.train()
        out = model(*b.inputs[:4])
        assert torch.equal(out.logvar, torch.full_like(out.logvar, bound))
        assert torch.isfinite(out.z).all()
        kl = model.graph_errors(out, b.x, b.node_vocab, b.edge_index, b.batch, b.num_graphs)["kl"]
        assert torch.isfinite(kl).all()


def test_z_is_mu_in_eval_and_sampled_in_training() -> None:
    model = build_vgae(STUDY.models.vgae.small, META, seed=0)
    b = random_batch(3, seed=6)
    model.eval()
    out = model(*b.inputs[:4])
    assert torch.equal(out.z, out.mu)
    torch.testing.assert_close(out, model(*b.inputs[:4]))
    model.train()
    out = model(*b.inputs[:4])
    assert not torch.allclose(out.z, out.mu)


def test_negative_pairs_stay_within_their_graph_and_are_reproducible() -> None:
    b = random_batch(7, seed=7)
    for pairs in (
        shifted_pairs(b.batch, b.num_graphs),
        sample_negative_pairs(b.batch, b.num_graphs, generator=torch.Generator().manual_seed(0)),
    ):
        assert pairs.shape == (2, 3 * b.x.shape[0])
        assert torch.equal(b.batch[pairs[0]], b.batch[pairs[1]])
    draw = [
        sample_negative_pairs(b.batch, b.num_graphs, 2, torch.Generator().manual_seed(9)) for _ in range(2)
    ]
    assert torch.equal(draw[0], draw[1])


def test_score_is_batch_invariant_and_ignores_kl() -> None:
    gen = torch.Generator().manual_seed(8)
    graphs = [random_graph(n, gen) for n in (9, 1, 2, 14)]
    model = build_vgae(STUDY.models.vgae.small, META, seed=0).eval()
    w = STUDY.vgae_train

    def scores(batch: RandomBatch) -> torch.Tensor:
        out = model(*batch.inputs[:4])
        errors = model.graph_errors(
            out, batch.x, batch.node_vocab, batch.edge_index, batch.batch, batch.num_graphs
        )
        assert torch.isfinite(anomaly_score(errors, w)).all()
        assert torch.equal(anomaly_score(errors, w), anomaly_score({**errors, "kl": errors["kl"] + 5}, w))
        return anomaly_score(errors, w)

    torch.testing.assert_close(scores(collate(graphs)), torch.cat([scores(collate([g])) for g in graphs]))


def test_vgae_scores_a_corrupted_graph_higher_than_the_graph_it_fit() -> None:
    torch.manual_seed(0)
    scale = VGAEScale(embed_dim=8, hidden=16, heads=2, layers=2, latent=16, dropout=0.0, absent_ids=False)
    model = build_vgae(scale, META, seed=0)
    gen = torch.Generator().manual_seed(10)
    graphs = [random_graph(n, gen) for n in (12, 15, 10, 14)]
    fit = collate(graphs)
    w = STUDY.vgae_train
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    neg_gen = torch.Generator().manual_seed(0)
    for _ in range(100):
        opt.zero_grad()
        out = model(*fit.inputs[:4])
        neg = sample_negative_pairs(fit.batch, fit.num_graphs, generator=neg_gen)
        vgae_loss(
            model.graph_errors(out, fit.x, fit.node_vocab, fit.edge_index, fit.batch, 4, neg), w
        ).backward()
        opt.step()

    # each corruption of graph 0 on its own: shifted payload statistics, other IDs, rewired edges
    x, vocab, ei, ea = graphs[0]
    corrupted = {
        "features": (x + 2.0, vocab, ei, ea),
        "ids": (x, torch.roll(vocab, 1) % (N_VOCAB - 1) + 1, ei, ea),
        "edges": (x, vocab, torch.randint(0, x.shape[0], ei.shape, generator=gen), ea),
    }
    model.eval()

    def score(graph: tuple[torch.Tensor, ...]) -> float:
        b = collate([graph])
        with torch.no_grad():
            errors = model.graph_errors(model(*b.inputs[:4]), b.x, b.node_vocab, b.edge_index, b.batch, 1)
        return float(anomaly_score(errors, w)[0])

    fitted = score(graphs[0])
    for name, graph in corrupted.items():
        assert score(graph) > 2 * fitted, name


def test_seeded_build_is_deterministic_and_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected_next = torch.rand(1)
    torch.manual_seed(123)
    a = build_gat(TINY_GAT, META, seed=0).state_dict()
    assert torch.equal(torch.rand(1), expected_next)
    b = build_gat(TINY_GAT, META, seed=0).state_dict()
    c = build_gat(TINY_GAT, META, seed=1).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    v = [build_vgae(STUDY.models.vgae.small, META, seed=0).state_dict() for _ in range(2)]
    assert all(torch.equal(v[0][k], v[1][k]) for k in v[0])


def test_builders_name_missing_meta_keys() -> None:
    with pytest.raises(KeyError, match="vocab_size"):
        build_gat(TINY_GAT, {"node_features": [], "edge_features": []})
    with pytest.raises(ValueError, match="n_edge_features"):
        GAT(TINY_GAT, N_VOCAB, N_FEAT, 0)
    with pytest.raises(ValueError, match="n_vocab"):
        VGAE(STUDY.models.vgae.small, 0, N_FEAT, N_EDGE)


@pytest.mark.slow  # torch.export and the ONNX translation load and trace for seconds, as test_edge's exports
def test_small_gat_exports_to_onnx(tmp_path: object) -> None:
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from pathlib import Path

    # with range features it skips (the study's GATs, models.gat.*.byte_ranges: false): slices in the graph
    model = build_gat(STUDY.models.gat.small, {**META, "range_features": ["r0", "r1"]}, seed=0).eval()
    assert model.skip == (N_FEAT - 2, N_FEAT)
    b1, b2 = random_batch(5, seed=11), random_batch(13, seed=12, max_nodes=40)
    names = ["x", "node_vocab", "edge_index", "edge_attr", "batch"]
    n, e = torch.export.Dim("nodes"), torch.export.Dim("edges")
    dims = {"x": {0: n}, "node_vocab": {0: n}, "edge_index": {1: e}, "edge_attr": {0: e}, "batch": {0: n}}
    program = torch.onnx.export(
        model, b1.inputs, input_names=names, output_names=["logits"], dynamic_shapes=dims, dynamo=True
    )
    assert program is not None
    path = Path(str(tmp_path)) / "gat_small.onnx"
    program.save(str(path), external_data=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (b1, b2):
        with torch.no_grad():
            expected = model(*b.inputs).numpy()
        (got,) = session.run(None, {k: v.numpy() for k, v in zip(names, b.inputs, strict=True)})
        assert got.shape == (b.num_graphs, 2)
        torch.testing.assert_close(torch.from_numpy(got), torch.from_numpy(expected), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("reads", [False, True])
def test_gat_skips_the_range_features_unless_its_scale_reads_them(reads: bool, tmp_path: Path) -> None:
    """models.gat.*.byte_ranges: false — the columns windows.byte_ranges adds (before the absence features)
    do not reach the GAT, in training or from its saved file; true — they do."""
    meta = {**META, "range_features": ["r0", "r1"], "absence_features": ["a0", "a1", "a2"]}
    assert range_columns(meta) == (N_FEAT - 5, N_FEAT - 3)
    assert range_columns(META) == (N_FEAT, N_FEAT)
    model = build_gat(TINY_GAT.model_copy(update={"byte_ranges": reads}), meta, seed=0).eval()
    b = collate([random_graph(n, torch.Generator().manual_seed(n)) for n in (3, 5)])
    moved = b.x.clone()
    moved[:, N_FEAT - 5 : N_FEAT - 3] += 100.0
    with torch.no_grad():
        before = model(*b.inputs, num_graphs=b.num_graphs)
        after = model(moved, *b.inputs[1:], num_graphs=b.num_graphs)
    assert torch.equal(before, after) is not reads
    save_model(model, tmp_path / "gat.ckpt", {})
    again, _ = load_model(tmp_path / "gat.ckpt")
    with torch.no_grad():
        assert torch.equal(again(*b.inputs, num_graphs=b.num_graphs), before)
