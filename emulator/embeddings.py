"""Embeddings: seasonality channels, learned per-channel embedding, diffusion-time embedding."""

from __future__ import annotations

import math

import torch
from torch import nn


def month_features(month: torch.Tensor) -> torch.Tensor:
    """``[sin(2 pi month / 12), cos(2 pi month / 12)]`` for calendar months 1..12 -> ``[B, 2]``."""
    angle = 2.0 * math.pi * month.float() / 12.0
    return torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)


class SeasonalityEmbedding(nn.Module):
    """Month -> 3 full-resolution conditioning channels.

    ``(sin, cos)(2 pi month / 12)`` -> MLP -> ``n_weights`` weights ``a_k`` that mix a learned
    spatial basis ``B[k, j, lat, lon]`` into ``channels`` maps: ``S_j = sum_k a_k B[k, j]``.
    """

    def __init__(self, shape: tuple[int, int], channels: int = 3, n_weights: int = 3, hidden: int = 32):
        super().__init__()
        self.mlp = nn.Sequential(nn.Linear(2, hidden), nn.GELU(), nn.Linear(hidden, n_weights))
        self.basis = nn.Parameter(torch.randn(n_weights, channels, *shape) * 0.1)

    def forward(self, month: torch.Tensor) -> torch.Tensor:
        """``month [B]`` (1..12, fractional allowed) -> ``[B, channels, nlat, nlon]``."""
        weights = self.mlp(month_features(month).to(self.basis.dtype))
        return torch.einsum("bk,kjyx->bjyx", weights, self.basis)


class ChannelEmbedding(nn.Module):
    """Learned embedding vector ``e_c`` per state channel, weighted by the channel's value.

    ``h[b, :, y, x] = sum_c x[b, c, y, x] e_c + e_0`` lifts the C state channels (each a token
    with its own learned vector) to ``embed_dim`` features at every grid point.
    """

    def __init__(self, n_channels: int, embed_dim: int):
        super().__init__()
        self.table = nn.Parameter(torch.randn(n_channels, embed_dim) / math.sqrt(n_channels))
        self.offset = nn.Parameter(torch.zeros(embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bcyx,ce->beyx", x, self.table.to(x.dtype)) + self.offset.view(1, -1, 1, 1).to(x.dtype)


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Transformer-style embedding of diffusion time ``t`` in [0, 1] -> ``[B, dim]``.

    ``[cos(1000 t f_k), sin(1000 t f_k)]`` with ``f_k = max_period^(-k / (dim / 2))``.
    """
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return nn.functional.pad(emb, (0, dim % 2))


class TimeEmbedding(nn.Module):
    """Sinusoidal diffusion-time embedding followed by a two-layer MLP."""

    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.mlp(sinusoidal_embedding(t, self.dim))
