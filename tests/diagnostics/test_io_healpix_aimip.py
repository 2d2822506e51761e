"""A HEALPix AI-MIP submission (cBottle-like: a ``cell`` dim with lat/lon) read from its directory:
regridded conservatively to the nearest named lat-lon grid, said in the reader notes."""

from __future__ import annotations

import cftime
import healpy as hp
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import global_mean
from diagnostics.io.aimip import healpix_target_grid, read_aimip

NSIDE = 8


def _write_cbottle(root, months=4):
    npix = 12 * NSIDE * NSIDE
    lon, lat = hp.pix2ang(NSIDE, hp.nest2ring(NSIDE, np.arange(npix)), lonlat=True)  # nested order
    base = 280.0 + 10.0 * np.cos(np.deg2rad(lat))
    times = [cftime.DatetimeGregorian(2000, m, 15) for m in range(1, months + 1)]
    bnds = [[cftime.DatetimeGregorian(2000, m, 1), cftime.DatetimeGregorian(2000 + m // 12, m % 12 + 1, 1)]
            for m in range(1, months + 1)]
    ds = xr.Dataset({"tas": (("time", "cell"), base[None] + np.arange(months)[:, None],
                             {"units": "K", "standard_name": "air_temperature"}),
                     "time_bnds": (("time", "bnds"), bnds)},
                    coords={"time": ("time", times, {"bounds": "time_bnds"}),
                            "lat": ("cell", lat, {"units": "degrees_north"}),
                            "lon": ("cell", (lon + 180.0) % 360.0 - 180.0, {"units": "degrees_east"})},
                    attrs={"source_id": "cBottle-1-3"})
    root.mkdir(parents=True, exist_ok=True)
    ds.to_netcdf(root / f"tas_Amon_cBottle-1-3_aimip_r1i1p1f1_gn_200001-2000{months:02d}.nc")
    return float((base[None] + np.arange(months)[:, None]).mean())


def test_healpix_submission_is_regridded_and_conserves_the_global_mean(tmp_path):
    expected = _write_cbottle(tmp_path / "cb")
    ds = read_aimip(sorted(str(p) for p in (tmp_path / "cb").glob("*.nc")))
    assert ds["tas"].sizes["lat"] == 33 and ds["tas"].sizes["lon"] == 64  # nside 8 (7.3 deg): the coarsest named grid
    assert "regridded conservatively from HEALPix" in ds.attrs["reader_notes"]
    # equal-area pixels: the pixel mean is the area-weighted global mean, conserved by the regridding
    assert float(global_mean(ds["tas"]).mean()) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("nside, degrees", [(64, 1.0), (32, 3.0), (8, 5.625)])
def test_target_grid_is_the_named_grid_not_finer_than_the_pixels(nside, degrees):
    ds = xr.Dataset(coords={"cell": np.arange(12 * nside * nside)})
    assert healpix_target_grid(ds).resolution == pytest.approx(degrees)
