"""Time means, seasons, monthly climatology and biases against hand numpy computations."""

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.metrics.climatology import (bias_map, bias_summary, calendar_month_means, calendar_month_sums,
                                             monthly_anomalies, monthly_climatology,
                                             seasonal_mean, time_mean, weighted_time_mean, zonal_mean_bias)

GRID = equiangular(11.25)  # 17 x 32


def _field(start=Month(2000, 1), end=Month(2002, 12), seed=0, calendar="proleptic_gregorian", plev=False):
    axis = monthly_axis(start, end, calendar)
    rng = np.random.default_rng(seed)
    shape = (axis.sizes["time"], *((2,) if plev else ()), *GRID.shape)
    dims = ("time", *(("plev",) if plev else ()), "lat", "lon")
    coords = {"time": axis["time"], **GRID.coords()}
    if plev:
        coords["plev"] = [85000.0, 50000.0]
    return xr.DataArray(rng.normal(size=shape) + 280.0, dims=dims, coords=coords, name="tas",
                        attrs={"units": "K"})


def _areas(lat):
    lat = np.asarray(lat, float)
    edges = np.concatenate([[-90.0], 0.5 * (lat[1:] + lat[:-1]), [90.0]])
    return np.diff(np.sin(np.deg2rad(edges)))


def test_djf_uses_december_of_previous_year_and_complete_seasons_only():
    f = _field()  # 2000-01 .. 2002-12
    djf = seasonal_mean(f, "DJF")
    # complete winters: Dec 2000 + Jan/Feb 2001 (label 2001), Dec 2001 + Jan/Feb 2002 (label 2002)
    assert list(djf["year"].values) == [2001, 2002]
    v = f.values
    np.testing.assert_allclose(djf.values[0], v[[11, 12, 13]].mean(0), rtol=1e-12)
    np.testing.assert_allclose(djf.values[1], v[[23, 24, 25]].mean(0), rtol=1e-12)
    assert [t.month for t in djf["time"].values] == [1, 1]
    np.testing.assert_allclose(time_mean(f, season="DJF").values, v[[11, 12, 13, 23, 24, 25]].mean(0), rtol=1e-12)
    jja = seasonal_mean(f, "JJA")
    assert list(jja["year"].values) == [2000, 2001, 2002]
    np.testing.assert_allclose(time_mean(f, "2001-01:2001-12", "MAM").values, v[[14, 15, 16]].mean(0), rtol=1e-12)
    np.testing.assert_allclose(time_mean(f, "2001-01:2002-12").values, v[12:].mean(0), rtol=1e-12)
    np.testing.assert_allclose(seasonal_mean(f, "ANN").values, v.reshape(3, 12, *GRID.shape).mean(1), rtol=1e-12)


def test_period_must_be_covered_and_season_known():
    f = _field()
    with pytest.raises(ValueError, match="covers 12 of the 24"):
        time_mean(f, "2002-01:2003-12")
    with pytest.raises(ValueError, match="unknown season"):
        time_mean(f, season="XYZ")


def test_monthly_climatology_and_anomalies_match_numpy():
    f = _field()
    v = f.values.reshape(3, 12, *GRID.shape)
    clim = monthly_climatology(f)
    np.testing.assert_allclose(clim.sel(month=3).values, v[:, 2].mean(0), rtol=1e-12)
    anom = monthly_anomalies(f, "2000-01:2001-12")
    expected = (v - v[:2].mean(0)[None]).reshape(f.shape)
    np.testing.assert_allclose(anom.values, expected, atol=1e-10)
    assert anom.dims == f.dims


