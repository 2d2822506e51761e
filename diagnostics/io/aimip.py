"""AI-MIP / CMIP per-variable submissions -> one contract dataset with a ``member`` dim.

File names: ``<var>_<table>_<model>_<experiment>_<member>_<grid>[_<YYYYMM>-<YYYYMM>].nc``
(the date range is absent for fixed fields such as ``sftlf_fx_...``). Files of one variable
and member are concatenated in time; several members are stacked on ``member`` whose
coordinate is the realisation index N of ``r<N>i..p..f..`` (``member_label`` keeps the
full label). Quirks handled (see :mod:`.cmip`): zg as geopotential, zg on 7 levels,
tos in degC, siconc/sftlf in %, plev in hPa, latitude descending, longitude -180..180,
``tos`` without ``ts``.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import xarray as xr

from ..data.contract import field_names, guard_values
from ..data.errors import InputError
from ..data.grid import NAMED_GRIDS, Grid, equiangular, grid_of
from . import healpix
from .cmip import catalogue_entry, to_contract, ts_from_tos, wanted_file_variables
from .combine import Piece, concat_time, merge_on_common_months, stack_members
from .coords import check_same_grid, standard_coords
from .files import open_netcdf
from .levels import huss_from_tdas
from .names import AIMIP_NAME, DAILY_TABLES, MONTHLY_TABLES, AimipName, member_indices, parse_name

__all__ = ["AIMIP_NAME", "AimipName", "member_indices", "parse_name", "read_aimip", "read_daily"]

#: Store names of the daily fields E4 scores (T850 from ``ta``, Z500 from ``zg``).
DAILY_VARIABLES: tuple[str, ...] = ("ta", "zg500")

def _one_value(names: list[AimipName], attr: str, what: str, paths: list[str]) -> str:
    values = sorted({getattr(n, attr) for n in names})
    if len(values) > 1:
        raise InputError(f"files mix several {what}s ({', '.join(values)}); give the files of one "
                         f"{what} per call", paths[0])
    return values[0]


def check_same_levels(fields: dict[str, xr.DataArray], source: str) -> None:
    """One dataset has one ``plev`` axis: 3-D variables on different level sets would be merged
    onto their union and padded with NaN, so refuse that with the sets named."""
    levels = {name: tuple(int(round(v / 100.0)) for v in np.asarray(da["plev"].values, float))
              for name, da in fields.items() if "plev" in da.dims}
    if len(set(levels.values())) > 1:
        sets = "; ".join(f"{name} {list(lev)}" for name, lev in sorted(levels.items()))
        raise InputError(f"3-D variables are on different pressure levels (hPa: {sets}); one dataset holds "
                         "one level set: read them separately (variables=[...], or a glob of their files)",
                         source)


def healpix_target_grid(ds: xr.Dataset, source: str = "dataset") -> Grid:
    """The named lat-lon grid nearest a HEALPix submission's resolution and not finer (else the coarsest).

    A HEALPix pixel spans sqrt(4 pi / (12 nside^2)) rad = 58.6 / nside degrees (0.92 deg for
    cBottle's nside 64 -> the 1 degree grid, AI-MIP's analysis grid). md-diagnose then coarsens
    conservatively to the common grid of all inputs, as for any submission.
    """
    if healpix.is_healpix(ds) == "healpix-faces":
        nside = healpix.faces_nside(ds, source)
    else:
        dim = next(d for d in healpix.CELL_DIMS if d in ds.dims)
        nside = healpix.nside_of(ds.sizes[dim], dim, source)
    spacing = 58.6 / nside
    coarser = [d for d in sorted(NAMED_GRIDS) if d >= 0.999 * spacing]
    return equiangular(coarser[0] if coarser else max(NAMED_GRIDS))


def huss_from_dewpoint(fields: dict[str, xr.DataArray]) -> bool:
    """Add ``huss`` from ``tdas`` and ``ps`` when only the dewpoint is given (ERA5, some submissions).

    :func:`.levels.huss_from_tdas` with the official constants (ai2cm/AIMIP
    ``convert_tdas_to_huss``: applied when tdas and ps exist and huss does not). Returns
    whether it was added; ``fields`` is changed in place.
    """
    if "huss" in fields or "tdas" not in fields or "ps" not in fields:
        return False
    tdas, ps = xr.align(fields["tdas"], fields["ps"], join="inner")
    fields["huss"] = huss_from_tdas(tdas, ps)
    return True


def read_aimip(paths: list[str], variables: list[str] | None = None, guard: bool = True) -> xr.Dataset:
    """Read AI-MIP per-variable files (one model, one experiment, any members and time chunks)."""
    names = []
    for p in paths:
        n = parse_name(p)
        if n is None:
            raise InputError("file name does not follow <var>_<table>_<model>_<experiment>_<member>_<grid>"
                             "_<YYYYMM>-<YYYYMM>.nc", p)
        names.append(n)
    monthly = [(p, n) for p, n in zip(paths, names) if n.table in MONTHLY_TABLES]
    if not monthly:
        raise InputError(f"no monthly file (tables {', '.join(sorted({n.table for n in names}))}; expected "
                         f"one of {', '.join(MONTHLY_TABLES)})", paths[0])
    notes: list[str] = []
    if len(monthly) < len(paths):
        other = sorted({n.table for n in names if n.table not in MONTHLY_TABLES})
        notes.append(f"{len(paths) - len(monthly)} files of tables {', '.join(other)} left out (monthly only)")
    paths, names = [p for p, _ in monthly], [n for _, n in monthly]
    model = _one_value(names, "model", "model", paths)
    experiment = _one_value(names, "experiment", "experiment", paths)
    wanted = wanted_file_variables(variables, tos_for_ts=True)
    dewpoint_only: set[str] = set()  # read only to derive huss (huss_from_dewpoint), dropped after
    if wanted is not None and "huss" in wanted and not any(
            (e := catalogue_entry(n.var)) is not None and e.name == "huss" for n in names):
        dewpoint_only = {"tdas", "ps"} - wanted
        wanted |= dewpoint_only
    labels = sorted({n.member for n in names})
    index = member_indices(labels)
    pieces: dict[tuple[str, int], list[Piece]] = {}
    grids = {}
    regridded: set[str] = set()
    conditioning: dict[str, None] = {}  # the files' ``conditioning`` attributes, in file order
    for path, name in zip(paths, names):
        var = catalogue_entry(name.var)
        if var is None or (wanted is not None and var.name not in wanted):
            continue
        ds = open_netcdf(path)
        if ds.attrs.get("conditioning"):
            conditioning.setdefault(str(ds.attrs["conditioning"]), None)
        layout = healpix.is_healpix(ds)
        if layout is not None:  # cBottle / DLESyM: onto a lat-lon grid of about their resolution
            target = healpix_target_grid(ds, path)
            ds = healpix.to_latlon(ds, target, source=path)
            regridded.add(f"{ds.attrs['healpix_source']} -> {target.resolution:g} degree")
        ds = standard_coords(ds, path)
        grids[path] = grid_of(ds)
        field = name.var if name.var in ds.data_vars else None
        if field is None:
            raise InputError(f"file holds no variable {name.var!r} (found {field_names(ds)})", path)
        converted = to_contract(field, ds[field], path)
        if converted is not None:
            pieces.setdefault((converted[0], index[name.member]), []).append((path, converted[1]))
    source = paths[0] if len(paths) == 1 else f"{os.path.dirname(paths[0]) or '.'}/ ({len(paths)} files)"
    if not pieces:
        raise InputError("none of the files holds a catalogue variable that was asked for", source)
    check_same_grid(grids)
    members = sorted({m for _, m in pieces})
    label_of = {i: lab for lab, i in index.items()}
    per_var: dict[str, dict[int, xr.DataArray]] = {}
    for (store, member), p in pieces.items():
        per_var.setdefault(store, {})[member] = concat_time(p, store, guard)[0]
    fields: dict[str, xr.DataArray] = {}
    for store, by_member in per_var.items():
        first = by_member[min(by_member)]
        if "time" not in first.dims:  # fixed fields (fx) are the same for every member
            fields[store] = first
            continue
        missing = [label_of[m] for m in members if m not in by_member]
        if missing and variables is not None:
            raise InputError(f"variable {store!r} is missing for member(s) {', '.join(missing)}", source)
        if missing:  # reading everything found: a gap in the archive is reported, not fatal
            notes.append(f"{store} left out: missing for member(s) {', '.join(missing)}")
            warnings.warn(f"{source}: variable {store!r} is missing for member(s) {', '.join(missing)}; "
                          "left out", stacklevel=2)
            continue
        if len(members) == 1:
            fields[store] = by_member[members[0]]
        else:
            fields[store] = stack_members(by_member, label_of, store, source)
    if huss_from_dewpoint(fields):
        notes.append("huss derived from tdas and ps (Tetens formula with ECMWF's constants, as the "
                     "official evaluation's compute_huss_from_tdas)")
    for name in dewpoint_only:  # not asked for: must not narrow the months of what was
        fields.pop(name, None)
    check_same_levels(fields, source)
    if not fields:
        raise InputError("no variable is complete for every member", source)
    used_tos = ts_from_tos(fields, variables)
    ds = merge_on_common_months(fields, source)
    ds.attrs.update({"source_id": model, "experiment_id": experiment})
    geopotential = [n for n, f in fields.items() if "geopotential" in str(f.attrs.get("comment", ""))]
    if geopotential:
        notes.append(f"{', '.join(geopotential)} converted from geopotential (divided by g0 = 9.80665)")
    ds.attrs["found"] = (f"{model} {experiment}: {len(paths)} files, {len(members)} member(s) "
                         f"({', '.join(label_of[m] for m in members)}), variables {', '.join(sorted(fields))}")
    if regridded:
        notes.append(f"regridded conservatively from HEALPix ({', '.join(sorted(regridded))})")
    if notes:
        ds.attrs["reader_notes"] = "; ".join(notes)
    if len(members) == 1:
        ds.attrs["variant_label"] = label_of[members[0]]
    if used_tos:
        ds.attrs["ts_from"] = "tos (the submission has no ts)"
    if conditioning:  # emulator-run --around / --guide: md-diagnose's conditioning group scores it
        ds.attrs["conditioning"] = "; ".join(conditioning)
    return ds


def _daily_axis_checked(da: xr.DataArray, source: str) -> xr.DataArray:
    """``da`` in time order; InputError naming ``source`` when a time stamp repeats."""
    order = np.argsort(da["time"].values, kind="stable")
    da = da.isel(time=order)
    values = da["time"].values
    if values.size > 1 and not all(a < b for a, b in zip(values[:-1], values[1:])):
        dup = next(a for a, b in zip(values[:-1], values[1:]) if not a < b)
        raise InputError(f"daily time stamp {dup} is given twice; give each day once", source)
    return da


def read_daily(paths: list[str], variables: tuple[str, ...] = DAILY_VARIABLES) -> dict[str, xr.DataArray]:
    """The ``day``-table fields of AI-MIP files (one model), by store name, ``member`` dim always.

    Each file goes through the monthly reader's conversions (:func:`.cmip.to_contract`: units,
    geopotential -> height, the catalogue's levels; HEALPix -> lat-lon). Files of a member are
    joined in time (the first 15 and the last 12 months are separate files), members are indexed
    as the monthly files are (:func:`.names.member_indices`) and stacked on the days they share.
    Time stays daily (the file's own stamps, cftime). A variable without day files is absent.
    """
    named = [(p, parse_name(p)) for p in paths]
    named = [(p, n) for p, n in named if n is not None and n.table in DAILY_TABLES]
    wanted = wanted_file_variables(list(variables))
    index = member_indices(sorted({n.member for _, n in named}))
    pieces: dict[str, dict[int, list[xr.DataArray]]] = {}
    for path, name in named:
        var = catalogue_entry(name.var)
        if var is None or (wanted is not None and var.name not in wanted):
            continue
        ds = open_netcdf(path)
        if healpix.is_healpix(ds) is not None:
            ds = healpix.to_latlon(ds, healpix_target_grid(ds, path), source=path)
        ds = standard_coords(ds, path)
        if name.var not in ds.data_vars:
            raise InputError(f"file holds no variable {name.var!r} (found {field_names(ds)})", path)
        converted = to_contract(name.var, ds[name.var], path)
        if converted is not None and converted[0] in variables:  # values checked lazily, every day's month
            checked = guard_values(converted[1], converted[0], path)
            pieces.setdefault(converted[0], {}).setdefault(index[name.member], []).append(checked)
    out: dict[str, xr.DataArray] = {}
    for store, by_member in pieces.items():
        source = f"daily {store} files of {os.path.dirname(named[0][0]) or '.'}"
        members = []
        for m in sorted(by_member):
            chunks = sorted(by_member[m], key=lambda d: d["time"].values[0])
            joined = chunks[0] if len(chunks) == 1 else xr.concat(chunks, dim="time", join="override",
                                                                  coords="minimal", compat="override")
            members.append(_daily_axis_checked(joined, source).expand_dims(member=[m]))
        stacked = xr.concat(members, dim="member", join="inner", coords="minimal", compat="override")
        if stacked.sizes["time"] == 0:
            raise InputError(f"the members' daily {store} files share no day", source)
        out[store] = stacked
    return out
