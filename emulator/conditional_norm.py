"""Conditional RMS normalisation (FiLM-like) driven by the conditioning fields.

    out = x / rms(x) * (w * gamma + 1) + (b + beta),   rms(x) = sqrt(mean_{c,lat,lon} x^2 + eps)

per sample; ``w``, ``b`` are learned per channel; the maps ``gamma``, ``beta`` (one per channel
and grid point) come from the conditioning fields (forcings, seasonality, statics) through a
small spectral convolution (isotropic, per-l SFNO operator), a GELU and a 1x1 convolution.
An optional vector embedding (the diffusion time) adds a per-channel offset to both maps.
The 1x1 heads start at zero, so a fresh layer is a plain RMS norm.
"""

from __future__ import annotations

import torch
from torch import nn

from .spectral_conv import SpectralConv


class ConditionalRMSNorm(nn.Module):
    """RMS norm whose scale and shift maps are computed from conditioning fields on the same grid."""

    def __init__(self, channels: int, cond_channels: int, shape: tuple[int, int], hidden: int = 16,
                 embed_dim: int | None = None, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.w = nn.Parameter(torch.ones(channels))
        self.b = nn.Parameter(torch.zeros(channels))
        self.cond_conv = SpectralConv(cond_channels, hidden, shape, shape, operator="diagonal",
                                      diagonal_mode="l")
        self.head = nn.Conv2d(hidden, 2 * channels, kernel_size=1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.embed = None
        if embed_dim is not None:
            self.embed = nn.Linear(embed_dim, 2 * channels)
            nn.init.zeros_(self.embed.weight)
            nn.init.zeros_(self.embed.bias)

    def modulation(self, cond: torch.Tensor, embedding: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(gamma, beta), each ``[B, C, nlat, nlon]``."""
        gb = self.head(nn.functional.gelu(self.cond_conv(cond)))
        if self.embed is not None and embedding is not None:
            gb = gb + self.embed(embedding)[:, :, None, None]
        return gb.chunk(2, dim=1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        rms = torch.sqrt(x.float().pow(2).mean(dim=(1, 2, 3), keepdim=True) + self.eps).to(x.dtype)
        gamma, beta = self.modulation(cond, embedding)
        w, b = self.w.view(1, -1, 1, 1), self.b.view(1, -1, 1, 1)
        return x / rms * (w * gamma + 1.0) + (b + beta)
