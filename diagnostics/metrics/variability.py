"""Temporal variability of monthly anomalies and its ratio to the reference (AI-MIP E4).

Anomalies are taken w.r.t. the monthly climatology of each member (or of the reference)
over ``climatology_period`` (whole field if None), so the seasonal cycle is removed.
The time axis must be consecutive months (the data contract), which lag-1 statistics need.
"""

from __future__ import annotations

import dask
import numpy as np
import xarray as xr

from ..data.grid import global_mean
from ..data.timeaxis import Period, month_index
from .climatology import coords_without_time, in_period, monthly_anomalies, sum_time_blocks

__all__ = ["monthly_anomalies", "anomaly_std", "lag1_autocorrelation", "variability_ratio"]


def anomaly_std(field: xr.DataArray, climatology_period: Period | str | None = None,
                period: Period | str | None = None) -> xr.DataArray:
    """Standard deviation over time of monthly anomalies (ddof = 1), units of ``field``.

    s = sqrt(sum_t (x'(t) - x'_bar)^2 / (n - 1)) over the months of ``period`` (all if None).
    A ``member`` dim is kept (one value per member).
    """
    anom = in_period(monthly_anomalies(field, climatology_period), period)
    # the month sums of the lag-1 pass (the same graph keys, so a batch asking for both reads the
    # anomalies once): s^2 = (S2 - S1^2 / n) / (n - 1) from float64 sums of anomalies, whose mean is
    # near 0 against their spread, so the subtraction loses nothing a float32 field holds
    sums = _anomaly_sums(anom)
    n, s1, s2 = (sums.sel(term=t, drop=True) for t in ("n", "sum", "sum_sq"))
    out = np.sqrt(((s2 - s1**2 / n) / (n - 1)).clip(min=0))
    out.attrs = {"units": field.attrs.get("units", ""), "long_name": "std of monthly anomalies"}
    out.name = f"{field.name}_std" if field.name else "std"
    return out


def lag1_autocorrelation(field: xr.DataArray, climatology_period: Period | str | None = None,
                         period: Period | str | None = None) -> xr.DataArray:
    """Lag-1 autocorrelation of monthly anomalies (dimensionless).

    r1 = Pearson correlation of the pairs (x'(t), x'(t+1)) of consecutive months inside
    ``period`` (all if None); for an AR(1) process x'(t+1) = phi x'(t) + e it estimates phi
    (sampling error about sqrt((1 - phi^2) / n)). A ``member`` dim is kept.
    """
    anom = in_period(monthly_anomalies(field, climatology_period), period)
    if np.any(np.diff(month_index(anom["time"])) != 1):
        raise ValueError(f"lag-1 autocorrelation of {field.name!r} needs consecutive months")
    sums = _anomaly_sums(anom)
    n, sa, sb, saa, sbb, sab = (sums.sel(term=t, drop=True) for t in PAIR_TERMS)
    out = (n * sab - sa * sb) / np.sqrt((n * saa - sa**2) * (n * sbb - sb**2))
    out.attrs = {"units": "1", "long_name": "lag-1 autocorrelation of monthly anomalies"}
    out.name = f"{field.name}_lag1" if field.name else "lag1"
    return out


#: The sums of :func:`_anomaly_sums`: over the pairs (a(t), a(t+1)) of consecutive months both
#: finite (count, sum a(t), sum a(t+1), sum a(t)^2, sum a(t+1)^2, sum a(t) a(t+1)), then over the
#: finite months (count, sum, sum of squares).
PAIR_TERMS = ("pairs", "sum_now", "sum_next", "sum_sq_now", "sum_sq_next", "sum_cross")
MONTH_TERMS = ("n", "sum", "sum_sq")


def _anomaly_sums_block(a: np.ndarray, *, axis: int, months: bool = True) -> np.ndarray:
    """Float64 sums of one time block: :data:`PAIR_TERMS` over the pairs inside it, then (with
    ``months``) :data:`MONTH_TERMS` over its months; shaped ``(term, *a.shape)`` with the time
    axis of length 1. Without ``months`` those terms are 0 (the blocks of straddling pairs)."""
    moved = np.moveaxis(a, axis, 0).astype(np.float64)
    out = np.zeros((len(PAIR_TERMS) + len(MONTH_TERMS), 1) + moved.shape[1:], dtype=np.float64)
    finite = ~np.isnan(moved)
    if not finite.all():
        moved = np.where(finite, moved, 0.0)
        valid = finite[:-1] & finite[1:]
        now, nxt = np.where(valid, moved[:-1], 0.0), np.where(valid, moved[1:], 0.0)
        out[0, 0] = valid.sum(axis=0)
    else:
        now, nxt = moved[:-1], moved[1:]
        out[0] = len(now)
    out[1, 0], out[2, 0] = now.sum(axis=0), nxt.sum(axis=0)
    out[3, 0], out[4, 0] = np.square(now).sum(axis=0), np.square(nxt).sum(axis=0)
    out[5, 0] = (now * nxt).sum(axis=0)
    if months:
        out[6, 0] = finite.sum(axis=0)
        out[7, 0] = moved.sum(axis=0)
        out[8, 0] = np.square(moved).sum(axis=0)
    return np.moveaxis(out, 1, axis + 1)


