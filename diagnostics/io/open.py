"""The public reader API: any supported layout -> a lazy, validated contract dataset.

    detect_layout(paths) -> "prepared" | "wb2-zarr" | "cds-netcdf" | "cds-grib" | "aimip" |
                            "contract-netcdf" | "contract-zarr"
    open_dataset(paths, variables=None, grid=None, period=None) -> xr.Dataset
    open_prepared(directory) -> xr.Dataset

Pipeline of :func:`open_dataset`: expand paths -> detect the layout -> layout reader
(lazy, contract names/units/coordinates, monthly axis) -> period -> variables -> regrid ->
sea-ice over land set to 0 -> :func:`conform` -> value checks (the first month at once, every
month lazily as it is computed, both on the native grid) -> regrid -> :func:`validate`.
"""

from __future__ import annotations

import os

import numpy as np
import xarray as xr

from ..data import catalogue
from ..data.contract import (BELOW_GROUND_MASKED, conform, first_month_missing, guard_values, require, validate,
                             value_problems)
from ..data.errors import InputError
from ..data.grid import Grid, coverage_problem, grid_of
from ..data.timeaxis import Period, period_of, select_period
from .aimip import read_aimip
from .cds import read_cds
from .cmip import read_contract_files
from .combine import fill_sea_ice
from .detect import LAYOUTS, detect_layout
from .files import expand_paths, is_prepared_dir, open_zarr
from .regrid import regrid
from .wb2 import read_wb2
from .writer import MANIFEST, PREPARED_STORE

__all__ = ["LAYOUTS", "describe_grid", "detect_layout", "open_dataset", "open_prepared", "read_source", "store_names"]


def store_names(variables: list[str] | tuple[str, ...] | None) -> list[str] | None:
    """Catalogue store names for user-given names (``zg`` -> ``zg500``, ``sst`` -> ``tos``)."""
    if variables is None:
        return None
    out: list[str] = []
    for v in variables:
        try:
            name = catalogue.variable(v).store_name
        except KeyError:
            raise InputError(f"unknown variable {v!r}; known: {', '.join(catalogue.store_names())}") from None
        if name not in out:
            out.append(name)
    return out


def _source_label(paths: list[str]) -> str:
    if len(paths) == 1:
        return paths[0]
    return f"{os.path.commonpath(paths) or paths[0]} ({len(paths)} files)"


def open_prepared(directory: str | os.PathLike) -> xr.Dataset:
    """A prepared dataset directory (from md-prepare) opened lazily with cftime times."""
    if not is_prepared_dir(directory):
        raise InputError(f"not a prepared dataset directory (expected {MANIFEST} and {PREPARED_STORE})",
                         directory)
    ds = open_zarr(os.path.join(str(directory), PREPARED_STORE), use_cftime=True)
    ds.attrs["source_layout"] = "prepared"
    return ds


def read_source(paths: str | list[str], variables: list[str] | None = None, period: Period | None = None,
                derive_huss: bool = False, guard: bool = True) -> tuple[xr.Dataset, str, str]:
    """Read any layout into contract names/units on its native grid, unvalidated.

    Returns (dataset, layout, source label). ``variables`` are store names or None for all.
    ``guard``: the per-file lazy value checks of every month (see :func:`.combine.concat_time`).
    """
    files = expand_paths(paths)
    layout = detect_layout(files)
    label = _source_label(files)
    if layout == "prepared":
        ds = open_prepared(files[0])
    elif layout == "wb2-zarr":
        ds = read_wb2(files[0], variables, period, derive_huss)
    elif layout in ("cds-netcdf", "cds-grib"):
        ds = read_cds(files, variables, derive_huss, guard)
    elif layout == "aimip":
        ds = read_aimip(files, variables, guard)
    else:
        ds = read_contract_files(files, variables, zarr=layout == "contract-zarr", guard=guard)
    if derive_huss and layout not in ("wb2-zarr", "cds-netcdf", "cds-grib") and "huss" not in ds:
        raise InputError("--derive-huss applies to ERA5 sources (WB2 or CDS) only", label)
    return ds, layout, label


def _fill_sea_ice(ds: xr.Dataset) -> xr.Dataset:
    """Sea-ice fraction is undefined over land in ERA5 (NaN); the contract holds 0 there."""
    if "siconc" in ds.data_vars:
        ds["siconc"] = fill_sea_ice(ds["siconc"])
    return ds


#: Layouts whose readers do not go through :func:`.combine.concat_time` (which guards each file).
_UNGUARDED_LAYOUTS = ("wb2-zarr", "prepared")


def _guard(ds: xr.Dataset, layout: str, label: str, derived: tuple[str, ...]) -> xr.Dataset:
    """Every month's value checks (lazy) on the fields no per-file guard covers."""
    names = [str(n) for n in ds.data_vars if n != "time_bnds"]
    todo = names if layout in _UNGUARDED_LAYOUTS else [n for n in names if n in derived]
    for name in todo:
        ds[name] = guard_values(ds[name], name, label)
    return ds


def _first_month(ds: xr.Dataset) -> xr.Dataset:
    """The first month of the first member of every variable of ``ds``, in memory.

    One ``compute`` of the whole dataset: one graph optimisation and one read of the shared
    first chunks instead of one per variable (with 37 variables and 555 months that was
    most of opening an input). ``time`` and ``member`` stay length-1 dims, so the checks
    below see the same values and month labels as on the lazy field.
    """
    first = {d: slice(0, 1) for d in ("time", "member") if d in ds.dims}
    return ds.isel(first).compute()


