"""Least-squares linear trends per decade of monthly fields, the seasonal cycle removed.

The time coordinate of the regression is the month index (year * 12 + month - 1) divided
by 120, i.e. decades with every month one twelfth of a year whatever the calendar, so
trends of models in other calendars compare month by month with ERA5. Slopes are written
as xarray reductions (not ``polyfit``) so dask-backed fields stay lazy and NaN cells
(SST over land) use only their valid months.

The fit has one intercept per calendar month (x = a_month + b t): both x and t are
demeaned within each calendar month before the slope is taken. A plain OLS of monthly
values on t lets the seasonal cycle leak into the slope: a cosine of amplitude A over N
whole years projects onto t with -6 A N / (n (n^2 - 1) / 12) per month (n = 12 N; -0.039
K/decade for A = 10 K, N = 36), and more over a span that does not hold whole years
(1978-10..2024-12). With the monthly intercepts a pure seasonal cycle has slope 0 exactly
and a pure linear trend keeps its slope exactly. The official E2 fits annual means
instead (:func:`diagnostics.metrics.aimip.e2_trends`).
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


def _calendar_month(field: xr.DataArray) -> xr.DataArray:
    """Calendar month 0..11 of each time step (the groups of the monthly intercepts)."""
    return xr.DataArray(month_index(field["time"]) % 12, dims="time", name="calendar_month",
                        coords={"time": field["time"]})


def linear_trend(field: xr.DataArray, period: Period | str | None = None) -> xr.DataArray:
    """Least-squares slope along ``time`` with one intercept per calendar month, field units per decade.

    b = sum (t - t_bar_m)(x - x_bar_m) / sum (t - t_bar_m)^2, t in decades, where t_bar_m and
    x_bar_m are the means over the months of the same calendar month m (the seasonal cycle)
    and every sum and mean is over the months where x is finite; NaN where a cell has fewer
    than two finite months. Any other dim (member, plev, lat, lon) is kept, so a map in
    gives a trend map and a global-mean series a number. Linear in x, so the trend of an
    ensemble mean is the mean of the member trends.
    """
    field = in_period(field, period)
    t = decades(field)
    month = _calendar_month(field)
    valid = field.notnull()
    tv = t.where(valid)
    dt = tv.groupby(month) - tv.groupby(month).mean("time")
    dx = field.groupby(month) - field.groupby(month).mean("time")
    slope = (dt * dx).sum("time") / (dt**2).sum("time")
    slope = slope.where(valid.sum("time") >= 2).drop_vars("calendar_month", errors="ignore")
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
