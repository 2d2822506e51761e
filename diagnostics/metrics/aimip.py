"""The official AI-MIP Phase-1 evaluation E1-E5, as ai2cm/AIMIP's notebooks compute it.

The definitions follow ``evaluations/notebooks/aimip_data_utils.py`` and the notebooks
``E1-time-mean-biases``, ``E2-trends``, ``E3-enso-correlations``, ``E4-temporal-variance``
and ``E5-perturbed-sst-response`` of github.com/ai2cm/AIMIP (read 2026-12; docs/metrics.md,
section "AI-MIP E1-E5, as the official evaluation defines them", lists every choice and
where the project's own metrics differ). What sets them apart from the rest of
:mod:`diagnostics.metrics`:

* spatial means weight rows by **cos(latitude)** (``xarray.weighted``: NaN cells leave the
  sum and the weights), over the rows with **|lat| <= 87.5 deg** only, not by cell area over
  the globe;
* members are scored **one by one** and reported as the **median and min-max** over
  members, not as the score of the ensemble mean;
* E2 fits annual means against ``year / 10``; E3 regresses the **raw** field (seasonal cycle
  included) on the demeaned index; E4 uses the population standard deviation (ddof = 0);
  E5 is a plain difference (K, not K per K of SST warming).

Each metric is a numpy kernel (``_*_kernel``, plain arrays, last axes the core dims) and a
thin xarray shell that selects periods and latitudes and applies the kernel with
``xr.apply_ufunc(dask="parallelized")``, so dask-backed fields stay lazy. Inputs follow the
project contract (dims ``member``, ``time``, ``plev``, ``lat``, ``lon``; monthly ``time``
matched by month index, calendar-agnostic). Model and reference must already share the
grid (regrid with :func:`regrid_time_mean` or :mod:`diagnostics.io.regrid` first).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np
import xarray as xr

from ..data.grid import Grid
from ..data.timeaxis import Month, Period, month_index
from ..io.regrid import regrid_conservative
from .climatology import in_period, positions, weighted_time_mean
from .nino34 import nino34_index

#: Official periods (notebook constants TRAINING_DATES, TEST_DATES, DAILY_TIME_SLICE,
#: EVALUATION_DATES of E5); E3 uses train, test and "all" = TRAINING_DATES[0]..TEST_DATES[1].
TRAIN = Period(Month(1979, 1), Month(2014, 12))
TEST = Period(Month(2015, 1), Month(2024, 12))
ENSO_PERIOD = Period(Month(1979, 1), Month(2024, 12))
DAILY_PERIOD = Period(Month(1979, 1), Month(1979, 12))
RESPONSE_PERIOD = Period(Month(1978, 10), Month(2024, 12))
#: LATITUDE_LIMITS of every notebook ("avoid regridding artifacts at the poles"), degrees.
LATITUDE_LIMITS: tuple[float, float] = (-87.5, 87.5)
#: The 7 AI-MIP pressure levels (Pa) and the E5 level subset.
EVALUATION_PLEVS_PA: tuple[float, ...] = (100000.0, 85000.0, 70000.0, 50000.0, 25000.0, 10000.0, 5000.0)
RESPONSE_PLEVS_PA: tuple[float, ...] = (85000.0, 50000.0)
#: Variables E5 evaluates (``ta`` at 850/500 hPa, ``zg`` at 500 hPa).
RESPONSE_VARIABLES: tuple[str, ...] = ("tas", "ts", "pr", "huss", "ta", "zg")
_LAT_TOL = 1e-6
#: E3 needs more than this fraction of a period's months (notebook: ``> n_months * 0.85``).
MIN_PERIOD_COVERAGE = 0.85
#: apply_ufunc options: kernels need their core dims in one chunk.
_DASK = {"allow_rechunk": True}


@dataclass(frozen=True)
class AimipEvaluation:
    """Periods, latitude band and member dim of the official evaluation (strict, frozen)."""

    periods: dict[str, Period] = field(default_factory=lambda: {"train": TRAIN, "test": TEST})
    enso_periods: dict[str, Period] = field(
        default_factory=lambda: {"train": TRAIN, "test": TEST, "all": ENSO_PERIOD})
    daily_period: Period = DAILY_PERIOD
    response_period: Period = RESPONSE_PERIOD
    lat_limits: tuple[float, float] = LATITUDE_LIMITS
    member_dim: str = "member"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("periods"):
                if not value or not all(isinstance(k, str) and isinstance(p, Period) for k, p in value.items()):
                    raise TypeError(f"{f.name} must map names to Period objects, e.g. {{'train': TRAIN}}")
            elif f.name.endswith("period") and not isinstance(value, Period):
                raise TypeError(f"{f.name} must be a Period, got {type(value).__name__}")
        lo, hi = self.lat_limits
        if not -90.0 <= lo < hi <= 90.0:
            raise ValueError(f"lat_limits must satisfy -90 <= lo < hi <= 90, got {self.lat_limits}")


OFFICIAL = AimipEvaluation()


# ----------------------------------------------------------------------------- numpy kernels

def coslat(lat: np.ndarray) -> np.ndarray:
    """Row weights cos(lat), lat in degrees (``aimip_data_utils.compute_weighted_mean``)."""
    return np.cos(np.deg2rad(np.asarray(lat, dtype=float)))


def _coslat_mean_kernel(x: np.ndarray, lat: np.ndarray) -> np.ndarray:
    """sum_finite w x / sum_finite w over the last two axes (lat, lon), w = cos(lat).

    Cells where x is NaN leave both sums (xarray ``weighted().mean()`` semantics); an
    all-NaN map gives NaN.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.broadcast_to(coslat(lat)[:, None], x.shape[-2:])
    valid = np.isfinite(x)
    num = np.where(valid, x * w, 0.0).sum(axis=(-2, -1))
    den = np.where(valid, w, 0.0).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _slope_kernel(y: np.ndarray, t: np.ndarray) -> np.ndarray:
    """OLS slope of y against t along the last axis: sum (t-t_bar)(y-y_bar) / sum (t-t_bar)^2.

    The slope ``numpy.polyfit(t, y, 1)[0]`` returns; NaN where any value of y is NaN or
    fewer than two points exist.
    """
    y = np.asarray(y, dtype=np.float64)
    t = np.asarray(t, dtype=np.float64)
    if t.size < 2:
        return np.full(y.shape[:-1], np.nan)
    dt = t - t.mean()
    return ((y - y.mean(axis=-1, keepdims=True)) * dt).sum(axis=-1) / (dt**2).sum()


