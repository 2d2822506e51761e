"""CMIP-named fields (AI-MIP submissions, contract netCDF/zarr) -> contract fields.

Conversions are decided by each file's ``units`` attribute (degC -> K, hPa -> Pa,
% -> fraction), except the documented AI-MIP quirk of geopotential submitted as ``zg``,
which is recognised by magnitude against the standard atmosphere (:func:`.levels.zg_as_height`).
``zg`` on several levels is reduced to 500 hPa (``zg500``); 3-D fields are put on the catalogue
levels they cover by :func:`.levels.contract_levels` (source levels matched within a tolerance,
a level the source lacks inside its range interpolated linearly in log p, never extrapolated).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data import catalogue
from ..data.contract import field_names
from ..data.errors import InputError
from ..data.grid import grid_of
from . import units as U
from .combine import Piece, concat_time, merge_on_common_months
from .coords import check_same_grid, standard_coords
from .files import open_netcdf, open_zarr
from .levels import contract_level, contract_levels, zg_as_height

_TEMPERATURES = {"ts", "tas", "tdas", "ta", "tos"}
_PRESSURES = {"ps", "psl"}
_FRACTIONS = {"siconc", "sftlf"}


def first_sample(da: xr.DataArray) -> np.ndarray:
    """The first time step of the first member (a small read) for magnitude checks."""
    for dim in ("time", "member"):
        if dim in da.dims:
            da = da.isel({dim: 0})
    return np.asarray(da.values)


def catalogue_entry(name: str) -> catalogue.Variable | None:
    try:
        return catalogue.variable(name)
    except KeyError:
        return None


def to_contract(name: str, da: xr.DataArray, source: str) -> tuple[str, xr.DataArray] | None:
    """Convert one CMIP-named field (coords already standard) to (store name, contract field).

    Returns None for variables outside the catalogue (ignored, e.g. ``time_bnds``).
    """
    var = catalogue_entry(name)
    if var is None:
        return None
    da = da.reset_coords(drop=True)
    if var.name in _TEMPERATURES:
        da = U.temperature_to_kelvin(da)
    elif var.name in _PRESSURES:
        da = U.pressure_to_pa(da)
    elif var.name in _FRACTIONS:
        da = U.fraction_from_percent(da)
    elif var.name == "pr":
        da = U.precipitation_to_rate(da, None)
    elif var.name == "zg":
        # magnitude against the standard atmosphere decides, whatever the units label says
        da = zg_as_height(contract_level(da, var.levels[0], source, name), level_hpa=var.levels[0], source=source)
        if "note" in da.attrs:
            da.attrs["comment"] = f"converted from geopotential: {da.attrs.pop('note')}"
    elif var.name == "orog":
        if U.is_geopotential(da, first_sample(da)):
            labelled = da.attrs.get("units")
            da = U.geopotential_to_height(da)
            da.attrs["comment"] = (f"converted from geopotential (units {labelled!r}, magnitude of "
                                   "geopotential) by dividing by g0 = 9.80665 m s-2")
    if var.is_3d:
        if "plev" not in da.dims:
            raise InputError(f"variable {name!r} is a pressure-level field but has no plev axis", source)
        da = contract_levels(da, var.levels, source, name)
    if var.kind == "static" and "time" in da.dims:
        da = da.isel(time=0, drop=True)
    return var.store_name, U.check_units(name, da, var.units, source)


def wanted_file_variables(variables: list[str] | None, tos_for_ts: bool = False) -> set[str] | None:
    """CMIP names to read for requested store names (plus ``tos`` when ``ts`` is asked and
    ``tos_for_ts``: the AI-MIP quirk)."""
    if variables is None:
        return None
    names = {catalogue.variable(v).name for v in variables}
    if tos_for_ts and "ts" in names:
        names.add("tos")
    return names


def ts_from_tos(fields: dict[str, xr.DataArray], variables: list[str] | None) -> bool:
    """AI-MIP quirk: a model gave ``tos`` but no ``ts``; use it as ``ts`` when that is valid.

    With no explicit request the copy is made only if ``tos`` has no NaN in the first month
    (a surface temperature defined everywhere); when ``ts`` is requested it is always made
    and the validator reports any NaN. Returns True when the copy was made.
    """
    if "ts" in fields or "tos" not in fields:
        return False
    asked = variables is not None and "ts" in variables
    if not asked and (variables is not None or not np.isfinite(first_sample(fields["tos"])).all()):
        return False
    fields["ts"] = fields["tos"].copy()
    return True


def read_contract_files(paths: list[str], variables: list[str] | None, zarr: bool,
                        guard: bool = True) -> xr.Dataset:
    """Contract netCDF files or zarr stores (CMIP names, lat/lon, any time chunking)."""
    wanted = wanted_file_variables(variables)
    pieces: dict[str, list[Piece]] = {}
    grids = {}
    found: set[str] = set()
    for path in paths:
        ds = open_zarr(path, use_cftime=True) if zarr else open_netcdf(path)
        ds = standard_coords(ds, path)
        found |= set(field_names(ds))
        grids[path] = grid_of(ds)
        for name in ds.data_vars:
            if wanted is not None and catalogue_entry(str(name)) is not None \
                    and catalogue.variable(str(name)).name not in wanted:
                continue
            converted = to_contract(str(name), ds[name], path)
            if converted is not None:
                pieces.setdefault(converted[0], []).append((path, converted[1]))
    check_same_grid(grids)
    source = paths[0] if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
    if not pieces:
        asked = "" if variables is None else f" of {sorted(variables)}"
        raise InputError(f"no catalogue variable{asked} found in the files (found {sorted(found)})", source)
    fields = {name: concat_time(p, name, guard)[0] for name, p in pieces.items()}
    return merge_on_common_months(fields, source)
