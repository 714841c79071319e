"""Losses: class weights, focal loss, and knowledge distillation for the GAT and the VGAE students."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def class_weights(y: Tensor, n_classes: int = 2) -> Tensor:
    """Inverse-frequency weights n / (k · count_c), 1 for a class absent from ``y`` (it has no loss terms)."""
    counts = torch.bincount(y, minlength=n_classes).to(torch.float32)
    w = len(y) / (n_classes * counts.clamp(min=1.0))
    return torch.where(counts > 0, w, torch.ones_like(w))


def focal_loss(
    logits: Tensor,
    labels: Tensor,
    gamma: float,
    class_weight: Tensor | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Mean focal loss −w_y·(1 − p_y)^γ·log p_y, normalised like weighted cross-entropy (by Σ w_y), so that
    γ = 0 gives exactly ``F.cross_entropy(logits, labels, weight=class_weight, label_smoothing=ε)``; with
    ε > 0 each graph's term is (1 − ε)·that + ε/C·Σ_c w_c·(1 − p_c)^γ·(−log p_c), as cross-entropy has it."""
    logp = F.log_softmax(logits, dim=-1)
    # (1 - p)^0 must be 1 even where p == 1, which pow(0., 0.) already gives
    focal = -(1 - logp.exp()).clamp(min=0.0).pow(gamma) * logp
    wc = logp.new_ones(logp.shape[1]) if class_weight is None else class_weight.to(logp)
    w = wc[labels]
    terms = w * focal.gather(1, labels[:, None]).squeeze(1)
    if label_smoothing:
        terms = (1 - label_smoothing) * terms + label_smoothing * (focal * wc).mean(dim=1)
    return terms.sum() / w.sum()


def task_loss(
    logits: Tensor,
    labels: Tensor,
    class_weight: Tensor | None = None,
    focal_gamma: float | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross-entropy, or focal loss when ``focal_gamma`` is given (either label-smoothed by ε)."""
    if focal_gamma is None:
        return F.cross_entropy(logits, labels, weight=class_weight, label_smoothing=label_smoothing)
    return focal_loss(logits, labels, focal_gamma, class_weight, label_smoothing)


def distill_kl(student_logits: Tensor, teacher_logits: Tensor, T: float) -> Tensor:
    """KL(softmax(t/T) ‖ softmax(s/T)), averaged over the graphs of the batch."""
    return F.kl_div(
        F.log_softmax(student_logits / T, dim=-1),
        F.log_softmax(teacher_logits / T, dim=-1),
        reduction="batchmean",
        log_target=True,
    )


def gat_kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    T: float,
    alpha: float,
    class_weight: Tensor | None = None,
    focal_gamma: float | None = None,
    label_smoothing: float = 0.0,
) -> Tensor:
    """α·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α)·task loss (Hinton et al.; T² keeps the soft term's
    gradient scale independent of T)."""
    hard = task_loss(student_logits, labels, class_weight, focal_gamma, label_smoothing)
    if alpha == 0:
        return hard
    soft = distill_kl(student_logits, teacher_logits.detach(), T)
    return alpha * T * T * soft + (1 - alpha) * hard


def vgae_kd_loss(
    student_z: Tensor,
    teacher_z: Tensor,
    projection: nn.Module,
    student_xhat: Tensor,
    teacher_xhat: Tensor,
    student_id_logits: Tensor | None = None,
    teacher_id_logits: Tensor | None = None,
    T: float = 1.0,
) -> Tensor:
    """MSE(projection(student latent), teacher latent) + MSE(student recon, teacher recon), plus the
    softened KL between the CAN-ID predictions when both are given. The projection is learned with the
    student, since the two latents differ in width and basis."""
    loss = F.mse_loss(projection(student_z), teacher_z.detach()) + F.mse_loss(
        student_xhat, teacher_xhat.detach()
    )
    if student_id_logits is not None and teacher_id_logits is not None:
        loss = loss + T * T * distill_kl(student_id_logits, teacher_id_logits.detach(), T)
    return loss


def entropy(probs: Tensor) -> Tensor:
    """Shannon entropy (nats) of each row of ``probs``."""
    return -(probs * torch.log(probs.clamp(min=1e-12))).sum(dim=-1)
