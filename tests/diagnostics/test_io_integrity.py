"""Issue 16/14 regressions: nothing read silently wrong, every month checked, clear one-line errors.

Each test reproduces a defect found on real or malformed inputs: members stacked by position,
a bad month after the first, a NaN averaged away by coarsening, a regional or 2x2 grid padded
to the globe, a changed source reported as "nothing to do", CMOR float-noise levels,
below-ground masks, the netCDF default fill, a 430-character library hint.
"""

from __future__ import annotations

import json
import os
import warnings

import cftime
import numpy as np
import pytest
import xarray as xr

from diagnostics.cli import prepare
from diagnostics.data.contract import guard_values, plev_coord
from diagnostics.data.errors import InputError
from diagnostics.data.grid import equiangular
from diagnostics.io.open import open_dataset, open_prepared
from diagnostics.io.samples import wb2_store

LAT = np.array([-67.5, -22.5, 22.5, 67.5])
LON = np.arange(8) * 45.0
ENC = {"time": {"units": "days since 1850-01-01", "calendar": "noleap"}}


def _times(year: int, month: int, n: int) -> np.ndarray:
    out = []
    for k in range(n):
        y, m = divmod(year * 12 + month - 1 + k, 12)
        out.append(cftime.datetime(y, m + 1, 15, calendar="noleap"))
    return np.array(out)


def _tas(path, start=(2000, 1), n=12, seed=0, values=None, lat=LAT, lon=LON, units="K"):
    rng = np.random.default_rng(seed)
    data = 280 + 5 * rng.standard_normal((n, lat.size, lon.size)) if values is None else values
    ds = xr.Dataset({"tas": (("time", "lat", "lon"), data.astype(np.float32), {"units": units})},
                    coords={"time": _times(*start, n), "lat": lat, "lon": lon})
    ds.to_netcdf(path, encoding=ENC)
    return data


# --- silent corruption ---------------------------------------------------------------------------

def test_members_of_equal_length_are_aligned_by_month_not_position(tmp_path):
    a = _tas(tmp_path / "tas_Amon_M_aimip_r1i1p1f1_gn_200001-200212.nc", (2000, 1), 36, seed=1)
    b = _tas(tmp_path / "tas_Amon_M_aimip_r2i1p1f1_gn_200101-200312.nc", (2001, 1), 36, seed=2)
    with pytest.warns(UserWarning, match=r"r1i1p1f1 2000-01\.\.2002-12, r2i1p1f1 2001-01\.\.2003-12.*24 months"):
        ds = open_dataset(str(tmp_path))
    assert str(ds["time"].values[0])[:7] == "2001-01" and ds.sizes["time"] == 24
    # member 2's 2001-01 is its first month, member 1's is its 13th: never relabelled
    np.testing.assert_allclose(ds["tas"].sel(member=1).values[0], a[12], rtol=1e-6)
    np.testing.assert_allclose(ds["tas"].sel(member=2).values[0], b[0], rtol=1e-6)


def test_members_without_a_shared_month_are_refused(tmp_path):
    _tas(tmp_path / "tas_Amon_M_aimip_r1i1p1f1_gn_200001-200012.nc", (2000, 1), 12)
    _tas(tmp_path / "tas_Amon_M_aimip_r2i1p1f1_gn_200101-200112.nc", (2001, 1), 12)
    with pytest.raises(InputError, match=r"members share no month \(r1i1p1f1 2000-01\.\.2000-12, "
                                         r"r2i1p1f1 2001-01\.\.2001-12\)"):
        open_dataset(str(tmp_path))


def test_nan_in_month_8_is_caught_when_computed_naming_month_and_file(tmp_path):
    data = 280 + np.zeros((12, 4, 8))
    data[7, 2, 3] = np.nan
    _tas(tmp_path / "tas.nc", values=data)
    with pytest.raises(InputError, match=r"tas\.nc: variable 'tas' holds NaN or inf where none may be "
                                         r"\(1 of 32 cells in 2000-08\)"):
        open_dataset(str(tmp_path / "tas.nc")).load()