def _anomaly_sums(anom: xr.DataArray) -> xr.DataArray:
    """The sums of :func:`_anomaly_sums_block` over the whole time axis (dim ``term``, then the
    dims of ``anom`` but ``time``): one pass of blockwise tasks, plus the few pairs that straddle
    two time chunks (the last month of one with the first of the next), taken apart. Replaced
    xarray's ``corr`` of the field and its shift by one month (five reductions of float32,
    chunk-dependent sums, over misaligned chunks) and dask's ``std`` moments (a second pass)."""
    terms = {"term": len(PAIR_TERMS) + len(MONTH_TERMS)}
    sums = sum_time_blocks(anom, _anomaly_sums_block, [], terms)
    if dask.is_dask_collection(anom.data):
        ends = np.cumsum(anom.chunks[anom.dims.index("time")])[:-1] - 1
        if ends.size:  # the straddling pairs as blocks of two months each
            pairs = anom.isel(time=np.stack([ends, ends + 1], axis=1).ravel()).chunk(time=2)
            sums = sums + sum_time_blocks(pairs, _anomaly_sums_block, [], terms, months=False)
    return xr.DataArray(sums, dims=("term", *(d for d in anom.dims if d != "time")),
                        coords={**coords_without_time(anom), "term": [*PAIR_TERMS, *MONTH_TERMS]})


def _pooled_std(std: xr.DataArray, member_dim: str) -> xr.DataArray:
    # Ensemble value: root of the member-mean variance, the std of the pooled anomalies
    # (each member about its own climatology), not the mean of member stds.
    return np.sqrt((std**2).mean(member_dim)) if member_dim in std.dims else std


def _joint_ratio(a: xr.DataArray, b: xr.DataArray) -> xr.DataArray:
    """Ratio of the area-weighted global means of maps ``a`` and ``b`` over the cells both have
    (a below-ground mask on one side leaves those cells out of both means)."""
    both = a.notnull() & b.notnull()
    return global_mean(a.where(both)) / global_mean(b.where(both))


def variability_ratio(model: xr.DataArray, reference: xr.DataArray,
                      climatology_period: Period | str | None = None,
                      period: Period | str | None = None,
                      member_dim: str = "member") -> xr.Dataset:
    """Model variability relative to the reference, maps and global means.

    Variables (dimensionless ratios; stds in field units):
      ``std_model``/``std_reference``: :func:`anomaly_std`; the model's ensemble value is
      sqrt(mean over members of the variance); ``std_model_members`` keeps the members.
      ``std_ratio`` = std_model / std_reference per cell; ``std_ratio_global`` = ratio of
      the area-weighted global means of the two std maps over the cells both have.
      ``lag1_model`` (mean over members of the per-member r1), ``lag1_reference``,
      ``lag1_ratio`` per cell and ``lag1_ratio_global`` (ratio of the global means), and
      ``lag1_difference`` = lag1_model - lag1_reference (safer where r1 is near 0).
    """
    std_members = anomaly_std(model, climatology_period, period)
    std_m = _pooled_std(std_members, member_dim)
    std_r = _pooled_std(anomaly_std(reference, climatology_period, period), member_dim)
    r1_members = lag1_autocorrelation(model, climatology_period, period)
    r1_m = r1_members.mean(member_dim) if member_dim in r1_members.dims else r1_members
    r1_r = lag1_autocorrelation(reference, climatology_period, period)
    if member_dim in r1_r.dims:
        r1_r = r1_r.mean(member_dim)
    try:
        std_m, std_r, r1_m, r1_r = xr.align(std_m, std_r, r1_m, r1_r, join="exact")
    except ValueError as exc:
        raise ValueError(f"model and reference are not on the same grid: {exc}") from None
    out = xr.Dataset({
        "std_model": std_m, "std_reference": std_r, "std_model_members": std_members,
        "std_ratio": std_m / std_r,
        "std_ratio_global": _joint_ratio(std_m, std_r),
        "lag1_model": r1_m, "lag1_reference": r1_r,
        "lag1_ratio": r1_m / r1_r,
        "lag1_ratio_global": _joint_ratio(r1_m, r1_r),
        "lag1_difference": r1_m - r1_r,
    })
    return out
