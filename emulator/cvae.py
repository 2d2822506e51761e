"""Conditional variational auto-encoder between the data grid and the 4x coarser latent grid.

Encoder: state (C channels) -> per-channel embedding (E) ++ conditioning (forcings, mask,
seasonality, statics) -> block (data grid -> latent grid) -> block (latent -> latent) ->
1x1 -> latent mean and log-variance. Decoder mirrors it: latent ++ conditioning (resampled to
the latent grid, so the spectral operator can map e.g. a tropical SST anomaly to its remote
response) -> block (latent -> latent) -> block (latent -> data grid, conditioned at full
resolution through its norms) -> 1x1 -> state.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import SpectralBlock
from .embeddings import ChannelEmbedding


class Encoder(nn.Module):
    """``(state [B,C,H,W], cond [B,K,H,W], cond_latent [B,K,h,w]) -> (mean, logvar) [B,Z,h,w]``."""

    def __init__(self, n_state: int, n_cond: int, latent_channels: int, data_shape: tuple[int, int],
                 latent_shape: tuple[int, int], embed_dim: int, rank: int, **block_kw):
        super().__init__()
        self.embed = ChannelEmbedding(n_state, embed_dim)
        self.down = SpectralBlock(embed_dim + n_cond, embed_dim, data_shape, latent_shape, n_cond, rank, **block_kw)
        self.mix = SpectralBlock(embed_dim, embed_dim, latent_shape, latent_shape, n_cond, rank, **block_kw)
        self.head = nn.Conv2d(embed_dim, 2 * latent_channels, 1)

    def forward(self, state: torch.Tensor, cond: torch.Tensor, cond_latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([self.embed(state), cond.to(state.dtype)], dim=1)
        h = self.mix(self.down(h, cond_latent), cond_latent)
        mean, logvar = self.head(h).float().chunk(2, dim=1)
        return mean, logvar.clamp(-20.0, 10.0)


class Decoder(nn.Module):
    """``(latent [B,Z,h,w], cond [B,K,H,W], cond_latent [B,K,h,w]) -> state [B,C,H,W]`` (normalised)."""

    def __init__(self, n_state: int, n_cond: int, latent_channels: int, data_shape: tuple[int, int],
                 latent_shape: tuple[int, int], embed_dim: int, rank: int, **block_kw):
        super().__init__()
        self.mix = SpectralBlock(latent_channels + n_cond, embed_dim, latent_shape, latent_shape, n_cond, rank,
                                 **block_kw)
        self.up = SpectralBlock(embed_dim, embed_dim, latent_shape, data_shape, n_cond, rank, **block_kw)
        self.head = nn.Conv2d(embed_dim, n_state, 1)

    def forward(self, latent: torch.Tensor, cond: torch.Tensor, cond_latent: torch.Tensor) -> torch.Tensor:
        h = torch.cat([latent, cond_latent.to(latent.dtype)], dim=1)
        return self.head(self.up(self.mix(h, cond_latent), cond)).float()
