"""WeatherBench 2 zarr reader: monthly means, unit conversions, statics, masks, laziness."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Period
from diagnostics.io.open import detect_layout, open_dataset
from diagnostics.io.samples import G0, wb2_store


@pytest.fixture(scope="module")
def wb2(tmp_path_factory):
    path = tmp_path_factory.mktemp("wb2") / "era5_6h.zarr"
    raw = wb2_store(path, months=3)
    return path, raw


def _numpy_monthly(raw: xr.Dataset, name: str) -> np.ndarray:
    """Independent monthly means: plain numpy over the samples of each calendar month."""
    months = pd.DatetimeIndex(raw["time"].values).month
    values = raw[name].values
    return np.stack([values[months == m].mean(axis=0) for m in sorted(set(months))])


def test_layout_and_monthly_means(wb2):
    path, raw = wb2
    assert detect_layout([str(path)]) == "wb2-zarr"
    ds = open_dataset(str(path))
    assert ds["tas"].chunks is not None  # lazy (dask)
    assert ds.attrs["source_layout"] == "wb2-zarr"
    assert ds.sizes["time"] == 3
    assert [t.month for t in ds["time"].values] == [1, 2, 3]
    assert ds["time"].values[0].calendar == "proleptic_gregorian"
    np.testing.assert_allclose(ds["tas"].values, _numpy_monthly(raw, "2m_temperature"), rtol=1e-6)


def test_precipitation_becomes_a_rate(wb2):
    path, raw = wb2
    ds = open_dataset(str(path), variables=["pr"])
    expected = _numpy_monthly(raw, "total_precipitation_6hr") * 1000.0 / 21600.0  # m per 6 h -> kg m-2 s-1
    np.testing.assert_allclose(ds["pr"].values, expected, rtol=1e-5)
    assert ds["pr"].attrs["units"] == "kg m-2 s-1"
    assert list(ds.data_vars) == ["pr", "time_bnds"]


def test_geopotential_levels_and_statics(wb2):
    path, raw = wb2
    ds = open_dataset(str(path), variables=["zg", "ta", "orog", "sftlf"])
    z500 = _numpy_monthly(raw, "geopotential")[:, list(raw["level"].values).index(500)] / G0
    np.testing.assert_allclose(ds["zg500"].values, z500, rtol=1e-6)
    assert ds["ta"].dims == ("time", "plev", "lat", "lon")
    np.testing.assert_array_equal(ds["plev"].values, [100000, 85000, 70000, 50000, 25000, 10000, 5000])
    k850 = list(raw["level"].values).index(850)
    np.testing.assert_allclose(ds["ta"].sel(plev=85000).values, _numpy_monthly(raw, "temperature")[:, k850],
                               rtol=1e-6)
    assert ds["orog"].dims == ("lat", "lon")
    np.testing.assert_allclose(ds["orog"].values, raw["geopotential_at_surface"].values / G0, rtol=1e-6)
    np.testing.assert_array_equal(ds["sftlf"].values, raw["land_sea_mask"].values)


def test_sst_nan_over_land_and_sea_ice_zero_there(wb2):
    path, raw = wb2
    ds = open_dataset(str(path), variables=["tos", "siconc"])
    land = raw["land_sea_mask"].values > 0.5
    tos = ds["tos"].values
    assert np.isnan(tos[:, land]).all() and np.isfinite(tos[:, ~land]).all()
    np.testing.assert_allclose(tos[:, ~land], _numpy_monthly(raw, "sea_surface_temperature")[:, ~land], rtol=1e-6)
    sic = ds["siconc"].values
    assert (sic[:, land] == 0).all()
    np.testing.assert_allclose(sic[:, ~land], _numpy_monthly(raw, "sea_ice_cover")[:, ~land], rtol=1e-5)


def test_period_and_regrid(wb2):
    from diagnostics.data.grid import equiangular, global_mean

    path, raw = wb2
    ds = open_dataset(str(path), variables=["tas"], period=Period.parse("2000-02:2000-03"),
                      grid=equiangular(90.0))
    assert ds.sizes["time"] == 2 and ds["tas"].shape == (2, 3, 4)
    native = open_dataset(str(path), variables=["tas"], period=Period.parse("2000-02:2000-03"))
    np.testing.assert_allclose(global_mean(ds["tas"].astype(float)).values,
                               global_mean(native["tas"].astype(float)).values, rtol=1e-6)


def test_incomplete_months_are_dropped(tmp_path):
    path = tmp_path / "partial.zarr"
    raw = wb2_store(path, months=2, nlat=3, nlon=4)
    trimmed = raw.isel(time=slice(0, -3))  # February loses its last 3 samples
    trimmed.to_zarr(tmp_path / "trimmed.zarr", mode="w", zarr_format=2)
    ds = open_dataset(str(tmp_path / "trimmed.zarr"), variables=["tas"])
    assert [t.month for t in ds["time"].values] == [1]


def test_hourly_precipitation_and_derived_huss(tmp_path):
    time = pd.date_range("2001-02-01", "2001-03-01", freq="1h", inclusive="left")
    rng = np.random.default_rng(5)
    shape = (time.size, 3, 4)
    td = 280 + rng.standard_normal(shape)
    sp = 9.0e4 + 100 * rng.standard_normal(shape)
    tp = rng.gamma(0.5, 2e-4, shape)
    raw = xr.Dataset({"total_precipitation": (("time", "latitude", "longitude"), tp, {"units": "m"}),
                      "2m_dewpoint_temperature": (("time", "latitude", "longitude"), td, {"units": "K"}),
                      "surface_pressure": (("time", "latitude", "longitude"), sp, {"units": "Pa"})},
                     coords={"time": time, "latitude": [-90.0, 0.0, 90.0], "longitude": [0.0, 90, 180, 270]})
    raw.to_zarr(tmp_path / "hourly.zarr", mode="w", zarr_format=2)
    ds = open_dataset(str(tmp_path / "hourly.zarr"), derive_huss=True)
    np.testing.assert_allclose(ds["pr"].values[0], tp.mean(axis=0) * 1000.0 / 3600.0, rtol=1e-5)
    eps = 287.0597 / 461.5250
    e = 611.21 * np.exp(17.502 * (td - 273.16) / (td - 32.19))  # official AI-MIP Tetens
    q = eps * e / (sp - (1 - eps) * e)
    np.testing.assert_allclose(ds["huss"].values[0], q.mean(axis=0), rtol=1e-5)  # mean of hourly q


def test_store_without_known_variables_is_rejected(tmp_path):
    xr.Dataset({"foo": (("time", "latitude", "longitude"), np.zeros((2, 2, 2)))},
               coords={"time": pd.date_range("2000", periods=2), "latitude": [0.0, 1.0],
                       "longitude": [0.0, 1.0]}).to_zarr(tmp_path / "x.zarr", zarr_format=2)
    with pytest.raises(InputError, match=r"x\.zarr: unknown zarr layout"):
        detect_layout([str(tmp_path / "x.zarr")])
