"""AI-MIP ``day`` files beside the monthly ones (DRS tree, two time chunks, geopotential zg), huss from
the dewpoint by the official Tetens formula, E4 skipped in one line without daily files, and E1 on
NeuralGCM's 2.8 deg grid."""

from __future__ import annotations

import datetime
import json

import cftime
import numpy as np
import pytest
import xarray as xr

from diagnostics.cli.diagnose import main
from diagnostics.data.catalogue import G0
from diagnostics.data.errors import InputError
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.io.aimip import read_aimip, read_daily
from diagnostics.io.names import daily_files_beside, find_drs_files
from diagnostics.io.writer import write_aimip

GRID = equiangular(30.0)


def _day_file(path, var, values, days, member, plev_pa, units, label):
    path.mkdir(parents=True, exist_ok=True)
    da = xr.DataArray(values[:, None], dims=("time", "plev", "lat", "lon"),
                      coords={"time": days, "plev": ("plev", [plev_pa], {"units": "Pa"}), **GRID.coords()},
                      name=var, attrs={"units": units})
    f = path / f"{var}_day_TOY_aimip_{member}_gn_{label}.nc"
    da.to_dataset().to_netcdf(f, encoding={"time": {"units": "days since 1978-01-01", "calendar": "noleap"}})
    return f


def _days(first: cftime.DatetimeNoLeap, last: cftime.DatetimeNoLeap) -> list:
    out, d = [], first
    while d <= last:
        out.append(d)
        d += datetime.timedelta(days=1)
    return out


def test_daily_files_of_a_drs_tree_are_found_beside_the_monthly_ones_and_joined(tmp_path):
    rng = np.random.default_rng(0)
    axis = monthly_axis(Month(1978, 10), Month(1979, 3), "noleap")
    root = tmp_path / "Inst" / "TOY" / "aimip"
    first = _days(cftime.DatetimeNoLeap(1978, 10, 1, 12), cftime.DatetimeNoLeap(1978, 11, 30, 12))
    second = _days(cftime.DatetimeNoLeap(1978, 12, 1, 12), cftime.DatetimeNoLeap(1979, 1, 31, 12))
    expect = {}
    for m in (1, 2):
        label = f"r{m}i1p1f1"
        mon = xr.Dataset({"tas": (("time", "lat", "lon"), 280 + rng.normal(size=(6, *GRID.shape)), {"units": "K"}),
                          "time_bnds": axis["time_bnds"]}, coords={"time": axis["time"], **GRID.coords()})
        write_aimip(mon, root / label / "Amon" / "tas" / "gn" / "v20260101", "TOY", "aimip", members=[label])
        z = [5500.0 * G0 + 100 * rng.normal(size=(len(d), *GRID.shape)) for d in (first, second)]
        for days, values, lab in zip((first, second), z, ("19781001-19781130", "19781201-19790131")):
            # geopotential labelled "m", as 6 of the 8 Phase-1 submissions
            _day_file(root / label / "day" / "zg" / "gn" / "v20260101", "zg", values, days, label, 50000.0, "m", lab)
        expect[m] = np.concatenate(z) / G0
    # an older version of one daily file is left out
    _day_file(root / "r1i1p1f1" / "day" / "zg" / "gn" / "v20250101", "zg", np.zeros((len(first), *GRID.shape)),
              first, "r1i1p1f1", 50000.0, "m", "19781001-19781130")
    # a day file of another experiment in the same tree is not this run's
    other = _day_file(root / "r1i1p1f1" / "day" / "zg" / "gn" / "v20260101", "zg", np.zeros((len(first), *GRID.shape)),
                      first, "r1i1p1f1", 50000.0, "m", "19781001-19781129")
    other.rename(other.with_name(other.name.replace("_aimip_", "_aimip-p2k_")))
    monthly = find_drs_files(root).files
    assert len(monthly) == 2 and all("_Amon_" in f for f in monthly)
    found = daily_files_beside(monthly)
    assert len(found.files) == 4 and all("v20260101" in f for f in found.files), found.files
    fields = read_daily(found.files)
    zg = fields["zg500"]
    assert set(fields) == {"zg500"} and zg.dims == ("member", "time", "lat", "lon")
    assert zg["member"].values.tolist() == [1, 2] and zg.sizes["time"] == len(first) + len(second)
    assert zg["time"].values[0] == first[0] and zg["time"].values[-1] == second[-1]
    for m in (1, 2):  # divided by g0, lat/lon as written (30 deg grid is ascending from 0)
        np.testing.assert_allclose(zg.sel(member=m).values, expect[m], rtol=1e-6)
    assert zg.attrs["units"] == "m"


