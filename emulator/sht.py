"""Spherical harmonic transforms between two equiangular grids (torch-harmonics 0.9.3).

Grids are equiangular with both poles (contract latitude order, south first). torch-harmonics'
equiangular quadrature (Clenshaw-Curtis, poles included) integrates products of harmonics
exactly up to degree ``(nlat + 1) // 2``; that is the largest truncation we use on a grid.
A transform pair from grid A to grid B uses the common truncation
``lmax = mmax = min(trunc(A), trunc(B))`` so a field band-limited below it survives
``forward on A -> inverse on B`` exactly (tested). The transforms always run in float32,
outside any autocast region: reduced-precision Legendre sums lose the small coefficients.
"""

from __future__ import annotations

import torch
import torch_harmonics as th
from torch import nn


def truncation(nlat: int, nlon: int) -> int:
    """Largest exact triangular truncation of an equiangular ``nlat x nlon`` grid.

    ``(nlat + 1) // 2`` (torch-harmonics 0.9 default for equiangular grids), capped by the
    number of zonal modes ``nlon // 2 + 1``.
    """
    return min((nlat + 1) // 2, nlon // 2 + 1)


def common_truncation(shape_in: tuple[int, int], shape_out: tuple[int, int]) -> int:
    """Truncation shared by two grids: the smaller of their exact truncations."""
    return min(truncation(*shape_in), truncation(*shape_out))


class _Float32(nn.Module):
    """Run a torch-harmonics transform in float32 with autocast off, whatever the caller uses."""

    def __init__(self, transform: nn.Module):
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=x.device.type, enabled=False):
            if x.is_complex():
                return self.transform(x.to(torch.complex64))
            return self.transform(x.float())


def forward_sht(shape: tuple[int, int], lmax: int) -> nn.Module:
    """Real SHT on an equiangular grid ``shape`` truncated at ``lmax = mmax``; orthonormal."""
    return _Float32(th.RealSHT(shape[0], shape[1], lmax=lmax, mmax=lmax, grid="equiangular"))


def inverse_sht(shape: tuple[int, int], lmax: int) -> nn.Module:
    """Inverse real SHT onto an equiangular grid ``shape`` from coefficients ``(lmax, lmax)``."""
    return _Float32(th.InverseRealSHT(shape[0], shape[1], lmax=lmax, mmax=lmax, grid="equiangular"))


class SpectralResample(nn.Module):
    """Band-limited interpolation of fields from grid ``shape_in`` to grid ``shape_out``.

    ``y = ISHT_out(SHT_in(x))`` with the common truncation; identity on fields band-limited
    below it. Used for the skip path of grid-changing blocks and to bring the conditioning
    onto the latent grid. No learned weights.
    """

    def __init__(self, shape_in: tuple[int, int], shape_out: tuple[int, int]):
        super().__init__()
        self.shape_in, self.shape_out = tuple(shape_in), tuple(shape_out)
        self.lmax = common_truncation(self.shape_in, self.shape_out)
        self.sht = forward_sht(self.shape_in, self.lmax)
        self.isht = inverse_sht(self.shape_out, self.lmax)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shape_in == self.shape_out:
            return x
        return self.isht(self.sht(x)).to(x.dtype)
