"""The in-memory data contract: how a conforming dataset looks, and the validator.

A contract dataset is an ``xarray.Dataset`` whose
  * variables use catalogue store names (``tas``, ``ta``, ``zg500``, ``tos``, ...) with the
    catalogue's CF attributes and units;
  * dims are ordered as a subsequence of (member, time, plev, lat, lon);
  * ``lat`` ascends within [-90, 90], ``lon`` ascends within [0, 360);
  * ``plev`` is in Pa, surface first (100000 ... 5000), holding the catalogue levels;
  * ``time`` is monthly, consecutive, unique, with ``time_bnds`` (see :mod:`.timeaxis`).

:func:`problems` lists every violation; :func:`validate` raises one :class:`InputError`
naming the source and the first problems. :func:`conform` puts a dataset that is already
in contract units into canonical order with attributes.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import catalogue
from .errors import InputError
from .timeaxis import month_index

DIM_ORDER: tuple[str, ...] = ("member", "time", "plev", "lat", "lon")
PLEV_PA = np.array([h * 100.0 for h in catalogue.PLEV_HPA])

#: Variables that may hold NaN (SST over land is undefined).
NAN_ALLOWED = frozenset({"tos"})


def plev_coord(levels_hpa: tuple[int, ...] | list[int] = catalogue.PLEV_HPA) -> xr.DataArray:
    """The CF ``plev`` coordinate (Pa) for the given levels in hPa."""
    return xr.DataArray(np.array(levels_hpa, dtype=float) * 100.0, dims="plev",
                        attrs={"units": "Pa", "standard_name": "air_pressure",
                               "long_name": "pressure", "axis": "Z", "positive": "down"})


def conform(ds: xr.Dataset) -> xr.Dataset:
    """Canonical dim order, CF attributes from the catalogue, float32 data.

    Does no unit conversion and no regridding: readers do those first.
    """
    out = ds.copy()
    for name in list(out.data_vars):
        if name == "time_bnds":
            continue
        da = out[name]
        order = [d for d in DIM_ORDER if d in da.dims] + [d for d in da.dims if d not in DIM_ORDER]
        da = da.transpose(*order)
        if da.dtype != np.float32 and np.issubdtype(da.dtype, np.floating):
            da = da.astype(np.float32)
        try:
            attrs = catalogue.cf_attrs(name)
        except KeyError:
            attrs = {}
        # Units the data already declare are kept, so the validator can catch a mismatch:
        # conform never relabels, it only fills what is missing.
        units = da.attrs.get("units")
        da.attrs = {**da.attrs, **attrs}
        if units is not None:
            da.attrs["units"] = units
        out[name] = da
    if "plev" in out.coords:
        out = out.assign_coords(plev=plev_coord([int(round(p / 100.0)) for p in out["plev"].values]))
    lat_attrs = {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}
    lon_attrs = {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}
    if "lat" in out.coords:
        out["lat"].attrs.update(lat_attrs)
    if "lon" in out.coords:
        out["lon"].attrs.update(lon_attrs)
    out.attrs.setdefault("Conventions", "CF-1.8")
    return out


def _coord_problems(ds: xr.Dataset) -> list[str]:
    out: list[str] = []
    for c in ("lat", "lon"):
        if c not in ds.coords:
            out.append(f"missing coordinate {c!r} (found coordinates: {sorted(ds.coords)})")
    if "lat" in ds.coords:
        lat = np.asarray(ds["lat"].values, dtype=float)
        if lat.size > 1 and not np.all(np.diff(lat) > 0):
            out.append("latitude must ascend strictly from south to north (-90..90)")
        if lat.size and (lat.min() < -90 - 1e-6 or lat.max() > 90 + 1e-6):
            out.append(f"latitude outside [-90, 90]: {lat.min():.3f}..{lat.max():.3f}")
    if "lon" in ds.coords:
        lon = np.asarray(ds["lon"].values, dtype=float)
        if lon.size > 1 and not np.all(np.diff(lon) > 0):
            out.append("longitude must ascend strictly")
        if lon.size and (lon.min() < -1e-6 or lon.max() >= 360 - 1e-9):
            out.append(f"longitude outside [0, 360): {lon.min():.3f}..{lon.max():.3f}")
    if "plev" in ds.coords:
        plev = np.asarray(ds["plev"].values, dtype=float)
        units = ds["plev"].attrs.get("units", "Pa")
        if units != "Pa":
            out.append(f"plev must be in Pa, found units {units!r}")
        unknown = sorted(set(np.round(plev).astype(int)) - set(PLEV_PA.astype(int)))
        if unknown:
            out.append(f"plev holds levels outside the catalogue: {unknown} Pa "
                       f"(expected a subset of {PLEV_PA.astype(int).tolist()})")
        if plev.size > 1 and not np.all(np.diff(plev) < 0):
            out.append("plev must be ordered surface first (descending pressure)")
    return out


def _time_problems(ds: xr.Dataset) -> list[str]:
    if "time" not in ds.dims:
        return []
    out: list[str] = []
    idx = month_index(ds["time"])
    if idx.size > 1:
        d = np.diff(idx)
        if np.any(d == 0):
            dup = idx[1:][d == 0][0]
            out.append(f"duplicated month {dup // 12:04d}-{dup % 12 + 1:02d} in the time axis")
        if np.any(d < 0):
            out.append("time axis is not monotonic increasing")
        if np.any(d > 1):
            gap = idx[:-1][d > 1][0] + 1
            out.append(f"time axis has a gap: month {gap // 12:04d}-{gap % 12 + 1:02d} is missing")
    if "time_bnds" not in ds.variables:
        out.append("missing time bounds variable 'time_bnds'")
    return out


def _variable_problems(ds: xr.Dataset, check_values: bool) -> list[str]:
    out: list[str] = []
    for name, da in ds.data_vars.items():
        if name == "time_bnds":
            continue
        try:
            var = catalogue.variable(name)
        except KeyError:
            out.append(f"variable {name!r} is not in the catalogue")
            continue
        units = da.attrs.get("units")
        if units != var.units:
            out.append(f"variable {name!r} has units {units!r}, expected {var.units!r}")
        dims = list(da.dims)
        if [d for d in DIM_ORDER if d in dims] != dims:
            out.append(f"variable {name!r} has dims {tuple(dims)}, expected the order {DIM_ORDER}")
        if var.is_3d and "plev" not in dims:
            out.append(f"variable {name!r} is a pressure-level field but has no 'plev' dim")
        if not var.is_3d and "plev" in dims:
            out.append(f"variable {name!r} is a single-level field but has a 'plev' dim")
        if var.kind != "static" and "time" not in dims:
            out.append(f"variable {name!r} has no 'time' dim")
        if check_values:
            out.extend(_value_problems(name, da, var))
    return out


def _value_problems(name: str, da: xr.DataArray, var: catalogue.Variable) -> list[str]:
    """NaN and plausible-range checks, on the first time step only to stay cheap at scale."""
    sample = da.isel(time=0) if "time" in da.dims else da
    sample = sample.isel(member=0) if "member" in sample.dims else sample
    values = np.asarray(sample.values, dtype=float)
    out: list[str] = []
    finite = values[np.isfinite(values)]
    if name not in NAN_ALLOWED and finite.size != values.size:
        out.append(f"variable {name!r} holds NaN or inf where none may be "
                   f"({values.size - finite.size} of {values.size} cells in the first month)")
    if finite.size:
        lo, hi = var.valid_range
        mean = float(finite.mean())
        if not lo <= mean <= hi:
            out.append(f"variable {name!r} has mean {mean:.4g} {var.units}, outside the plausible "
                       f"range {lo:g}..{hi:g}: wrong units?")
        if var.nonnegative and finite.min() < -1e-6 * max(1.0, abs(hi)):
            out.append(f"variable {name!r} is negative somewhere (min {finite.min():.4g}), "
                       "expected values >= 0")
    return out


def problems(ds: xr.Dataset, check_values: bool = True) -> list[str]:
    """Every way ``ds`` breaks the contract, as readable sentences (empty when it conforms)."""
    return _coord_problems(ds) + _time_problems(ds) + _variable_problems(ds, check_values)


def validate(ds: xr.Dataset, source: str = "<dataset>", check_values: bool = True) -> xr.Dataset:
    """Raise :class:`InputError` naming ``source`` and what is wrong; return ``ds`` if it conforms."""
    found = problems(ds, check_values)
    if found:
        more = f" (and {len(found) - 2} more problems)" if len(found) > 2 else ""
        raise InputError("; ".join(found[:2]) + more, source)
    return ds


def require(ds: xr.Dataset, names: list[str] | tuple[str, ...], source: str = "<dataset>") -> None:
    """Raise :class:`InputError` if any of the store names is missing from ``ds``."""
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise InputError(f"missing variables {missing}; found {sorted(map(str, ds.data_vars))}", source)
