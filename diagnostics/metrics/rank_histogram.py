"""Rank histogram (Talagrand diagram) of an ensemble against observations.

The rank of the observation y among M members is r = 1 + #{x_i < y} + U, where, when t
members tie with y, U is drawn uniformly from {0, ..., t} (Hamill 2001; the same rule as
``xskillscore.rank_histogram(random_for_tied=True)``). Ranks run 1..M+1, so the histogram
has M+1 bins (dim ``bin``); a reliable ensemble gives a flat histogram, each bin holding
about N/(M+1) of the N cases. Counts are dimensionless.

Written here rather than calling xskillscore because xskillscore ranks with two
``scipy.stats.rankdata`` calls per point on an (M+1)-long concatenation and draws ties
from numpy's global random state; here the counts below/equal come from the same sorted
members as the CRPS (``diagnostics.metrics.sorted_ensemble``: numba kernel, or numpy with
identical results), lazy on dask, and seeded. ``crps.ensemble_scores`` gives the ranks
together with both CRPS forms from one sort; ``histogram_of_ranks`` counts them.

Points with a NaN observation or any NaN member are left out (the bins would not be
comparable across points with different member counts).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from .sorted_ensemble import apply_sorted


def _count_core(rank: np.ndarray, n_axes: int, n_bins: int) -> np.ndarray:
    """Histogram of ranks 1..n_bins over the last ``n_axes`` axes (0 = invalid, not counted)."""
    lead = rank.shape[: rank.ndim - n_axes]
    flat = rank.reshape(int(np.prod(lead, dtype=np.int64)), -1)
    counts = np.stack([np.bincount(row, minlength=n_bins + 1)[1:] for row in flat]) if flat.shape[0] \
        else np.zeros((0, n_bins), dtype=np.int64)
    return counts.reshape(*lead, n_bins)


def observation_rank(forecast: xr.DataArray, observation: xr.DataArray, member_dim: str = "member",
                     seed: int = 0) -> xr.DataArray:
    """Pointwise rank 1..M+1 of the observation among the members (0 where invalid)."""
    (rank,) = apply_sorted(forecast, observation, member_dim, ("rank",), seed)
    return rank.rename("rank").assign_attrs(units="1", long_name="rank of the observation among the members")


def histogram_of_ranks(rank: xr.DataArray, n_bins: int, dims: Sequence[str] | None = None) -> xr.DataArray:
    """Counts of ranks 1..``n_bins`` (0 = invalid, not counted) over ``dims`` (all if None); dim ``bin``.

    For ranks from ``observation_rank`` or ``crps.ensemble_scores``, ``n_bins`` = M + 1.
    """
    dims = list(rank.dims if dims is None else dims)
    if rank.chunks is not None:
        rank = rank.chunk({d: -1 for d in dims})
    hist = xr.apply_ufunc(
        _count_core, rank, input_core_dims=[dims], output_core_dims=[["bin"]],
        kwargs={"n_axes": len(dims), "n_bins": n_bins}, dask="parallelized",
        output_dtypes=[np.int64], dask_gufunc_kwargs={"output_sizes": {"bin": n_bins}})
    hist = hist.assign_coords(bin=np.arange(1, n_bins + 1))
    return hist.rename("rank_histogram").assign_attrs(
        units="1", long_name="rank histogram (count of observation ranks among members)")


def rank_histogram(forecast: xr.DataArray, observation: xr.DataArray, member_dim: str = "member",
                   dims: Sequence[str] | None = None, seed: int = 0) -> xr.DataArray:
    """Counts of observation ranks in M+1 bins (dim ``bin``, coords 1..M+1) over ``dims``.

    ``dims=None`` counts over all dims of the observation. Ties are broken at random with
    a generator seeded by ``seed`` (each dask chunk reuses the same seed).
    """
    n_bins = forecast.sizes[member_dim] + 1
    return histogram_of_ranks(observation_rank(forecast, observation, member_dim, seed), n_bins, dims)
