"""Latent denoiser: predicts the diffusion velocity v at the latent resolution.

Input: noisy standardised latent z_s, standardised previous latent (a sample, see
:mod:`.model`), conditioning resampled to the latent grid; the diffusion time enters
every conditional norm through a sinusoidal embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import SpectralBlock
from .embeddings import TimeEmbedding


class Denoiser(nn.Module):
    """``(z_s, z_prev, cond_latent [B,K,h,w], s [B]) -> v [B,Z,h,w]``."""

    def __init__(self, latent_channels: int, n_cond: int, latent_shape: tuple[int, int], embed_dim: int,
                 rank: int, n_blocks: int = 1, **block_kw):
        super().__init__()
        self.time = TimeEmbedding(embed_dim)
        self.lift = nn.Conv2d(2 * latent_channels + n_cond, embed_dim, 1)
        self.blocks = nn.ModuleList(
            SpectralBlock(embed_dim, embed_dim, latent_shape, latent_shape, n_cond, rank,
                          embed_dim=embed_dim, **block_kw) for _ in range(n_blocks))
        self.head = nn.Conv2d(embed_dim, latent_channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, z_noisy: torch.Tensor, z_prev: torch.Tensor, cond_latent: torch.Tensor,
                s: torch.Tensor) -> torch.Tensor:
        emb = self.time(s)
        h = self.lift(torch.cat([z_noisy, z_prev, cond_latent.to(z_noisy.dtype)], dim=1))
        for block in self.blocks:
            h = block(h, cond_latent, emb)
        return self.head(h).float()
