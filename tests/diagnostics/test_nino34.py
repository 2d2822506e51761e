"""Niño-3.4 index against a hand numpy computation; regression maps against planted
coefficients and scipy.stats.linregress; pattern comparison against closed forms."""

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from scipy import stats

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.metrics.nino34 import compare_patterns, nino34_index, regression_map

GRID = equiangular(3.0)  # 61 x 120
YEARS = 8
NT = 12 * YEARS


def _areas(lat):
    lat = np.asarray(lat, float)
    edges = np.concatenate([[-90.0], 0.5 * (lat[1:] + lat[:-1]), [90.0]])
    return np.diff(np.sin(np.deg2rad(edges)))


def _ar1(rng, n, phi=0.9, sigma=0.5):
    e = np.zeros(n)
    for t in range(1, n):
        e[t] = phi * e[t - 1] + sigma * rng.normal()
    return e


def _sst(seed=0, calendar="proleptic_gregorian"):
    rng = np.random.default_rng(seed)
    axis = monthly_axis(Month(2000, 1), Month(2000 + YEARS - 1, 12), calendar)
    lat, lon = np.meshgrid(GRID.lat, GRID.lon, indexing="ij")
    month = np.arange(NT) % 12
    season = 2.0 * np.cos(2 * np.pi * month / 12)[:, None, None] * np.sin(np.deg2rad(lat))[None]
    enso = _ar1(rng, NT)[:, None, None] * (np.exp(-(lat / 10) ** 2) * np.exp(-((lon - 215) / 30) ** 2))[None]
    uniform = 0.3 * rng.normal(size=NT)[:, None, None]
    values = 295.0 + 5 * np.cos(np.deg2rad(lat))[None] + season + enso + uniform \
        + 0.1 * rng.normal(size=(NT, *GRID.shape))
    values[:, (GRID.lat == 3.0), (GRID.lon == 240.0)] = np.nan  # a "land" cell inside the box
    values[:, np.abs(GRID.lat) < 15, (GRID.lon > 270) & (GRID.lon < 300)] = np.nan  # tropical land
    return xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": axis["time"], **GRID.coords()},
                        name="tos", attrs={"units": "K"})


def _numpy_box_anomaly(values, lat_range, lon_range=None):
    """Independent numpy version: area-weighted box mean of finite cells, minus monthly climatology."""
    rows = (GRID.lat >= lat_range[0]) & (GRID.lat <= lat_range[1])
    cols = np.ones(GRID.lon.size, bool) if lon_range is None else \
        (GRID.lon >= lon_range[0]) & (GRID.lon <= lon_range[1])
    box = values[:, rows][:, :, cols]
    w = np.broadcast_to(_areas(GRID.lat)[rows][:, None], box.shape[1:]) * np.isfinite(box[0])
    series = np.nansum(box * w, axis=(1, 2)) / w.sum()
    by_month = series.reshape(YEARS, 12)
    return (by_month - by_month.mean(0)).ravel()


def test_absolute_and_relative_index_match_numpy():
    tos = _sst()
    n34 = _numpy_box_anomaly(tos.values, (-5, 5), (190, 240))
    trop = _numpy_box_anomaly(tos.values, (-20, 20))
    absolute = nino34_index(tos, relative=False, smooth=None)
    np.testing.assert_allclose(absolute.values, n34, atol=1e-9)
    relative = nino34_index(tos, smooth=None)
    np.testing.assert_allclose(relative.values, n34 - trop, atol=1e-9)
    smoothed = nino34_index(tos)
    assert np.isnan(smoothed.values[[0, -1]]).all()
    np.testing.assert_allclose(smoothed.values[1:-1], np.convolve(n34 - trop, np.ones(3) / 3, "valid"), atol=1e-9)
    assert smoothed.attrs["units"] == "K"


def test_relative_index_removes_uniform_warming():
    tos = _sst(1)
    warmer = tos + xr.DataArray(np.linspace(0, 3, NT), dims="time", coords={"time": tos["time"]})
    np.testing.assert_allclose(nino34_index(warmer).values, nino34_index(tos).values, atol=1e-9, equal_nan=True)
    assert not np.allclose(nino34_index(warmer, relative=False).values[1:-1],
                           nino34_index(tos, relative=False).values[1:-1])


def _planted_field(index, seed, members=None):
    rng = np.random.default_rng(seed)
    a = np.sin(np.deg2rad(GRID.lat))[:, None] * np.cos(np.deg2rad(GRID.lon))[None] * 2.0 + 0.5
    shape = (NT, *GRID.shape) if members is None else (members, NT, *GRID.shape)
    season = 3 * np.cos(2 * np.pi * np.arange(NT) / 12)[:, None, None]
    n = np.nan_to_num(index.values)[:, None, None]
    values = 5000.0 + season + a[None] * n + 0.5 * rng.normal(size=shape)
    dims = ("time", "lat", "lon") if members is None else ("member", "time", "lat", "lon")
    return a, xr.DataArray(values, dims=dims, coords={"time": index["time"], **GRID.coords()},
                           name="zg500", attrs={"units": "m"})


