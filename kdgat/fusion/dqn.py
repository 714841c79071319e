"""The fusion policy's Q-network: a plain MLP from a graph's state (~15 numbers) to one Q value per α.

Plain Linear/ReLU layers only, so it exports to ONNX with a dynamic batch axis and nothing else.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from kdgat.config import DQNScale


class QNet(nn.Module):
    """``layers`` Linear+ReLU blocks of width ``hidden``, then a linear head with ``n_actions`` outputs."""

    def __init__(self, scale: DQNScale, n_state: int, n_actions: int) -> None:
        super().__init__()
        if n_state < 1 or n_actions < 2:
            raise ValueError(f"QNet needs n_state >= 1 and n_actions >= 2 (got {n_state}, {n_actions})")
        self.scale = scale
        self.n_state = n_state
        self.n_actions = n_actions
        blocks: list[nn.Module] = []
        width = n_state
        for _ in range(scale.layers):
            blocks += [nn.Linear(width, scale.hidden), nn.ReLU()]
            width = scale.hidden
        blocks.append(nn.Linear(width, n_actions))
        self.mlp = nn.Sequential(*blocks)

    def forward(self, state: Tensor) -> Tensor:
        """state [B, n_state] float32 → Q [B, n_actions]."""
        out: Tensor = self.mlp(state)
        return out


def build_qnet(scale: DQNScale, n_state: int, n_actions: int, seed: int | None = None) -> QNet:
    """A Q-network; with ``seed`` its initial weights depend on the seed only (the caller's RNG untouched)."""
    if seed is None:
        return QNet(scale, n_state, n_actions)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return QNet(scale, n_state, n_actions)


def constant_qnet(scale: DQNScale, n_state: int, n_actions: int, action: int) -> QNet:
    """A Q-net whose argmax is ``action`` for every state: a fixed α in the policy's own form, so the
    checkpoint, the ONNX export and the detector need nothing else (head: zero weights, one-hot bias)."""
    qnet = build_qnet(scale, n_state, n_actions, seed=0)
    head = qnet.mlp[-1]
    assert isinstance(head, nn.Linear)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.zero_()
        head.bias[action] = 1.0
    return qnet.eval()