def test_a_repeated_day_is_refused_naming_the_files(tmp_path):
    days = _days(cftime.DatetimeNoLeap(1979, 1, 1, 12), cftime.DatetimeNoLeap(1979, 1, 10, 12))
    a = _day_file(tmp_path, "ta", np.full((10, *GRID.shape), 250.0), days, "r1i1p1f1", 85000.0, "K", "19790101-19790110")
    b = _day_file(tmp_path / "b", "ta", np.full((10, *GRID.shape), 250.0), days, "r1i1p1f1", 85000.0, "K",
                  "19790101-19790111")
    from diagnostics.data.errors import InputError
    with pytest.raises(InputError, match="given twice"):
        read_daily([str(a), str(b)])


def test_huss_from_dewpoint_when_only_tdas_and_ps_are_given(tmp_path):
    axis = monthly_axis(Month(1979, 1), Month(1979, 3))
    rng = np.random.default_rng(1)
    td = 275.0 + 5 * rng.normal(size=(3, *GRID.shape))
    ps = 98000.0 + 500 * rng.normal(size=(3, *GRID.shape))
    ds = xr.Dataset({"tdas": (("time", "lat", "lon"), td, {"units": "K"}),
                     "ps": (("time", "lat", "lon"), ps, {"units": "Pa"}), "time_bnds": axis["time_bnds"]},
                    coords={"time": axis["time"], **GRID.coords()})
    files = write_aimip(ds, tmp_path, "TOY", "aimip")
    out = read_aimip([str(f) for f in files])
    # ai2cm/AIMIP compute_huss_from_tdas, transcribed (values as written: float32)
    td32, ps32 = td.astype(np.float32).astype(float), ps.astype(np.float32).astype(float)
    e = 611.21 * np.exp(17.502 * (td32 - 273.16) / (td32 - 32.19))
    q = (287.0597 / 461.5250) * e / (ps32 - (1 - 287.0597 / 461.5250) * e)
    np.testing.assert_allclose(out["huss"].values, q, rtol=1e-6)
    assert "huss derived from tdas and ps" in out.attrs["reader_notes"]
    # asked for huss only: tdas and ps are read for it
    assert "huss" in read_aimip([str(f) for f in files], variables=["huss"])


def test_e4_skipped_in_one_line_without_or_with_bad_daily_files_and_e1_on_the_2p8_grid(tmp_path, capsys):
    grid = equiangular(2.5)
    axis = monthly_axis(Month(2010, 1), Month(2012, 12), "noleap")
    rng = np.random.default_rng(2)
    ref = 280 + rng.normal(size=(36, *grid.shape))
    coords = {"time": axis["time"], **grid.coords()}
    ta = 250 + rng.normal(size=(36, 1, *grid.shape))
    ref_ds = xr.Dataset({"tas": (("time", "lat", "lon"), ref, {"units": "K"}),
                         "ta": (("time", "plev", "lat", "lon"), ta, {"units": "K"}), "time_bnds": axis["time_bnds"]},
                        coords={**coords, "plev": ("plev", [85000.0], {"units": "Pa"})})
    hist = xr.concat([ref_ds.drop_vars("time_bnds") + b for b in (0.25, 0.75)], dim="member")
    hist = hist.assign_coords(member=[1, 2]).assign(time_bnds=axis["time_bnds"])
    for v in ("tas", "ta"):
        hist[v].attrs = {"units": "K"}
    write_aimip(ref_ds, tmp_path / "ref", "ERA5", "aimip")
    write_aimip(hist, tmp_path / "hist", "TOY", "aimip")
    # a day file that is not netCDF costs E4 of this input only
    (tmp_path / "hist" / "ta_day_TOY_aimip_r1i1p1f1_gn_20100101-20101231.nc").write_text("not netCDF")
    code = main(["--ensemble", f"TOY={tmp_path / 'hist'}", "--reference", str(tmp_path / "ref"),
                 "--out", str(tmp_path / "out"), "--report", "none", "--no-progress", "--no-baselines",
                 "--no-spectra", "--variables", "tas,ta", "--train-period", "2010-01:2011-12",
                 "--test-period", "2012-01:2012-12"])
    err = capsys.readouterr().err
    assert code == 0, err
    lines = [line for line in err.splitlines() if "aimip_e4" in line]
    assert len(lines) == 2, lines
    assert "skipped reference.aimip_e4: no day-table files" in lines[0]
    assert "skipped TOY.aimip_e4: daily files not read:" in lines[1]
    assert "ta_day_TOY_aimip_r1i1p1f1_gn_20100101-20101231.nc: cannot read as netCDF" in lines[1]
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert not any("aimip_daily" in k for k in m)
    for period in ("train", "test"):
        # a uniform bias keeps its value through conservative regridding: 0.25 and 0.75 K (float32 files)
        assert m[f"TOY.tas.aimip_rmsb_2p8deg.{period}.member1"] == pytest.approx(0.25, abs=1e-4)
        assert m[f"TOY.tas.aimip_rmsb_2p8deg.{period}.member2"] == pytest.approx(0.75, abs=1e-4)
        assert m[f"TOY.tas.aimip_rmsb_2p8deg_median.{period}"] == pytest.approx(0.5, abs=1e-4)
        assert m[f"TOY.ta850.aimip_rmsb_2p8deg_max.{period}"] == pytest.approx(0.75, abs=1e-4)


