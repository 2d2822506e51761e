"""Horizontal and vertical coordinates of source files -> contract coordinates.

ERA5 and AI-MIP files name and order their axes in several ways: ``latitude`` descending
90..-90 (CDS), longitude -180..180 (some AI-MIP groups), levels in hPa named ``level`` or
``pressure_level``. :func:`standard_coords` renames to ``lat``/``lon``/``plev``, flips
latitude to ascend, wraps longitude into [0, 360) ascending and converts levels to Pa,
all lazily (index operations only).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data.errors import InputError
from ..data.grid import Grid
from .units import normalise_units

_LAT_NAMES = ("lat", "latitude", "nav_lat", "y")
_LON_NAMES = ("lon", "longitude", "nav_lon", "x")
#: Names of a pressure-level axis: CMOR, ERA5 (old and new CDS), cfgrib, and iris-written files
#: such as the eofs example data (``pressure``).
LEVEL_NAMES = ("plev", "level", "pressure_level", "isobaricInhPa", "lev", "pressure")


def _rename_first(ds: xr.Dataset, candidates: tuple[str, ...], target: str) -> xr.Dataset:
    for name in candidates:
        if name in ds.dims or name in ds.coords:
            return ds if name == target else ds.rename({name: target})
    return ds


def level_values_pa(level: xr.DataArray) -> np.ndarray:
    """Pressure levels in Pa, from units (hPa or Pa) or, without units, magnitude (max < 2000 -> hPa)."""
    values = np.asarray(level.values, dtype=float)
    u = normalise_units(level.attrs.get("units"))
    if u in {"hpa", "mbar", "mb", "millibars", "millibar"}:
        return values * 100.0
    if u in {"pa", "pascal", "pascals"}:
        return values
    return values * 100.0 if values.size and np.nanmax(values) < 2000.0 else values


def standard_coords(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Rename to lat/lon/plev, latitude ascending, longitude in [0, 360) ascending, plev in Pa."""
    ds = _rename_first(ds, _LAT_NAMES, "lat")
    ds = _rename_first(ds, _LON_NAMES, "lon")
    ds = _rename_first(ds, LEVEL_NAMES, "plev")
    for c in ("lat", "lon"):
        if c not in ds.dims:
            raise InputError(f"no {c} axis found (dims {tuple(ds.dims)}); expected latitude/longitude", source)
        if ds[c].ndim != 1:
            raise InputError(f"{c} is not 1-D: only regular latitude-longitude grids are supported", source)
    lat = np.asarray(ds["lat"].values, dtype=float)
    if lat.size > 1 and np.all(np.diff(lat) < 0):
        ds = ds.isel(lat=slice(None, None, -1))
    lon = np.asarray(ds["lon"].values, dtype=float)
    wrapped = np.mod(lon, 360.0)
    wrapped[np.isclose(wrapped, 360.0)] = 0.0
    if not np.array_equal(wrapped, lon) or (lon.size > 1 and np.any(np.diff(lon) < 0)):
        ds = ds.assign_coords(lon=wrapped).isel(lon=np.argsort(wrapped, kind="stable"))
    lat = np.asarray(ds["lat"].values, dtype=float)
    lon = np.asarray(ds["lon"].values, dtype=float)
    if lat.size > 1 and not np.all(np.diff(lat) > 0):
        raise InputError("latitude is neither ascending nor descending", source)
    if lon.size > 1 and not np.all(np.diff(lon) > 0):
        raise InputError("longitude holds duplicated values after wrapping to 0..360", source)
    ds = ds.assign_coords(lat=xr.DataArray(lat, dims="lat"), lon=xr.DataArray(lon, dims="lon"))
    if "plev" in ds.dims:
        pa = level_values_pa(ds["plev"])
        ds = ds.assign_coords(plev=xr.DataArray(pa, dims="plev", attrs={"units": "Pa"}))
        if pa.size > 1 and np.any(np.diff(pa) > 0):
            ds = ds.isel(plev=np.argsort(-pa, kind="stable"))
    return ds


def check_same_grid(grids: dict[str, Grid]) -> Grid:
    """The common grid of several files, or an InputError naming the first file that differs."""
    items = list(grids.items())
    first_path, first = items[0]
    for path, g in items[1:]:
        if not g.same_as(first):
            raise InputError(f"grid {g.shape[0]}x{g.shape[1]} differs from {first.shape[0]}x{first.shape[1]} "
                             f"of {first_path}; all files must share one grid", path)
    return first
