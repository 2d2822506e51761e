"""Issue 14: the readers' level selection is :mod:`diagnostics.io.levels` (tolerant match, log-p
interpolation inside the source's range, nothing extrapolated), zg by magnitude, and the netCDF
default fill named for what it is in the one-line errors."""

from __future__ import annotations

import cftime
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.catalogue import G0
from diagnostics.data.errors import InputError
from diagnostics.io.open import open_dataset

LAT = np.array([-67.5, -22.5, 22.5, 67.5])
LON = np.arange(8) * 45.0
FILL = 9.969209968386869e36  # NC_FILL_FLOAT / NC_FILL_DOUBLE


def _write(path, var, values, units, plev=None, fill=np.float32(1e20)):
    n = values.shape[0]
    time = [cftime.datetime(2000, k + 1, 15, calendar="365_day") for k in range(n)]
    dims = ("time", "lat", "lon") if plev is None else ("time", "plev", "lat", "lon")
    ds = xr.Dataset({var: (dims, values.astype(np.float32), {"units": units})},
                    coords={"time": time, "lat": LAT, "lon": LON})
    if plev is not None:
        ds = ds.assign_coords(plev=("plev", np.asarray(plev, float), {"units": "Pa"}))
    ds.to_netcdf(path, encoding={"time": {"units": "days since 2000-01-01", "calendar": "365_day"},
                                 var: {"_FillValue": fill}})


def test_default_fill_without_fillvalue_is_named_in_the_nan_error(tmp_path):
    tas = np.full((3, 4, 8), 280.0)
    tas[1, 0, :3] = FILL  # three cells of month 2 never written, no _FillValue declared
    _write(tmp_path / "tas.nc", "tas", tas, "K", fill=None)
    with pytest.raises(InputError, match=r"'tas' holds NaN or inf where none may be \(3 of 32 cells in "
                                         r"2000-02\); the file declares no _FillValue: cells holding the "
                                         r"netCDF default fill 9.969e\+36 \(never written\)"):
        open_dataset(str(tmp_path / "tas.nc")).load()


def test_default_fill_under_another_declared_fill_is_not_called_wrong_units(tmp_path):
    tas = np.full((3, 4, 8), 280.0)
    tas[0, 0, :2] = FILL  # the file declares 1e20, but these cells hold the library default
    _write(tmp_path / "tas.nc", "tas", tas, "K")
    with pytest.raises(InputError) as err:
        open_dataset(str(tmp_path / "tas.nc"))
    text = str(err.value)
    assert "holds the netCDF default fill 9.969e+36 in 2 of 32 cells in 2000-01 (cells never written, " \
           "not declared as its _FillValue)" in text and "wrong units" not in text


def _profile(p_pa):
    return 150.0 + 12.0 * np.log(p_pa)  # linear in log p: log-p interpolation is exact


def test_a_level_the_source_lacks_is_interpolated_in_log_p_and_said(tmp_path):
    src = np.array([100000, 92500, 70000, 60000, 50000, 25000, 10000, 5000.00000001])  # no 850 hPa
    ta = np.broadcast_to(_profile(src)[None, :, None, None], (2, src.size, 4, 8))
    _write(tmp_path / "ta_Amon_M_amip_r1i1p1f1_gn_200001-200002.nc", "ta", ta, "K", plev=src)
    ds = open_dataset(str(tmp_path))
    assert ds["plev"].values.tolist() == [100000.0, 85000.0, 70000.0, 50000.0, 25000.0, 10000.0, 5000.0]
    np.testing.assert_allclose(ds["ta"].values[0, :, 1, 1], _profile(ds["plev"].values), rtol=1e-6)
    assert ds["ta"].attrs["vertical_interpolation"].startswith("850 hPa linear in log p from 8 source levels")


def test_levels_beyond_the_source_are_left_out_not_extrapolated(tmp_path):
    src = np.array([100000, 85000, 70000, 50000, 25000.0])  # tops out at 250 hPa
    ta = np.broadcast_to(_profile(src)[None, :, None, None], (2, src.size, 4, 8))
    _write(tmp_path / "ta.nc", "ta", ta, "K", plev=src)
    ds = open_dataset(str(tmp_path / "ta.nc"))
    assert ds["plev"].values.tolist() == [100000.0, 85000.0, 70000.0, 50000.0, 25000.0]
    assert "vertical_interpolation" not in ds["ta"].attrs  # every level was a source level
    assert ds["ta"].attrs["levels_not_available"].startswith("100 50 hPa")


def test_no_catalogue_level_and_none_between_is_one_line(tmp_path):
    src = np.array([92500.0, 90000.0])
    _write(tmp_path / "ta.nc", "ta", np.full((2, 2, 4, 8), 280.0), "K", plev=src)
    with pytest.raises(InputError, match=r"'ta' has levels \[900, 925\] hPa, none of the expected"):
        open_dataset(str(tmp_path / "ta.nc"))


@pytest.mark.parametrize("units", ["m2 s-2", "m"])
def test_zg_on_19_levels_given_as_geopotential_is_converted_by_magnitude(tmp_path, units):
    plev = np.array([1000, 925, 850, 700, 600, 500, 400, 300, 250, 200, 150, 100, 70, 50, 30, 20, 10, 5, 1]) * 100.0
    from diagnostics.io.levels import standard_height

    height = standard_height(plev)[None, :, None, None] + np.zeros((2, plev.size, 4, 8))
    height[:, 5] += np.arange(8)  # a planted pattern at 500 hPa (m)
    _write(tmp_path / "zg.nc", "zg", height * G0, units, plev=plev)
    ds = open_dataset(str(tmp_path / "zg.nc"))
    np.testing.assert_allclose(ds["zg500"].values, height[:, 5], rtol=1e-6)
    assert "divided by g0" in ds["zg500"].attrs["comment"]


def test_a_level_across_a_wide_gap_is_left_out_not_guessed(tmp_path):
    src = np.array([85000.0, 50000.0])  # 700 hPa lies between levels x1.7 apart: not interpolated
    ta = np.broadcast_to(_profile(src)[None, :, None, None], (2, src.size, 4, 8))
    _write(tmp_path / "ta.nc", "ta", ta, "K", plev=src)
    ds = open_dataset(str(tmp_path / "ta.nc"))
    assert ds["plev"].values.tolist() == [85000.0, 50000.0]
    assert ds["ta"].attrs["levels_not_available"].startswith("1000 700 250 100 50 hPa (outside the source "
                                                             "levels or between levels more than x1.5 apart")
