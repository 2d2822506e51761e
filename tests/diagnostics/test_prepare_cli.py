"""md-prepare and md-describe end to end: outputs, manifest, values, exit codes, no partial output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from diagnostics.cli import describe, prepare
from diagnostics.data.catalogue import G0
from diagnostics.data.grid import global_mean
from diagnostics.io.open import open_prepared
from diagnostics.io.samples import aimip_files, cds_old, wb2_store


@pytest.fixture(scope="module")
def wb2(tmp_path_factory):
    path = tmp_path_factory.mktemp("src") / "wb2.zarr"
    return path, wb2_store(path, months=3, nlat=5, nlon=8)


def _final_entries(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_prepare_wb2_native_values_and_manifest(tmp_path, wb2, capsys):
    src, raw = wb2
    out = tmp_path / "prep"
    argv = ["--source", str(src), "--out", str(out), "--grid", "native", "--start", "2000-02", "--end", "2000-03",
            "--variables", "tas", "pr", "zg", "tos"]
    assert prepare.main(argv) == 0
    assert _final_entries(out) == ["dataset.zarr", "manifest.json"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"].startswith("md-prepare --source")
    assert manifest["period"] == "2000-02:2000-03" and manifest["source_layout"] == "wb2-zarr"
    assert manifest["variables"] == ["tas", "pr", "zg500", "tos"]
    assert set(manifest["versions"]) >= {"xarray", "dask", "zarr", "numpy"}
    assert len(manifest["fingerprint"]) == 16
    ds = open_prepared(out)
    months = pd.DatetimeIndex(raw["time"].values).month
    for name, raw_name, scale in (("tas", "2m_temperature", 1.0), ("pr", "total_precipitation_6hr", 1000 / 21600),
                                  ("zg500", "geopotential", 1 / G0)):
        values = raw[raw_name].values
        if raw_name == "geopotential":
            values = values[:, list(raw["level"].values).index(500)]
        expected = np.stack([values[months == m].mean(axis=0) for m in (2, 3)]) * scale
        np.testing.assert_allclose(ds[name].values, expected, rtol=2e-6)
    # rerunning the same command is a no-op; a different request into the same dir is refused
    assert prepare.main(argv) == 0
    assert "nothing to do" in capsys.readouterr().out
    code = prepare.main(argv[:-4] + ["tas"])
    assert code == 2
    err = capsys.readouterr().err
    assert "already holds a different dataset" in err and str(out) in err and "\n" not in err.strip()


def test_prepare_regrids_conservatively(tmp_path, wb2):
    src, raw = wb2
    out = tmp_path / "coarse"
    assert prepare.main(["--source", str(src), "--out", str(out), "--grid", "90", "--variables", "tas"]) == 0
    ds = open_prepared(out)
    assert ds["tas"].shape == (3, 3, 4)
    native = tmp_path / "native"
    assert prepare.main(["--source", str(src), "--out", str(native), "--grid", "native", "--variables", "tas"]) == 0
    fine = open_prepared(native)
    np.testing.assert_allclose(global_mean(ds["tas"].astype(float)).values,
                               global_mean(fine["tas"].astype(float)).values, rtol=1e-6)
    assert "conservative" in json.loads((out / "manifest.json").read_text())["grid"]["regrid"]


def test_prepare_cds_and_aimip(tmp_path):
    raw = cds_old(tmp_path / "cds")
    out = tmp_path / "era5"
    files = [str(p) for p in sorted((tmp_path / "cds").glob("*.nc"))]
    assert prepare.main(["--source", *files, "--out", str(out), "--grid", "native", "--derive-huss"]) == 0
    ds = open_prepared(out)
    np.testing.assert_allclose(ds["pr"].values[:3], raw["tp"][:3, ::-1] * 1000 / 86400, rtol=1e-5)
    assert "huss" in ds and ds["lat"].values[0] == -90.0
    truth = aimip_files(tmp_path / "sub")
    out2 = tmp_path / "model"
    assert prepare.main(["--source", str(tmp_path / "sub"), "--out", str(out2), "--grid", "native"]) == 0
    m = open_prepared(out2)
    assert m["member"].values.tolist() == [1, 2]
    np.testing.assert_allclose(m["tos"].values[:, :, ::-1][..., [4, 5, 6, 7, 0, 1, 2, 3]],
                               truth["tos"] + 273.15, rtol=1e-6)
    manifest = json.loads((out2 / "manifest.json").read_text())
    assert manifest["source_id"] == "TOYMODEL" and manifest["members"] == 2


@pytest.mark.parametrize("case", ["unknown", "truncated", "missing-variable", "bad-grid"])
def test_bad_input_exits_2_without_output(tmp_path, wb2, capsys, case):
    src, _ = wb2
    out = tmp_path / "out"
    if case == "unknown":
        (tmp_path / "data.csv").write_text("a,b\n1,2\n")
        argv, expect = ["--source", str(tmp_path / "data.csv")], "unknown layout"
    elif case == "truncated":
        good = tmp_path / "good.nc"
        xr.Dataset({"t2m": (("time", "latitude", "longitude"), np.full((2, 3, 4), 280.0))},
                   coords={"time": pd.date_range("2000-01-01", periods=2, freq="MS"),
                           "latitude": [90.0, 0, -90], "longitude": [0.0, 90, 180, 270]}).to_netcdf(good)
        (tmp_path / "cut.nc").write_bytes(good.read_bytes()[:400])
        argv, expect = ["--source", str(tmp_path / "cut.nc")], "truncated"
    elif case == "missing-variable":
        argv, expect = ["--source", str(src), "--variables", "tas", "hus"], "missing variables ['hus']"
    else:
        argv, expect = ["--source", str(src), "--grid", "7"], "--grid '7'"
    assert prepare.main(argv + ["--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expect in err[0], err
    assert not (out / "dataset.zarr").exists() and not (out / "manifest.json").exists()


def test_describe(tmp_path, wb2, capsys):
    src, _ = wb2
    out = tmp_path / "prep"
    assert prepare.main(["--source", str(src), "--out", str(out), "--grid", "native"]) == 0
    capsys.readouterr()
    staged = open_prepared(out)  # statics go through the staging store too
    np.testing.assert_array_equal(staged["sftlf"].values, wb2[1]["land_sea_mask"].values)
    assert describe.main([str(out)]) == 0
    text = capsys.readouterr().out
    assert "prepared from wb2-zarr" in text and "5 x 8 (45 deg)" in text
    assert "2000-01:2000-03 (3 months), calendar proleptic_gregorian" in text
    assert "ta [K] on 7 levels" in text and "conforms to the contract" in text
    aimip_files(tmp_path / "sub")
    assert describe.main([str(tmp_path / "sub")]) == 0
    text = capsys.readouterr().out
    assert "TOYMODEL, experiment aimip" in text and "2 (r1i1p1f1, r2i1p1f1)" in text
    assert "calendar noleap" in text
    # a directory of several datasets is searched; a non-conforming one exits 1 with its problems
    bad = tmp_path / "many" / "bad"
    bad.mkdir(parents=True)
    ds = xr.open_dataset(next((tmp_path / "sub").glob("tas_*r1i1p1f1*197810-197812.nc"))).load()
    ds["tas"][0, 0, 0] = np.nan
    ds.to_netcdf(bad / "tas_Amon_BAD_aimip_r1i1p1f1_gn_197810-197812.nc")
    assert describe.main([str(tmp_path / "many")]) == 1
    assert "1 problem(s): variable 'tas' holds NaN" in capsys.readouterr().out
    assert describe.main([str(tmp_path / "nowhere")]) == 2
