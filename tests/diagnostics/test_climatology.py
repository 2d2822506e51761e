"""Time means, seasons, monthly climatology and biases against hand numpy computations."""

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.metrics.climatology import (bias_map, bias_summary, monthly_anomalies, monthly_climatology,
                                             seasonal_mean, time_mean, zonal_mean_bias)

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
