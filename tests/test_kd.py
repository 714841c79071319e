"""Losses: class weights, focal loss, the GAT distillation loss at its limits, the VGAE matching loss."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdgat.train.kd import (
    class_weights,
    distill_kl,
    entropy,
    focal_loss,
    gat_kd_loss,
    task_loss,
    vgae_kd_loss,
)


@pytest.fixture
def logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    s = torch.randn(32, 2, generator=g, requires_grad=True)
    t = torch.randn(32, 2, generator=g) * 3
    y = torch.randint(0, 2, (32,), generator=g)
    return s, t, y


def _kl_by_hand(s: torch.Tensor, t: torch.Tensor, T: float) -> torch.Tensor:
    pt, ps = torch.softmax(t / T, -1), torch.softmax(s / T, -1)
    return (pt * (pt.log() - ps.log())).sum(-1).mean()


def test_class_weights_inverse_frequency() -> None:
    torch.testing.assert_close(class_weights(torch.tensor([0, 0, 0, 1])), torch.tensor([4 / 6, 4 / 2]))
    torch.testing.assert_close(class_weights(torch.tensor([0, 1, 0, 1])), torch.ones(2))
    torch.testing.assert_close(class_weights(torch.tensor([0, 0])), torch.tensor([0.5, 1.0]))  # absent: 1


def test_focal_limits(logits: tuple[torch.Tensor, ...]) -> None:
    s, _, y = logits
    w = torch.tensor([0.7, 2.0])
    torch.testing.assert_close(focal_loss(s, y, 0.0, w), F.cross_entropy(s, y, weight=w))
    torch.testing.assert_close(task_loss(s, y, w, 0.0), F.cross_entropy(s, y, weight=w))
    p = torch.softmax(s, -1).gather(1, y[:, None]).squeeze(1)
    by_hand = (-((1 - p) ** 2) * p.log()).mean()
    torch.testing.assert_close(focal_loss(s, y, 2.0), by_hand)
    assert focal_loss(s, y, 2.0) < F.cross_entropy(s, y)  # easy examples are down-weighted
    sure = torch.tensor([[-30.0, 30.0]])  # p_y == 1 exactly in float32: the loss is 0, not NaN
    assert focal_loss(sure, torch.tensor([1]), 0.0).item() == pytest.approx(0.0, abs=1e-6)


def test_label_smoothing_by_hand(logits: tuple[torch.Tensor, ...]) -> None:
    s, _, y = logits
    target = 0.9 * F.one_hot(y, 2).float() + 0.1 / 2  # ε = 0.1 over two classes
    by_hand = -(target * F.log_softmax(s, -1)).sum(-1).mean()
    torch.testing.assert_close(task_loss(s, y, label_smoothing=0.1), by_hand)
    w = torch.tensor([0.7, 2.0])  # focal at γ = 0 is cross-entropy, class weights and smoothing included
    torch.testing.assert_close(
        task_loss(s, y, w, 0.0, 0.1), F.cross_entropy(s, y, weight=w, label_smoothing=0.1)
    )
    focal_by_hand = -(target * (1 - F.softmax(s, -1)) ** 2 * F.log_softmax(s, -1)).sum(-1).mean()
    torch.testing.assert_close(task_loss(s, y, None, 2.0, 0.1), focal_by_hand)


def test_gat_kd_limits(logits: tuple[torch.Tensor, ...]) -> None:
    s, t, y = logits
    w = torch.tensor([0.5, 1.5])
    torch.testing.assert_close(
        gat_kd_loss(s, t, y, T=4.0, alpha=0.0, class_weight=w), F.cross_entropy(s, y, weight=w)
    )
    torch.testing.assert_close(gat_kd_loss(s, t, y, T=1.0, alpha=1.0), _kl_by_hand(s, t, 1.0))
    mixed = gat_kd_loss(s, t, y, T=4.0, alpha=0.7)
    torch.testing.assert_close(mixed, 0.7 * 16 * _kl_by_hand(s, t, 4.0) + 0.3 * F.cross_entropy(s, y))
    assert distill_kl(t, t, 4.0).abs() < 1e-6  # matching the teacher costs nothing
    t_leaf = t.clone().requires_grad_(True)
    gat_kd_loss(s, t_leaf, y, T=4.0, alpha=0.7).backward()
    assert s.grad is not None and t_leaf.grad is None  # the teacher never learns from the student


def test_gat_kd_pulls_student_toward_teacher(logits: tuple[torch.Tensor, ...]) -> None:
    s, t, y = logits
    student = s.detach().clone().requires_grad_(True)
    opt = torch.optim.Adam([student], lr=0.1)
    before = _kl_by_hand(student.detach(), t, 2.0)
    for _ in range(100):
        opt.zero_grad()
        gat_kd_loss(student, t, y, T=2.0, alpha=1.0).backward()
        opt.step()
    assert _kl_by_hand(student.detach(), t, 2.0) < 0.05 * before


def test_vgae_kd_loss() -> None:
    g = torch.Generator().manual_seed(1)
    zs, zt = torch.randn(10, 4, generator=g), torch.randn(10, 6, generator=g)
    xs, xt = torch.randn(10, 23, generator=g), torch.randn(10, 23, generator=g)
    proj = nn.Linear(4, 6)
    expect = F.mse_loss(proj(zs), zt) + F.mse_loss(xs, xt)
    torch.testing.assert_close(vgae_kd_loss(zs, zt, proj, xs, xt), expect)
    ident = nn.Identity()
    assert vgae_kd_loss(zt, zt, ident, xt, xt).item() == 0.0
    ids, idt = torch.randn(10, 7, generator=g), torch.randn(10, 7, generator=g)
    with_ids = vgae_kd_loss(zs, zt, proj, xs, xt, ids, idt, T=2.0)
    torch.testing.assert_close(with_ids, expect + 4 * _kl_by_hand(ids, idt, 2.0))
    vgae_kd_loss(zs.requires_grad_(True), zt, proj, xs, xt).backward()
    assert proj.weight.grad is not None and zs.grad is not None  # the projection learns with the student


def test_entropy() -> None:
    torch.testing.assert_close(
        entropy(torch.tensor([[0.5, 0.5], [1.0, 0.0]])), torch.tensor([0.6931472, 0.0])
    )
