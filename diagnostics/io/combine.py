"""Joining per-file pieces into one contract dataset: time chunks, variables, members.

Readers turn each file into contract-named DataArrays ("pieces"); this module concatenates
the time chunks of one variable, checks the result is monthly (unique, ordered, no gaps),
puts it on the contract time axis, and merges variables on their common months.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..data.contract import guard_values
from ..data.errors import InputError
from ..data.timeaxis import Month, calendar_of, month_index, to_monthly_axis

Piece = tuple[str, xr.DataArray]  # (source path, field)


def _month(idx: int) -> str:
    return str(Month.from_index(int(idx)))


def fill_sea_ice(da: xr.DataArray) -> xr.DataArray:
    """Sea-ice fraction is undefined over land in ERA5 and CMIP files (NaN); the contract holds 0."""
    out = da.fillna(0.0)
    out.attrs = da.attrs
    return out


def check_monthly(time: xr.DataArray, source: str) -> None:
    """InputError unless ``time`` has one value per month, increasing, without gaps."""
    idx = month_index(time)
    if idx.size < 2:
        return
    d = np.diff(idx)
    if np.any(d == 0):
        dup = idx[1:][d == 0][0]
        per_month = np.bincount(idx - idx.min()).max()
        hint = f" ({per_month} values in one month: the file is not monthly)" if per_month > 2 else ""
        raise InputError(f"duplicated month {_month(dup)} in the time axis{hint}", source)
    if np.any(d < 0):
        bad = idx[1:][d < 0][0]
        raise InputError(f"time axis is not monotonic increasing (goes back to {_month(bad)})", source)
    if np.any(d > 1):
        gap = idx[:-1][d > 1][0] + 1
        # one step a year throughout: seasonal or annual means (the eofs examples' DJF / NDJFM means)
        hint = (f" ({idx.size} values one year apart: seasonal or annual means, not monthly)"
                if idx.size > 2 and np.all(d == 12) else "")
        raise InputError(f"time axis has a gap: month {_month(gap)} is missing{hint}", source)


def concat_time(pieces: list[Piece], name: str, guard: bool = True) -> tuple[xr.DataArray, str]:
    """Concatenate the time chunks of one variable in month order and check the axis.

    Returns the field on the contract monthly axis and a label of its sources for messages.
    Fields without a time axis (statics) take the first piece. Each piece gets the lazy value
    checks of :func:`~diagnostics.data.contract.guard_values` with its own file, so a bad month
    is reported with the file that holds it, on the native grid (before any regridding could
    average a NaN away); ``guard=False`` leaves them out (``md-describe`` lists problems itself).
    """
    label = pieces[0][0] if len(pieces) == 1 else f"{pieces[0][0]} (+{len(pieces) - 1} files)"
    if name == "siconc":
        pieces = [(p, fill_sea_ice(da)) for p, da in pieces]
    if guard:
        pieces = [(p, guard_values(da, name, p)) for p, da in pieces]
    timed = [(p, da) for p, da in pieces if "time" in da.dims]
    if not timed:
        return pieces[0][1], label
    timed.sort(key=lambda item: int(month_index(item[1]["time"][:1])[0]) if item[1].sizes["time"] else 0)
    for path, da in timed:
        check_monthly(da["time"], path)
    for (p0, d0), (p1, d1) in zip(timed, timed[1:]):
        last, first = month_index(d0["time"][-1:])[0], month_index(d1["time"][:1])[0]
        if first <= last:
            raise InputError(f"time chunks overlap: {_month(first)} is also in {p0}; give each month once", p1)
    da = timed[0][1] if len(timed) == 1 else xr.concat(
        [d for _, d in timed], dim="time", coords="minimal", compat="override", join="override")
    check_monthly(da["time"], label)
    cal = calendar_of(da)
    monthly = to_monthly_axis(da.to_dataset(name=name), cal)
    return monthly[name], label


def merge_on_common_months(fields: dict[str, xr.DataArray], source: str) -> xr.Dataset:
    """Merge variables, keeping the months every time-dependent variable has (inner join)."""
    timed = {n: f for n, f in fields.items() if "time" in f.dims}
    ds = xr.Dataset()
    if timed:
        common = None
        for f in timed.values():
            idx = set(month_index(f["time"]).tolist())
            common = idx if common is None else common & idx
        if not common:
            spans = ", ".join(f"{n} {_month(month_index(f['time']).min())}..{_month(month_index(f['time']).max())}"
                              for n, f in timed.items())
            raise InputError(f"the variables share no month ({spans})", source)
        trimmed = [n for n, f in timed.items() if f.sizes["time"] > len(common)]
        if trimmed:
            warnings.warn(f"{source}: keeping the {len(common)} months all variables share "
                          f"({_month(min(common))}..{_month(max(common))}); {', '.join(trimmed)} cover more",
                          stacklevel=2)
        first = None
        for name, f in timed.items():
            keep = np.isin(month_index(f["time"]), sorted(common))
            f = f.isel(time=np.flatnonzero(keep))
            if first is None:
                first = f
            ds[name] = f.assign_coords(time=first["time"])
        axis = to_monthly_axis(xr.Dataset(coords={"time": first["time"]}), calendar_of(first))
        ds = ds.assign_coords(time=axis["time"])
        ds["time_bnds"] = axis["time_bnds"]
    for name, f in fields.items():
        if name not in timed:
            ds[name] = f
    return ds


def _span(idx: np.ndarray) -> str:
    return f"{_month(idx.min())}..{_month(idx.max())}" if idx.size else "no months"


def stack_members(fields: dict[int, xr.DataArray], labels: dict[int, str], name: str, source: str) -> xr.DataArray:
    """Stack one variable's members along a new ``member`` dim (coordinate: member index).

    Members are aligned by month, never by position: when they cover different months the
    months all of them share are kept, with a warning naming each member's span; no shared
    month, or different calendars, is an InputError.
    """
    members = sorted(fields)
    first = fields[members[0]]
    if "time" in first.dims:
        calendars = {m: calendar_of(fields[m]) for m in members}
        if len(set(calendars.values())) > 1:
            detail = ", ".join(f"{labels[m]}: {c}" for m, c in calendars.items())
            raise InputError(f"variable {name!r} has different calendars per member ({detail})", source)
        index = {m: month_index(fields[m]["time"]) for m in members}
        common = sorted(set.intersection(*(set(i.tolist()) for i in index.values())))
        spans = ", ".join(f"{labels[m]} {_span(index[m])}" for m in members)
        if not common:
            raise InputError(f"variable {name!r}: the members share no month ({spans})", source)
        if any(i.size != len(common) for i in index.values()):
            warnings.warn(f"{source}: variable {name!r} covers different months per member ({spans}); "
                          f"keeping the {len(common)} months all members share "
                          f"({_month(common[0])}..{_month(common[-1])})", stacklevel=2)
        picked = {m: fields[m].isel(time=np.flatnonzero(np.isin(index[m], common))) for m in members}
        axis = picked[members[0]]["time"]
        aligned = [picked[m].assign_coords(time=axis) for m in members]
    else:
        aligned = [fields[m] for m in members]
    out = xr.concat(aligned, dim="member", coords="minimal", compat="override", join="override")
    return out.assign_coords(member=xr.DataArray(np.array(members, dtype=int), dims="member",
                                                 attrs={"long_name": "ensemble member (realisation index)"}),
                             member_label=xr.DataArray(np.array([labels[m] for m in members]),
                                                       dims="member"))
