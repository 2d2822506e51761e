"""Ensemble-mean RMSE, ensemble spread and the spread-skill ratio.

    RMSE   = sqrt( <(mean_i x_i - y)^2> )
    spread = sqrt( <var_i(x_i)> ),   var with ddof=1 (unbiased member variance)

where <.> is the mean over ``dims``, area-weighted (``diagnostics.data.grid.global_mean``)
when ``lat`` is among them. Both are in the units of the field; the ratio spread/RMSE is
dimensionless.

For a perfectly reliable ensemble (members and observation exchangeable draws from one
distribution of variance s^2): E[var] = s^2 and E[(mean - y)^2] = s^2 (M+1)/M, so the
uncorrected ratio tends to sqrt(M/(M+1)) (0.913 for M = 5). The corrected ratio multiplies
the spread by sqrt((M+1)/M) (Fortin et al. 2014) and tends to 1. WeatherBench 2 reports
the uncorrected ratio; ``spread_skill`` returns both under explicit names.

Points where the observation or the ensemble mean is NaN (e.g. SST over land) are dropped
from RMSE and spread alike, so the ratio compares the same points. NaN members are
dropped per point; the correction then uses that point's member count M_p, applied to the
variance before averaging: spread_corr = sqrt(<var_p (M_p+1)/M_p>).
"""

from __future__ import annotations

from collections.abc import Sequence

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from diagnostics.data.grid import global_mean


def _mean(field: xr.DataArray, dims: Sequence[str]) -> xr.DataArray:
    """Mean over ``dims``; area-weighted when ``lat`` is among them, NaN skipped."""
    dims = tuple(dims)
    if "lat" in dims:
        return global_mean(field, dims=dims, skipna=True)
    return field.mean(dims, skipna=True)


MOMENT_TERMS = ("count", "mean", "variance")


