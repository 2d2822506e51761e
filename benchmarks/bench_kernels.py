"""Benchmark: md-diagnose's per-chunk time kernels against the xarray / flox formulations they replaced.

    OMP_NUM_THREADS=1 .venv/bin/python -m benchmarks.bench_kernels [--grid 1.5 --members 5
        --years 20 --repeat 5]

One random float32 ensemble laid out as md-diagnose holds it, (member, time, lat, lon) in
12-month dask chunks, with NaN in a few cells, is reduced by each pair below, interleaved round
by round (both sample the same load of a shared machine), dask's synchronous scheduler, one
thread, best and median of ``--repeat`` CPU times:

* monthly climatology: ``calendar_month_sums`` (one blockwise task per chunk) against
  ``field.groupby(month).mean("time", dtype=float64)`` (flox's map-reduce);
* the five season time means: ``season_sums`` (all seasons in one pass) against five
  ``isel`` + ``coarsen`` seasonal means (each 3-month mean rounded to float32, as before);
* the trend with monthly intercepts: ``linear_trend`` against the groupby formula
  (``t.where(valid).groupby(month).mean()``, ``x.groupby(month) - x_mean``, two sums);
* monthly anomalies: the blockwise subtraction against ``field.groupby(month) - clim``;
* lag-1 autocorrelation: float64 pair sums against ``xr.corr`` of the anomalies and their
  shift by one month (float64 and, as before, float32);
* (session 12) the anomaly std and lag-1 from one pass against ``anom.std(dtype=float64)`` and
  the float64 ``xr.corr`` (alone, the std's pass costs more than dask's std: it pays off shared);
  the ensemble mean, variance and count per point (``ensemble_moments``) against xarray's
  ``mean``, ``var`` and ``notnull().sum()`` over members; the Nino-3.4 regression map from one
  pass of sums against the two-pass xarray formula; the AI-MIP E1 time mean
  (``weighted_time_mean``) against ``astype(float64).mean("time")``.

Prints CPU seconds, the ratio old / new and the largest difference of the results relative to
the largest value of each.
This is a script, not a test: the machine and its load are printed with the figures.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

os.environ.setdefault("OMP_NUM_THREADS", "1")

import dask  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from diagnostics.data.timeaxis import Month, month_index, monthly_axis  # noqa: E402
from diagnostics.metrics import climatology, nino34, spread_skill, trends, variability  # noqa: E402


def _field(grid: float, members: int, years: int) -> xr.DataArray:
    axis = monthly_axis(Month(1990, 1), Month(1990 + years - 1, 12), "proleptic_gregorian")
    nlat, nlon = int(round(180 / grid)) + 1, int(round(360 / grid))
    rng = np.random.default_rng(0)
    x = (280 + rng.normal(size=(members, 12 * years, nlat, nlon))).astype(np.float32)
    x[0, 5, 1, 1] = np.nan  # one missing month, one cell missing throughout (below-ground-like)
    x[:, :, 2, 2] = np.nan
    return xr.DataArray(x, dims=("member", "time", "lat", "lon"), coords={"time": axis["time"]},
                        name="tas").chunk({"time": 12})


def _month(field: xr.DataArray) -> xr.DataArray:
    return xr.DataArray(month_index(field["time"]) % 12, dims="time", name="calendar_month",
                        coords={"time": field["time"]})


def _old_seasons(field: xr.DataArray) -> list[xr.DataArray]:
    out = []
    for season in climatology.SEASONS:
        if season == "ANN":
            out.append(field.mean("time", skipna=False, dtype=np.float64))
        else:
            out.append(climatology.seasonal_mean(field, season).mean("time", skipna=False, dtype=np.float64))
    return out


def _old_trend(field: xr.DataArray) -> xr.DataArray:
    t, month = trends.decades(field), _month(field)
    t_mean = t.where(field.notnull()).groupby(month).mean("time")
    x_mean = field.groupby(month).mean("time", dtype=np.float64)
    dt = t.where(field.notnull()).groupby(month) - t_mean
    dx = field.groupby(month) - x_mean
    return (dt * dx).sum("time") / (dt**2).sum("time")


def _old_lag1(field: xr.DataArray, period: str, dtype) -> xr.DataArray:
    anom = field.groupby(climatology.month_of_year(field)) - climatology.monthly_climatology(field, period)
    anom = anom.drop_vars("month").astype(dtype)
    now = anom.isel(time=slice(None, -1))
    return xr.corr(now, anom.isel(time=slice(1, None)).assign_coords(time=now["time"]), dim="time")


def _old_regression(field: xr.DataArray, index: xr.DataArray) -> xr.DataArray:
    anom = climatology.monthly_anomalies(field)
    valid = index.notnull() & anom.notnull()
    n, x = index.where(valid), anom.where(valid)
    dn, dx = n - n.mean("time"), x - x.mean("time")
    return (dn * dx).sum("time") / (dn**2).sum("time")


def _pairs(field: xr.DataArray, period: str) -> dict[str, tuple]:
    clim = climatology.monthly_climatology(field, period)
    index = xr.DataArray(np.random.default_rng(1).normal(size=field.sizes["time"]), dims="time",
                         coords={"time": field["time"]})
    anom = climatology.monthly_anomalies(field, period)
    return {
        "monthly climatology": (
            lambda: field.groupby(climatology.month_of_year(field)).mean("time", dtype=np.float64),
            lambda: climatology.calendar_month_means(climatology.calendar_month_sums(field))),
        "5 season means": (lambda: _old_seasons(field),
                           lambda: [climatology.time_mean(field, None, s) for s in climatology.SEASONS]),
        "trend (monthly intercepts)": (lambda: _old_trend(field), lambda: trends.linear_trend(field)),
        "monthly anomalies (summed)": (
            lambda: (field.groupby(climatology.month_of_year(field)) - clim).sum("time"),
            lambda: climatology.monthly_anomalies(field, period).sum("time")),
        "lag-1 (float32 xr.corr before)": (lambda: _old_lag1(field, period, np.float32),
                                           lambda: variability.lag1_autocorrelation(field, period)),
        "lag-1 (float64 xr.corr)": (lambda: _old_lag1(field, period, np.float64),
                                    lambda: variability.lag1_autocorrelation(field, period)),
        "anomaly std + lag-1 (one pass)": (
            lambda: [anom.std("time", ddof=1, dtype=np.float64), _old_lag1(field, period, np.float64)],
            lambda: [variability.anomaly_std(field, period), variability.lag1_autocorrelation(field, period)]),
        "ensemble mean, variance, count": (
            lambda: [field.mean("member", skipna=True), field.var("member", ddof=1, skipna=True),
                     field.notnull().sum("member")],
            lambda: [spread_skill.ensemble_moments(field).sel(term=t) for t in ("mean", "variance", "count")]),
        "Nino-3.4 regression map": (lambda: _old_regression(field, index),
                                    lambda: nino34.regression_map(field, index)),
        "E1 time mean": (lambda: field.astype(np.float64).mean("time", skipna=True),
                         lambda: climatology.weighted_time_mean(field)),
    }


def _values(result) -> list[np.ndarray]:
    items = result if isinstance(result, (list, tuple)) else [result]
    return [np.asarray(r.values if hasattr(r, "values") else r, dtype=np.float64) for r in items]


def _rel_difference(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    worst = 0.0
    for x, y in zip(a, b):
        x, y = np.broadcast_arrays(x, y.reshape(x.shape) if x.size == y.size else y)
        both = np.isfinite(x) & np.isfinite(y)
        if both.any():
            # scaled by the array's largest value: a per-cell ratio blows up where a
            # coefficient is near 0 (random regression maps), which no user reads as an error
            scale = max(float(np.max(np.abs(x[both]))), 1e-300)
            worst = max(worst, float(np.max(np.abs(x[both] - y[both]))) / scale)
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", type=float, default=1.5, help="grid spacing, degrees")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--years", type=int, default=20)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    field = _field(args.grid, args.members, args.years)
    period = f"1990-01:{1990 + max(1, args.years * 3 // 4) - 1}-12"
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, load "
          f"{os.getloadavg()[0]:.1f}; field {field.shape} float32 in 12-month chunks "
          f"({field.nbytes / 2**20:.0f} MiB), synchronous scheduler, best / median of {args.repeat}")
    print("| reduction | before (CPU s) | after (CPU s) | before / after | largest difference / largest value |")
    print("|---|---|---|---|---|")
    warnings.simplefilter("ignore", RuntimeWarning)  # 0 / 0 of the all-NaN cell, in both
    with dask.config.set(scheduler="synchronous"):
        for name, (old, new) in _pairs(field, period).items():
            times: dict[str, list[float]] = {"old": [], "new": []}
            results = {}
            for _ in range(args.repeat):
                for label, fn in (("old", old), ("new", new)):
                    start = time.process_time()
                    results[label] = dask.compute(fn())[0]
                    times[label].append(time.process_time() - start)
            diff = _rel_difference(_values(results["old"]), _values(results["new"]))
            b_old, b_new = min(times["old"]), min(times["new"])
            print(f"| {name} | {b_old:.2f} / {np.median(times['old']):.2f} | {b_new:.2f} / "
                  f"{np.median(times['new']):.2f} | {b_old / b_new:.1f}x | {diff:.1e} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