def _regression_kernel(x: np.ndarray, index: np.ndarray) -> np.ndarray:
    """E3 coefficient along the last axis: mean_t(i' x) / mean_t(i'^2), i' = i - mean(i).

    As ``compute_enso_coefficient``: the field x is not demeaned (i' has zero mean, so the
    numerator is cov(i, x) where x is complete); months where x is NaN leave the numerator's
    mean only (xarray skipna), the denominator is over every month of the index.
    """
    x = np.asarray(x, dtype=np.float64)
    i = np.asarray(index, dtype=np.float64)
    ip = i - i.mean()
    prod = x * ip
    valid = np.isfinite(prod)
    count = valid.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cov = np.where(count > 0, np.where(valid, prod, 0.0).sum(axis=-1) / count, np.nan)
        return cov / np.mean(ip**2)


def _departure_std_kernel(daily: np.ndarray, monthly: np.ndarray, month_of_day: np.ndarray) -> np.ndarray:
    """Population std (ddof = 0) along the last axis of daily - monthly[month of each day].

    ``monthly`` has the months on its last axis; ``month_of_day[k]`` is the position of
    day k's month there. NaN days are skipped (xarray ``std`` skipna).
    """
    dep = np.asarray(daily, dtype=np.float64) - np.asarray(monthly, dtype=np.float64)[..., month_of_day]
    with np.errstate(invalid="ignore"):
        return np.nanstd(dep, axis=-1, ddof=0) if np.isnan(dep).any() else dep.std(axis=-1, ddof=0)