def test_bias_map_of_ensemble_mean_and_global_numbers():
    ref = _field(seed=1)
    rng = np.random.default_rng(2)
    planted = xr.DataArray(rng.normal(size=GRID.shape), dims=("lat", "lon"), coords=GRID.coords())
    # two members whose deviations cancel: the ensemble-mean bias is exactly the planted map
    members = xr.concat([ref + planted + 0.7, ref + planted - 0.7], dim="member").assign_attrs(units="K")
    members.name = "tas"
    bias = bias_map(members, ref, "2001-01:2002-12", "JJA")
    np.testing.assert_allclose(bias.values, planted.values, atol=1e-10)
    assert bias.attrs["units"] == "K"
    w = np.broadcast_to(_areas(GRID.lat)[:, None], GRID.shape)
    summary = bias_summary(bias)
    assert float(summary["mean"]) == pytest.approx(np.sum(w * planted.values) / w.sum(), rel=1e-10)
    assert float(summary["rms"]) == pytest.approx(np.sqrt(np.sum(w * planted.values**2) / w.sum()), rel=1e-10)


def test_zonal_mean_bias_by_level():
    ref = _field(plev=True, seed=3)
    offset = xr.DataArray(np.arange(2 * 17, dtype=float).reshape(2, 17), dims=("plev", "lat"),
                          coords={"plev": ref["plev"], "lat": ref["lat"]})
    model = (ref + offset).assign_attrs(units="K")
    zb = zonal_mean_bias(model, ref, season="DJF")
    assert zb.dims == ("plev", "lat")
    np.testing.assert_allclose(zb.values, offset.values, atol=1e-10)


def test_calendar_independent_and_lazy():
    greg = _field(seed=4)
    noleap = greg.assign_coords(time=monthly_axis(Month(2000, 1), Month(2002, 12), "noleap")["time"])
    np.testing.assert_allclose(time_mean(noleap, "2001-01:2002-12", "DJF").values,
                               time_mean(greg, "2001-01:2002-12", "DJF").values)
    lazy = greg.chunk({"time": 6})
    out = time_mean(lazy, season="DJF")
    assert isinstance(out.data, dsa.Array)
    np.testing.assert_allclose(out.values, time_mean(greg, season="DJF").values, rtol=1e-12)
    assert isinstance(monthly_anomalies(lazy).data, dsa.Array)


@pytest.mark.parametrize("chunks", [None, {"time": 12}, {"time": 7, "member": 1}, {"time": 25, "lat": 5}])
def test_calendar_month_sums_equal_groupby_means_with_missing_cells(chunks):
    """The one-pass calendar-month kernel against xarray's groupby mean (flox), which it replaced:
    NaN-skipping means and counts, a start in March (partial first and last years), chunks that
    cut years anywhere, members, and the sum of ``t`` over the finite months (trends' t_bar_m).
    Split by member or latitude, most chunks have no NaN: their count and t terms are broadcast
    views (compact in the partial-sum tree), added to the full terms of the chunks with NaN."""
    rng = np.random.default_rng(3)
    axis = monthly_axis(Month(2000, 3), Month(2003, 8), "proleptic_gregorian")
    n = axis.sizes["time"]
    x = (rng.normal(size=(3, n, *GRID.shape)) + 280.0).astype(np.float32)
    x[1, 7, 2, 3] = np.nan  # one month of one cell of one member
    x[0, :, 0, 0] = np.nan  # a cell without any value
    x[2, ::12, 4, 4] = np.nan  # every March of a cell: its March count is 0
    field = xr.DataArray(x, dims=("member", "time", "lat", "lon"), name="tas",
                         coords={"time": axis["time"], "member": [0, 1, 2], **GRID.coords()})
    if chunks:
        field = field.chunk(chunks)
    t = xr.DataArray(np.arange(n) / 120.0, dims="time", coords={"time": field["time"]})
    month = xr.DataArray(np.asarray(field["time"].dt.month) - 1, dims="time", name="calendar_month")

    sums = calendar_month_sums(field, t)
    assert sums.dims == ("term", "member", "calendar_month", "lat", "lon")
    assert isinstance(sums.data, dsa.Array) == bool(chunks)
    expected_x = field.groupby(month).mean("time", dtype=np.float64).transpose(*sums.dims[1:])
    expected_t = t.where(field.notnull()).groupby(month).mean("time").transpose(*sums.dims[1:])
    expected_n = field.notnull().groupby(month).sum("time").transpose(*sums.dims[1:])
    np.testing.assert_allclose(calendar_month_means(sums).values, expected_x.values, rtol=1e-14)
    np.testing.assert_allclose(calendar_month_means(sums, "t_sum").values, expected_t.values, rtol=1e-14)
    np.testing.assert_array_equal(sums.sel(term="count").values, expected_n.values)
    assert np.isnan(calendar_month_means(sums).values[2, 2, 4, 4])  # March of that cell: 0 / 0
    clim = monthly_climatology(field)
    assert clim.dtype == np.float32 and clim.dims == ("member", "month", "lat", "lon")
    np.testing.assert_array_equal(clim["month"].values, np.arange(1, 13))
    np.testing.assert_array_equal(
        clim.values, expected_x.astype(np.float32).transpose(*clim.dims[:1], "calendar_month", "lat", "lon").values)


