"""Exponential moving average of model weights (used for validation, saved with checkpoints)."""

from __future__ import annotations

import copy
from typing import Iterable

import torch
from torch import nn


class EMA:
    """``theta_ema <- decay theta_ema + (1 - decay) theta`` after every optimiser step.

    The effective decay is ``min(decay, (1 + n) / (10 + n))`` after n updates, so early
    averages are not dominated by the random initialisation. Buffers (normalisation and
    latent statistics) are copied, not averaged, except the ones named in :attr:`held`:
    calibration results (``diffusion_offset``, ``residual_power``, ``residual_scale``) that
    the trainer computes for the EMA model itself (:meth:`hold`). Copying those from the raw
    model wiped them (an offset of 0.3 became 0 and a spread scale of 2 became 1 after one
    update: issue 12), so a checkpoint held its calibration only when written at a
    validation epoch.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        self.updates = 0
        self.held: set[str] = set()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def hold(self, names: Iterable[str]) -> None:
        """Buffers the EMA model owns from now on: :meth:`update` no longer copies them."""
        known = dict(self.model.named_buffers())
        missing = [n for n in names if n not in known]
        if missing:
            raise KeyError(f"the EMA model has no buffer {missing[0]!r}")
        self.held.update(names)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for pe, p in zip(self.model.parameters(), model.parameters()):
            pe.lerp_(p.detach(), 1.0 - d)
        raw = dict(model.named_buffers())
        for name, be in self.model.named_buffers():
            if name not in self.held:
                be.copy_(raw[name])
