"""The AI-MIP Phase-1 archive as it is: CMIP DRS trees, name variants, geopotential zg, day tables."""

from __future__ import annotations

import cftime
import numpy as np
import pytest
import xarray as xr

from diagnostics.cli import prepare
from diagnostics.data.catalogue import G0
from diagnostics.io.files import expand_paths
from diagnostics.io.names import find_drs_files
from diagnostics.io.open import open_dataset

LAT = np.array([-67.5, -22.5, 22.5, 67.5])
LON = np.arange(8) * 45.0


def _write(path, var, values, units, months, plev=None, calendar="noleap"):
    time = np.array([cftime.datetime(1978 + (9 + k) // 12, (9 + k) % 12 + 1, 16, calendar=calendar)
                     for k in range(months)])
    dims = ("time", "lat", "lon") if plev is None else ("time", "plev", "lat", "lon")
    coords = {"time": time, "lat": LAT, "lon": LON}
    if plev is not None:
        coords["plev"] = ("plev", plev, {"units": "Pa"})
    path.parent.mkdir(parents=True, exist_ok=True)
    xr.Dataset({var: (dims, values.astype(np.float32), {"units": units})}, coords=coords).to_netcdf(
        path, encoding={"time": {"units": "days since 1850-01-01", "calendar": calendar}})


def _tree(root, members=("r1i1p1f1", "r1i1p2f1"), version=True, months=4):
    """institute/model/experiment/member/table/var/grid/[version]/file, with a day table, an
    older version, YYYYMMDD time labels, aimip-2k, and zg as geopotential labelled m."""
    rng = np.random.default_rng(0)
    truth = {}
    exp = root / "Inst" / "MD-1p5" / "aimip-2k"
    for member in members:
        for var, grid, base, units in (("tas", "gn", 285.0, "K"), ("zg", "gr", G0 * 5600.0, "m")):
            values = base + rng.standard_normal((months, 4, 8)) * (1.0 if var == "tas" else 50.0)
            truth[(member, var)] = values
            d = exp / member / "Amon" / var / grid
            latest = d / "v20250301" if version else d
            name = f"{var}_Amon_MD-1p5_aimip-2k_{member}_{grid}_19781016-{1978 + (9 + months - 1) // 12}" \
                   f"{(9 + months - 1) % 12 + 1:02d}16.nc"
            if var == "zg":
                _write(latest / name, var, values[:, None], units, months, plev=np.array([50000.0]))
            else:
                _write(latest / name, var, values, units, months)
            if version:  # an older version with other values must not be read
                old = values + 100.0 if var == "tas" else values[:, None]
                _write(d / "v20240101" / name, var, old, units, months,
                       plev=None if var == "tas" else np.array([50000.0]))
        daily = exp / member / "day" / "tas" / "gn" / "v20250301" / \
            f"tas_day_MD-1p5_aimip-2k_{member}_gn_19781001-19781031.nc"
        _write(daily, "tas", 285.0 + np.zeros((3, 4, 8)), "K", 3)
    return exp, truth


@pytest.mark.parametrize("version", [True, False])
def test_drs_experiment_directory_is_read(tmp_path, version):
    exp, truth = _tree(tmp_path, version=version)
    found = find_drs_files(exp)
    assert len(found.files) == 4 and all("/Amon/" in f for f in found.files)
    assert ("4 files of older versions left out" in found.summary) == version
    assert "left out: 2 day" in found.summary
    assert expand_paths(str(exp)) == found.files
    ds = open_dataset(str(exp))
    assert ds.attrs["experiment_id"] == "aimip-2k" and ds.attrs["source_id"] == "MD-1p5"
    # r1i1p{N}f1: the physics index tells the members apart
    assert ds["member"].values.tolist() == [1, 2]
    assert ds["member_label"].values.tolist() == ["r1i1p1f1", "r1i1p2f1"]
    np.testing.assert_allclose(ds["tas"].values[1], truth[("r1i1p2f1", "tas")], rtol=1e-6)
    # zg: geopotential labelled m, detected by magnitude, converted and said so
    np.testing.assert_allclose(ds["zg500"].values[0], truth[("r1i1p1f1", "zg")] / G0, rtol=1e-5)
    assert "zg500 converted from geopotential" in ds.attrs["reader_notes"]
    assert "2 member(s) (r1i1p1f1, r1i1p2f1), variables tas, zg500" in ds.attrs["found"]


def test_md_prepare_reports_what_it_found(tmp_path, capsys):
    exp, _ = _tree(tmp_path)
    assert prepare.main(["--source", str(exp), "--out", str(tmp_path / "p"), "--grid", "native"]) == 0
    err = capsys.readouterr().err
    assert "MD-1p5 aimip-2k: 4 files, 2 member(s)" in err and "converted from geopotential" in err
    assert f"{exp}: CMIP DRS tree: 4 files: tables Amon; 2 members; variables tas, zg; 4 files of older " \
           "versions left out; left out: 2 day" in err


def test_a_model_directory_with_two_experiments_is_refused(tmp_path):
    _tree(tmp_path)
    other = tmp_path / "Inst" / "MD-1p5" / "aimip" / "r1i1p1f1" / "Amon" / "tas" / "gn"
    _write(other / "tas_Amon_MD-1p5_aimip_r1i1p1f1_gn_197810-197901.nc", "tas", 285 + np.zeros((4, 4, 8)), "K", 4)
    with pytest.raises(Exception, match=r"files mix several experiments \(aimip, aimip-2k\)"):
        open_dataset(str(tmp_path / "Inst" / "MD-1p5"))


@pytest.mark.parametrize("calendar", ["julian", "365_day"])
def test_native6_era5_and_cmor_files_with_bounds_masks_and_noisy_levels(tmp_path, calendar):
    """ESMValTool native6 ERA5 names and GFDL-CM4-like CMOR files: bounds variables, 19 levels
    with float noise in Pa, a below-ground mask under the declared fill, julian / 365-day."""
    n, lat = 4, np.linspace(-89.5, 89.5, 9)
    time = np.array([cftime.datetime(1979, k + 1, 16, calendar=calendar) for k in range(n)])
    bnds = np.array([[cftime.datetime(1979, k + 1, 1, calendar=calendar),
                      cftime.datetime(1979 + (k + 1) // 12, (k + 1) % 12 + 1, 1, calendar=calendar)] for k in range(n)])
    plev = np.array([100000.00000001, 92500, 85000, 70000, 60000, 50000, 40000, 30000, 25000, 20000, 15000,
                     10000, 7000, 5000, 3000, 2000, 1000, 500, 100.0])
    ta = 250 + np.arange(plev.size, dtype=np.float32)[None, :, None, None] + np.zeros((n, plev.size, 9, 8), np.float32)
    ta[:, 0, 0] = 1e20  # below ground at 1000 hPa over the southern row, under the declared fill
    fields = {"tas": (("time", "lat", "lon"), 280 + np.zeros((n, 9, 8), np.float32)),
              "ta": (("time", "plev", "lat", "lon"), ta)}
    for var, (dims, data) in fields.items():
        ds = xr.Dataset({var: (dims, data, {"units": "K"}), "time_bnds": (("time", "bnds"), bnds),
                         "lat_bnds": (("lat", "bnds"), np.stack([lat - 10, lat + 10], 1)),
                         "lon_bnds": (("lon", "bnds"), np.stack([LON - 22.5, LON + 22.5], 1))},
                        coords={"time": ("time", time, {"bounds": "time_bnds"}), "lat": lat, "lon": LON})
        if var == "ta":
            ds = ds.assign_coords(plev=("plev", plev, {"units": "Pa"}))
        enc = {v: {"units": "days since 1850-01-01", "calendar": calendar} for v in ("time", "time_bnds")}
        ds.to_netcdf(tmp_path / f"native6_ERA5_an_v1_Amon_{var}_1979-1979.nc",
                     encoding={**enc, var: {"_FillValue": np.float32(1e20)}})
    out = open_dataset(str(tmp_path))
    assert out.attrs["source_layout"] == "contract-netcdf" and out["time"].values[0].calendar == {"365_day": "noleap"}.get(calendar, calendar)
    assert out.attrs["below_ground_masked"] == "ta"
    assert np.isnan(out["ta"].values[:, 0, 0]).all()
    # the 7 catalogue levels picked from 19 by position after rounding: 1000 850 700 500 250 100 50 hPa
    np.testing.assert_allclose(out["ta"].values[0, :, 1, 0], 250 + np.array([0, 2, 3, 5, 8, 11, 13]))
