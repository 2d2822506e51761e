"""Prescribed forcing of the synthetic climate: SST with trend and ENSO, sea ice following SST,
and the relative Nino-3.4 index the atmosphere responds to.

tos_raw(t, x) = clim(month, x) + trend(x) * years(t) / 10 + P(x) e(t) + sigma_tos(x) eta(t, x)
  * e(t): ENSO oscillator, a damped AR(2) e_t = a1 e_{t-1} + a2 e_{t-2} + w_t with
    a1 = 2 r cos(2 pi / T), a2 = -r^2 (period T = 48 months, r = 0.95 per month), scaled to
    standard deviation 0.8 K and started from its stationary state (600 months of spin-up);
  * P(x): SST pattern centred in the Nino-3.4 box, normalised so that its relative Nino-3.4 value
    (box mean minus 20S-20N mean, see :func:`nino34_relative`) is exactly 1;
  * eta: unit AR(1) noise (lag-1 0.75) with the planted spherical-harmonic spectrum.
  * years(t) = (month index - index of 2000-01) / 12.
siconc = 1 / (1 + exp((271.85 K - tos_raw) / 0.6 K)) poleward of 40 degrees over ocean, else 0;
tos = max(tos_raw, 271.35 K) + sst_offset over ocean (sftlf < 0.5), NaN over land. The scenario
offset leaves sea ice unchanged (AI-MIP p2k / p4k) and cancels in the relative index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.grid import area_weights
from .climatology import T_FREEZE
from .patterns import NINO34_LAT, NINO34_LON, TOS_LAG1, TROPICS_LAT, enso_sst_pattern, tos_trend
from .spectral_noise import SphericalNoise, correlation, default_lmax
from .statics import Statics

ENSO_PERIOD_MONTHS = 48.0
ENSO_DAMPING = 0.95  # per month (AR(2) root modulus)
ENSO_STD = 0.8  # K
ENSO_SPINUP = 600
REFERENCE_MONTH_INDEX = 2000 * 12  # 2000-01: trends are zero here
ICE_T50 = 271.85  # K, SST (before clamp) at which siconc = 0.5
ICE_WIDTH = 0.6  # K
ICE_MIN_ABS_LAT = 40.0


@dataclass(frozen=True)
class Forcing:
    """Forcing series of one scenario (arrays (time, nlat, nlon) unless noted)."""

    tos: np.ndarray  # float32, K, NaN over land
    siconc: np.ndarray  # float32, 0..1
    nino34: np.ndarray  # (time,) float64, K: relative Nino-3.4 anomaly the atmosphere responds to
    enso: np.ndarray  # (time,) the oscillator e(t), K
    years: np.ndarray  # (time,) years since 2000-01


def nino34_relative(tos: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Relative Nino-3.4 value of SST fields (..., nlat, nlon), K, no anomaly taken.

    = area-weighted mean over 5S-5N, 190-240E minus area-weighted mean over 20S-20N, both with
    bounds inclusive, weights :func:`diagnostics.data.grid.area_weights` (cell area) and NaN
    (land) cells left out of sums and weights.
    """
    w = area_weights(lat).values[:, None] * np.ones(lon.size)[None, :]
    box = ((lat >= NINO34_LAT[0]) & (lat <= NINO34_LAT[1]))[:, None] & ((lon >= NINO34_LON[0]) & (lon <= NINO34_LON[1]))[None, :]
    band = ((lat >= TROPICS_LAT[0]) & (lat <= TROPICS_LAT[1]))[:, None] & np.ones(lon.size, bool)[None, :]

    def mean(mask: np.ndarray) -> np.ndarray:
        valid = np.isfinite(tos) & mask
        ww = np.where(valid, w, 0.0)
        return np.nansum(np.where(valid, tos, 0.0) * ww, axis=(-2, -1)) / ww.sum(axis=(-2, -1))

    return mean(box) - mean(band)


def enso_oscillator(rng: np.random.Generator, n: int) -> np.ndarray:
    """n months of the damped AR(2) ENSO oscillator with standard deviation ENSO_STD (K)."""
    a1 = 2 * ENSO_DAMPING * np.cos(2 * np.pi / ENSO_PERIOD_MONTHS)
    a2 = -ENSO_DAMPING**2
    var = (1 - a2) / ((1 + a2) * ((1 - a2) ** 2 - a1**2))  # stationary variance for unit innovations
    w = rng.standard_normal(n + ENSO_SPINUP)
    e = np.zeros(n + ENSO_SPINUP)
    for t in range(2, e.size):
        e[t] = a1 * e[t - 1] + a2 * e[t - 2] + w[t]
    return e[ENSO_SPINUP:] * (ENSO_STD / np.sqrt(var))


def sst_pattern(st: Statics) -> np.ndarray:
    """ENSO SST pattern P (K per K of the oscillator) with relative Nino-3.4 value exactly 1."""
    p = enso_sst_pattern(st)
    p_nan = np.where(st.ocean, p, np.nan)
    return p / nino34_relative(p_nan, st.grid.lat, st.grid.lon)


