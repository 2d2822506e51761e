"""Isotropic Gaussian random fields on the sphere with a planted power-law spectrum, red in time.

A unit-variance field xi(x) = sum_{l,m} a_lm Y_lm(x) (orthonormal spherical harmonics,
torch-harmonics ``norm="ortho"``) whose power per total wavenumber

    P(l) = |a_l0|^2 + 2 sum_{m>0} |a_lm|^2   has expectation   A l^slope  (l >= 1),  P(0) = 0,

with A chosen so the point variance sum_l P(l) / (4 pi) is exactly 1 at the grid's truncation
(l < lmax). Each coefficient follows a month-to-month AR(1) process with lag-1 coefficient phi,
started from its stationary distribution, so every grid point is an AR(1) series with the same phi.

The synthesis is torch-harmonics' ``InverseRealSHT`` (a well-kept library); only the coefficient
statistics are written here. The spatial correlation between two points at angular distance
gamma is rho(gamma) = sum_l P(l) P_l(cos gamma) / (4 pi) (addition theorem), used by the truth
file to compute planted EOF variance fractions exactly.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch_harmonics as th

from ..data.grid import Grid


def default_lmax(grid: Grid) -> int:
    """Triangular truncation exactly representable (and invertible) on an equiangular grid."""
    return min((grid.lat.size + 1) // 2, grid.lon.size // 2)


def degree_power(lmax: int, slope: float) -> np.ndarray:
    """Planted power per total wavenumber P(l), l = 0..lmax-1, normalised to unit point variance."""
    ell = np.arange(lmax, dtype=float)
    p = np.zeros(lmax)
    p[1:] = ell[1:] ** slope
    return p * (4.0 * np.pi / p.sum())


def correlation(cos_gamma: np.ndarray, lmax: int, slope: float) -> np.ndarray:
    """Correlation of the unit field between points at angular distance gamma (cos given)."""
    return np.polynomial.legendre.legval(np.clip(cos_gamma, -1.0, 1.0), degree_power(lmax, slope) / (4 * np.pi))


@functools.lru_cache(maxsize=4)
def _isht(nlat: int, nlon: int, lmax: int) -> th.InverseRealSHT:
    return th.InverseRealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid="equiangular", norm="ortho").double()


class SphericalNoise:
    """Unit-variance isotropic noise on ``grid`` with P(l) ~ l^slope and AR(1) in time.

    Coefficients are held as real vectors of length ``ncoef`` (real and imaginary parts of the
    lower-triangular (l, m) entries, l >= 1) so AR(1) recursions and channel mixing are plain
    numpy matrix products.
    """

    def __init__(self, grid: Grid, slope: float, lmax: int | None = None):
        self.grid = grid
        self.slope = float(slope)
        self.lmax = lmax or default_lmax(grid)
        ell, m = np.meshgrid(np.arange(self.lmax), np.arange(self.lmax), indexing="ij")
        keep = (m <= ell) & (ell >= 1)
        self._l, self._m = ell[keep], m[keep]
        c_l = degree_power(self.lmax, self.slope) / (2 * np.arange(self.lmax) + 1)  # E|a_lm|^2
        # m = 0: a real coefficient of variance C_l; m > 0: complex, C_l/2 in each part.
        re_std = np.sqrt(np.where(self._m == 0, c_l[self._l], c_l[self._l] / 2))
        im_std = np.where(self._m == 0, 0.0, re_std)
        self._std = np.concatenate([re_std, im_std])

    @property
    def ncoef(self) -> int:
        """Length of the real coefficient vector of one field."""
        return self._std.size

    def ar1(self, eps: np.ndarray, phi: np.ndarray, state: np.ndarray) -> np.ndarray:
        """Standardised AR(1) states x_t = phi x_{t-1} + sqrt(1 - phi^2) eps_t.

        eps: (time, field, ncoef) unit normals; phi: (field,); state: (field, ncoef), x_{-1}.
        Returns x of shape eps.shape (unit variance when ``state`` is a unit-normal draw).
        """
        phi = np.asarray(phi, dtype=float)[:, None]
        gain = np.sqrt(1.0 - phi**2)
        out = np.empty_like(eps)
        x = state
        for t in range(eps.shape[0]):  # a short sequential recursion; lfilter cannot take per-row phi
            x = phi * x + gain * eps[t]
            out[t] = x
        return out

    def synthesize(self, x: np.ndarray) -> np.ndarray:
        """Grid fields (..., nlat, nlon) from standardised coefficient vectors x (..., ncoef)."""
        lead = x.shape[:-1]
        y = x.reshape(-1, self.ncoef) * self._std
        n = self._l.size
        coef = np.zeros((y.shape[0], self.lmax, self.lmax), dtype=np.complex128)
        coef[:, self._l, self._m] = y[:, :n] + 1j * y[:, n:]
        with torch.no_grad():
            field = _isht(self.grid.lat.size, self.grid.lon.size, self.lmax)(torch.from_numpy(coef)).numpy()
        return field.reshape(*lead, *self.grid.shape)
