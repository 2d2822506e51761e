"""The public reader API: layout detection, contract files, prepared dirs, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.contract import plev_coord
from diagnostics.data.errors import InputError
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, Period, monthly_axis
from diagnostics.io.open import detect_layout, open_dataset, open_prepared
from diagnostics.io.writer import write_netcdf, write_prepared, write_zarr

GRID = equiangular(45.0)  # 5 x 8
TIME_ENC = {"time": {"units": "days since 2000-01-01"}, "time_bnds": {"units": "days since 2000-01-01"}}


def contract(months: int = 4, calendar: str = "noleap", seed: int = 0) -> xr.Dataset:
    rng = np.random.default_rng(seed)
    axis = monthly_axis(Month(2001, 1), Month(2001, 1) + (months - 1), calendar)
    shape = (months,) + GRID.shape
    ds = xr.Dataset(coords={**GRID.coords(), "time": axis["time"], "plev": plev_coord()})
    ds["time_bnds"] = axis["time_bnds"]
    ds["tas"] = (("time", "lat", "lon"), (280 + 5 * rng.standard_normal(shape)).astype(np.float32),
                 {"units": "K"})
    ds["ta"] = (("time", "plev", "lat", "lon"), (250 + 5 * rng.standard_normal((months, 7) + GRID.shape))
                .astype(np.float32), {"units": "K"})
    return ds


def test_contract_netcdf_and_zarr_roundtrip(tmp_path):
    ds = contract()
    write_netcdf(ds, tmp_path / "c.nc")
    write_zarr(ds, tmp_path / "c.zarr")
    assert detect_layout([str(tmp_path / "c.nc")]) == "contract-netcdf"
    assert detect_layout(str(tmp_path / "c.zarr")) == "contract-zarr"
    for path in (tmp_path / "c.nc", tmp_path / "c.zarr"):
        back = open_dataset(str(path))
        assert back["time"].values[0].calendar == "noleap"
        np.testing.assert_array_equal(back["ta"].values, ds["ta"].values)
        assert back["ta"].chunks is not None


def test_prepared_dir(tmp_path):
    ds = contract()
    write_prepared(ds, tmp_path / "prep", {"fingerprint": "abc", "source_layout": "test"})
    assert detect_layout([str(tmp_path / "prep")]) == "prepared"
    fast = open_prepared(tmp_path / "prep")
    assert fast.attrs["source_layout"] == "prepared"
    np.testing.assert_array_equal(fast["tas"].values, ds["tas"].values)
    sub = open_dataset(str(tmp_path / "prep"), variables=["tas"], period=Period.parse("2001-02:2001-03"))
    assert list(sub.data_vars) == ["tas", "time_bnds"] and sub.sizes["time"] == 2
    with pytest.raises(InputError, match="not a prepared dataset directory"):
        open_prepared(tmp_path)


def test_unknown_and_missing_paths(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"notes\.txt: unknown layout"):
        detect_layout([str(tmp_path / "notes.txt")])
    with pytest.raises(InputError, match=r"nothing\.nc: no such file or directory"):
        open_dataset(str(tmp_path / "nothing.nc"))
    with pytest.raises(InputError, match="no files match the pattern"):
        open_dataset(str(tmp_path / "*.nc"))
    xr.Dataset({"foo": (("y", "x"), np.zeros((2, 2)))}).to_netcdf(tmp_path / "foo.nc")
    with pytest.raises(InputError, match=r"foo\.nc: unknown layout"):
        open_dataset(str(tmp_path / "foo.nc"))


def test_mixed_layouts(tmp_path):
    write_netcdf(contract(), tmp_path / "c.nc")
    write_zarr(contract(), tmp_path / "c.zarr")
    write_netcdf(contract(seed=1), tmp_path / "d.nc")
    # the odd one out is blamed, whatever the order
    with pytest.raises(InputError, match=r"c\.zarr: this contract-zarr input is mixed with 2 contract-netcdf"):
        detect_layout([str(tmp_path / "c.nc"), str(tmp_path / "c.zarr"), str(tmp_path / "d.nc")])


def test_nan_where_none_may_be(tmp_path):
    ds = contract()
    ds["tas"][0, 2, 3] = np.nan
    write_netcdf(ds, tmp_path / "nan.nc")
    with pytest.raises(InputError, match=r"nan\.nc: variable 'tas' holds NaN"):
        open_dataset(str(tmp_path / "nan.nc"))


def test_celsius_labelled_kelvin_is_caught(tmp_path):
    ds = contract()
    ds["ta"] = ds["ta"] - 273.15  # wrong values, still labelled K
    ds["ta"].attrs["units"] = "K"
    write_netcdf(ds, tmp_path / "ta.nc")
    with pytest.raises(InputError, match=r"ta\.nc: variable 'ta' has mean -2\d\.\d+ K in 2001-01, outside the plausible"):
        open_dataset(str(tmp_path / "ta.nc"))


def test_non_monotonic_and_unconvertible_units(tmp_path):
    ds = contract()
    ds.isel(time=[0, 2, 1, 3]).to_netcdf(tmp_path / "shuffled.nc", encoding=TIME_ENC)
    with pytest.raises(InputError, match=r"shuffled\.nc: time axis is not monotonic"):
        open_dataset(str(tmp_path / "shuffled.nc"))
    bad = contract()
    bad["tas"].attrs["units"] = "degF"
    bad.to_netcdf(tmp_path / "f.nc", encoding=TIME_ENC)
    with pytest.raises(InputError, match=r"f\.nc: variable 'tas' has units 'degF'"):
        open_dataset(str(tmp_path / "f.nc"))


def test_period_outside_source_and_unknown_variable(tmp_path):
    write_netcdf(contract(), tmp_path / "c.nc")
    with pytest.raises(InputError, match=r"no month of the period 1990-01:1990-12 in the source \(it covers "
                                         r"2001-01:2001-04\)"):
        open_dataset(str(tmp_path / "c.nc"), period=Period.parse("1990-01:1990-12"))
    with pytest.raises(InputError, match="unknown variable 'temp'"):
        open_dataset(str(tmp_path / "c.nc"), variables=["temp"])


def test_regrid_refine_on_open(tmp_path):
    write_netcdf(contract(), tmp_path / "c.nc")
    ds = open_dataset(str(tmp_path / "c.nc"), grid=equiangular(22.5))
    assert ds["tas"].shape == (4, 9, 16) and "bilinear" in ds.attrs["regrid"]
