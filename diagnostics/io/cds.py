"""ERA5 monthly means from the Copernicus Climate Data Store (netCDF) -> contract dataset.

Both layouts are read, and single-level and pressure-level files may be given together
(and split in time):

* older files: dims ``time``, ``level``; sometimes an ``expver`` dim (1 = ERA5,
  5 = ERA5T, the preliminary near-real-time data): combined preferring 1 where present;
* current files: ``valid_time``, ``pressure_level``, with ``number`` and ``expver`` as
  coordinates (already combined by the CDS).

and the same products in GRIB through cfgrib (``time`` dim with a ``valid_time`` coordinate,
also in netCDF written from cfgrib); an ERA5 ensemble's ``number`` dim becomes ``member``.

Latitude 90..-90 is flipped, longitude 0..359.75 kept. Conversions: monthly-mean ``tp``
is metres per day -> kg m-2 s-1 (x 1000 / 86400); ``avg_tprate``/``mtpr`` already are
rates; ``z`` on levels is geopotential -> ``zg500`` (/ g0); single-level ``z`` is the
surface geopotential -> ``orog``; ``d2m`` -> ``tdas``; optionally ``huss`` from ``d2m``
and ``sp`` by the official AI-MIP Tetens formula (:func:`.levels.huss_from_tdas`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data import catalogue
from ..data.errors import InputError
from ..data.grid import grid_of
from . import units as U
from .combine import Piece, concat_time, merge_on_common_months
from .coords import check_same_grid, standard_coords
from .files import is_grib, open_grib, open_netcdf
from .levels import contract_level, contract_levels, huss_from_tdas

_DROP = ("number", "expver", "step", "surface", "heightAboveGround", "time_bnds", "time_bounds",
         "meanSea", "depthBelowLandLayer", "entireAtmosphere")


def combine_expver(ds: xr.Dataset) -> xr.Dataset:
    """Collapse an ``expver`` dim: ERA5 (1) where present, else ERA5T (5), per cell and month."""
    if "expver" not in ds.dims:
        return ds
    codes = [int((v.decode() if isinstance(v, bytes) else str(v)).strip() or 0) for v in ds["expver"].values]
    order = np.argsort(codes)  # 1 (final ERA5) before 5 (ERA5T)
    out = ds.isel(expver=int(order[0]), drop=True)
    for k in order[1:]:
        out = out.fillna(ds.isel(expver=int(k), drop=True))
    return out


def _era5_variable(name: str, da: xr.DataArray) -> catalogue.Variable | None:
    if name == "z":  # geopotential on levels, or the surface geopotential (orography)
        return catalogue.VARIABLES["zg" if "plev" in da.dims else "orog"]
    if name == "tp":
        return catalogue.VARIABLES["pr"]
    return catalogue.from_era5_name(name)


def to_contract(name: str, da: xr.DataArray, source: str) -> tuple[str, xr.DataArray] | None:
    """One CDS variable (standard coords) -> (store name, contract field); None if not catalogued."""
    var = _era5_variable(name, da)
    if var is None:
        return None
    da = da.reset_coords(drop=True)
    if var.name == "zg":
        da = contract_level(da, 500, source, name)
    if var.name == "pr":
        # monthly-mean accumulations are per day; rates (avg_tprate, mtpr) pass through
        da = U.precipitation_to_rate(da, U.SECONDS_PER_DAY)
    else:
        da = U.era5_to_catalogue_units(var, da)
    if var.is_3d:
        if "plev" not in da.dims:
            raise InputError(f"variable {name!r} should be on pressure levels but has no level axis", source)
        da = contract_levels(da, var.levels, source, name)
    elif "plev" in da.dims:
        raise InputError(f"variable {name!r} has a level axis but is a single-level field", source)
    if var.kind == "static" and "time" in da.dims:
        da = da.isel(time=0, drop=True)  # invariants are repeated every month in CDS files
    return var.store_name, U.check_units(name, da, var.units, source)


def era5_time(ds: xr.Dataset, source: str) -> xr.Dataset:
    """The time axis of an ERA5 file as ``time``, indexed.

    * current CDS netCDF: ``valid_time`` is the dim;
    * cfgrib (GRIB, or netCDF written from ``xr.open_dataset(engine="cfgrib")``): ``time`` (the
      analysis/forecast start) is the dim and ``valid_time(time)`` a coordinate, equal for
      monthly means (step 0): ``valid_time`` becomes the indexed ``time``.
    """
    if "valid_time" in ds.dims:
        return ds.drop_vars("time", errors="ignore").rename({"valid_time": "time"})
    if "valid_time" in ds.coords:
        vt = ds["valid_time"]
        if vt.dims != ("time",):
            raise InputError(f"valid_time has dims {vt.dims}: a file of several forecast steps per date, "
                             "not monthly means (expected the CDS monthly-means product)", source)
        return ds.drop_vars("valid_time").assign_coords(time=vt.variable)
    return ds


def ensemble_members(ds: xr.Dataset) -> xr.Dataset:
    """ERA5 ensemble members (a ``number`` dim, 0 = control) -> the contract ``member`` dim,
    index number + 1 (1-based like ``r<N>``), label ``number=<n>``; a scalar ``number`` goes."""
    if "number" not in ds.dims:
        return ds
    numbers = np.asarray(ds["number"].values, dtype=int)
    ds = ds.rename({"number": "member"})
    return ds.assign_coords(member=("member", numbers + 1, {"long_name": "ensemble member (ERA5 number + 1)"}))


def _open(path: str) -> list[xr.Dataset]:
    parts = open_grib(path) if is_grib(path) else [open_netcdf(path)]
    out = []
    for ds in parts:
        ds = ensemble_members(combine_expver(era5_time(ds, path)))
        ds = ds.drop_vars([c for c in _DROP if c in ds.variables and c not in ds.dims], errors="ignore")
        out.append(standard_coords(ds, path))
    return out


def read_cds(paths: list[str], variables: list[str] | None = None, derive_huss: bool = False,
             guard: bool = True) -> xr.Dataset:
    """Read CDS ERA5 monthly-mean netCDF files (either layout; single + pressure levels together)."""
    wanted = None if variables is None else {catalogue.variable(v).store_name for v in variables}
    if wanted is not None and derive_huss:
        wanted |= {"tdas", "ps"}
    pieces: dict[str, list[Piece]] = {}
    grids = {}
    members: set[tuple[int, ...]] = set()
    for path in paths:
        for ds in _open(path):
            grids[path] = grid_of(ds)
            if "member" in ds.dims:
                members.add(tuple(ds["member"].values.tolist()))
            for name in ds.data_vars:
                var = _era5_variable(str(name), ds[name])
                if var is None or (wanted is not None and var.store_name not in wanted):
                    continue
                store, field = to_contract(str(name), ds[name], path)
                pieces.setdefault(store, []).append((path, field))
    source = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    if not pieces:
        raise InputError("no ERA5 variable of the catalogue found (expected CDS short names such as "
                         "t2m, sp, t, z)", source)
    check_same_grid(grids)
    if len(members) > 1:
        raise InputError(f"files hold different ensemble members (numbers {sorted(members)}); give the "
                         "same members in every file", source)
    fields = {name: concat_time(p, name, guard)[0] for name, p in pieces.items()}
    if derive_huss:
        missing = [n for n in ("tdas", "ps") if n not in fields]
        if missing:
            raise InputError("--derive-huss needs 2 m dewpoint (d2m) and surface pressure (sp); "
                             f"missing {missing}", source)
        fields["huss"] = huss_from_tdas(fields["tdas"], fields["ps"])
    ds = merge_on_common_months(fields, source)
    if "member" in ds.dims:
        labels = [f"number={int(m) - 1}" for m in ds["member"].values]
        ds = ds.assign_coords(member_label=("member", np.array(labels)))
    return ds