def test_daily_period_is_1979_when_covered_else_the_longest_run_of_whole_months():
    from diagnostics.data.timeaxis import Period
    from diagnostics.groups.aimip import daily_period
    from diagnostics.metrics.aimip import DAILY_PERIOD
    months = set(range(Month(1978, 10).index, Month(1979, 12).index + 1))  # the first 15 months
    assert daily_period(months) == DAILY_PERIOD
    months = set(range(Month(2024, 1).index, Month(2024, 12).index + 1)) | {Month(1979, 3).index}
    assert daily_period(months) == Period(Month(2024, 1), Month(2024, 12))  # the last 12 months
    assert daily_period(set()) is None


def test_huss_files_are_read_without_a_shorter_dewpoint_narrowing_them(tmp_path):
    """Asked for huss of a submission that has huss files, tdas/ps are not read: a dewpoint
    covering fewer months must not shorten huss (the months common to all variables are kept)."""
    rng = np.random.default_rng(2)
    long, short = monthly_axis(Month(1979, 1), Month(1979, 6)), monthly_axis(Month(1979, 1), Month(1979, 3))
    huss = xr.Dataset({"huss": (("time", "lat", "lon"), 0.01 + 1e-3 * rng.random((6, *GRID.shape)), {"units": "1"}),
                       "time_bnds": long["time_bnds"]}, coords={"time": long["time"], **GRID.coords()})
    dew = xr.Dataset({"tdas": (("time", "lat", "lon"), 275.0 + rng.random((3, *GRID.shape)), {"units": "K"}),
                      "ps": (("time", "lat", "lon"), 98000.0 + rng.random((3, *GRID.shape)), {"units": "Pa"}),
                      "time_bnds": short["time_bnds"]}, coords={"time": short["time"], **GRID.coords()})
    files = write_aimip(huss, tmp_path, "TOY", "aimip") + write_aimip(dew, tmp_path, "TOY", "aimip")
    out = read_aimip([str(f) for f in files], variables=["huss"])
    assert list(out.data_vars) == ["huss", "time_bnds"] and out.sizes["time"] == 6


def test_daily_values_are_checked_every_day_not_the_first_month_only(tmp_path):
    """A day file whose second month is in degC though labelled K is refused when the field is
    computed, naming the month and the file (below-ground NaN at 850 hPa would be allowed)."""
    days = _days(cftime.DatetimeNoLeap(1979, 1, 1, 12), cftime.DatetimeNoLeap(1979, 2, 28, 12))
    values = 270.0 + np.random.default_rng(3).normal(size=(len(days), *GRID.shape))
    values[31:] -= 273.15  # February in degC
    f = _day_file(tmp_path, "ta", values, days, "r1i1p1f1", 85000.0, "K", "19790101-19790228")
    fields = read_daily([str(f)], ("ta",))
    with pytest.raises(InputError, match=r"1979-02.*ta_day_TOY|ta_day_TOY.*1979-02"):
        fields["ta"].load()