def _member_kernel(x: np.ndarray, reduce) -> np.ndarray:
    """``reduce`` (nanmedian, nanmin, nanmax) over the last axis; all-NaN gives NaN silently."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape[:-1], np.nan)
    some = np.isfinite(x).any(axis=-1)
    if some.any():
        out[some] = reduce(x[some], axis=-1)
    return out


# ----------------------------------------------------------------------------- xarray shell

def latitude_band(da: xr.DataArray, limits: tuple[float, float] = LATITUDE_LIMITS) -> xr.DataArray:
    """The rows with lo <= lat <= hi (``.sel(lat=slice(*LATITUDE_LIMITS))``, either lat order)."""
    lat = np.asarray(da["lat"].values, dtype=float)
    keep = np.flatnonzero((lat >= limits[0] - _LAT_TOL) & (lat <= limits[1] + _LAT_TOL))
    if keep.size == 0:
        raise ValueError(f"no latitude of {da.name!r} lies within {limits}")
    return da.isel(lat=keep)


def coslat_mean(da: xr.DataArray) -> xr.DataArray:
    """cos(lat)-weighted mean over (lat, lon), NaN cells left out (units of ``da``)."""
    out = xr.apply_ufunc(_coslat_mean_kernel, da, input_core_dims=[["lat", "lon"]],
                         kwargs={"lat": da["lat"].values}, dask="parallelized",
                         output_dtypes=[np.float64], dask_gufunc_kwargs=_DASK)
    out.attrs = dict(da.attrs)
    return out


def coslat_rms(da: xr.DataArray) -> xr.DataArray:
    """sqrt(cos(lat)-weighted mean of da^2) over (lat, lon) (``compute_rms``)."""
    out = np.sqrt(coslat_mean(da**2))
    out.attrs = dict(da.attrs)
    return out


def member_summary(values: xr.DataArray, member_dim: str = "member") -> xr.Dataset:
    """``median``, ``min`` and ``max`` over members (NaN members skipped), as the paper's bars."""
    if member_dim not in values.dims:
        values = values.expand_dims({member_dim: 1})
    stats = {}
    for name, kernel in (("median", np.nanmedian), ("min", np.nanmin), ("max", np.nanmax)):
        stats[name] = xr.apply_ufunc(_member_kernel, values, input_core_dims=[[member_dim]],
                                     kwargs={"reduce": kernel}, dask="parallelized",
                                     output_dtypes=[np.float64], dask_gufunc_kwargs=_DASK)
    return xr.Dataset(stats)


def time_mean(da: xr.DataArray, period: Period) -> xr.DataArray:
    """Plain mean over the months of ``period`` (``compute_time_mean``; month-equal weights).

    Every month of the period must be present (ValueError naming the field otherwise).
    """
    # float64 sums: a float32 mean of 60 values near 280 K is off by ~1e-5 K (1e-5 of a 1 K bias)
    out = weighted_time_mean(in_period(da, period))
    out.attrs = dict(da.attrs)
    return out


def mask_intermittent(da: xr.DataArray) -> xr.DataArray:
    """Cells that are NaN in any month become NaN in every month.

    The notebooks' rule for GFDL-CM4's pressure-level fields (intermittently below its
    time-varying surface); ERA5's time means are then masked where CM4's are NaN
    (``reference.where(cm4_time_mean.notnull())``), so every model is scored on one domain.
    """
    out = da.where(~da.isnull().any("time"))
    out.attrs = dict(da.attrs)
    return out


def regrid_time_mean(da: xr.DataArray, grid: Grid) -> xr.DataArray:
    """Conservative, NaN-aware regridding of a time-mean map (the notebooks regrid time means)."""
    return regrid_conservative(da, grid)


