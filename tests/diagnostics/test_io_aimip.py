"""AI-MIP / CMIP per-variable files: members, time chunks, quirks, bad submissions."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.catalogue import G0
from diagnostics.data.errors import InputError
from diagnostics.io.aimip import member_indices, parse_name
from diagnostics.io.open import detect_layout, open_dataset
from diagnostics.io.samples import aimip_files


@pytest.fixture(scope="module")
def sub(tmp_path_factory):
    d = tmp_path_factory.mktemp("aimip")
    return d, aimip_files(d)


def _flip_wrap(a: np.ndarray) -> np.ndarray:
    """Expected contract order of the sample arrays: lat ascending, lon -180..180 -> 0..360."""
    return np.roll(a[..., ::-1, :], 4, axis=-1)  # 8 columns: -180..135 -> 0..315 is a shift by 4


def test_file_names():
    n = parse_name("/x/zg_Amon_MD-1p5_aimip-p2k_r10i1p1f1_gr_197810-202412.nc")
    assert (n.var, n.model, n.experiment, n.member, n.grid, n.start, n.end) == \
        ("zg", "MD-1p5", "aimip-p2k", "r10i1p1f1", "gr", "197810", "202412")
    assert parse_name("sftlf_fx_ACE2_aimip_r1i1p1f1_gn.nc").start is None
    assert parse_name("era5_single_levels.nc") is None
    assert member_indices(["r1i1p1f1", "r3i1p1f1"]) == {"r1i1p1f1": 1, "r3i1p1f1": 3}
    assert member_indices(["r1i1p1f1", "r1i1p1f2"]) == {"r1i1p1f1": 1, "r1i1p1f2": 2}
    # cBottle: physics variants as members; natural order otherwise
    assert member_indices(["r1i1p1f1", "r1i1p10f1", "r1i1p2f1"]) == {"r1i1p1f1": 1, "r1i1p10f1": 10, "r1i1p2f1": 2}
    assert member_indices(["m10", "m2"]) == {"m2": 1, "m10": 2}
    n = parse_name("tas_Amon_MD-1p5_aimip-2k_r1i1p1f1_gr_19781016-20241216.nc")
    assert (n.experiment, n.start, n.end) == ("aimip-2k", "19781016", "20241216")


def test_members_chunks_and_quirks(sub):
    d, raw = sub
    assert detect_layout([str(d)]) == "aimip"
    ds = open_dataset(str(d))
    assert ds.attrs["source_id"] == "TOYMODEL" and ds.attrs["experiment_id"] == "aimip"
    assert ds["member"].values.tolist() == [1, 2]
    assert ds["member_label"].values.tolist() == ["r1i1p1f1", "r2i1p1f1"]
    assert ds.sizes["time"] == 6 and ds["time"].values[0].calendar == "noleap"
    assert ds["tas"].dims == ("member", "time", "lat", "lon")
    np.testing.assert_array_equal(ds["lon"].values, np.arange(8) * 45.0)
    assert ds["lat"].values[0] < 0
    # two time chunks concatenated in order
    np.testing.assert_allclose(ds["tas"].values, _flip_wrap(raw["tas"]), rtol=1e-6)
    # zg: geopotential labelled "m" on 7 levels in hPa -> 500 hPa, / g0
    np.testing.assert_allclose(ds["zg500"].values, _flip_wrap(raw["zg"][:, :, 3]) / G0, rtol=1e-5)
    # tos degC -> K with NaN kept; siconc % -> fraction
    np.testing.assert_allclose(ds["tos"].values, _flip_wrap(raw["tos"]) + 273.15, rtol=1e-6)
    assert np.isnan(ds["tos"].values).any()
    np.testing.assert_allclose(ds["siconc"].values, _flip_wrap(raw["siconc"]) / 100.0, rtol=1e-5)
    # tos has NaN over land, so it is not silently used as ts
    assert "ts" not in ds


def test_tos_used_as_ts_when_asked(sub):
    d, raw = sub
    ds = open_dataset(str(d), variables=["tos", "tas"])
    assert "ts" not in ds
    with pytest.raises(InputError, match="'ts' holds NaN"):
        open_dataset(str(d), variables=["ts"])  # asked for ts: tos is used, and its land NaNs reported


def test_tos_without_nan_becomes_ts(tmp_path, sub):
    d, raw = sub
    src = d / "tos_Amon_TOYMODEL_aimip_r1i1p1f1_gn_197810-197903.nc"
    ds = xr.open_dataset(src).load()
    ds["tos"] = ds["tos"].fillna(-1.8)
    ds.to_netcdf(tmp_path / src.name)
    out = open_dataset(str(tmp_path))
    assert out.attrs["ts_from"].startswith("tos")
    np.testing.assert_allclose(out["ts"].values, out["tos"].values)
    assert "member" not in out.dims and out.attrs["variant_label"] == "r1i1p1f1"


def test_glob_and_single_member(sub):
    d, raw = sub
    ds = open_dataset(str(d / "*_r2i1p1f1_*.nc"), variables=["tas"])
    assert "member" not in ds.dims
    np.testing.assert_allclose(ds["tas"].values, _flip_wrap(raw["tas"][1]), rtol=1e-6)


def test_mixed_experiments_rejected(tmp_path, sub):
    d, _ = sub
    for f in d.glob("tas_*r1i1p1f1*"):
        shutil.copy(f, tmp_path / f.name)
        shutil.copy(f, tmp_path / f.name.replace("_aimip_", "_aimip-p2k_"))
    with pytest.raises(InputError, match=r"files mix several experiments \(aimip, aimip-p2k\)"):
        open_dataset(str(tmp_path))


def test_duplicated_months_rejected(tmp_path, sub):
    d, _ = sub
    f = next(d.glob("tas_*r1i1p1f1*_197810-197812.nc"))
    shutil.copy(f, tmp_path / f.name)
    shutil.copy(f, tmp_path / f.name.replace("197810-197812", "197811-197901"))
    with pytest.raises(InputError, match=r"197811-197901\.nc: time chunks overlap: 1978-10 is also in"):
        open_dataset(str(tmp_path))


def test_variable_missing_for_a_member(tmp_path, sub):
    d, _ = sub
    for f in d.glob("*.nc"):
        if not (f.name.startswith("siconc") and "r2i1p1f1" in f.name):
            shutil.copy(f, tmp_path / f.name)
    # reading all that was found: reported and left out, not fatal (a gap in the archive)
    with pytest.warns(UserWarning, match=r"variable 'siconc' is missing for member\(s\) r2i1p1f1; left out"):
        ds = open_dataset(str(tmp_path))
    assert "siconc" not in ds and "tas" in ds and ds.sizes["member"] == 2
    assert "siconc left out" in ds.attrs["reader_notes"]
    # asked for explicitly: an error
    with pytest.raises(InputError, match=r"variable 'siconc' is missing for member\(s\) r2i1p1f1"):
        open_dataset(str(tmp_path), variables=["tas", "siconc"])


def test_missing_requested_variable(sub):
    d, _ = sub
    with pytest.raises(InputError, match=r"missing variables \['pr'\]"):
        open_dataset(str(d), variables=["tas", "pr"])


def test_fixed_field_given_once_for_all_members(tmp_path, sub):
    d, raw = sub
    for f in d.glob("tas_*.nc"):
        shutil.copy(f, tmp_path / f.name)
    land = np.zeros((6, 8))
    land[0, :4] = 100.0  # percent, north row (file order), western half (-180..-45)
    xr.Dataset({"sftlf": (("lat", "lon"), land, {"units": "%"})},
               coords={"lat": raw["lat"], "lon": raw["lon"]}).to_netcdf(
        tmp_path / "sftlf_fx_TOYMODEL_aimip_r1i1p1f1_gn.nc")
    ds = open_dataset(str(tmp_path))
    assert ds["sftlf"].dims == ("lat", "lon")
    np.testing.assert_array_equal(ds["sftlf"].values, _flip_wrap(land) / 100.0)
    assert ds["sftlf"].values[-1, 4:].tolist() == [1.0] * 4  # -180..-45 is 180..315 E


def test_variables_on_different_levels_are_refused_with_the_level_sets(tmp_path):
    """One dataset has one plev axis: ta at 850 hPa and ua at 250 hPa in one directory would be
    padded with NaN on the union of levels, so the reader names the level sets instead."""
    import cftime

    time = [cftime.DatetimeNoLeap(2000, m, 15) for m in range(1, 4)]
    lat, lon = np.linspace(-90, 90, 5), np.arange(8) * 45.0
    for var, units, level, value in (("ta", "K", 85000.0, 280.0), ("ua", "m s-1", 25000.0, 10.0)):
        da = xr.DataArray(np.full((3, 1, 5, 8), value, np.float32), dims=("time", "plev", "lat", "lon"),
                          coords={"time": time, "plev": ("plev", [level], {"units": "Pa"}),
                                  "lat": ("lat", lat, {"units": "degrees_north"}),
                                  "lon": ("lon", lon, {"units": "degrees_east"})},
                          attrs={"units": units})
        da.to_dataset(name=var).to_netcdf(tmp_path / f"{var}_Amon_TOY_aimip_r1i1p1f1_gn_200001-200003.nc")
    with pytest.raises(InputError, match=r"different pressure levels \(hPa: ta \[850\]; ua \[250\]\)"):
        open_dataset(str(tmp_path))
    assert open_dataset(str(tmp_path), variables=["ua"])["ua"].shape == (3, 1, 5, 8)
