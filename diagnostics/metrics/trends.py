"""Least-squares linear trends per decade (AI-MIP E2).

The time coordinate of the regression is the month index (year * 12 + month - 1) divided
by 120, i.e. decades with every month one twelfth of a year whatever the calendar, so
trends of models in other calendars compare month by month with ERA5. Slopes are written
as xarray reductions (not ``polyfit``) so dask-backed fields stay lazy and NaN cells
(SST over land) use only their valid months.
"""

from __future__ import annotations

import xarray as xr

from ..data.grid import global_mean
from ..data.timeaxis import Period, month_index
from .climatology import in_period
from .pattern import weighted_rms

MONTHS_PER_DECADE = 120.0


def decades(field: xr.DataArray) -> xr.DataArray:
    """Time in decades (month index / 120) along ``time``."""
    return xr.DataArray(month_index(field["time"]) / MONTHS_PER_DECADE, dims="time",
                        coords={"time": field["time"]})


def linear_trend(field: xr.DataArray, period: Period | str | None = None) -> xr.DataArray:
    """Ordinary least-squares slope along ``time``, in field units per decade.

    b = sum (t - t_bar)(x - x_bar) / sum (t - t_bar)^2, with t in decades and the sums
    (and means) over the months where x is finite. Any other dim (member, plev, lat, lon)
    is kept, so a map in gives a trend map and a global-mean series a number.
    """
    field = in_period(field, period)
    t = decades(field)
    valid = field.notnull()
    tv = t.where(valid)
    dt = tv - tv.mean("time")
    dx = field - field.mean("time")
    slope = (dt * dx).sum("time") / (dt**2).sum("time")
    slope = slope.where(valid.sum("time") >= 2)
    units = field.attrs.get("units", "")
    slope.attrs = {"units": f"{units} decade-1".strip(), "long_name": "linear trend"}
    slope.name = f"{field.name}_trend" if field.name else "trend"
    return slope


def global_mean_trend(field: xr.DataArray, period: Period | str | None = None) -> xr.DataArray:
    """Trend of the area-weighted global-mean series (field units per decade).

    Equal to the area-weighted mean of the trend map when no cell is NaN (the slope is
    linear in the data).
    """
    series = global_mean(in_period(field, period))
    series.attrs = dict(field.attrs)
    return linear_trend(series)


def trend_difference(model: xr.DataArray, reference: xr.DataArray, period: Period | str | None = None,
                     member_dim: str = "member") -> dict[str, xr.DataArray]:
    """Model-minus-reference trends over ``period``.

    The model trend is that of the ensemble mean (equal to the mean of the member trends,
    the slope being linear). Returns ``map`` (model - reference trend per cell), ``rms``
    (area-weighted RMS of that map), ``model_global`` and ``reference_global`` (area-weighted
    means of the trend maps, equal to the trends of the global-mean series when the NaN
    mask is constant in time) and ``global_difference``, the area-weighted mean of ``map``
    over the cells both sides have (weights renormalised: a below-ground mask on one side
    leaves those cells out of both; equal to model_global - reference_global when no cell is
    missing); units per decade.
    """
    m = linear_trend(model, period)
    if member_dim in m.dims:
        m = m.mean(member_dim, keep_attrs=True)
    r = linear_trend(reference, period)
    if member_dim in r.dims:
        r = r.mean(member_dim, keep_attrs=True)
    try:
        m, r = xr.align(m, r, join="exact")
    except ValueError as exc:
        raise ValueError(f"model and reference are not on the same grid: {exc}") from None
    diff = m - r
    diff.attrs = {"units": m.attrs.get("units", ""), "long_name": "trend difference (model - reference)"}
    m_global, r_global = global_mean(m), global_mean(r)
    return {"map": diff, "rms": weighted_rms(m, r), "global_difference": global_mean(diff),
            "model_global": m_global, "reference_global": r_global}
