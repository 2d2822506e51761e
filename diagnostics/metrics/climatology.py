"""Time means, seasonal means, monthly climatologies and time-mean biases (AI-MIP E1).

Conventions (the same everywhere in :mod:`diagnostics.metrics`):

* **Month-equal weighting.** A period or seasonal mean is the plain mean of its monthly
  means; months are not weighted by their number of days. This keeps means independent of
  the calendar (models run in ``noleap`` or ``360_day`` are compared with ERA5 in the
  proleptic Gregorian calendar month by month). Because model and reference get the same
  rule, a bias changes with the weighting only through the model-minus-reference
  difference of the cycle inside the season. ``time_bnds`` is therefore not needed.
* **Seasons** are ``ANN``, ``DJF``, ``MAM``, ``JJA``, ``SON``. DJF of year Y is December of
  Y-1 with January and February of Y, and carries the label Y. Only complete seasons
  (all three months inside the selected period) enter seasonal means, so for a period
  1979-01:2014-12 the DJF mean uses the 35 winters 1980..2014 (Jan-Feb 1979 and Dec 2014
  are dropped). ``ANN`` time means use every month of the period.
* **Periods** are :class:`diagnostics.data.timeaxis.Period` (or ``"YYYY-MM:YYYY-MM"``)
  and must be fully covered by the data: the train and test periods are given separately
  by the caller and a field that misses months of a period is an error, not a shorter mean.
* **Ensembles**: a ``member`` dim is kept by time means; biases are those of the ensemble
  mean (mean over members of the time mean).
* **Missing cells** (below-ground masks of ``ta``/``ua``/``va``/``hus``/``zg500`` in physical
  models, SST over land): a time mean, seasonal mean or ensemble mean is NaN at a cell that misses
  any of its months (or members), so a mask that comes and goes with the surface pressure cannot
  bias a mean towards the months it left; area-weighted statistics of the maps then use the cells
  both sides have, weights renormalised (:mod:`.pattern`, :func:`diagnostics.data.grid.global_mean`;
  :mod:`.coverage` gives the area fraction scored).

All reductions are xarray reductions, so dask-backed inputs stay lazy.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data.grid import global_mean
from ..data.timeaxis import Period, month_index, select_period
from .pattern import weighted_rms

SEASON_MONTHS: dict[str, tuple[int, ...]] = {
    "ANN": tuple(range(1, 13)), "DJF": (12, 1, 2), "MAM": (3, 4, 5), "JJA": (6, 7, 8), "SON": (9, 10, 11)}
SEASONS: tuple[str, ...] = tuple(SEASON_MONTHS)


def _as_period(period: Period | str | None) -> Period | None:
    return Period.parse(period) if isinstance(period, str) else period


def in_period(field: xr.DataArray, period: Period | str | None) -> xr.DataArray:
    """The months of ``period`` (all of them, else ValueError); the whole field when None."""
    period = _as_period(period)
    if period is None:
        return field
    out = select_period(field, period)
    if out.sizes["time"] != len(period):
        raise ValueError(f"field {field.name!r} covers {out.sizes['time']} of the {len(period)} "
                         f"months of period {period}")
    return out


def month_of_year(field: xr.DataArray) -> xr.DataArray:
    """Calendar month 1..12 of each time step, as a ``time`` DataArray named ``month``."""
    return xr.DataArray(month_index(field["time"]) % 12 + 1, dims="time", name="month",
                        coords={"time": field["time"]})


def _season_positions(time: xr.DataArray, season: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions along ``time`` of the months of each complete season, grouped in order,
    and the season years (DJF labelled by its January)."""
    if season not in SEASON_MONTHS:
        raise ValueError(f"unknown season {season!r}; expected one of {', '.join(SEASONS)}")
    wanted = SEASON_MONTHS[season]
    idx = month_index(time)
    months, years = idx % 12 + 1, idx // 12
    season_year = years + ((months == 12) & (season == "DJF"))
    groups: dict[int, list[int]] = {}
    for pos in np.flatnonzero(np.isin(months, wanted)):
        groups.setdefault(int(season_year[pos]), []).append(int(pos))
    complete = [y for y in sorted(groups)
                if sorted(months[groups[y]]) == sorted(wanted)]
    positions = np.array([p for y in complete for p in sorted(groups[y], key=lambda q: idx[q])], dtype=int)
    return positions, np.array(complete, dtype=int)