def test_seasonal_time_means_of_float32_fields_are_float64_exact_and_chunk_independent():
    """The five season means come from one pass of float64 sums: equal to numpy's float64 mean over
    the season's months (the earlier per-season path rounded each 3-month mean to float32 first,
    1e-5 relative on a bias of two 1e5 Pa means), whatever the chunking, NaN where a month is."""
    f = _field(start=Month(2000, 1), end=Month(2003, 12), seed=7)
    f = (f * 0.0 + 1.0e5 + 300.0 * (f - 280.0)).astype(np.float32)  # psl-like: large mean, float32
    f[5, 3, 4] = np.nan  # June 2000 of one cell: JJA and ANN of that cell are NaN, DJF is not
    v = f.values.astype(np.float64)
    djf = [11, 12, 13, 23, 24, 25, 35, 36, 37]  # the complete winters 2001-2003
    expected = {"ANN": v.mean(0), "DJF": v[djf].mean(0), "JJA": v[[5, 6, 7, 17, 18, 19, 29, 30, 31, 41, 42, 43]].mean(0)}
    for chunks in (None, {"time": 12}, {"time": 5, "lat": 4}):
        field = f.chunk(chunks) if chunks else f
        for season, want in expected.items():
            got = time_mean(field, season=season)
            assert got.dtype == np.float64
            np.testing.assert_allclose(got.values, want, rtol=1e-14, atol=0)
            assert np.isnan(got.values[3, 4]) == (season != "DJF")


@pytest.mark.parametrize("chunks", [None, {"time": 12}, {"time": 5, "member": 1}])
def test_weighted_time_mean_equals_numpy_float64_with_missing_cells(chunks):
    """sum_t w_t x(t) / n over a cell's finite months, float32 input, any chunking: numpy's
    float64 nansum / count; all weights 1 gives the float64 nanmean; a cell without values NaN."""
    rng = np.random.default_rng(5)
    axis = monthly_axis(Month(2001, 3), Month(2004, 2), "noleap")
    x = (250 + 40 * rng.random(size=(2, axis.sizes["time"], *GRID.shape))).astype(np.float32)
    x[0, 3:9, 2, 2] = np.nan
    x[1, :, 4, 4] = np.nan
    field = xr.DataArray(x, dims=("member", "time", "lat", "lon"), coords={"time": axis["time"], **GRID.coords()})
    w = rng.normal(size=axis.sizes["time"])
    values = x.astype(np.float64)
    with np.errstate(invalid="ignore"):
        count = np.isfinite(values).sum(axis=1)
        want = np.nansum(values * w[None, :, None, None], axis=1) / count
        want[count == 0] = np.nan
    got = weighted_time_mean(field.chunk(chunks) if chunks else field, w)
    assert got.dims == ("member", "lat", "lon")
    np.testing.assert_allclose(got.values, want, rtol=1e-13, atol=0)
    assert np.isnan(got.values[1, 4, 4]) and np.isfinite(got.values[0, 2, 2])
    with np.errstate(invalid="ignore"):
        np.testing.assert_allclose(weighted_time_mean(field.chunk(chunks) if chunks else field).values,
                                   np.nanmean(values, axis=1), rtol=1e-14)