def _check_first_month(first: xr.Dataset, label: str) -> None:
    """The first month's value checks at once (on the native grid), so bad input fails early;
    ``first`` is :func:`_first_month` of the dataset."""
    found = [p for name in first.data_vars if name != "time_bnds"
             for p in value_problems(str(name), first[name])]
    if found:
        more = f" (and {len(found) - 2} more problems)" if len(found) > 2 else ""
        raise InputError("; ".join(found[:2]) + more, label)


def _note_below_ground(ds: xr.Dataset, first: xr.Dataset | None = None) -> xr.Dataset:
    """Fields masked below the ground (NaN on low levels in the first month, allowed) are named
    in ``attrs["below_ground_masked"]`` and get a CF ``comment`` saying so. ``first``: the
    :func:`_first_month` of ``ds`` when already read (else the candidates' first month is read)."""
    candidates = [str(n) for n in ds.data_vars if n in BELOW_GROUND_MASKED]
    if first is None:
        first = _first_month(ds[candidates]) if candidates else ds[[]]
    masked = [n for n in candidates if first_month_missing(first[n])]
    for name in masked:
        ds[name].attrs["comment"] = ("NaN below the ground surface: masked in the source, kept as missing "
                                     "(scores use the cells both sides have)")
    if masked:
        ds.attrs["below_ground_masked"] = ", ".join(masked)
    return ds


def _catalogue_order(ds: xr.Dataset) -> xr.Dataset:
    """Variables in catalogue order (state, forcings, statics), ``time_bnds`` last."""
    order = {name: i for i, name in enumerate(catalogue.store_names())}
    names = sorted((str(n) for n in ds.data_vars if n != "time_bnds"), key=lambda n: order.get(n, len(order)))
    return ds[names + (["time_bnds"] if "time_bnds" in ds.variables else [])]


def open_dataset(paths: str | list[str], variables: list[str] | None = None, grid: Grid | None = None,
                 period: Period | None = None, *, derive_huss: bool = False,
                 check: bool = True, only: list[str] | None = None) -> xr.Dataset:
    """Open any supported layout as a lazy contract dataset.

    Args:
        paths: a directory, a glob string, a file/store, or a list of them.
        variables: catalogue names to keep (``tas``, ``ta``, ``zg`` or ``zg500``, ...);
            None keeps every catalogue variable found. Missing ones are an InputError.
        grid: target grid (conservative regridding when coarsening, bilinear when refining).
        period: months to keep (InputError if none of them is present).
        derive_huss: ERA5 only: add ``huss`` from 2 m dewpoint and surface pressure.
        check: validate against the contract: structure, the first month's values at once,
            and every month's values lazily (an InputError naming the month and file is raised
            by whatever computes a bad month: the write of md-prepare, the scoring of
            md-diagnose). False returns the conformed dataset without any check
            (``md-describe`` lists the problems).
        only: store names to keep of those found, where absent ones are no error (unlike
            ``variables``): md-diagnose opens the variables it scores and the Nino-3.4
            inputs, so the other fields of a 37-variable store are neither checked nor read.

    ``attrs`` gain ``source_layout`` and ``source``; AI-MIP inputs also ``source_id``
    (model) and ``experiment_id``; a ``member`` dim appears when several members are read.
    """
    wanted = store_names(variables)
    ds, layout, label = read_source(paths, wanted, period, derive_huss, guard=check)
    if period is not None and "time" in ds.dims:
        covered = period_of(ds) if ds.sizes["time"] else None
        ds = select_period(ds, period)
        if ds.sizes["time"] == 0:
            raise InputError(f"no month of the period {period} in the source (it covers {covered})", label)
    if wanted is not None:
        if derive_huss and "huss" not in wanted:
            wanted = wanted + ["huss"]
        require(ds, wanted, label)
        keep = wanted + (["time_bnds"] if "time_bnds" in ds.variables else [])
        ds = ds[keep]
    if only is not None:
        ds = ds[[str(n) for n in ds.data_vars if n in only or n == "time_bnds"]]
    ds = conform(_fill_sea_ice(_catalogue_order(ds)))
    if check:
        # values first, on the native grid: a NaN cell of a complete field must be refused
        # before NaN-aware conservative coarsening could average it away
        derived = (("huss",) if derive_huss else ()) + (("ts",) if "ts_from" in ds.attrs else ())
        ds = _guard(ds, layout, label, derived)
        first = _first_month(ds)
        _check_first_month(first, label)
    ds = _note_below_ground(ds, first if check else None)
    if grid is not None:
        ds = conform(regrid(ds, grid, source=label))
    if check:
        validate(ds, label, check_values=False)
    ds.attrs["source_layout"] = "prepared" if layout == "prepared" else layout
    ds.attrs.setdefault("source", label)
    return ds


def describe_grid(ds: xr.Dataset) -> str:
    """``121 x 240 (1.5 deg), lat -90..90, lon 0..358.5`` for a contract dataset."""
    lat, lon = np.asarray(ds["lat"].values), np.asarray(ds["lon"].values)
    res = 360.0 / lon.size if lon.size else float("nan")
    text = (f"{lat.size} x {lon.size} ({res:g} deg), lat {lat.min():g}..{lat.max():g}, "
            f"lon {lon.min():g}..{lon.max():g}")
    problem = coverage_problem(grid_of(ds))
    return text if problem is None else f"{text}, NOT GLOBAL ({problem})"