def neuralgcm_grid() -> Grid:
    """NeuralGCM's 2.8 deg grid: 64 Gaussian latitudes x 128 longitudes (2.8125 deg).

    The official E1-E3 also score every model on it (``..._2p8deg``). Cell edges are taken
    at midpoints between rows (:func:`diagnostics.data.grid.latitude_edges`), not at the
    Gaussian weights' edges; prefer the grid of a NeuralGCM file when one is at hand.
    """
    x, _ = np.polynomial.legendre.leggauss(64)
    return Grid(lat=np.rad2deg(np.arcsin(x)), lon=np.arange(128) * (360.0 / 128))


def _reference(reference: xr.DataArray, member_dim: str) -> xr.DataArray:
    if member_dim in reference.dims:
        if reference.sizes[member_dim] != 1:
            raise ValueError(f"reference {reference.name!r} has {reference.sizes[member_dim]} members; expected one")
        reference = reference.isel({member_dim: 0}, drop=True)
    return reference


def _same_grid(a: xr.DataArray, b: xr.DataArray, what: str) -> tuple[xr.DataArray, xr.DataArray]:
    try:
        return xr.align(a, b, join="exact", exclude=("time", "member", "year"))
    except ValueError as exc:
        raise ValueError(f"{what}: model and reference are not on the same grid ({exc})") from None


def _with_units(da: xr.DataArray, units: str, long_name: str) -> xr.DataArray:
    da.attrs = {"units": units.strip(), "long_name": long_name}
    return da


# ----------------------------------------------------------------------------- E1

def e1_time_mean_bias(model: xr.DataArray, reference: xr.DataArray,
                      config: AimipEvaluation = OFFICIAL, grid: Grid | None = None) -> xr.Dataset:
    """E1: time-mean bias maps and their RMS (RMSB) per member, for each period.

    bias_m = mean_t(model_m) - mean_t(reference) over the period's months (regridded to
    ``grid`` first when given, as the notebooks regrid time means), on |lat| <= 87.5;
    ``rmsb`` = sqrt(cos-lat mean of bias^2), ``global_bias`` = cos-lat mean of bias, per
    member; ``rmsb_median``/``rmsb_min``/``rmsb_max`` over members. Cells where either side
    is NaN (below-ground levels) leave the means. Dims: ``period`` (+ member, plev, lat, lon).
    """
    units = model.attrs.get("units", "")
    reference = _reference(reference, config.member_dim)
    per_period = []
    for name, period in config.periods.items():
        m, r = time_mean(model, period), time_mean(reference, period)
        if grid is not None:
            m, r = regrid_time_mean(m, grid), regrid_time_mean(r, grid)
        m, r = _same_grid(m, r, "E1")
        bias = latitude_band(m - r, config.lat_limits)
        rmsb = coslat_rms(bias)
        summary = member_summary(rmsb, config.member_dim)
        per_period.append(xr.Dataset({
            "bias": _with_units(bias, units, "time-mean bias (model - reference)"),
            "global_bias": _with_units(coslat_mean(bias), units, "cos-lat mean of the bias map"),
            "rmsb": _with_units(rmsb, units, "RMS of the time-mean bias map (RMSB)"),
            **{f"rmsb_{k}": _with_units(v, units, f"{k} over members of RMSB") for k, v in summary.items()},
        }).expand_dims(period=[name]))
    return xr.concat(per_period, dim="period")


# ----------------------------------------------------------------------------- E2

