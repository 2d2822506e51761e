"""The writer: atomic writes, round trips (netCDF, zarr, AI-MIP files, prepared dirs), refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.contract import conform, plev_coord, problems
from diagnostics.data.errors import InputError
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.io import writer
from diagnostics.io.open import open_dataset

GRID = equiangular(45.0)
CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)


def sample(members: int | None = None, months: int = 3) -> xr.Dataset:
    rng = np.random.default_rng(1)
    axis = monthly_axis(Month(1978, 10), Month(1978, 10) + (months - 1), "noleap")
    lead = () if members is None else (members,)
    ldims = () if members is None else ("member",)
    ds = xr.Dataset(coords={**GRID.coords(), "time": axis["time"], "plev": plev_coord()})
    if members:
        ds = ds.assign_coords(member=np.arange(1, members + 1))
    ds["time_bnds"] = axis["time_bnds"]
    ds["tas"] = (ldims + ("time", "lat", "lon"), 280 + rng.standard_normal(lead + (months,) + GRID.shape),
                 {"units": "K"})
    ds["ta"] = (ldims + ("time", "plev", "lat", "lon"),
                250 + rng.standard_normal(lead + (months, 7) + GRID.shape), {"units": "K"})
    ds["zg500"] = (ldims + ("time", "lat", "lon"), 5500 + rng.standard_normal(lead + (months,) + GRID.shape),
                   {"units": "m"})
    return conform(ds)


def test_atomic_path_success_and_failure(tmp_path):
    final = tmp_path / "a" / "out.txt"
    with writer.atomic_path(final) as tmp:
        tmp.write_text("x")
        assert not final.exists()  # nothing under the final name while writing
    assert final.read_text() == "x"
    with pytest.raises(RuntimeError):
        with writer.atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no final, no temporary left
    # replacing a directory swaps it whole
    d = tmp_path / "store"
    d.mkdir()
    (d / "old").write_text("old")
    with writer.atomic_path(d) as tmp:
        tmp.mkdir()
        (tmp / "new").write_text("new")
    assert sorted(p.name for p in d.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "store"]


def test_failed_netcdf_write_leaves_nothing(tmp_path):
    ds = sample()
    ds["bad"] = xr.DataArray(np.array([object()] * 3), dims="time")  # cannot be encoded
    with pytest.raises(Exception):
        writer.write_netcdf(ds, tmp_path / "x.nc")
    assert list(tmp_path.iterdir()) == []


def test_netcdf_and_zarr_round_trips(tmp_path):
    ds = sample()
    writer.write_netcdf(ds, tmp_path / "d.nc")
    back = xr.open_dataset(tmp_path / "d.nc", decode_times=CFTIME)
    np.testing.assert_array_equal(back["ta"].values, ds["ta"].values)
    assert back["ta"].dtype == np.float32 and back["time"].values[0].calendar == "noleap"
    assert problems(back) == []
    writer.write_zarr(ds, tmp_path / "d.zarr", chunk_time=2)
    z = xr.open_zarr(tmp_path / "d.zarr", decode_times=CFTIME)
    assert z["tas"].encoding["chunks"][0] == 2
    np.testing.assert_array_equal(z["tas"].values, ds["tas"].values)
    assert [t.month for t in z["time"].values] == [10, 11, 12]


def test_write_json(tmp_path):
    writer.write_json({"a": 1}, tmp_path / "m.json")
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 1}


def test_aimip_filename():
    assert writer.aimip_filename("tas", "MD-1p5", "aimip", "r1i1p1f1", "197810", "202412") == \
        "tas_Amon_MD-1p5_aimip_r1i1p1f1_gn_197810-202412.nc"
    with pytest.raises(ValueError, match="model"):
        writer.aimip_filename("tas", "MD_1p5", "aimip", "r1i1p1f1", "197810", "202412")


def test_write_aimip_round_trips_through_the_reader(tmp_path):
    ds = sample(members=2)
    paths = writer.write_aimip(ds, tmp_path, "TOY", "aimip-p2k")
    names = sorted(p.name for p in paths)
    assert names == sorted(f"{v}_Amon_TOY_aimip-p2k_r{m}i1p1f1_gn_197810-197812.nc"
                           for v in ("tas", "ta", "zg") for m in (1, 2))
    zg = xr.open_dataset(tmp_path / "zg_Amon_TOY_aimip-p2k_r2i1p1f1_gn_197810-197812.nc", decode_times=CFTIME)
    assert zg["zg"].dims == ("time", "plev", "lat", "lon") and zg["plev"].values.tolist() == [50000.0]
    assert zg.attrs["source_id"] == "TOY" and zg.attrs["variant_label"] == "r2i1p1f1"
    back = open_dataset(str(tmp_path))
    assert back.attrs["experiment_id"] == "aimip-p2k" and back["member"].values.tolist() == [1, 2]
    for name in ("tas", "ta", "zg500"):
        np.testing.assert_array_equal(back[name].values, ds[name].values)


def test_write_prepared_and_fingerprint_refusal(tmp_path):
    ds = sample()
    out = tmp_path / "prep"
    writer.write_prepared(ds, out, {"fingerprint": "one"})
    assert writer.read_manifest(out) == {"fingerprint": "one"}
    writer.write_prepared(ds, out, {"fingerprint": "one"})  # the same dataset: rewritten in place
    with pytest.raises(InputError, match="already holds a different dataset"):
        writer.write_prepared(ds.isel(time=[0]), out, {"fingerprint": "two"})
    assert writer.read_manifest(out)["fingerprint"] == "one"
    assert xr.open_zarr(out / "dataset.zarr").sizes["time"] == 3
    assert writer.read_manifest(tmp_path) is None
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "manifest.json").write_text("{not json")
    with pytest.raises(InputError, match="manifest is not valid JSON"):
        writer.read_manifest(tmp_path / "broken")
