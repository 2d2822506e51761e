"""A tiny contract dataset with planted structure, for tests and benchmarks.

Equiangular grid with poles (default 17 x 32), monthly from ``start`` to ``end``. Every state
field is ``climatology(lat, lon) + seasonal cycle + response to an AR(1) "ENSO" SST anomaly
+ an AR(1) internal mode``, so a model that learns the month-to-month dynamics beats
persistence and climatology. Values lie in the catalogue's plausible ranges.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from diagnostics.data import catalogue
from diagnostics.data.contract import conform, plev_coord
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.io.writer import write_prepared

_BASE = {"ps": (98000.0, 1500.0), "ts": (288.0, 12.0), "tas": (287.0, 12.0), "tdas": (280.0, 10.0),
         "uas": (0.0, 5.0), "vas": (0.0, 3.0), "psl": (101300.0, 1200.0), "zg500": (5600.0, 120.0)}


def make_toy_dataset(start: str = "2000-01", end: str = "2003-12", resolution: float = 11.25,
                     seed: int = 0) -> xr.Dataset:
    """The toy dataset in memory (all catalogue variables, 7 levels for 3-D fields)."""
    rng = np.random.default_rng(seed)
    grid = equiangular(resolution)
    axis = monthly_axis(Month.parse(start), Month.parse(end))
    nt, (ny, nx) = axis.sizes["time"], grid.shape
    lat, lon = np.deg2rad(grid.lat)[:, None], np.deg2rad(grid.lon)[None, :]
    month = np.array([t.month for t in axis["time"].values])
    season = np.cos(2 * np.pi * (month - 1) / 12.0)[:, None, None] * np.sin(lat)[None]
    enso = np.zeros(nt)
    mode = np.zeros(nt)
    for t in range(1, nt):
        enso[t] = 0.9 * enso[t - 1] + 0.45 * rng.standard_normal()
        mode[t] = 0.6 * mode[t - 1] + 0.8 * rng.standard_normal()
    pattern_e = np.exp(-(lat / 0.4) ** 2) * np.cos(lon - np.pi)
    pattern_m = np.sin(2 * lat) * np.cos(2 * lon)
    land = (np.cos(lon) * np.cos(lat) > 0.6) | (lat > 1.3)
    land = np.broadcast_to(land, (ny, nx))

    def field(mean: float, amp: float) -> np.ndarray:
        clim = mean + amp * (np.cos(lat) - 0.6) + 0.1 * amp * np.sin(lon)
        anom = amp * (0.3 * season + 0.15 * enso[:, None, None] * pattern_e[None]
                      + 0.1 * mode[:, None, None] * pattern_m[None])
        noise = 0.02 * amp * rng.standard_normal((nt, ny, nx))
        return (clim[None] + anom + noise).astype(np.float32)

    dims = ("time", "lat", "lon")
    data = {name: (dims, field(*_BASE[name])) for name in _BASE}
    data["huss"] = (dims, np.clip(field(0.008, 0.004), 1e-5, None))
    data["pr"] = (dims, np.clip(field(3e-5, 2e-5), 0.0, None))
    levels = catalogue.PLEV_HPA
    for name, per_level in (("ta", lambda p: (200.0 + 88.0 * (p / 1000.0) ** 0.3, 8.0)),
                            ("hus", lambda p: (0.008 * (p / 1000.0) ** 3 + 1e-5, 0.002 * (p / 1000.0) ** 3)),
                            ("ua", lambda p: (5.0 + 10.0 * (1 - p / 1000.0), 6.0)),
                            ("va", lambda p: (0.0, 2.0))):
        stack = np.stack([field(*per_level(p)) for p in levels], axis=1)
        if name == "hus":
            stack = np.clip(stack, 1e-7, None)
        data[name] = (("time", "plev", "lat", "lon"), stack)
    tos = field(291.0, 8.0)
    tos[:, land] = np.nan
    data["tos"] = (dims, tos)
    data["siconc"] = (dims, np.clip(0.5 - 2.0 * np.cos(lat) + 0.2 * season, 0.0, 1.0).astype(np.float32)
                      * np.ones((nt, ny, nx), np.float32))
    data["sftlf"] = (("lat", "lon"), land.astype(np.float32))
    data["orog"] = (("lat", "lon"), (1500.0 * land * np.abs(np.sin(3 * lon)) * np.ones((ny, nx))).astype(np.float32))
    data["sdor"] = (("lat", "lon"), (100.0 * land * np.ones((ny, nx))).astype(np.float32))
    data["slor"] = (("lat", "lon"), (0.01 * land * np.ones((ny, nx))).astype(np.float32))
    ds = xr.Dataset(data, coords={**grid.coords(), "plev": plev_coord(levels), "time": axis["time"]})
    ds["time_bnds"] = axis["time_bnds"]
    return conform(ds)


def write_toy_dataset(out_dir: str | Path, **kw) -> Path:
    """Write :func:`make_toy_dataset` as a prepared dataset directory."""
    ds = make_toy_dataset(**kw)
    return write_prepared(ds, out_dir, {"fingerprint": f"toy-{sorted(kw.items())}", "source": "emulator.toy_data"})
