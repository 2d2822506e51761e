"""Niño-3.4 index and ENSO regression maps (AI-MIP E3).

The index functions take the SST field explicitly: for SST-forced (AMIP-style) runs the
index comes from the prescribed forcing, so callers pass the forcing ``tos`` and regress
the model's fields on it; for coupled runs they pass the model's own SST.
Time series are matched by month index (calendar-agnostic), never by timestamps.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data.grid import global_mean
from ..data.timeaxis import Period, month_index
from .climatology import coords_without_time, monthly_anomalies, positions, sum_time_blocks
from .modes import select_domain
from .pattern import compare_maps

#: Niño-3.4 box: 5S-5N, 170W-120W (190E-240E), degrees.
NINO34_LAT: tuple[float, float] = (-5.0, 5.0)
NINO34_LON: tuple[float, float] = (190.0, 240.0)
#: Tropical band whose mean SST anomaly the relative index removes (AI-MIP): 20S-20N.
TROPICS_LAT: tuple[float, float] = (-20.0, 20.0)


def box_mean(field: xr.DataArray, lat: tuple[float, float],
             lon: tuple[float, float] | None = None) -> xr.DataArray:
    """Area-weighted mean over the cells whose centres lie in the closed box (units of field).

    ``lon`` is (west, east) in degrees east, a box across 0E allowed (see
    :func:`.modes.select_domain`); ``None`` takes all longitudes. NaN cells (land in SST)
    are left out.
    """
    sub = select_domain(field, lat, lon)
    out = global_mean(sub)
    out.attrs = dict(field.attrs)
    return out


def convention(relative: bool = True) -> str:
    """The index convention in words, for attributes (amplitudes under the two differ by ~10 %)."""
    if relative:
        return ("relative Nino-3.4 index (AI-MIP: 5S-5N 170-120W SST anomaly minus the 20S-20N mean SST "
                "anomaly, 3-month centred running mean)")
    return ("absolute Nino-3.4 index (CVDP / PMP: 5S-5N 170-120W SST anomaly from its monthly "
            "climatology, 3-month centred running mean)")


def nino34_index(tos: xr.DataArray, relative: bool = True, smooth: int | None = 3,
                 climatology_period: Period | str | None = None) -> xr.DataArray:
    """Niño-3.4 SST anomaly index in K, dims (time,) (plus ``member`` if ``tos`` has one).

    absolute: N(t) = [tos]_{5S-5N,190-240E}(t) minus its monthly climatology
    (over ``climatology_period``, whole series if None), [.] the area-weighted box mean;
    relative (AI-MIP, default): N(t) - T(t), T the same anomaly of the 20S-20N mean SST.
    ``smooth`` = k > 1 applies a k-month centred running mean (the first and last
    (k-1)/2 months become NaN); None or 1 leaves the monthly values.
    """
    index = monthly_anomalies(box_mean(tos, NINO34_LAT, NINO34_LON), climatology_period)
    if relative:
        index = index - monthly_anomalies(box_mean(tos, TROPICS_LAT), climatology_period)
    if smooth is not None and smooth > 1:
        index = index.rolling(time=smooth, center=True).mean()
    index.attrs = {"units": tos.attrs.get("units", "K"),
                   "long_name": ("relative " if relative else "") + "Nino-3.4 SST anomaly index"}
    index.name = "nino34"
    return index


def _match_months(field: xr.DataArray, index: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Field and index restricted to their common months, the index on the field's time axis."""
    fi, ii = month_index(field["time"]), month_index(index["time"])
    common = np.intersect1d(fi, ii)
    if common.size < 3:
        raise ValueError(f"field {field.name!r} and the index share {common.size} months; need at least 3")
    field = field.isel(time=positions(np.isin(fi, common)))
    index = index.isel(time=positions(np.isin(ii, common)))
    return field, index.assign_coords(time=field["time"])