def sst_noise_std(st: Statics) -> np.ndarray:
    """Standard deviation of the SST noise, K."""
    return 0.2 + 0.4 * np.sin(np.deg2rad(st.lat)) ** 2


def _index_weights(st: Statics) -> np.ndarray:
    """Weights u (nlat, nlon) with relative Nino-3.4 value of a field f = sum(u f) (ocean cells)."""
    lat, lon = st.grid.lat, st.grid.lon
    w = area_weights(lat).values[:, None] * st.ocean
    box = ((lat >= NINO34_LAT[0]) & (lat <= NINO34_LAT[1]))[:, None] & ((lon >= NINO34_LON[0]) & (lon <= NINO34_LON[1]))[None, :]
    band = ((lat >= TROPICS_LAT[0]) & (lat <= TROPICS_LAT[1]))[:, None] & np.ones(lon.size, bool)[None, :]
    return np.where(box, w, 0.0) / np.sum(w * box) - np.where(band, w, 0.0) / np.sum(w * band)


def nino34_std(st: Statics, slope: float) -> float:
    """Population standard deviation of the relative Nino-3.4 anomaly N(t), K.

    N = e(t) + nu(t) exactly (the trend is uniform over 25S-25N and P has relative value 1), with
    nu = sum_x u_x sigma_tos(x) eta(t, x) the index of the SST noise, independent of e, so
    var N = ENSO_STD^2 + sum_xy u_x s_x u_y s_y rho(x, y) (rho: the planted noise correlation,
    :func:`.spectral_noise.correlation`). rho depends on the two rows and the longitude step only,
    so the double sum is a circular cross-correlation along longitude per pair of rows.
    """
    v = _index_weights(st) * sst_noise_std(st)
    rows = np.flatnonzero(np.any(v != 0, axis=1))
    phi = np.deg2rad(st.grid.lat[rows])
    nlon = st.grid.lon.size
    cos_dlon = np.cos(2 * np.pi * np.arange(nlon) / nlon)
    spec = np.fft.fft(v[rows], axis=1)
    var_nu = 0.0
    for i, a in enumerate(rows):
        cos_g = np.sin(phi[i]) * np.sin(phi)[:, None] + np.cos(phi[i]) * np.cos(phi)[:, None] * cos_dlon[None, :]
        rho = correlation(cos_g, default_lmax(st.grid), slope)  # (rows b, lon step d)
        xc = np.fft.ifft(spec[i][None, :] * np.conj(spec), axis=1).real  # sum_j v_a(j + d) v_b(j)
        var_nu += float(np.sum(rho * xc))
    return float(np.sqrt(ENSO_STD**2 + var_nu))


def make_forcing(st: Statics, tos_clim: np.ndarray, months: np.ndarray, rng: np.random.Generator,
                 slope: float, sst_offset: float = 0.0) -> Forcing:
    """SST, sea ice and the relative Nino-3.4 index for month indices ``months``.

    ``tos_clim`` is the raw SST climatology (12, nlat, nlon); draws come from ``rng`` in a fixed
    order (ENSO innovations, noise start state, noise innovations).
    """
    n = months.size
    moy = months % 12
    years = (months - REFERENCE_MONTH_INDEX) / 12.0
    e = enso_oscillator(rng, n)
    noise = SphericalNoise(st.grid, slope)
    state = rng.standard_normal((1, noise.ncoef))
    eps = rng.standard_normal((n, 1, noise.ncoef))
    eta = noise.synthesize(noise.ar1(eps, np.array([TOS_LAG1]), state))[:, 0]
    raw = (tos_clim[moy] + tos_trend(st)[None] * (years[:, None, None] / 10.0)
           + sst_pattern(st)[None] * e[:, None, None] + sst_noise_std(st)[None] * eta)
    polar = (np.abs(st.lat) >= ICE_MIN_ABS_LAT) & st.ocean
    siconc = np.where(polar[None], 1.0 / (1.0 + np.exp((raw - ICE_T50) / ICE_WIDTH)), 0.0)
    tos = np.where(st.ocean[None], np.maximum(raw, T_FREEZE) + sst_offset, np.nan).astype(np.float32)
    # The index is computed from the float32 SST that is written, so diagnostics see the same one;
    # the climatological part is removed with the deterministic climatology (any per-month constant
    # is removed again by a diagnostic's own anomaly and does not change regressions).
    clim_rel = nino34_relative(np.where(st.ocean[None], tos_clim, np.nan), st.grid.lat, st.grid.lon)
    nino = nino34_relative(tos.astype(float), st.grid.lat, st.grid.lon) - clim_rel[moy]
    return Forcing(tos=tos, siconc=siconc.astype(np.float32), nino34=nino, enso=e, years=years)