def test_guard_is_lazy_and_checks_each_block_as_it_is_computed():
    time = _times(2000, 1, 12)
    data = 280 + np.zeros((12, 4, 8))
    data[7] -= 273.15
    da = xr.DataArray(data, dims=("time", "lat", "lon"), coords={"time": time, "lat": LAT, "lon": LON},
                      attrs={"units": "K"}).chunk({"time": 1})
    guarded = guard_values(da, "tas", "src.nc")  # builds the graph, computes nothing
    np.testing.assert_allclose(guarded.isel(time=slice(0, 7)).values, 280.0)  # months 1-7 pass
    with pytest.raises(InputError, match=r"^src\.nc: variable 'tas' has mean 6\.85 K in 2000-08"):
        guarded.mean().compute()


def test_second_chunk_in_degc_labelled_k_names_the_file_and_month(tmp_path):
    _tas(tmp_path / "tas_Amon_M_aimip_r1i1p1f1_gn_200001-200006.nc", (2000, 1), 6)
    _tas(tmp_path / "tas_Amon_M_aimip_r1i1p1f1_gn_200007-200012.nc", (2000, 7), 6,
         values=1.2 + np.zeros((6, 4, 8)))  # 275 K written as degC, still labelled K
    ds = open_dataset(str(tmp_path))
    with pytest.raises(InputError, match=r"_200007-200012\.nc: variable 'tas' has mean 1\.2 K in 2000-07, "
                                         r"outside the plausible range"):
        ds.load()


