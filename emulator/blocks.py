"""The building block of encoder, decoder and denoiser.

    h = SpectralConv(x)                       (input grid -> output grid)
    h = GELU(h)
    h = CondNorm1(h, cond, emb)
    h = h + MLP(resample(x))                  (SFNO-style 1x1 MLP skip; x brought to the
                                               output grid by band-limited interpolation,
                                               sharing the forward SHT of the spectral conv)
    h = CondNorm2(h, cond, emb)
    y = Conv1x1(h)   (+ x when input and output have the same channels and grid)

``cond`` lives on the output grid.
"""

from __future__ import annotations

from torch import nn
import torch

from .conditional_norm import ConditionalRMSNorm
from .spectral_conv import SpectralConv


class SpectralBlock(nn.Module):
    """One MD block from ``c_in`` channels on ``shape_in`` to ``c_out`` channels on ``shape_out``."""

    def __init__(self, c_in: int, c_out: int, shape_in: tuple[int, int], shape_out: tuple[int, int],
                 cond_channels: int, rank: int, operator: str = "tensor", diagonal_mode: str = "l",
                 norm_hidden: int = 16, mlp_ratio: int = 2, embed_dim: int | None = None):
        super().__init__()
        self.conv = SpectralConv(c_in, c_out, shape_in, shape_out, operator, rank, diagonal_mode)
        self.norm1 = ConditionalRMSNorm(c_out, cond_channels, shape_out, norm_hidden, embed_dim)
        hidden = mlp_ratio * c_out
        self.mlp = nn.Sequential(nn.Conv2d(c_in, hidden, 1), nn.GELU(), nn.Conv2d(hidden, c_out, 1))
        self.norm2 = ConditionalRMSNorm(c_out, cond_channels, shape_out, norm_hidden, embed_dim)
        self.out = nn.Conv2d(c_out, c_out, 1)
        self.residual = c_in == c_out and tuple(shape_in) == tuple(shape_out)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, embedding: torch.Tensor | None = None) -> torch.Tensor:
        if self.residual:
            h, skip = self.conv(x), x
        else:  # one forward SHT serves both the operator and the band-limited skip resampling
            h, skip = self.conv(x, return_resampled=True)
        h = self.norm1(nn.functional.gelu(h), cond, embedding)
        h = h + self.mlp(skip.to(h.dtype))
        y = self.out(self.norm2(h, cond, embedding))
        return y + x if self.residual else y
