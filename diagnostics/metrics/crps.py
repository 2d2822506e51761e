"""Continuous ranked probability score (CRPS) of an ensemble, standard and fair forms.

For an ensemble x_1..x_M and an observation y (Gneiting and Raftery 2007)

    CRPS       = (1/M) sum_i |x_i - y| - 1/(2 M^2)      sum_ij |x_i - x_j|   (standard)
    CRPS_fair  = (1/M) sum_i |x_i - y| - 1/(2 M (M-1))  sum_ij |x_i - x_j|   (fair)

The standard form is the CRPS of the empirical distribution of the members
(properscoring, xskillscore); the fair form (Ferro 2014, WeatherBench 2) is an unbiased
estimate of the CRPS of the distribution the members are drawn from, so ensembles of
different sizes can be compared. Units are those of the field (K for ``tas``).

With the members sorted, x_(1) <= ... <= x_(M),

    (1/2) sum_ij |x_i - x_j| = sum_i (2i - M - 1) x_(i),

so both forms cost one sort, O(M log M) (properscoring's numpy path builds the M x M
difference matrix). The sort, and the sums, are ``diagnostics.metrics.sorted_ensemble``'s:
a numba kernel (sorting network, vectorised across points, members read in place on the
leading axis) when numba is installed, otherwise numpy with bit-identical results.
``ensemble_scores`` returns both forms and the observation's rank from that one sort;
``crps_ensemble`` is the single-form entry point. Neither peer library offers the fair form.
"""

from __future__ import annotations

import xarray as xr

from .sorted_ensemble import apply_sorted


def _attrs(forecast: xr.DataArray, observation: xr.DataArray, long_name: str) -> dict[str, str]:
    units = forecast.attrs.get("units", observation.attrs.get("units"))
    return {"long_name": long_name, **({"units": units} if units is not None else {})}


def crps_ensemble(forecast: xr.DataArray, observation: xr.DataArray, member_dim: str = "member",
                  fair: bool = False) -> xr.DataArray:
    """Pointwise ensemble CRPS (member dim reduced), in the units of the field.

    ``fair=False``: standard form, equal to ``properscoring.crps_ensemble`` /
    ``xskillscore.crps_ensemble``. ``fair=True``: WeatherBench 2 fair form with
    1/(2 M (M-1)) for the spread term (needs M >= 2). See the module docstring for formulas.

    NaN handling (same as properscoring's numpy path): a NaN observation gives NaN; NaN
    members are dropped and M is the number of valid members at that point.

    Lazy on dask-backed inputs (one blockwise task per chunk, the members read on their
    stored axis): chunks along the member dim are merged, all other chunks are kept, so
    ``md-diagnose`` can stream it. Computed in float64. When both forms (or the rank
    histogram too) are wanted, ``ensemble_scores`` sorts once for all.
    """
    (out,) = apply_sorted(forecast, observation, member_dim, ("crps_fair" if fair else "crps",))
    out.attrs = _attrs(forecast, observation, ("fair " if fair else "") + "ensemble CRPS")
    return out.rename("crps_fair" if fair else "crps")


def ensemble_scores(forecast: xr.DataArray, observation: xr.DataArray, member_dim: str = "member",
                    seed: int = 0) -> xr.Dataset:
    """Standard CRPS, fair CRPS and the observation's rank per point, from one sort of the members.

    Returns a Dataset with the observation's dims: ``crps`` and ``crps_fair`` (float64, field
    units; identical to ``crps_ensemble(fair=False / True)``) and ``rank`` (int64, 1..M+1, 0
    where the observation or any member is NaN; identical to
    ``rank_histogram.observation_rank(seed=seed)``, ties broken per chunk by
    ``default_rng(seed)``). Lazy on dask input, one task per chunk for all three. Count the
    ranks with ``rank_histogram.histogram_of_ranks(rank, M + 1, dims)``.
    """
    crps, fair, rank = apply_sorted(forecast, observation, member_dim, ("crps", "crps_fair", "rank"), seed)
    return xr.Dataset({
        "crps": crps.assign_attrs(_attrs(forecast, observation, "ensemble CRPS")),
        "crps_fair": fair.assign_attrs(_attrs(forecast, observation, "fair ensemble CRPS")),
        "rank": rank.assign_attrs(units="1", long_name="rank of the observation among the members"),
    })
