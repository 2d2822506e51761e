"""Ensembles around a trajectory and under a constraint: global-mean anomaly series and distances.

An ensemble generated around a conditioning run (``emulator-run --around``, docs/residual.md) should
have the internal variability of independent realisations and an ensemble mean on the forced
signal, not on the conditioning run's own weather; a guided run (``--guide dry-mass``,
``--guide global-tas=+2``, docs/guidance.md) should hold a global mean at a target. With the
noise floor (other realisations of the reference's climate, ``--noise-floor``) as the estimate
of the forced signal, for N members, M noise-floor members and sigma^2 the noise floor's
member variance (area-weighted mean over the grid, mean over months):

- distance of the ensemble mean to the forced-signal estimate, from sampling alone:
  ``RMS(mean_N - mean_M) = sigma sqrt(1/N + 1/M)``;
- distance of one more realisation (the conditioning run) to it: ``sigma sqrt(1 + 1/M)``;
- correlation of ``mean_N - mean_M`` with ``c - mean_M`` from the shared estimate alone (the
  conditioning run's weather not followed): ``(1/M) / sqrt((1/N + 1/M)(1 + 1/M))``.

Distances are of monthly anomalies (each field minus its own monthly climatology of the
climatology period, so a climatological bias does not count as weather), area-weighted RMS over
(time, lat, lon). Series are global means of each member minus the *reference's* climatology
(so a drift or an imposed offset shows). Units: those of the field; correlations 1.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..data.grid import area_weights, global_mean
from .climatology import month_of_year


def global_anomaly_series(series: xr.DataArray, reference_climatology: xr.DataArray) -> xr.DataArray:
    """``series - global_mean(reference_climatology)[month]``: the area-weighted global-mean series of a
    field (per month, and member) minus the global mean of the reference's monthly climatology
    (dim ``month`` 1..12, as :func:`~.climatology.monthly_climatology` returns it). Equal to the global
    mean of the anomaly field where no cell is missing (the global mean is linear); taking it from
    the series keeps the members' fields out of memory."""
    out = series.groupby(month_of_year(series)) - global_mean(reference_climatology)
    return out.drop_vars("month", errors="ignore")


def weighted_rms(diff: xr.DataArray) -> float:
    """sqrt(area-weighted global mean of the time mean of diff^2); NaN cells left out."""
    return float(np.sqrt(global_mean((diff.astype(np.float64) ** 2).mean("time"))))


def weighted_corr(a: xr.DataArray, b: xr.DataArray) -> float:
    """Area-weighted correlation over (time, lat, lon) of two anomaly fields (means removed)."""
    w = area_weights(a["lat"]).broadcast_like(a).values
    x, y = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    w, x, y = w[ok], x[ok], y[ok]
    x, y = x - np.average(x, weights=w), y - np.average(y, weights=w)
    return float(np.sum(w * x * y) / np.sqrt(np.sum(w * x * x) * np.sum(w * y * y)))


def member_variance(field: xr.DataArray) -> xr.DataArray:
    """Unbiased variance over members (ddof 1), time-mean map ``[lat, lon]`` (units^2)."""
    return field.astype(np.float64).var("member", ddof=1).mean("time")


def spread(variance_map: xr.DataArray) -> float:
    """sigma = sqrt(area-weighted global mean of the member-variance map)."""
    return float(np.sqrt(global_mean(variance_map)))


def sampling_distance(sigma: float, n_members: int, m_floor: int) -> float:
    """RMS(mean of N - mean of M) of independent realisations of std sigma: sigma sqrt(1/N + 1/M)."""
    return float(sigma * np.sqrt(1.0 / n_members + 1.0 / m_floor))


def shared_estimate_correlation(n_members: int, m_floor: int) -> float:
    """corr(mean_N - mean_M, c - mean_M) for independent realisations: only the shared -mean_M term,
    (1/M) / sqrt((1/N + 1/M)(1 + 1/M))."""
    n, m = float(n_members), float(m_floor)
    return float((1 / m) / np.sqrt((1 / n + 1 / m) * (1 + 1 / m)))
