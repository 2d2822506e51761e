"""Anomaly std and lag-1 autocorrelation: AR(1) with known phi, numpy references, ratios."""

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.metrics.climatology import monthly_anomalies
from diagnostics.metrics.variability import anomaly_std, lag1_autocorrelation, variability_ratio

GRID = equiangular(11.25)  # 17 x 32


def _ar1_field(phi, years=50, sigma=1.0, seed=0, members=None):
    """AR(1) anomalies x(t+1) = phi x(t) + sigma e on every cell, plus a seasonal cycle."""
    rng = np.random.default_rng(seed)
    nt = 12 * years
    lead = () if members is None else (members,)
    phi = np.broadcast_to(phi, GRID.shape)
    x = np.zeros((*lead, nt, *GRID.shape))
    x[..., 0, :, :] = rng.normal(size=(*lead, *GRID.shape)) * sigma / np.sqrt(1 - phi**2)
    for t in range(1, nt):
        x[..., t, :, :] = phi * x[..., t - 1, :, :] + sigma * rng.normal(size=(*lead, *GRID.shape))
    season = 10 * np.sin(2 * np.pi * np.arange(nt) / 12)[:, None, None]
    axis = monthly_axis(Month(1980, 1), Month(1980 + years - 1, 12))
    dims = ("time", "lat", "lon") if members is None else ("member", "time", "lat", "lon")
    return xr.DataArray(270.0 + season + x, dims=dims, coords={"time": axis["time"], **GRID.coords()},
                        name="tas", attrs={"units": "K"})


def _numpy_anomalies(values, years):
    v = values.reshape(years, 12, *values.shape[1:])
    return (v - v.mean(0)).reshape(values.shape)


def test_ar1_recovers_phi_within_sampling_error():
    phi = 0.6
    f = _ar1_field(phi, years=50)
    r1 = lag1_autocorrelation(f)
    n = f.sizes["time"]
    se = np.sqrt((1 - phi**2) / n)  # Bartlett standard error of r1 for AR(1)
    bias = (1 + 4 * phi) / n  # known small negative bias of r1 with the mean removed
    assert abs(float(r1.mean()) - (phi - bias)) < 4 * se / np.sqrt(r1.size) + 0.005
    assert np.mean(np.abs(r1.values - phi) < 3 * se) > 0.98
    assert r1.attrs["units"] == "1"


def test_phi_map_recovered():
    phi_map = np.broadcast_to(np.linspace(0.1, 0.8, GRID.shape[0])[:, None], GRID.shape)
    r1 = lag1_autocorrelation(_ar1_field(phi_map, years=40, seed=1))
    zonal = r1.mean("lon").values
    se = np.sqrt((1 - phi_map[:, 0] ** 2) / 480) / np.sqrt(GRID.shape[1])
    assert np.all(np.abs(zonal - phi_map[:, 0]) < 4 * se + 0.02)


def test_std_and_lag1_match_numpy_exactly():
    f = _ar1_field(0.3, years=6, seed=2)
    anom = _numpy_anomalies(f.values, 6)
    np.testing.assert_allclose(anomaly_std(f).values, anom.std(axis=0, ddof=1), rtol=1e-10)
    cell = anom[:, 5, 9]
    assert float(lag1_autocorrelation(f)[5, 9]) == pytest.approx(np.corrcoef(cell[:-1], cell[1:])[0, 1], rel=1e-10)
    # AR(1) stationary std sigma / sqrt(1 - phi^2)
    long = _ar1_field(0.5, years=50, seed=3)
    assert float(anomaly_std(long).mean()) == pytest.approx(1 / np.sqrt(0.75), rel=0.02)


def test_variability_ratio_closed_forms_members_and_lazy():
    ref = _ar1_field(0.5, years=10, seed=4)
    clim = ref.groupby("time.month").mean()
    anom = ref.groupby("time.month") - clim
    # member 0 doubles the anomalies, member 1 is the reference: pooled std ratio sqrt((4 + 1) / 2)
    model = xr.concat([(ref + anom).drop_vars("month"), ref], dim="member").chunk({"time": 30})
    out = variability_ratio(model, ref)
    assert isinstance(out["std_ratio"].data, dsa.Array)
    np.testing.assert_allclose(out["std_ratio"].values, np.sqrt(2.5), rtol=1e-10)
    assert float(out["std_ratio_global"]) == pytest.approx(np.sqrt(2.5), rel=1e-10)
    np.testing.assert_allclose(out["std_model_members"].values[0] / out["std_reference"].values, 2.0, rtol=1e-10)
    np.testing.assert_allclose(out["lag1_ratio"].values, 1.0, rtol=1e-10)
    np.testing.assert_allclose(out["lag1_difference"].values, 0.0, atol=1e-12)


def test_gap_in_months_rejected():
    f = _ar1_field(0.5, years=3, seed=5)
    with pytest.raises(ValueError, match="consecutive"):
        lag1_autocorrelation(f.isel(time=[i for i in range(36) if i != 20]))


@pytest.mark.parametrize("chunks", [None, {"time": 12}, {"time": 7, "member": 1}, {"time": 1}])
def test_lag1_equals_pearson_of_the_shifted_anomalies_for_any_chunking(chunks):
    """The one-pass lag-1 sums (pairs inside each chunk, plus the pairs straddling two chunks)
    against xarray's two-pass Pearson correlation of the float64 anomalies and their shift by one
    month: equal to 1e-14 whatever the chunking (one-month chunks: every pair straddles), NaN
    months leaving their two pairs, a cell without values NaN."""
    axis = monthly_axis(Month(1990, 1), Month(1995, 12), "proleptic_gregorian")
    rng = np.random.default_rng(0)
    x = (280 + rng.normal(size=(3, 72, *GRID.shape))).astype(np.float32)
    x[0, 5, 1, 1] = np.nan
    x[1, :, 2, 2] = np.nan
    field = xr.DataArray(x, dims=("member", "time", "lat", "lon"), coords={"time": axis["time"], **GRID.coords()},
                         name="tas")
    anom = monthly_anomalies(field, "1990-01:1994-12").astype(np.float64)
    now = anom.isel(time=slice(None, -1))
    expected = xr.corr(now, anom.isel(time=slice(1, None)).assign_coords(time=now["time"]), dim="time")
    got = lag1_autocorrelation(field.chunk(chunks) if chunks else field, "1990-01:1994-12")
    assert isinstance(got.data, dsa.Array) == bool(chunks)
    np.testing.assert_allclose(got.transpose(*expected.dims).values, expected.values, rtol=1e-14, atol=1e-15)
    assert np.isnan(got.values[1, 2, 2]) and np.isfinite(got.values[0, 1, 1])
    # the std from the same pass's month sums: numpy's two-pass nanstd of the float64 anomalies
    std = anomaly_std(field.chunk(chunks) if chunks else field, "1990-01:1994-12")
    np.testing.assert_allclose(std.transpose(*anom.dims[:1], *anom.dims[2:]).values,
                               np.nanstd(anom.values, axis=1, ddof=1), rtol=1e-12, atol=0)
    assert np.isnan(std.values[1, 2, 2]) and np.isfinite(std.values[0, 1, 1])
