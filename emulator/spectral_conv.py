"""Spectral S2 convolution that can change grids: SHT on the input grid, a spectral operator,
inverse SHT on the output grid (common truncation, see :mod:`.sht`).

Two operators act on the complex coefficients ``X[b, c, l, m]``:

``tensor`` (default, the MD-1.5 "tensor-product" operator, low rank r)::

    U[b, r, l, m] = sum_c X[b, c, l, m] D[c, r]            # mix channels down to rank r
    s[b, r, m]    = sum_l U[b, r, l, m] P[r, l, m]          # contract with a learned pattern
    Y[b, r, l, m] = s[b, r, m] Q[r, l, m]                   # expand with another pattern
    Z[b, o, l, m] = sum_r Y[b, r, l, m] E[r, o]             # mix up to C_out

It couples every total wavenumber l (all scales) through the rank-r bottleneck, unlike SFNO's
diagonal operator. The published operator also sums over m to one scalar per rank; a linear
map that mixes zonal wavenumbers cannot commute with rotations in longitude (a rotation by
angle a multiplies mode m by exp(-i m a)), so here the contraction is kept per zonal
wavenumber m: the layer is then exactly equivariant to longitude shifts (tested), and the
position-dependent part of the climate enters through the conditioning fields instead.

``diagonal`` (SFNO): ``Z[b, o, l, m] = sum_c X[b, c, l, m] W[c, o, l]`` (per-l, isotropic)
or ``W[c, o, l, m]`` (per-(l, m)).

Complex weights are stored as real tensors with a trailing dim of 2 so that safetensors,
AdamW and weight decay see ordinary float parameters.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from .sht import common_truncation, forward_sht, inverse_sht

Operator = Literal["tensor", "diagonal"]


def _complex_param(*shape: int, std: float) -> nn.Parameter:
    """A complex weight of variance ``std**2`` stored as (..., 2) real (each part var std**2/2)."""
    return nn.Parameter(torch.randn(*shape, 2) * (std / math.sqrt(2.0)))


class SpectralConv(nn.Module):
    """Spectral convolution from grid ``shape_in`` to ``shape_out`` (equiangular, poles).

    Args:
        c_in, c_out: channels.
        shape_in, shape_out: (nlat, nlon) of the input and output grids.
        operator: ``tensor`` (low-rank, couples wavenumbers) or ``diagonal`` (SFNO).
        rank: rank r of the tensor operator.
        diagonal_mode: ``l`` (weights per total wavenumber) or ``lm`` for ``diagonal``.
    """

    def __init__(self, c_in: int, c_out: int, shape_in: tuple[int, int], shape_out: tuple[int, int],
                 operator: Operator = "tensor", rank: int = 16, diagonal_mode: str = "l"):
        super().__init__()
        self.c_in, self.c_out, self.operator = c_in, c_out, operator
        self.lmax = common_truncation(tuple(shape_in), tuple(shape_out))
        self.sht = forward_sht(tuple(shape_in), self.lmax)
        self.isht = inverse_sht(tuple(shape_out), self.lmax)
        n = self.lmax
        if operator == "tensor":
            self.rank = rank
            self.down = _complex_param(c_in, rank, std=1.0 / math.sqrt(c_in))
            self.pattern_in = _complex_param(rank, n, n, std=1.0 / math.sqrt(n))
            self.pattern_out = _complex_param(rank, n, n, std=1.0)
            self.up = _complex_param(rank, c_out, std=1.0 / math.sqrt(rank))
        elif operator == "diagonal":
            if diagonal_mode not in ("l", "lm"):
                raise ValueError(f"diagonal_mode must be 'l' or 'lm', got {diagonal_mode!r}")
            self.diagonal_mode = diagonal_mode
            shape = (c_in, c_out, n) if diagonal_mode == "l" else (c_in, c_out, n, n)
            self.weight = _complex_param(*shape, std=1.0 / math.sqrt(c_in))
        else:
            raise ValueError(f"operator must be 'tensor' or 'diagonal', got {operator!r}")
        self.bias = nn.Parameter(torch.zeros(c_out))

    def spectral(self, coeffs: torch.Tensor) -> torch.Tensor:
        """Apply the operator to complex coefficients ``[B, C_in, L, M]`` -> ``[B, C_out, L, M]``."""
        if self.operator == "tensor":
            u = torch.einsum("bclm,cr->brlm", coeffs, torch.view_as_complex(self.down))
            s = torch.einsum("brlm,rlm->brm", u, torch.view_as_complex(self.pattern_in))
            y = s.unsqueeze(2) * torch.view_as_complex(self.pattern_out)
            return torch.einsum("brlm,ro->bolm", y, torch.view_as_complex(self.up))
        w = torch.view_as_complex(self.weight)
        if self.diagonal_mode == "l":
            return torch.einsum("bclm,col->bolm", coeffs, w)
        return torch.einsum("bclm,colm->bolm", coeffs, w)

    def forward(self, x: torch.Tensor, return_resampled: bool = False):
        """``x [B, C_in, nlat_in, nlon_in]`` -> ``[B, C_out, nlat_out, nlon_out]`` (float32 inside).

        With ``return_resampled`` also returns ``x`` interpolated onto the output grid
        (``ISHT_out(SHT_in(x))``, band-limited at the common truncation) from the same transform.
        """
        with torch.autocast(device_type=x.device.type, enabled=False):
            coeffs = self.sht(x)
            y = self.isht(self.spectral(coeffs)) + self.bias.view(1, -1, 1, 1)
            if return_resampled:
                return y, self.isht(coeffs)
        return y
