"""Tiny example inputs in every layout md-prepare reads (WB2 zarr, CDS netCDF, AI-MIP files).

Values are plausible (so the validator's range checks pass) and random with a fixed seed;
tests recompute the expected results from the arrays returned here with numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

G0 = 9.80665
WB2_LEVELS = [50, 100, 150, 200, 250, 300, 400, 500, 600, 700, 850, 925, 1000]
PLEV_HPA = [1000, 850, 700, 500, 250, 100, 50]


def wb2_store(path: Path, months: int = 3, nlat: int = 5, nlon: int = 8, step_h: int = 6,
              start: str = "2000-01-01", seed: int = 0) -> xr.Dataset:
    """A WB2-like ERA5 zarr: sub-daily, latitude ascending -90..90, long names, ERA5 units."""
    rng = np.random.default_rng(seed)
    end = pd.Timestamp(start) + pd.DateOffset(months=months)
    time = pd.date_range(start, end, freq=f"{step_h}h", inclusive="left")
    lat = np.linspace(-90, 90, nlat)
    lon = np.arange(nlon) * 360.0 / nlon
    nt, nl = time.size, len(WB2_LEVELS)
    land = np.zeros((nlat, nlon), bool)
    land[1, :3] = True
    land[-1, :] = True  # the northern row is all "land"
    sst = 285 + 5 * rng.standard_normal((nt, nlat, nlon))
    sst[:, land] = np.nan
    ice = rng.uniform(0, 1, (nt, nlat, nlon))
    ice[:, land] = np.nan
    ds = xr.Dataset(
        {
            "2m_temperature": (("time", "latitude", "longitude"), 280 + 10 * rng.standard_normal((nt, nlat, nlon)),
                               {"units": "K"}),
            "2m_dewpoint_temperature": (("time", "latitude", "longitude"),
                                        270 + 5 * rng.standard_normal((nt, nlat, nlon)), {"units": "K"}),
            "surface_pressure": (("time", "latitude", "longitude"),
                                 1.0e5 + 500 * rng.standard_normal((nt, nlat, nlon)), {"units": "Pa"}),
            "total_precipitation_6hr": (("time", "latitude", "longitude"),
                                        rng.gamma(0.5, 0.002, (nt, nlat, nlon)), {"units": "m"}),
            "geopotential": (("time", "level", "latitude", "longitude"),
                             G0 * (5500 + 100 * rng.standard_normal((nt, nl, nlat, nlon))), {"units": "m**2 s**-2"}),
            "temperature": (("time", "level", "latitude", "longitude"),
                            250 + 10 * rng.standard_normal((nt, nl, nlat, nlon)), {"units": "K"}),
            "sea_surface_temperature": (("time", "latitude", "longitude"), sst, {"units": "K"}),
            "sea_ice_cover": (("time", "latitude", "longitude"), ice, {"units": "(0 - 1)"}),
            "land_sea_mask": (("latitude", "longitude"), land.astype(float), {"units": "(0 - 1)"}),
            "geopotential_at_surface": (("latitude", "longitude"), G0 * 300 * land, {"units": "m**2 s**-2"}),
        },
        coords={"time": time, "level": ("level", WB2_LEVELS, {"units": "millibar"}),
                "latitude": lat, "longitude": lon},
    )
    ds.chunk({"time": 40}).to_zarr(path, mode="w", zarr_format=2, consolidated=True)
    return ds


def _cds_grid(nlat: int, nlon: int) -> tuple[np.ndarray, np.ndarray]:
    return np.linspace(90, -90, nlat), np.arange(nlon) * 360.0 / nlon  # latitude descending


def cds_old(directory: Path, months: int = 4, nlat: int = 5, nlon: int = 8, seed: int = 1) -> dict:
    """Old-layout CDS monthly means: ``time``, ``level``, an ``expver`` dim (1 then 5 for the
    last month), single-level and pressure-level files. Returns the raw arrays."""
    rng = np.random.default_rng(seed)
    lat, lon = _cds_grid(nlat, nlon)
    time = pd.date_range("2020-01-01", periods=months, freq="MS")
    shape = (months, nlat, nlon)
    t2m = 280 + 10 * rng.standard_normal(shape)
    tp = rng.gamma(0.5, 0.004, shape)  # metres per day
    d2m = 270 + 3 * rng.standard_normal(shape)
    sp = 1.0e5 + 300 * rng.standard_normal(shape)
    sst = 290 + 3 * rng.standard_normal(shape)
    sst[:, 0, :] = np.nan  # the north-pole row (first in file order) is land

    def with_expver(a: np.ndarray, offset: float = 1.0) -> np.ndarray:
        both = np.stack([a, a + offset])  # expver 5 differs (by a plausible amount) so a wrong choice shows
        both[0, -1] = np.nan  # the last month exists only as ERA5T
        both[1, :-1] = np.nan
        return both.transpose(1, 0, 2, 3)

    dims = ("time", "expver", "latitude", "longitude")
    single = xr.Dataset(
        {"t2m": (dims, with_expver(t2m), {"units": "K"}), "tp": (dims, with_expver(tp, 1e-3), {"units": "m"}),
         "d2m": (dims, with_expver(d2m), {"units": "K"}), "sp": (dims, with_expver(sp), {"units": "Pa"}),
         "sst": (dims, with_expver(sst), {"units": "K"})},
        coords={"time": time, "expver": np.array([1, 5], dtype=np.int32), "latitude": lat, "longitude": lon})
    levels = np.array([1000, 850, 700, 500, 250, 100, 50], dtype=np.int32)
    z = G0 * (5500 + 50 * rng.standard_normal((months, levels.size, nlat, nlon)))
    t = 250 + 10 * rng.standard_normal((months, levels.size, nlat, nlon))
    pl = xr.Dataset(
        {"z": (("time", "level", "latitude", "longitude"), z, {"units": "m**2 s**-2"}),
         "t": (("time", "level", "latitude", "longitude"), t, {"units": "K"})},
        coords={"time": time, "level": ("level", levels, {"units": "millibars"}), "latitude": lat,
                "longitude": lon})
    directory.mkdir(parents=True, exist_ok=True)
    single.to_netcdf(directory / "era5_single_levels.nc")
    pl.to_netcdf(directory / "era5_pressure_levels.nc")
    return {"t2m": t2m, "tp": tp, "d2m": d2m, "sp": sp, "sst": sst, "z": z, "t": t, "lat": lat, "lon": lon,
            "levels": levels, "time": time}


def cds_new(directory: Path, months: int = 3, nlat: int = 5, nlon: int = 8, seed: int = 2) -> dict:
    """Current-layout CDS monthly means: ``valid_time``, ``pressure_level``, ``number`` and
    ``expver`` coordinates, ``avg_tprate`` already a rate."""
    rng = np.random.default_rng(seed)
    lat, lon = _cds_grid(nlat, nlon)
    vt = pd.date_range("2021-06-01", periods=months, freq="MS")
    shape = (months, nlat, nlon)
    t2m = 285 + 5 * rng.standard_normal(shape)
    rate = rng.gamma(0.5, 4e-5, shape)
    levels = np.array([1000.0, 925.0, 850.0, 700.0, 500.0, 250.0, 100.0, 50.0])
    q = rng.uniform(1e-4, 1e-2, (months, levels.size, nlat, nlon))
    coords = {"valid_time": vt, "latitude": lat, "longitude": lon, "number": 0,
              "expver": ("valid_time", np.array(["0001"] * (months - 1) + ["0005"]))}
    single = xr.Dataset({"t2m": (("valid_time", "latitude", "longitude"), t2m, {"units": "K"}),
                         "avg_tprate": (("valid_time", "latitude", "longitude"), rate,
                                        {"units": "kg m**-2 s**-1"})}, coords=coords)
    pl = xr.Dataset({"q": (("valid_time", "pressure_level", "latitude", "longitude"), q, {"units": "kg kg**-1"})},
                    coords={**coords, "pressure_level": ("pressure_level", levels, {"units": "hPa"})})
    directory.mkdir(parents=True, exist_ok=True)
    single.to_netcdf(directory / "data_stream-moda_stepType-avgad.nc")
    pl.to_netcdf(directory / "data_stream-moda_pressure.nc")
    return {"t2m": t2m, "rate": rate, "q": q, "levels": levels, "lat": lat, "lon": lon}


def aimip_files(directory: Path, model: str = "TOYMODEL", experiment: str = "aimip", members: int = 2,
                nlat: int = 6, nlon: int = 8, seed: int = 3) -> dict:
    """AI-MIP submissions with the known quirks: lat descending, lon -180..180, zg given as
    geopotential on 7 levels in hPa, tos in degC (no ts), siconc in %, tas in two time chunks
    (197810-197812 and 197901-197903), a noleap calendar."""
    import cftime

    rng = np.random.default_rng(seed)
    lat = np.linspace(87.5, -87.5, nlat)
    lon = np.arange(nlon) * 360.0 / nlon - 180.0
    months = [(1978, 10), (1978, 11), (1978, 12), (1979, 1), (1979, 2), (1979, 3)]
    time = np.array([cftime.datetime(y, m, 15, calendar="noleap") for y, m in months])
    nt = time.size
    directory.mkdir(parents=True, exist_ok=True)
    truth: dict = {"lat": lat, "lon": lon, "tas": [], "zg": [], "tos": [], "siconc": []}
    enc = {"time": {"units": "days since 1850-01-01", "calendar": "noleap"}}
    for r in range(1, members + 1):
        label = f"r{r}i1p1f1"
        tas = 280 + 10 * rng.standard_normal((nt, nlat, nlon))
        zg = G0 * (5500 + 100 * rng.standard_normal((nt, 7, nlat, nlon)))
        tos = 15 + 5 * rng.standard_normal((nt, nlat, nlon))
        tos[:, 2, 1:4] = np.nan
        sic = rng.uniform(0, 100, (nt, nlat, nlon))
        for k, v in (("tas", tas), ("zg", zg), ("tos", tos), ("siconc", sic)):
            truth[k].append(v)

        def write(var: str, data: np.ndarray, units: str, sl: slice, span: str, plev: bool = False) -> None:
            dims = ("time", "plev", "lat", "lon") if plev else ("time", "lat", "lon")
            coords = {"time": time[sl], "lat": lat, "lon": lon}
            if plev:
                coords["plev"] = ("plev", np.array(PLEV_HPA, float), {"units": "hPa"})
            ds = xr.Dataset({var: (dims, data[sl].astype(np.float32), {"units": units})}, coords=coords)
            ds.to_netcdf(directory / f"{var}_Amon_{model}_{experiment}_{label}_gn_{span}.nc", encoding=enc)

        write("tas", tas, "K", slice(0, 3), "197810-197812")
        write("tas", tas, "K", slice(3, 6), "197901-197903")
        write("zg", zg, "m", slice(None), "197810-197903", plev=True)  # labelled m, holds geopotential
        write("tos", tos, "degC", slice(None), "197810-197903")
        write("siconc", sic, "%", slice(None), "197810-197903")
    truth = {k: np.stack(v) if isinstance(v, list) else v for k, v in truth.items()}
    truth["time"] = time
    return truth


def era5_grib(path: Path, months: int = 3, members: list[int] | None = None, nlat: int = 5, nlon: int = 8,
              seed: int = 4) -> dict:
    """ERA5-like monthly means in GRIB 1 written with ecCodes (``2t`` and ``sp`` on a regular
    grid 90..-90, one message per field and month, ``number`` when ``members`` are given, as
    the CDS ensemble products). Returns the arrays in file order, (member, time, lat, lon)."""
    import eccodes

    rng = np.random.default_rng(seed)
    numbers = members or [None]
    truth = {"t2m": 280 + 10 * rng.standard_normal((len(numbers), months, nlat, nlon)),
             "sp": 1.0e5 + 500 * rng.standard_normal((len(numbers), months, nlat, nlon))}
    grid = {"Ni": nlon, "Nj": nlat, "latitudeOfFirstGridPointInDegrees": 90.0,
            "latitudeOfLastGridPointInDegrees": -90.0, "longitudeOfFirstGridPointInDegrees": 0.0,
            "longitudeOfLastGridPointInDegrees": 360.0 - 360.0 / nlon,
            "iDirectionIncrementInDegrees": 360.0 / nlon, "jDirectionIncrementInDegrees": 180.0 / (nlat - 1)}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        for name, param in (("t2m", 167), ("sp", 134)):
            for m in range(months):
                for k, number in enumerate(numbers):
                    h = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
                    try:
                        for key, value in grid.items():
                            eccodes.codes_set(h, key, value)
                        if number is not None:  # MARS labelling: ensemble member number
                            eccodes.codes_set(h, "setLocalDefinition", 1)
                            eccodes.codes_set(h, "localDefinitionNumber", 1)
                            eccodes.codes_set(h, "number", number)
                        eccodes.codes_set(h, "paramId", param)
                        eccodes.codes_set(h, "dataDate", 20000101 + 100 * m)
                        eccodes.codes_set(h, "dataTime", 0)
                        eccodes.codes_set_values(h, truth[name][k, m].ravel())
                        eccodes.codes_write(h, f)
                    finally:
                        eccodes.codes_release(h)
    return truth