def _moments_block(x: np.ndarray, *, axis: int) -> np.ndarray:
    """Per point of one block: the count M_p of non-NaN members along ``axis``, their mean and
    their variance (ddof = 1; NaN for M_p < 2), float64, stacked on a new leading axis.

    Two-pass (deviations from the float64 mean), so no cancellation of x^2 terms.
    """
    x = np.moveaxis(x, axis, 0)
    finite = ~np.isnan(x)
    out = np.empty((3, *x.shape[1:]), dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        if finite.all():
            out[0] = len(x)
            np.divide(x.sum(axis=0, dtype=np.float64), len(x), out=out[1])
            dev = x - out[1]
        else:
            out[0] = finite.sum(axis=0)
            np.divide(np.where(finite, x, 0).sum(axis=0, dtype=np.float64), out[0], out=out[1])
            dev = np.where(finite, x - out[1], 0.0)
        np.square(dev, out=dev)
        np.divide(dev.sum(axis=0), out[0] - 1, out=out[2])
    out[2][out[0] < 2] = np.nan
    return out


def ensemble_moments(forecast: xr.DataArray, member_dim: str = "member") -> xr.DataArray:
    """Member count, mean and variance (ddof = 1) of each point (dim ``term`` =
    :data:`MOMENT_TERMS`, then the dims of ``forecast`` but ``member_dim``), float64, NaN
    members left out; units of ``forecast`` (its square for the variance).

    One blockwise task per chunk, shared by the RMSE, the spread and the corrected spread
    (dask's nanmean, nanvar moments and a count were three passes, the variance ~84 ms per
    1 deg year of 5 members). Members in one chunk (concatenated if not).
    """
    axis = forecast.dims.index(member_dim)
    other = [d for d in forecast.dims if d != member_dim]
    data = forecast.data
    if dask.is_dask_collection(data):
        ind = tuple(f"i{k}" for k in range(data.ndim))
        out_ind = ("term", *(i for k, i in enumerate(ind) if k != axis))
        values = dsa.blockwise(_moments_block, out_ind, data, ind, new_axes={"term": 3}, concatenate=True,
                               dtype=np.float64, meta=np.empty((0,) * len(out_ind), dtype=np.float64), axis=axis)
    else:
        values = _moments_block(np.asarray(data), axis=axis)
    coords = {n: c for n, c in forecast.coords.items() if member_dim not in c.dims}
    return xr.DataArray(values, dims=("term", *other), coords={**coords, "term": list(MOMENT_TERMS)})


def _valid(moments: xr.DataArray, observation: xr.DataArray) -> xr.DataArray:
    return moments.sel(term="mean", drop=True).notnull() & observation.notnull()


def ensemble_mean_rmse(forecast: xr.DataArray, observation: xr.DataArray,
                       dims: Sequence[str] = ("time", "lat", "lon"),
                       member_dim: str = "member") -> xr.DataArray:
    """sqrt(<(ensemble mean - observation)^2>) over ``dims`` (area-weighted), field units."""
    error = ensemble_moments(forecast, member_dim).sel(term="mean", drop=True) - observation
    return _mean(error**2, dims) ** 0.5


def ensemble_spread(forecast: xr.DataArray, dims: Sequence[str] = ("time", "lat", "lon"),
                    member_dim: str = "member", corrected: bool = False,
                    mask: xr.DataArray | None = None) -> xr.DataArray:
    """sqrt(<var_ddof1 over members>) over ``dims`` (area-weighted), field units.

    ``corrected=True`` inflates each point's variance by (M_p+1)/M_p (Fortin et al. 2014).
    ``mask`` (boolean, broadcastable) keeps only the points where it is True.
    """
    moments = ensemble_moments(forecast, member_dim)
    variance = moments.sel(term="variance", drop=True)
    if corrected:
        m = moments.sel(term="count", drop=True)
        variance = variance * (m + 1) / m
    if mask is not None:
        variance = variance.where(mask)
    return _mean(variance, dims) ** 0.5


def spread_skill_ratio(forecast: xr.DataArray, observation: xr.DataArray,
                       dims: Sequence[str] = ("time", "lat", "lon"), member_dim: str = "member",
                       corrected: bool = False) -> xr.DataArray:
    """ensemble_spread / ensemble_mean_rmse over the same valid points (dimensionless).

    ``corrected=False``: WeatherBench 2 convention, -> sqrt(M/(M+1)) when reliable.
    ``corrected=True``: spread times sqrt((M+1)/M), -> 1 when reliable.
    """
    valid = _valid(ensemble_moments(forecast, member_dim), observation)
    spread = ensemble_spread(forecast, dims, member_dim, corrected=corrected, mask=valid)
    return (spread / ensemble_mean_rmse(forecast, observation.where(valid), dims, member_dim)).rename(
        "spread_skill_corrected" if corrected else "spread_skill")


def spread_skill(forecast: xr.DataArray, observation: xr.DataArray,
                 dims: Sequence[str] = ("time", "lat", "lon"), member_dim: str = "member") -> xr.Dataset:
    """All four numbers at once, named as in ``docs/metrics-schema.md``.

    ``ensemble_mean_rmse`` and ``ensemble_spread`` (uncorrected, field units),
    ``spread_skill`` (uncorrected ratio, WeatherBench 2) and ``spread_skill_corrected``
    (spread times sqrt((M+1)/M)).
    """
    valid = _valid(ensemble_moments(forecast, member_dim), observation)
    rmse = ensemble_mean_rmse(forecast, observation.where(valid), dims, member_dim)
    spread = ensemble_spread(forecast, dims, member_dim, corrected=False, mask=valid)
    spread_corr = ensemble_spread(forecast, dims, member_dim, corrected=True, mask=valid)
    units = forecast.attrs.get("units", "")
    return xr.Dataset({
        "ensemble_mean_rmse": rmse.assign_attrs(units=units, long_name="ensemble-mean RMSE"),
        "ensemble_spread": spread.assign_attrs(units=units, long_name="ensemble spread (ddof=1)"),
        "spread_skill": (spread / rmse).assign_attrs(
            units="1", long_name="spread-skill ratio, uncorrected (WeatherBench 2)"),
        "spread_skill_corrected": (spread_corr / rmse).assign_attrs(
            units="1", long_name="spread-skill ratio, spread times sqrt((M+1)/M) (Fortin et al. 2014)"),
    })