def seasonal_mean(field: xr.DataArray, season: str = "DJF") -> xr.DataArray:
    """One mean per complete season (month-equal weights), along a new ``time`` dim.

    ``time`` holds the time value of the season's middle month (January for DJF, July for
    ANN = calendar-year means) and a ``year`` coordinate the season year (DJF 1980 =
    Dec 1979 + Jan + Feb 1980). Units of ``field``. Lazy for dask inputs.
    """
    positions, years = _season_positions(field["time"], season)
    n = len(SEASON_MONTHS[season])
    if years.size == 0:
        raise ValueError(f"field {field.name!r} holds no complete {season} season")
    selected = field.isel(time=positions)
    middle = selected["time"].values[n // 2::n]
    time_coords = [c for c in selected.coords if "time" in selected[c].dims]
    # groups of n consecutive months; a missing month makes its season NaN (coarsen's mean would skip it)
    grouped = selected.drop_vars(time_coords).coarsen(time=n).construct(time=("season_index", "season_month"))
    out = grouped.mean("season_month", skipna=False).rename(season_index="time")
    out = out.assign_coords(time=("time", middle, field["time"].attrs),
                            year=("time", years))
    out.attrs = dict(field.attrs)
    out.attrs["cell_methods"] = f"time: mean over {season} months"
    return out


def time_mean(field: xr.DataArray, period: Period | str | None = None, season: str = "ANN") -> xr.DataArray:
    """Time mean over ``period`` (whole field if None) and ``season`` (month-equal weights).

    ANN: mean of all months of the period; DJF/MAM/JJA/SON: mean over the complete seasons
    inside the period. Units of ``field``; ``member``/``plev`` dims are kept. Accumulated in
    float64 (result float64): dask sums a float32 field in float32, chunk by chunk, so a
    120-month mean of 1e5 Pa moved by tenths of a Pa with the chunking.
    """
    field = in_period(field, period)
    if season == "ANN":
        out = field.mean("time", skipna=False, dtype=np.float64)  # a cell missing a month is left out, not biased
    else:
        out = seasonal_mean(field, season).mean("time", skipna=False, dtype=np.float64)
    out.attrs = dict(field.attrs)
    return out


def monthly_climatology(field: xr.DataArray, period: Period | str | None = None) -> xr.DataArray:
    """Mean of each calendar month over ``period`` (whole field if None), dim ``month`` (1..12).

    Units of ``field``. Every calendar month must be present.
    """
    field = in_period(field, period)
    months = month_of_year(field)
    if np.unique(months.values).size != 12:
        raise ValueError(f"monthly climatology of {field.name!r} needs all 12 calendar months")
    # float64 partial sums (see time_mean), rounded back to the field's dtype: the anomalies stay float32
    # like the field (memory), and the rounding of a chunk-independent float64 mean is chunk-independent
    clim = field.groupby(months).mean("time", dtype=np.float64).astype(field.dtype)
    clim.attrs = dict(field.attrs)
    return clim


def monthly_anomalies(field: xr.DataArray, climatology_period: Period | str | None = None) -> xr.DataArray:
    """Field minus its monthly climatology: x'(t) = x(t) - clim[month(t)] (units of ``field``).

    The climatology is taken over ``climatology_period`` (whole field if None); the
    anomalies cover the whole field. With a ``member`` dim each member gets its own.
    """
    clim = monthly_climatology(field, climatology_period)
    anom = field.groupby(month_of_year(field)) - clim
    anom = anom.drop_vars("month", errors="ignore")
    anom.attrs = dict(field.attrs)
    anom.name = field.name
    return anom


def _ensemble_mean(field: xr.DataArray, member_dim: str) -> xr.DataArray:
    return field.mean(member_dim, keep_attrs=True, skipna=False) if member_dim in field.dims else field


def bias_map(model: xr.DataArray, reference: xr.DataArray, period: Period | str | None = None,
             season: str = "ANN", member_dim: str = "member") -> xr.DataArray:
    """Time-mean bias of the ensemble mean: mean_m(time_mean(model)) - time_mean(reference).

    Same ``period`` and ``season`` for both (see module conventions); units of the field;
    dims (lat, lon) or (plev, lat, lon). Model and reference must share their grid.
    """
    m = _ensemble_mean(time_mean(model, period, season), member_dim)
    r = _ensemble_mean(time_mean(reference, period, season), member_dim)
    return bias_of_means(m, r, model.name, season, model.attrs.get("units", ""))


def bias_of_means(m: xr.DataArray, r: xr.DataArray, name: str | None, season: str, units: str) -> xr.DataArray:
    """``m - r`` of an ensemble-mean and a reference time mean on the same grid (exact alignment,
    else ValueError): the last step of :func:`bias_map`, for callers that hold both means already."""
    try:
        m, r = xr.align(m, r, join="exact")
    except ValueError as exc:
        raise ValueError(f"model and reference are not on the same grid: {exc}") from None
    bias = m - r
    bias.attrs = {"units": units, "long_name": f"time-mean bias ({season})"}
    bias.name = f"{name}_bias" if name else "bias"
    return bias


def bias_summary(bias: xr.DataArray) -> dict[str, xr.DataArray]:
    """Global numbers of a bias map: ``mean`` = area-weighted mean bias, ``rms`` =
    sqrt(area-weighted mean of bias^2) (uncentred), both in the field's units.

    Dims other than lat/lon (plev) are kept.
    """
    return {"mean": global_mean(bias), "rms": weighted_rms(bias)}


def zonal_mean_bias(model: xr.DataArray, reference: xr.DataArray, period: Period | str | None = None,
                    season: str = "ANN", member_dim: str = "member") -> xr.DataArray:
    """Zonal mean of :func:`bias_map` (plain mean over ``lon``: cells on a latitude circle have
    equal area), dims (plev, lat) for 3-D fields; units of the field."""
    out = bias_map(model, reference, period, season, member_dim).mean("lon", keep_attrs=True)
    out.attrs["long_name"] = f"zonal-mean bias ({season})"
    return out
