"""Exponential moving average of model weights (used for validation, saved with checkpoints)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """``theta_ema <- decay theta_ema + (1 - decay) theta`` after every optimiser step.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after n updates, so early
    averages are not dominated by the random initialisation. Buffers (normalisation and
    latent statistics) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.updates = 0
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.lerp_(p.detach(), 1.0 - d)
        for be, b in zip(self.model.buffers(), model.buffers()):
            be.copy_(b)
