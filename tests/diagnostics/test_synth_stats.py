"""The planted statistics of the synthetic climate are recoverable from the written data.

Every estimate here is computed with independent code (plain numpy least squares, eofs,
torch-harmonics' forward RealSHT), never with the generator's functions, from a 60-year
5.625-degree sample, and compared with truth.nc within a tolerance derived from the sample size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_harmonics as th
import xarray as xr
from eofs.standard import Eof
from scipy.stats import chi2

from diagnostics.data.grid import area_weights, equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.synth.climate import synthesize

GRID = equiangular(5.625)
START, END = Month(1960, 1), Month(2019, 12)


@pytest.fixture(scope="module")
def sample():
    ds, truth = synthesize(GRID, START, END, seed=7)
    return ds.load(), truth.load()


def _anomalies(x: np.ndarray) -> np.ndarray:
    """Departure from the calendar-month mean; time first, series starting in January."""
    y = x.reshape(-1, 12, *x.shape[1:])
    return (y - y.mean(axis=0, keepdims=True)).reshape(x.shape)


def _weights(lat: np.ndarray, lon_size: int) -> np.ndarray:
    return np.repeat(area_weights(lat).values[:, None], lon_size, axis=1)


def _nino34_relative(tos: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Independent re-implementation: box(5S-5N, 190-240E) minus band(20S-20N), NaN-aware."""
    w = _weights(lat, lon.size)
    box = (np.abs(lat)[:, None] <= 5) & ((lon >= 190) & (lon <= 240))[None, :]
    band = (np.abs(lat)[:, None] <= 20) & np.ones(lon.size, bool)[None, :]
    def mean(mask):
        ww = np.where(mask[None] & np.isfinite(tos), w[None], 0.0)
        return np.nansum(np.nan_to_num(tos) * ww, axis=(1, 2)) / ww.sum(axis=(1, 2))
    return _anomalies(mean(box) - mean(band))


def _acf(x: np.ndarray, nlag: int) -> np.ndarray:
    x = x - x.mean()
    return np.array([1.0] + [np.dot(x[:-k], x[k:]) / np.dot(x, x) for k in range(1, nlag + 1)])


def _spatial_dof(truth: xr.Dataset) -> float:
    """Effective number of independent spatial samples of the planted noise (Bretherton et al.
    1999): (sum_l P(l))^2 / sum_l P(l)^2 / (2l + 1), from the planted power law."""
    ell = np.arange(1, int(truth["noise_lmax"]))
    p = ell ** float(truth["noise_spectral_slope"])
    return float(p.sum() ** 2 / np.sum(p**2 / (2 * ell + 1)))


def _check_z(z: np.ndarray, truth: xr.Dataset) -> None:
    """Calibrated z-scores of a smooth field with few independent samples: no cell beyond 5
    (p ~ 6e-7 per independent sample; area fractions are meaningless when one blob spans a
    hemisphere) and a mean square consistent with chi^2 of the effective spatial degrees of
    freedom (two-sided 0.1 % bounds)."""
    dof = _spatial_dof(truth)
    assert np.abs(z).max() < 5, np.abs(z).max()
    ms = float(np.mean(z**2))
    assert chi2.ppf(0.001, dof) / dof < ms < chi2.ppf(0.999, dof) / dof, (ms, dof)