def test_md_prepare_stops_at_a_bad_month_with_exit_2_and_no_final_output(tmp_path, capsys):
    data = 280 + np.zeros((30, 4, 8))
    data[20, 0, 0] = np.inf
    _tas(tmp_path / "tas.nc", values=data, n=30)
    out = tmp_path / "prep"
    assert prepare.main(["--source", str(tmp_path / "tas.nc"), "--out", str(out), "--grid", "native"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("tas.nc: variable 'tas' holds NaN or inf where none may be (1 of 32 cells in 2001-09)")
    assert not (out / "dataset.zarr").exists() and not (out / "manifest.json").exists()


def test_nan_cell_refused_before_conservative_coarsening(tmp_path):
    grid = equiangular(11.25)
    data = 280 + np.zeros((3,) + grid.shape)
    data[0, 5, 7] = np.nan
    _tas(tmp_path / "tas.nc", n=3, values=data, lat=grid.lat, lon=grid.lon)
    with pytest.raises(InputError, match=r"'tas' holds NaN or inf where none may be \(1 of 544 cells in 2000-01\)"):
        open_dataset(str(tmp_path / "tas.nc"), grid=equiangular(45.0))


@pytest.mark.parametrize("lat, lon, message", [
    (np.array([-45.0, 45.0]), np.array([0.0, 180.0]), r"grid 2x2 is too coarse to regrid to 5\.625 degrees"),
    (np.array([80.0, 85.0]), np.array([0.0, 5.0]), r"a global grid is needed to regrid to 5\.625 degrees: "
                                                   r"longitudes 0\.\.5 \(2 columns\) do not go round"),
    (np.linspace(-30, 30, 5), LON, r"latitudes -30\.\.30 do not reach the poles"),
])
def test_tiny_and_regional_grids_are_refused_not_padded(tmp_path, capsys, lat, lon, message):
    _tas(tmp_path / "tas.nc", n=2, values=280 + np.zeros((2, lat.size, lon.size)), lat=lat, lon=lon)
    assert prepare.main(["--source", str(tmp_path / "tas.nc"), "--out", str(tmp_path / "p"), "--grid", "5.625"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "tas.nc: " in err
    assert __import__("re").search(message, err), err


def test_regional_source_kept_native_is_labelled(tmp_path, capsys):
    lat = np.linspace(-30, 30, 5)
    _tas(tmp_path / "tas.nc", n=2, values=280 + np.zeros((2, 5, 8)), lat=lat)
    assert prepare.main(["--source", str(tmp_path / "tas.nc"), "--out", str(tmp_path / "p"), "--grid", "native"]) == 0
    assert "NOT GLOBAL (latitudes -30..30 do not reach the poles" in capsys.readouterr().out
    grid = json.loads((tmp_path / "p" / "manifest.json").read_text())["grid"]
    assert grid["coverage"].startswith("latitudes -30..30 do not reach the poles")


def test_changed_source_is_prepared_again(tmp_path, capsys):
    src = tmp_path / "tas.nc"
    _tas(src, n=3, values=280 + np.zeros((3, 4, 8)))
    out = tmp_path / "prep"
    argv = ["--source", str(src), "--out", str(out), "--grid", "native"]
    assert prepare.main(argv) == 0
    assert prepare.main(argv) == 0 and "nothing to do" in capsys.readouterr().out
    st = os.stat(src)
    _tas(src, n=3, values=290 + np.zeros((3, 4, 8)))  # same size, new values
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert prepare.main(argv) == 0
    captured = capsys.readouterr()
    assert "sources changed" in captured.err and "nothing to do" not in captured.out
    np.testing.assert_allclose(open_prepared(out)["tas"].values, 290.0)


# --- messages --------------------------------------------------------------------------------------

def test_md_prepare_is_quiet_off_a_terminal_and_warns_nothing(wb2_small, tmp_path, capfd):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert prepare.main(["--source", str(wb2_small), "--out", str(tmp_path / "p"), "--grid", "native"]) == 0
    assert not [w for w in caught if "separate the stored chunks" in str(w.message)]
    err = capfd.readouterr().err
    assert "block/s" not in err and "task/s" not in err and "\r" not in err


@pytest.fixture(scope="module")
def wb2_small(tmp_path_factory):
    path = tmp_path_factory.mktemp("wb2") / "wb2.zarr"
    wb2_store(path, months=14)
    return path


def test_out_under_a_file_fails_before_the_work(tmp_path, capsys):
    src = tmp_path / "tas.nc"
    _tas(src, n=2)
    (tmp_path / "f").write_text("x")
    assert prepare.main(["--source", str(src), "--out", str(tmp_path / "f" / "sub"), "--grid", "native"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("--out: " + str(tmp_path / "f" / "sub") + " lies under a file, expected a directory path")


def test_not_netcdf_gets_a_short_reason_not_the_engine_hint(tmp_path):
    junk = tmp_path / "tas_Amon_M_aimip_r1i1p1f1_gn_200001-200012.nc"
    junk.write_bytes(os.urandom(2000))
    with pytest.raises(InputError) as err:
        open_dataset(str(junk))
    text = str(err.value)
    assert "not a netCDF-3 or netCDF-4/HDF5 file" in text and "engine" not in text and len(text) < 300


def test_time_bnds_is_not_listed_as_a_found_variable(tmp_path):
    _tas(tmp_path / "tas.nc", n=2)
    with pytest.raises(InputError, match=r"no catalogue variable of \['pr'\] found in the files \(found \['tas'\]\)$"):
        open_dataset(str(tmp_path / "tas.nc"), variables=["pr"])
    assert prepare.main(["--source", str(tmp_path / "tas.nc"), "--out", str(tmp_path / "p"), "--grid", "native"]) == 0
    with pytest.raises(InputError, match=r"missing variables \['pr'\]; found \['tas'\]$"):
        open_dataset(str(tmp_path / "p"), variables=["pr"])


# --- real CMIP files (issue 14) --------------------------------------------------------------------

def _cmor_ta(path, ta: np.ndarray, plev_pa: np.ndarray, fill: bool = True):
    ds = xr.Dataset({"ta": (("time", "plev", "lat", "lon"), ta.astype(np.float32),
                            {"units": "K", "standard_name": "air_temperature"})},
                    coords={"time": _times(2000, 1, ta.shape[0]), "lat": LAT, "lon": LON,
                            "plev": ("plev", plev_pa, {"units": "Pa", "axis": "Z", "positive": "down"})})
    ds.to_netcdf(path, encoding={**ENC, "ta": {"_FillValue": np.float32(1e20)} if fill else {"_FillValue": None}})


NOISY = np.array([100000.00000001, 92500.0, 85000.00000001, 70000.0, 60000.0, 50000.0, 40000.0,
                  30000.0, 25000.0, 20000.0, 15000.0, 10000.0, 7000.0, 5000.0, 3000.0, 2000.0, 1000.0,
                  500.0, 100.0])  # ACCESS-CM2's 19 CMOR levels with float noise


def test_plev_with_float_noise_is_read(tmp_path):
    rng = np.random.default_rng(0)
    ta = 250 + 5 * rng.standard_normal((2, NOISY.size, 4, 8))
    _cmor_ta(tmp_path / "ta_Amon_ACCESS-CM2_amip_r1i1p1f1_gn_200001-200002.nc", ta, NOISY)
    zg = xr.Dataset({"zg": (("time", "plev", "lat", "lon"), np.float32(5500 + 0 * ta), {"units": "m"})},
                    coords={"time": _times(2000, 1, 2), "lat": LAT, "lon": LON,
                            "plev": ("plev", NOISY, {"units": "Pa"})})
    zg.to_netcdf(tmp_path / "zg_Amon_ACCESS-CM2_amip_r1i1p1f1_gn_200001-200002.nc", encoding=ENC)
    ds = open_dataset(str(tmp_path))
    assert ds["plev"].values.tolist() == plev_coord().values.tolist()
    np.testing.assert_allclose(ds["ta"].values[:, 0], ta[:, 0, ::1], rtol=1e-6)   # 1000 hPa
    np.testing.assert_allclose(ds["ta"].values[:, 3], ta[:, 5], rtol=1e-6)        # 500 hPa
    np.testing.assert_allclose(ds["zg500"].values, 5500.0)


def _masked_ta(frac_rows: int = 1) -> np.ndarray:
    ta = 250 + np.zeros((3, 7, 4, 8))
    ta[:, 0, 0, :] = np.nan  # 1000 hPa below Antarctica (a quarter of the cells)
    ta[:, 1, 0, :2] = np.nan  # 850 hPa
    return ta


def test_below_ground_mask_is_read_as_missing_with_a_note(tmp_path):
    _cmor_ta(tmp_path / "ta.nc", _masked_ta(), plev_coord().values)
    ds = open_dataset(str(tmp_path / "ta.nc"))
    values = ds["ta"].values
    assert np.isnan(values[:, 0, 0]).all() and np.isfinite(values[:, 2:]).all()
    assert ds.attrs["below_ground_masked"] == "ta" and "below the ground" in ds["ta"].attrs["comment"]


def test_netcdf_default_fill_without_fillvalue_is_missing_not_wrong_units(tmp_path):
    ta = _masked_ta()
    ta[np.isnan(ta)] = 9.969209968386869e36  # what netCDF leaves in unwritten cells
    _cmor_ta(tmp_path / "ta.nc", ta, plev_coord().values, fill=False)
    assert "_FillValue" not in xr.open_dataset(tmp_path / "ta.nc")["ta"].encoding
    ds = open_dataset(str(tmp_path / "ta.nc"))
    assert np.isnan(ds["ta"].values[:, 0, 0]).all() and np.nanmax(ds["ta"].values) == 250.0


@pytest.mark.parametrize("level, rows, message", [
    (4, 1, r"'ta' holds NaN at 250 hPa, above any ground \(8 of 32 cells in 2000-01\)"),
    (0, 3, r"'ta' holds NaN in 24 of 32 cells at 1000 hPa in 2000-01: more than the 60%"),
])
def test_nan_where_no_ground_can_be_is_refused(tmp_path, level, rows, message):
    ta = 250 + np.zeros((3, 7, 4, 8))
    ta[:, level, :rows, :] = np.nan
    _cmor_ta(tmp_path / "ta.nc", ta, plev_coord().values)
    with pytest.raises(InputError, match=message):
        open_dataset(str(tmp_path / "ta.nc"))


def test_manifest_records_the_mask(tmp_path):
    _cmor_ta(tmp_path / "ta.nc", _masked_ta(), plev_coord().values)
    out = tmp_path / "prep"
    assert prepare.main(["--source", str(tmp_path / "ta.nc"), "--out", str(out), "--grid", "native"]) == 0
    assert json.loads((out / "manifest.json").read_text())["below_ground_masked"] == "ta"
    assert np.isnan(open_prepared(out)["ta"].values[:, 0, 0]).all()