def regression_map(field: xr.DataArray, index: xr.DataArray,
                   climatology_period: Period | str | None = None,
                   dims: tuple[str, ...] = ("time",)) -> xr.DataArray:
    """Regression coefficient of field anomalies on an index, in field units per index unit
    (per K for the Niño-3.4 index).

    b = cov(N, x') / var(N) = sum (N - N_bar)(x' - x'_bar) / sum (N - N_bar)^2 over ``dims``
    and over the months where both are finite, x' the monthly anomalies of ``field``
    (climatology over ``climatology_period``, whole field if None; per member).
    ``dims=("time",)`` gives one map per member; ``("member", "time")`` pools the members
    into one ensemble regression. Months are matched by month index.
    """
    anom, index = _match_months(monthly_anomalies(field, climatology_period), index)
    # one pass of float64 sums (xarray's two means and two products held the anomalies between
    # passes): sum dn dx = S_nx - S_n S_x / c, sum dn^2 = S_nn - S_n^2 / c; the index and the
    # anomalies are centred near 0, so the subtractions lose nothing a float32 field holds
    sums = xr.DataArray(sum_time_blocks(anom, _regression_sums_block, [np.asarray(index.values, dtype=np.float64)],
                                        {"term": len(REGRESSION_TERMS)}),
                        dims=("term", *(d for d in anom.dims if d != "time")),
                        coords={**coords_without_time(anom), "term": list(REGRESSION_TERMS)})
    pooled = [d for d in dims if d != "time"]
    if pooled:
        sums = sums.sum(pooled)
    c, s_n, s_x, s_nx, s_nn = (sums.sel(term=t, drop=True) for t in REGRESSION_TERMS)
    slope = (s_nx - s_n * s_x / c) / (s_nn - s_n**2 / c)
    units = field.attrs.get("units", "")
    slope.attrs = {"units": f"{units} {index.attrs.get('units', 'K')}-1".strip(),
                   "long_name": f"regression of {field.name} anomalies on {index.name}"}
    slope.name = f"{field.name}_regression" if field.name else "regression"
    return slope


#: The sums of :func:`_regression_sums_block`: over the months where both the index N and the
#: field x are finite, their count, sum N, sum x, sum N x and sum N^2.
REGRESSION_TERMS = ("count", "sum_n", "sum_x", "sum_nx", "sum_nn")


def _regression_sums_block(x: np.ndarray, n: np.ndarray, *, axis: int) -> np.ndarray:
    """:data:`REGRESSION_TERMS` of one time block of ``x`` against the index values ``n`` of its
    months (float64), shaped ``(term, *x.shape)`` with the time axis of length 1."""
    shape = [1] * x.ndim
    shape[axis] = len(n)
    nb = n.reshape(shape)
    x = x.astype(np.float64)
    out = np.empty((len(REGRESSION_TERMS), *(1 if k == axis else m for k, m in enumerate(x.shape))))
    valid = np.isfinite(x) & np.isfinite(nb)
    if valid.all():
        out[0], out[1], out[4] = len(n), n.sum(), np.square(n).sum()
    else:
        x = np.where(valid, x, 0.0)
        nb = np.where(valid, nb, 0.0)
        out[0] = valid.sum(axis=axis, keepdims=True)
        out[1] = nb.sum(axis=axis, keepdims=True)
        out[4] = np.square(nb).sum(axis=axis, keepdims=True)
    out[2] = x.sum(axis=axis, keepdims=True)
    out[3] = (x * nb).sum(axis=axis, keepdims=True)
    return out


def compare_patterns(model_map: xr.DataArray, ref_map: xr.DataArray) -> dict[str, xr.DataArray]:
    """``pattern_corr`` (area-weighted, centred), ``rms_diff`` (field units per K) and
    ``amplitude_ratio`` (area-weighted RMS of the model map / that of the reference map).

    A ``member`` dim in ``model_map`` gives per-member values; for the ensemble pass the
    pooled regression map (``regression_map(..., dims=("member", "time"))``).
    """
    return compare_maps(model_map, ref_map)