def _slope_fit(y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell OLS slopes of y (time, ...) on x (time,), with a linear trend as co-regressor,
    and their standard errors.

    se from Bartlett's formula for autocorrelated series: var(b) = s_r^2 / (n s_x^2) *
    (1 + 2 sum_k rho_x(k) rho_r(k)), rho_r(k) = phi_r^k with phi_r the residual lag-1.
    """
    n = x.size
    flat = y.reshape(n, -1)
    # Time is a co-regressor: planted trends are independent of N in expectation, but a sample
    # covariance of t and N would otherwise leak trend into the slope beyond the AR(1) error model.
    design = np.stack([np.ones(n), np.arange(n) / 120.0, x], axis=1)
    coef, *_ = np.linalg.lstsq(design, flat, rcond=None)
    resid = flat - design @ coef
    base = design[:, :2]
    x = x - base @ np.linalg.lstsq(base, x, rcond=None)[0]  # Frisch-Waugh: x net of the trend
    phi = np.sum(resid[1:] * resid[:-1], axis=0) / np.sum(resid**2, axis=0)
    rho_x = _acf(x, 120)[1:]
    k = np.arange(1, rho_x.size + 1)[:, None]
    inflation = 1 + 2 * np.sum(rho_x[:, None] * phi[None, :] ** k, axis=0)
    se = np.sqrt(resid.var(axis=0, ddof=3) / (n * x.var()) * np.maximum(inflation, 0.1))
    return coef[2].reshape(y.shape[1:]), se.reshape(y.shape[1:])


def _slope_z(y: np.ndarray, x: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """z-scores (estimate - truth) / se of per-cell slopes."""
    slope, se = _slope_fit(y, x)
    return (slope - truth) / se


def test_relative_nino34_index_matches_truth(sample):
    ds, truth = sample
    n34 = _nino34_relative(ds["tos"].values.astype(float), ds["lat"].values, ds["lon"].values)
    planted = _anomalies(truth["nino34_relative_index"].values.astype(float))
    np.testing.assert_allclose(n34, planted, atol=1e-4)
    assert 0.5 < n34.std() < 1.2  # an ENSO of ~1 K amplitude
    # The index is dominated by the planted oscillator, a damped AR(2) with a 3-5 year period:
    # least-squares AR(2) fit e_t = a1 e_{t-1} + a2 e_{t-2}: r = sqrt(-a2), period = 2 pi / acos(a1 / 2r).
    e = truth["enso_oscillator"].values.astype(float)
    assert np.corrcoef(n34, e)[0, 1] > 0.9
    a1, a2 = np.linalg.lstsq(np.column_stack([e[1:-1], e[:-2]]), e[2:], rcond=None)[0]
    r = np.sqrt(-a2)
    period = 2 * np.pi / np.arccos(a1 / (2 * r))
    assert abs(r - float(truth["enso_damping"])) < 0.04 and 36 <= period <= 60, (r, period)


@pytest.mark.parametrize("name", ["tas", "zg500", "psl", "ua"])
def test_enso_regression_within_sampling_error(sample, name):
    ds, truth = sample
    n34 = _nino34_relative(ds["tos"].values.astype(float), ds["lat"].values, ds["lon"].values)
    field = ds[name].values.astype(float)
    z = _slope_z(_anomalies(field), n34, truth[f"{name}_nino34_regression"].values.astype(float))
    _check_z(z, truth)
    # The signal itself is recovered, not only "within noise": where the planted map is strong
    # (|beta| >= half its maximum) the area-mean slope matches and is far from zero.
    z_region, snr = _region_z(_anomalies(field), n34, truth[f"{name}_nino34_regression"].values.astype(float))
    # snr > 4 makes the test able to fail: without the planted signal z_region would be -snr.
    assert abs(z_region) < 3.5 and snr > 4, (z_region, snr)


def _region_z(anom: np.ndarray, x: np.ndarray, beta: np.ndarray) -> tuple[float, float]:
    """z of the slope of the area-mean series over |beta| >= max/2, and truth / se there."""
    strong = np.abs(beta) >= 0.5 * np.abs(beta).max()
    if beta.ndim == 3:  # (plev, lat, lon): the level holding the maximum
        k = np.unravel_index(np.argmax(np.abs(beta)), beta.shape)[0]
        anom, beta, strong = anom[:, k], beta[k], strong[k]
    w = np.where(strong, _weights(GRID.lat, GRID.lon.size), 0.0)
    series = np.sum(anom * w, axis=(-2, -1)) / w.sum()
    target = float(np.sum(beta * w) / w.sum())
    slope, se = _slope_fit(series, x)
    return float((slope - target) / se), abs(target) / float(se)


def test_enso_regression_of_precipitation(sample):
    """pr is positive (multiplicative log-normal noise); its slope is still linear in expectation."""
    ds, truth = sample
    n34 = _nino34_relative(ds["tos"].values.astype(float), ds["lat"].values, ds["lon"].values)
    z = _slope_z(_anomalies(ds["pr"].values.astype(float)), n34, truth["pr_nino34_regression"].values.astype(float))
    _check_z(z, truth)
    assert float(ds["pr"].min()) > 0 and float(ds["hus"].min()) > 0


def test_trends_within_sampling_error(sample):
    ds, truth = sample
    n = ds.sizes["time"]
    years = (np.arange(n) + (START.index - 2000 * 12)) / 12.0
    months = np.tile(np.eye(12), (n // 12, 1))
    n34 = _nino34_relative(ds["tos"].values.astype(float), ds["lat"].values, ds["lon"].values)
    design = np.column_stack([months, years / 10.0, n34])  # per-decade trend, ENSO as a co-regressor
    y = ds["tas"].values.reshape(n, -1).astype(float)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    resid = y - design @ coef
    phi = np.sum(resid[1:] * resid[:-1], 0) / np.sum(resid**2, 0)
    # OLS trend se with AR(1) residuals: s / sqrt(sum (t - tbar)^2) * sqrt((1 + phi) / (1 - phi)).
    t10 = years / 10.0
    se = resid.std(0) / np.sqrt(np.sum((t10 - t10.mean()) ** 2)) * np.sqrt((1 + phi) / (1 - phi))
    z = (coef[12] - truth["tas_trend"].values.reshape(-1)) / se
    _check_z(z, truth)
    w = _weights(GRID.lat, GRID.lon.size).reshape(-1)
    global_trend = np.sum(coef[12] * w) / w.sum()
    assert abs(global_trend - float(truth["tas_trend_global"])) < 0.03  # K/decade
    tos = ds["tos"].values.reshape(n, -1).astype(float)
    tropics = (np.abs(ds["lat"].values)[:, None] <= 20).repeat(GRID.lon.size, 1).reshape(-1) & np.isfinite(tos[0])
    tos_coef = np.linalg.lstsq(design, tos[:, tropics], rcond=None)[0][12]
    assert abs(np.mean(tos_coef) - 0.15) < 0.02  # uniform 0.15 K/decade planted in the tropics


def _djf_means(x: np.ndarray) -> np.ndarray:
    """DJF means of winters 1961..2019 from a Jan-1960..Dec-2019 series (Dec of the year before)."""
    months = x.reshape(-1, 12, *x.shape[1:])
    return np.stack([(months[y - 1, 11] + months[y, 0] + months[y, 1]) / 3 for y in range(1, months.shape[0])])


@pytest.mark.parametrize("name,short", [("zg500", "z500"), ("psl", "psl")])
def test_nao_eof_variance_fraction_and_pattern(sample, name, short):
    ds, truth = sample
    inside = truth["nao_domain_mask"].values > 0
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    cols = np.concatenate([cols[cols >= 32], cols[cols < 32]])  # contiguous 270E..40E block
    djf = _djf_means(ds[name].values.astype(float))[:, rows][:, :, cols]
    anom = djf - djf.mean(axis=0)
    w = np.sqrt(area_weights(ds["lat"].values).values[rows])[:, None] * np.ones(cols.size)
    solver = Eof(anom, weights=w)
    frac = float(solver.varianceFraction(1)[0])
    n_winters = anom.shape[0]
    tol = 3 * float(truth[f"nao_{short}_variance_fraction_stderr1"]) / np.sqrt(n_winters)
    assert abs(frac - float(truth[f"nao_{short}_variance_fraction"])) < tol, (frac, tol)
    pattern = solver.eofsAsCovariance(neofs=1, pcscaling=1)[0]
    planted = truth[f"nao_{short}_pattern"].values[rows][:, cols]
    eof_truth = truth[f"nao_{short}_eof_pattern"].values[rows][:, cols]
    wf = w**2
    def corr(a, b):
        a, b = a - np.sum(a * wf) / wf.sum(), b - np.sum(b * wf) / wf.sum()
        return np.sum(a * b * wf) / np.sqrt(np.sum(a * a * wf) * np.sum(b * b * wf))
    assert abs(corr(pattern, planted)) > 0.9 and abs(corr(pattern, eof_truth)) > 0.9
    assert corr(eof_truth, planted) > 0.97
    # Amplitude per standard deviation of the PC matches the planted one (sign-free).
    ratio = np.sqrt(np.sum(pattern**2 * wf) / np.sum(eof_truth**2 * wf))
    assert abs(ratio - 1) < 3 * np.sqrt(1 / (2 * n_winters)) + 0.05


@pytest.mark.parametrize("name,level", [("va", 50000), ("vas", None), ("va", 85000)])
def test_lag1_autocorrelation(sample, name, level):
    ds, truth = sample
    da = ds[name] if level is None else ds[name].sel(plev=level)
    a = _anomalies(da.values.astype(float)).reshape(da.sizes["time"], -1)
    n = a.shape[0]
    w = _weights(GRID.lat, GRID.lon.size).reshape(-1)
    r1 = np.sum(w * np.sum(a[1:] * a[:-1], 0)) / np.sum(w * np.sum(a * a, 0))
    phi = float(truth[f"{name}_lag1"])
    # Sampling std of a lag-1 estimate: sqrt((1 - phi^2) / n) per independent series; the number of
    # independent series is the effective spatial dof of the planted spectrum (Bretherton et al.
    # 1999): (sum P_l)^2 / sum (P_l^2 / (2l + 1)); estimator bias ~ -(1 + 3 phi) / n.
    dof = _spatial_dof(truth)
    tol = 4 * np.sqrt((1 - phi**2) / (n * dof)) + (1 + 3 * phi) / n
    assert abs(r1 - phi) < tol, (r1, phi, tol)


@pytest.mark.parametrize("name,level", [("va", 50000), ("vas", None)])
def test_spherical_harmonic_spectrum_slope(sample, name, level):
    ds, truth = sample
    da = ds[name] if level is None else ds[name].sel(plev=level)
    a = _anomalies(da.values.astype(float))
    lmax = int(truth["noise_lmax"])
    sht = th.RealSHT(GRID.lat.size, GRID.lon.size, lmax=lmax, mmax=lmax, grid="equiangular", norm="ortho").double()
    with torch.no_grad():
        coef = sht(torch.from_numpy(a)).numpy()  # (time, l, m)
    power = np.abs(coef) ** 2
    power[..., 1:] *= 2  # m > 0 stand for +m and -m of a real field
    spec = power.sum(-1).mean(0)
    ell = np.arange(2, lmax)
    slope, _ = np.polyfit(np.log(ell), np.log(spec[ell]), 1)
    # Each P(l) averages n months x (2l+1) coefficients: relative std <= sqrt(2 / (5 n_eff)) ~ 3 %,
    # which moves a log-log slope over l = 2..16 by < 0.03; 0.1 leaves room for anomaly removal.
    assert abs(slope - float(truth["noise_spectral_slope"])) < 0.1, slope


def test_warming_response_p2k_minus_historical():
    hist, truth = synthesize(GRID, Month(2000, 1), Month(2009, 12), seed=9)
    p2k, truth2 = synthesize(GRID, Month(2000, 1), Month(2009, 12), seed=9, sst_offset=2.0)
    ocean = np.isfinite(hist["tos"].values)
    np.testing.assert_allclose((p2k["tos"].values - hist["tos"].values)[ocean], 2.0, atol=1e-4)
    np.testing.assert_array_equal(p2k["siconc"].values, hist["siconc"].values)  # sea ice unchanged
    for name in ("tas", "ts", "ta", "zg500", "psl", "ua"):
        resp = ((p2k[name] - hist[name]) / 2.0).mean("time")
        np.testing.assert_allclose(resp.values, truth[f"{name}_warming_per_K"].values, atol=2e-3 * (1 + abs(resp).max()))
    # Positive fields: the time mean of (p2k - hist) / 2 has the planted expectation; global mean
    # within a few percent over 10 years (log-normal noise std 0.35 averages down).
    w = area_weights(hist["lat"])
    resp = float((((p2k["pr"] - hist["pr"]) / 2.0).mean("time")).weighted(w).mean())
    planted = float(truth["pr_warming_per_K"].weighted(w).mean())
    assert abs(resp / planted - 1) < 0.05
    np.testing.assert_array_equal(truth2["nino34_relative_index"].values, truth["nino34_relative_index"].values)
