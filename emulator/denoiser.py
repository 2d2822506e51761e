"""Latent denoiser: predicts the diffusion velocity v at the latent resolution.

Input: noisy standardised latent z_s, standardised previous latent (a sample, see
:mod:`.model`), conditioning resampled to the latent grid; the diffusion time enters
every conditional norm through a sinusoidal embedding.
"""

from __future__ import annotations

import torch
from torch import nn

from .blocks import SpectralBlock
from .spectral_conv import SpectralConv
from .embeddings import TimeEmbedding


class Denoiser(nn.Module):
    """``(z_s, z_prev, cond_latent [B,K,h,w], s [B]) -> v [B,Z,h,w]``.

    ``use_previous=False`` (with the latent skip path only) leaves the previous latent out of the
    denoiser's input: the skip path carries the dependence on month t, and the diffusion models
    the distribution of the residual given its conditioning only (forcing, season and statics;
    season and statics with ``model.step.denoiser_forcing: false``, docs/emulator.md).

    ``previous_noise_max`` (``model.step.previous_noise.max``; None: off) adds a second embedding,
    of the noise level ``sigma / previous_noise_max`` of the previous latent, to the time
    embedding that every conditional norm sees: the denoiser is told how noisy its ``z_prev`` is
    (diffusion forcing's per-frame noise level). Off, the module and its parameters are those of
    earlier checkpoints.
    """

    def __init__(self, latent_channels: int, n_cond: int, latent_shape: tuple[int, int], embed_dim: int,
                 rank: int, n_blocks: int = 1, use_previous: bool = True, previous_noise_max: float | None = None,
                 **block_kw):
        super().__init__()
        self.use_previous = use_previous
        self.time = TimeEmbedding(embed_dim)
        self.previous_noise_max = previous_noise_max
        # zero-initialised output: at initialisation the noise level leaves the embedding unchanged
        self.previous_level = TimeEmbedding(embed_dim) if previous_noise_max is not None else None
        if self.previous_level is not None:
            nn.init.zeros_(self.previous_level.mlp[-1].weight)
            nn.init.zeros_(self.previous_level.mlp[-1].bias)
        self.lift = nn.Conv2d((2 if use_previous else 1) * latent_channels + n_cond, embed_dim, 1)
        self.blocks = nn.ModuleList(
            SpectralBlock(embed_dim, embed_dim, latent_shape, latent_shape, n_cond, rank,
                          embed_dim=embed_dim, **block_kw) for _ in range(n_blocks))
        self.head = nn.Conv2d(embed_dim, latent_channels, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, z_noisy: torch.Tensor, z_prev: torch.Tensor, cond_latent: torch.Tensor,
                s: torch.Tensor, previous_sigma: torch.Tensor | None = None) -> torch.Tensor:
        """``previous_sigma [B]``: the std of the noise added to ``z_prev`` (standardised units);
        None: a clean ``z_prev`` (0). Ignored without ``previous_noise_max``."""
        emb = self.time(s)
        if self.previous_level is not None:
            if previous_sigma is None:
                previous_sigma = torch.zeros_like(s)
            emb = emb + self.previous_level(previous_sigma.float() / self.previous_noise_max)
        parts = [z_noisy, z_prev] if self.use_previous else [z_noisy]
        h = self.lift(torch.cat([*parts, cond_latent.to(z_noisy.dtype)], dim=1))
        for block in self.blocks:
            h = block(h, cond_latent, emb)
        return self.head(h).float()


class LatentSkip(nn.Module):
    """Linear one-month-ahead regression of the standardised latent (the diffusion's skip path).

    ``mu = a * z_prev + W cond_latent + S(cond_latent) + b`` with a per-(channel, latent point)
    coefficient ``a`` (a damped persistence of each latent point), a 1x1 map ``W`` of the
    step's conditioning (forcings, seasonality, statics of month t, and of t+1 with
    ``step_next_forcing``) and a linear tensor-product
    spectral operator ``S`` of the same conditioning (non-local: remote responses to an SST
    anomaly, i.e. teleconnections). Fitted by least squares on the latents (its own MSE term);
    the diffusion then only models ``z_next - mu``, which starts from the best linear forecast
    instead of having to discover persistence through the noisy input. Zero-initialised
    (``W``, ``b`` and the last factor of ``S``): ``mu = 0`` recovers the plain diffusion.
    """

    def __init__(self, latent_channels: int, n_cond: int, latent_shape: tuple[int, int], rank: int = 16,
                 mixing: bool = False):
        super().__init__()
        # (a per-calendar-month persistence, ``skip_monthly``, measured no gain and was removed)
        self.coef = nn.Parameter(torch.zeros(latent_channels, *latent_shape))
        # mixing: + M z_prev with one channel-mixing matrix M for all points. A latent channel
        # mixes physical variables of different memory (tas 0.55, psl 0.3, pr 0.2 on the synthetic
        # climate); a per-channel coefficient alone gives each variable the compromise.
        self.mix = nn.Conv2d(latent_channels, latent_channels, 1, bias=False) if mixing else None
        if self.mix is not None:
            nn.init.zeros_(self.mix.weight)
        self.cond = nn.Conv2d(n_cond, latent_channels, 1)
        nn.init.zeros_(self.cond.weight)
        nn.init.zeros_(self.cond.bias)
        self.remote = SpectralConv(n_cond, latent_channels, latent_shape, latent_shape, "tensor", rank)
        with torch.no_grad():
            self.remote.up.zero_()

    def forward(self, z_prev: torch.Tensor, cond_latent: torch.Tensor) -> torch.Tensor:
        """``mu [B, Z, h, w]``."""
        cond = cond_latent.to(z_prev.dtype)
        mu = self.coef * z_prev + self.cond(cond) + self.remote(cond).to(z_prev.dtype)
        if self.mix is not None:
            mu = mu + self.mix(z_prev)
        return mu