def annual_means(da: xr.DataArray, period: Period) -> xr.DataArray:
    """Calendar-year means (plain mean of the 12 months; ``groupby('time.year').mean()``).

    ``period`` must run from January to December and be fully covered; dim ``year``.
    """
    if period.start.month != 1 or period.end.month != 12:
        raise ValueError(f"annual means need a period of whole years (Jan..Dec), got {period}")
    sub = in_period(da, period)
    years = xr.DataArray(month_index(sub["time"]) // 12, dims="time", name="year")
    out = sub.astype(np.float64).groupby(years).mean("time", skipna=True)
    out.attrs = dict(da.attrs)
    return out


def decadal_trend(annual: xr.DataArray) -> xr.DataArray:
    """OLS slope of annual means against year / 10 (``compute_decadal_trend``), units per decade."""
    t = annual["year"].values / 10.0
    out = xr.apply_ufunc(_slope_kernel, annual, input_core_dims=[["year"]], kwargs={"t": t},
                         dask="parallelized", output_dtypes=[np.float64], dask_gufunc_kwargs=_DASK)
    return _with_units(out, f"{annual.attrs.get('units', '')} decade-1", "linear trend of annual means")


def e2_trends(model: xr.DataArray, reference: xr.DataArray, config: AimipEvaluation = OFFICIAL) -> xr.Dataset:
    """E2: trends of annual means per decade, per member, for each period (|lat| <= 87.5).

    ``trend`` / ``reference_trend`` maps; ``trend_bias`` = model - reference trend map and its
    cos-lat RMS ``trend_bias_rms``; ``global_mean_series`` / ``reference_global_mean_series``
    (cos-lat mean of the annual means, dim ``year``, NaN outside the period);
    ``global_trend`` (trend of that series) and ``global_trend_error`` = model - reference;
    member median/min/max of ``global_trend`` and ``trend_bias_rms``.
    """
    reference = _reference(reference, config.member_dim)
    units = f"{model.attrs.get('units', '')} decade-1"
    per_period = []
    for name, period in config.periods.items():
        am = latitude_band(annual_means(model, period), config.lat_limits)
        ar = latitude_band(annual_means(reference, period), config.lat_limits)
        am, ar = _same_grid(am, ar, "E2")
        tm, tr = decadal_trend(am), decadal_trend(ar)
        bias = _with_units(tm - tr, units, "trend bias (model - reference)")
        gm, gr = coslat_mean(am), coslat_mean(ar)
        gtm, gtr = decadal_trend(gm), decadal_trend(gr)
        rms = _with_units(coslat_rms(bias), units, "RMS of the trend-bias map")
        ds = xr.Dataset({
            "trend": tm, "reference_trend": tr, "trend_bias": bias, "trend_bias_rms": rms,
            "global_mean_series": gm, "reference_global_mean_series": gr,
            "global_trend": gtm, "reference_global_trend": gtr,
            "global_trend_error": _with_units(gtm - gtr, units, "global-mean trend error"),
        })
        for key in ("global_trend", "trend_bias_rms"):
            for stat, v in member_summary(ds[key], config.member_dim).items():
                ds[f"{key}_{stat}"] = _with_units(v, units, f"{stat} over members of {key}")
        per_period.append(ds.expand_dims(period=[name]))
    return xr.concat(per_period, dim="period", join="outer")


# ----------------------------------------------------------------------------- E3

def enso_coefficient(da: xr.DataArray, index: xr.DataArray, period: Period = ENSO_PERIOD) -> xr.DataArray:
    """E3 coefficient map cov(i, x) / var(i), in field units per K of the index.

    Over the months of ``period`` (all present in the field, else ValueError) where the
    index is finite; the index must be finite in more than 85 % of them (the notebook skips
    a period with fewer months; a 3-month running mean is NaN in its last month, Dec 2024).
    Months matched by month index. Formula of :func:`_regression_kernel`: the raw field
    (seasonal cycle included) against the index minus its mean over the months used,
    population moments. Attribute ``months_used``.
    """
    if index.dims != ("time",):
        raise ValueError(f"the index {index.name!r} must have the one dim time, got {index.dims}")
    sub = in_period(da, period)
    lookup = dict(zip(month_index(index["time"]).tolist(), np.asarray(index.values, dtype=float).tolist()))
    values = np.array([lookup.get(int(k), np.nan) for k in month_index(sub["time"])])
    finite = np.isfinite(values)
    if finite.sum() <= MIN_PERIOD_COVERAGE * values.size:
        raise ValueError(f"the index {index.name!r} is finite in {int(finite.sum())} of the {values.size} months "
                         f"of {period}; more than {MIN_PERIOD_COVERAGE:.0%} are needed")
    sub = sub.isel(time=positions(finite))
    if sub.chunks is None:
        out = xr.apply_ufunc(_regression_kernel, sub, input_core_dims=[["time"]], kwargs={"index": values[finite]},
                             output_dtypes=[np.float64])
    else:  # the same sums as time reductions: dask streams them chunk by chunk, no whole-time chunk
        ip = values[finite] - values[finite].mean()
        out = weighted_time_mean(sub, ip) / np.mean(ip**2)
    out = _with_units(out, f"{da.attrs.get('units', '')} K-1", f"{da.name or 'field'} ENSO coefficient")
    out.attrs["months_used"] = int(finite.sum())
    return out


def e3_enso(model: xr.DataArray, reference: xr.DataArray, index: xr.DataArray,
            config: AimipEvaluation = OFFICIAL, reference_index: xr.DataArray | None = None) -> xr.Dataset:
    """E3: ENSO coefficient maps and the RMSE of each member's map against the reference's,
    for each of ``config.enso_periods`` (train, test and all = 1979-01..2024-12, dim ``period``).

    ``index``: relative Nino-3.4 index in K on a monthly axis (e.g.
    :func:`relative_nino34_index` of the prescribed SST; the notebooks use one table for
    every model and ERA5). ``coefficient`` (member, ..., lat, lon), ``reference_coefficient``,
    ``coefficient_error`` = model - reference, ``coefficient_rmse`` (cos-lat RMS of the error
    over |lat| <= 87.5) and its member median/min/max.
    """
    reference = _reference(reference, config.member_dim)
    ref_index = index if reference_index is None else reference_index
    per_period = []
    for name, period in config.enso_periods.items():
        cm = latitude_band(enso_coefficient(model, index, period), config.lat_limits)
        cr = latitude_band(enso_coefficient(reference, ref_index, period), config.lat_limits)
        cm, cr = _same_grid(cm, cr, "E3")
        units = cm.attrs["units"]
        err = _with_units(cm - cr, units, "ENSO coefficient error (model - reference)")
        rmse = _with_units(coslat_rms(err), units, "RMSE of the ENSO coefficient map")
        ds = xr.Dataset({"coefficient": cm, "reference_coefficient": cr, "coefficient_error": err,
                         "coefficient_rmse": rmse})
        for stat, v in member_summary(rmse, config.member_dim).items():
            ds[f"coefficient_rmse_{stat}"] = _with_units(v, units, f"{stat} over members of the coefficient RMSE")
        per_period.append(ds.expand_dims(period=[name]))
    ds = xr.concat(per_period, dim="period")
    ds.attrs["enso_index"] = ("relative Nino-3.4 index (Nino-3.4 SST anomaly minus the tropical-mean SST "
                              "anomaly, 3-month centred running mean), K")
    return ds


def relative_nino34_index(tos: xr.DataArray) -> xr.DataArray:
    """The relative, 3-month-smoothed Nino-3.4 index of :func:`.nino34.nino34_index` (K)."""
    return nino34_index(tos, relative=True, smooth=3)


# ----------------------------------------------------------------------------- E4

def daily_departure_std(daily: xr.DataArray, monthly: xr.DataArray | None = None,
                        period: Period = DAILY_PERIOD) -> xr.DataArray:
    """E4: population std over the days of ``period`` of (daily - monthly mean of its month).

    ``monthly``: the run's own monthly means (``Amon``), matched to each day by calendar
    month; None takes the mean of the daily values of each month. Every month of the period
    must have days (and a monthly value), ValueError otherwise. Units of the field.
    """
    months = month_index(daily["time"])
    keep = (months >= period.start.index) & (months <= period.end.index)
    wanted = np.arange(period.start.index, period.end.index + 1)
    missing = np.setdiff1d(wanted, months[keep])
    if missing.size:
        raise ValueError(f"daily {daily.name!r} has no days in {missing.size} of the {wanted.size} months of {period}")
    sub, months = daily.isel(time=np.flatnonzero(keep)), months[keep]
    if monthly is None:
        mon = sub.groupby(xr.DataArray(months, dims="time", name="month")).mean("time")
        mon_index = mon["month"].values
    else:
        mon = in_period(monthly, period)
        mon_index = month_index(mon["time"])
        mon = mon.rename({"time": "month"}).drop_vars("month")
    position = np.searchsorted(mon_index, months) if np.all(np.diff(mon_index) > 0) else None
    if position is None or not np.array_equal(mon_index[position], months):
        raise ValueError("monthly means must be in time order, one per month")
    if sub.chunks is None and mon.chunks is None:
        out = xr.apply_ufunc(_departure_std_kernel, sub, mon,
                             input_core_dims=[["time"], ["month"]], kwargs={"month_of_day": position},
                             output_dtypes=[np.float64])
    else:  # the same statistic as time reductions, so dask streams the days chunk by chunk
        on_days = mon.astype(np.float64).isel(month=xr.DataArray(position, dims="time"))
        on_days = on_days.drop_vars([c for c in on_days.coords if "time" in on_days[c].dims or c == "month"])
        dep = sub.astype(np.float64) - on_days.assign_coords(time=sub["time"])
        out = dep.std("time", ddof=0, skipna=True)
    return _with_units(out, daily.attrs.get("units", ""), "std of daily departures from the monthly mean")


def e4_daily_variability(model_daily: xr.DataArray, reference_daily: xr.DataArray,
                         model_monthly: xr.DataArray | None = None,
                         reference_monthly: xr.DataArray | None = None,
                         config: AimipEvaluation = OFFICIAL) -> xr.Dataset:
    """E4 maps and global means: ``std`` per member and ``reference_std`` (|lat| <= 87.5),
    ``std_error`` = model - reference, cos-lat means ``global_std`` / ``reference_global_std``,
    ``std_error_rms``, and member median/min/max of ``global_std``."""
    ref = _reference(reference_daily, config.member_dim)
    ref_mon = None if reference_monthly is None else _reference(reference_monthly, config.member_dim)
    sm = latitude_band(daily_departure_std(model_daily, model_monthly, config.daily_period), config.lat_limits)
    sr = latitude_band(daily_departure_std(ref, ref_mon, config.daily_period), config.lat_limits)
    sm, sr = _same_grid(sm, sr, "E4")
    units = sm.attrs["units"]
    err = _with_units(sm - sr, units, "daily-variability error (model - reference)")
    ds = xr.Dataset({"std": sm, "reference_std": sr, "std_error": err,
                     "global_std": coslat_mean(sm), "reference_global_std": coslat_mean(sr),
                     "std_error_rms": _with_units(coslat_rms(err), units, "RMS of the std error map")})
    for stat, v in member_summary(ds["global_std"], config.member_dim).items():
        ds[f"global_std_{stat}"] = _with_units(v, units, f"{stat} over members of global_std")
    return ds


# ----------------------------------------------------------------------------- E5

def e5_response(perturbed: xr.DataArray, control: xr.DataArray, config: AimipEvaluation = OFFICIAL) -> xr.Dataset:
    """E5: perturbed-minus-control time means over ``response_period`` (1978-10..2024-12).

    ``response`` per member (members paired by label, as xarray aligns ``realization``),
    its ensemble mean ``response_mean``, the cos-lat means ``global_response`` over
    |lat| <= 87.5 and their member median/min/max. Units of the field (K for +4K ts: about
    4), not per K of SST warming (:func:`.warming.warming_response` divides by dSST).
    """
    p, c = time_mean(perturbed, config.response_period), time_mean(control, config.response_period)
    try:
        p, c = xr.align(p, c, join="exact")
    except ValueError as exc:
        raise ValueError(f"E5: perturbed and control runs differ in grid or members ({exc})") from None
    units = perturbed.attrs.get("units", "")
    resp = _with_units(latitude_band(p - c, config.lat_limits), units, "perturbed minus control time mean")
    ds = xr.Dataset({"response": resp, "global_response": coslat_mean(resp)})
    if config.member_dim in resp.dims:
        ds["response_mean"] = _with_units(resp.mean(config.member_dim), units, "ensemble-mean response")
    for stat, v in member_summary(ds["global_response"], config.member_dim).items():
        ds[f"global_response_{stat}"] = _with_units(v, units, f"{stat} over members of global_response")
    return ds