def test_regression_recovers_planted_coefficients_and_matches_linregress():
    index = nino34_index(_sst(2))
    a, field = _planted_field(index, 3)
    reg = regression_map(field, index)
    assert reg.attrs["units"] == "m K-1"
    valid = np.isfinite(index.values)
    se = 0.5 / (np.std(index.values[valid]) * np.sqrt(valid.sum()))
    assert np.abs(reg.values - a).max() < 5 * se
    stats_ = compare_patterns(reg, xr.DataArray(a, dims=("lat", "lon"), coords=GRID.coords()))
    # expected correlation of a planted map with its estimate: sqrt(var(a) / (var(a) + se^2))
    w = np.broadcast_to(_areas(GRID.lat)[:, None], GRID.shape)
    var_a = np.cov(a.ravel(), aweights=w.ravel())
    assert float(stats_["pattern_corr"]) == pytest.approx(np.sqrt(var_a / (var_a + se**2)), abs=0.01)
    assert float(stats_["amplitude_ratio"]) == pytest.approx(1.0, abs=0.05)
    # one cell against scipy on hand-made monthly anomalies
    cell = field.values[:, 10, 20].reshape(YEARS, 12)
    anom = (cell - cell.mean(0)).ravel()
    assert float(reg[10, 20]) == pytest.approx(stats.linregress(index.values[valid], anom[valid]).slope, rel=1e-9)


def test_members_per_member_pooled_other_calendar_and_lazy():
    index = nino34_index(_sst(4))
    a, field = _planted_field(index, 5, members=2)
    noleap = field.isel(time=slice(12, None)).assign_coords(
        time=monthly_axis(Month(2001, 1), Month(2000 + YEARS - 1, 12), "noleap")["time"]).chunk({"time": 24})
    per_member = regression_map(noleap, index)
    assert isinstance(per_member.data, dsa.Array)
    assert per_member.dims == ("member", "lat", "lon")
    pooled = regression_map(noleap, index, dims=("member", "time"))
    assert pooled.dims == ("lat", "lon")
    n = index.values[12:]
    valid = np.isfinite(n)
    xs, ys = [], []
    for m in range(2):
        cell = field.values[m, 12:, 7, 30].reshape(YEARS - 1, 12)
        anom = (cell - cell.mean(0)).ravel()
        assert float(per_member[m, 7, 30]) == pytest.approx(stats.linregress(n[valid], anom[valid]).slope, rel=1e-9)
        xs.append(n[valid])
        ys.append(anom[valid])
    assert float(pooled[7, 30]) == pytest.approx(stats.linregress(np.concatenate(xs), np.concatenate(ys)).slope,
                                                 rel=1e-9)


def test_compare_patterns_closed_forms():
    rng = np.random.default_rng(6)
    ref = xr.DataArray(rng.normal(size=GRID.shape), dims=("lat", "lon"), coords=GRID.coords())
    same = compare_patterns(ref, ref)
    assert (float(same["pattern_corr"]), float(same["rms_diff"]), float(same["amplitude_ratio"])) == \
        pytest.approx((1.0, 0.0, 1.0), abs=1e-12)
    scaled = compare_patterns(0.6 * ref, ref)
    assert float(scaled["amplitude_ratio"]) == pytest.approx(0.6, rel=1e-12)
    assert float(scaled["pattern_corr"]) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("chunks", [None, {"time": 12}, {"time": 7, "member": 1}])
def test_regression_with_missing_months_equals_linregress_on_the_finite_pairs(chunks):
    """The one-pass float64 sums leave a month out where the field or the index is NaN, per cell
    and for any chunking: the slope equals linregress on that cell's finite pairs; a cell without
    values is NaN."""
    index = nino34_index(_sst(6))
    _, field = _planted_field(index, 7, members=2)
    values = field.values.copy()
    values[0, 30:34, 7, 30] = np.nan
    values[1, :, 8, 31] = np.nan
    field = field.copy(data=values)
    got = regression_map(field.chunk(chunks) if chunks else field, index)
    n = index.values
    for m, (i, j) in [(0, (7, 30)), (1, (7, 30)), (0, (20, 50))]:
        cell = values[m, :, i, j].reshape(YEARS, 12)
        anom = (cell - np.nanmean(cell, axis=0)).ravel()
        ok = np.isfinite(n) & np.isfinite(anom)
        want = stats.linregress(n[ok], anom[ok]).slope
        assert float(got[m, i, j]) == pytest.approx(want, rel=1e-9)
    assert np.isnan(float(got[1, 8, 31]))
