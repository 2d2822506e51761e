"""CDS ERA5 monthly means: netCDF in both layouts, GRIB (cfgrib), expver, lat flip, tp, z, huss, members, bad files."""

from __future__ import annotations

import importlib.util
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.catalogue import G0
from diagnostics.data.errors import InputError
from diagnostics.io.cds import combine_expver
from diagnostics.io.open import detect_layout, open_dataset
from diagnostics.io.samples import cds_new, cds_old


@pytest.fixture(scope="module")
def old(tmp_path_factory):
    d = tmp_path_factory.mktemp("cds_old")
    return d, cds_old(d)


def test_old_layout_single_and_pressure_levels_together(old):
    d, raw = old
    files = sorted(str(p) for p in d.glob("*.nc"))
    assert detect_layout(files) == "cds-netcdf"
    ds = open_dataset(files)
    assert ds.sizes["time"] == 4
    np.testing.assert_array_equal(ds["lat"].values, raw["lat"][::-1])  # flipped to ascend
    # expver: months 1-3 from ERA5 (1); the last month exists only as ERA5T (5, stored +1)
    t2m = raw["t2m"][:, ::-1]
    np.testing.assert_allclose(ds["tas"].values[:3], t2m[:3], rtol=1e-6)
    np.testing.assert_allclose(ds["tas"].values[3], t2m[3] + 1.0, rtol=1e-6)
    # monthly-mean tp is metres per day
    np.testing.assert_allclose(ds["pr"].values[:3], raw["tp"][:3, ::-1] * 1000.0 / 86400.0, rtol=1e-5)
    # z on levels -> zg500 in metres
    k = list(raw["levels"]).index(500)
    np.testing.assert_allclose(ds["zg500"].values, raw["z"][:, k, ::-1] / G0, rtol=1e-6)
    np.testing.assert_allclose(ds["ta"].sel(plev=25000).values, raw["t"][:, 4, ::-1], rtol=1e-6)
    assert np.isnan(ds["tos"].values[:, -1]).all()  # the land row (north pole) stays NaN after the flip


def test_expver_prefers_era5_where_both_exist():
    da = xr.DataArray([[1.0, 9.0], [np.nan, 5.0], [3.0, np.nan]], dims=("time", "expver"),
                      coords={"expver": [5, 1]})
    out = combine_expver(xr.Dataset({"x": da}))["x"].values
    np.testing.assert_array_equal(out, [9.0, 5.0, 3.0])


def test_derive_huss_from_dewpoint(old):
    d, raw = old
    ds = open_dataset(str(d), variables=["huss"], derive_huss=True)
    td, sp = raw["d2m"][:3, ::-1], raw["sp"][:3, ::-1]
    eps = 287.0597 / 461.5250
    e = 611.21 * np.exp(17.502 * (td - 273.16) / (td - 32.19))  # official AI-MIP Tetens
    np.testing.assert_allclose(ds["huss"].values[:3], eps * e / (sp - (1 - eps) * e), rtol=1e-5)
    assert list(ds.data_vars) == ["huss", "time_bnds"]


def test_new_layout_valid_time_pressure_level(tmp_path):
    raw = cds_new(tmp_path)
    ds = open_dataset(str(tmp_path))
    assert ds.attrs["source_layout"] == "cds-netcdf"
    assert ds.sizes["time"] == 3 and [t.month for t in ds["time"].values] == [6, 7, 8]
    np.testing.assert_allclose(ds["pr"].values, raw["rate"][:, ::-1], rtol=1e-6)  # already a rate
    np.testing.assert_allclose(ds["tas"].values, raw["t2m"][:, ::-1], rtol=1e-6)
    # 925 hPa is not a catalogue level: 7 levels kept, surface first
    assert ds["hus"].sizes["plev"] == 7
    k = list(raw["levels"]).index(700.0)
    np.testing.assert_allclose(ds["hus"].sel(plev=70000).values, raw["q"][:, k, ::-1], rtol=1e-6)
    assert "number" not in ds.coords and "expver" not in ds.coords


