"""Joining per-file pieces into one contract dataset: time chunks, variables, members.

Readers turn each file into contract-named DataArrays ("pieces"); this module concatenates
the time chunks of one variable, checks the result is monthly (unique, ordered, no gaps),
puts it on the contract time axis, and merges variables on their common months.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from ..data.errors import InputError
from ..data.timeaxis import Month, calendar_of, month_index, to_monthly_axis

Piece = tuple[str, xr.DataArray]  # (source path, field)


def _month(idx: int) -> str:
    return str(Month.from_index(int(idx)))


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
        raise InputError(f"time axis has a gap: month {_month(gap)} is missing", source)


def concat_time(pieces: list[Piece], name: str) -> tuple[xr.DataArray, str]:
    """Concatenate the time chunks of one variable in month order and check the axis.

    Returns the field on the contract monthly axis and a label of its sources for messages.
    Fields without a time axis (statics) take the first piece.
    """
    label = pieces[0][0] if len(pieces) == 1 else f"{pieces[0][0]} (+{len(pieces) - 1} files)"
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


def stack_members(fields: dict[int, xr.DataArray], labels: dict[int, str], name: str, source: str) -> xr.DataArray:
    """Stack one variable's members along a new ``member`` dim (coordinate: member index)."""
    members = sorted(fields)
    lengths = {m: fields[m].sizes.get("time", 0) for m in members}
    if len(set(lengths.values())) > 1:
        detail = ", ".join(f"{labels[m]}: {n} months" for m, n in lengths.items())
        raise InputError(f"variable {name!r} covers different months per member ({detail})", source)
    first = fields[members[0]]
    aligned = [fields[m].assign_coords(time=first["time"]) if "time" in first.dims else fields[m]
               for m in members]
    out = xr.concat(aligned, dim="member", coords="minimal", compat="override", join="override")
    return out.assign_coords(member=xr.DataArray(np.array(members, dtype=int), dims="member",
                                                 attrs={"long_name": "ensemble member (realisation index)"}),
                             member_label=xr.DataArray(np.array([labels[m] for m in members]),
                                                       dims="member"))