def test_truncated_file_is_one_line_error(tmp_path, old):
    d, _ = old
    good = (d / "era5_single_levels.nc").read_bytes()
    bad = tmp_path / "truncated.nc"
    bad.write_bytes(good[: len(good) // 3])
    with pytest.raises(InputError) as err:
        open_dataset(str(bad))
    assert str(bad) in str(err.value) and "truncated" in str(err.value)
    assert "\n" not in str(err.value)


def test_mismatched_grids_between_files(tmp_path, old):
    d, _ = old
    single = xr.open_dataset(d / "era5_single_levels.nc")
    single.isel(longitude=slice(0, 4)).to_netcdf(tmp_path / "narrow.nc")
    with pytest.raises(InputError, match=r"narrow\.nc: grid 5x4 differs from 5x8"):
        open_dataset([str(d / "era5_pressure_levels.nc"), str(tmp_path / "narrow.nc")])


def test_huss_needs_surface_pressure(old):
    d, _ = old
    with pytest.raises(InputError, match="derive-huss needs"):
        open_dataset(str(d / "era5_pressure_levels.nc"), derive_huss=True)


def test_files_covering_different_months_keep_the_common_ones(tmp_path, old):
    d, _ = old
    xr.open_dataset(d / "era5_pressure_levels.nc").isel(time=slice(1, 3)).to_netcdf(tmp_path / "pl.nc")
    with pytest.warns(UserWarning, match=r"keeping the 2 months all variables share \(2020-02..2020-03\)"):
        ds = open_dataset([str(d / "era5_single_levels.nc"), str(tmp_path / "pl.nc")])
    assert [t.month for t in ds["time"].values] == [2, 3]


# --- GRIB and cfgrib-made netCDF (issue 14): written with ecCodes, read with cfgrib ---------------

needs_cfgrib = pytest.mark.skipif(importlib.util.find_spec("cfgrib") is None
                                  or importlib.util.find_spec("eccodes") is None,
                                  reason="cfgrib and eccodes are not installed")


@pytest.fixture(scope="module")
def grib(tmp_path_factory):
    from diagnostics.io.samples import era5_grib

    d = tmp_path_factory.mktemp("grib")
    plain = era5_grib(d / "era5_moda.grib")
    ens = era5_grib(d / "era5_edmo.grib", members=[0, 1, 2], seed=5)
    for name in ("era5_moda", "era5_edmo"):  # what a user gets from xr.open_dataset(engine="cfgrib")
        xr.open_dataset(d / f"{name}.grib", engine="cfgrib",
                        backend_kwargs={"indexpath": ""}).to_netcdf(d / f"{name}_cfgrib.nc")
    return d, plain, ens


@needs_cfgrib
@pytest.mark.parametrize("name", ["era5_moda.grib", "era5_moda_cfgrib.nc"])
def test_grib_and_cfgrib_netcdf_are_read(grib, name):
    d, plain, _ = grib
    ds = open_dataset(str(d / name))
    assert ds.attrs["source_layout"] == ("cds-grib" if name.endswith(".grib") else "cds-netcdf")
    assert "member" not in ds.dims and ds.sizes["time"] == 3
    assert [str(t)[:7] for t in ds["time"].values] == ["2000-01", "2000-02", "2000-03"]
    # GRIB 1 packs values (16 bits here): 1e-3 relative of the field's range is exact enough
    np.testing.assert_allclose(ds["tas"].values, plain["t2m"][0][:, ::-1], atol=0.05)
    np.testing.assert_allclose(ds["ps"].values, plain["sp"][0][:, ::-1], atol=2.0)
    assert not list(d.glob("*.idx"))  # no cfgrib index written beside the source


@needs_cfgrib
@pytest.mark.parametrize("name", ["era5_edmo.grib", "era5_edmo_cfgrib.nc"])
def test_era5_ensemble_number_becomes_member(grib, name):
    d, _, ens = grib
    ds = open_dataset(str(d / name))
    assert ds["tas"].dims == ("member", "time", "lat", "lon")
    assert ds["member"].values.tolist() == [1, 2, 3]
    assert ds["member_label"].values.tolist() == ["number=0", "number=1", "number=2"]
    np.testing.assert_allclose(ds["tas"].values, ens["t2m"][:, :, ::-1], atol=0.05)


@needs_cfgrib
def test_grib_without_cfgrib_says_how_to_convert(grib, monkeypatch):
    import sys

    d, _, _ = grib
    monkeypatch.setitem(sys.modules, "cfgrib", None)  # import fails as when not installed
    with pytest.raises(InputError, match=r"era5_moda\.grib: cannot read GRIB here: .*pip install cfgrib "
                                         r"eccodes.*grib_to_netcdf"):
        open_dataset(str(d / "era5_moda.grib"))
