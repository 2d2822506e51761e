"""Rank histogram against xskillscore.rank_histogram and the flatness of a reliable ensemble.

Flatness is judged by a chi-square goodness-of-fit test at the 0.1 % level (p > 0.001),
with a negative control showing the test rejects an under-dispersed ensemble.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import xarray as xr
import xskillscore

from diagnostics.metrics.rank_histogram import histogram_of_ranks, observation_rank, rank_histogram


def _reliable(rng: np.random.Generator, members: int, shape=(60, 5, 8)):
    dims = ("time", "lat", "lon")
    obs = xr.DataArray(rng.normal(size=shape), dims=dims)
    forecast = xr.DataArray(rng.normal(size=(members, *shape)), dims=("member", *dims))
    return forecast, obs


def test_equals_xskillscore_without_ties():
    forecast, obs = _reliable(np.random.default_rng(0), members=7)
    for dims in (None, ["time"], ["time", "lon"]):
        ours = rank_histogram(forecast, obs, dims=dims)
        theirs = xskillscore.rank_histogram(obs, forecast, dim=dims).rename(rank="bin")
        theirs = theirs.assign_coords(bin=theirs["bin"].astype(int))
        assert ours.sizes["bin"] == 8
        xr.testing.assert_equal(ours.transpose(*theirs.dims).drop_vars("bin"), theirs.drop_vars("bin"))
        np.testing.assert_array_equal(ours["bin"].values, theirs["bin"].values)


def test_ties_same_distribution_as_xskillscore():
    """Integer-valued members and observations (many ties): both histograms are random;
    a chi-square homogeneity test must not tell them apart (p > 0.001)."""
    rng = np.random.default_rng(1)
    shape = (400, 5, 8)
    obs = xr.DataArray(rng.integers(0, 4, size=shape).astype(float), dims=("time", "lat", "lon"))
    forecast = xr.DataArray(rng.integers(0, 4, size=(5, *shape)).astype(float),
                            dims=("member", "time", "lat", "lon"))
    ours = rank_histogram(forecast, obs).values
    np.random.seed(1)  # xskillscore draws from the global state
    theirs = xskillscore.rank_histogram(obs, forecast).values
    assert ours.sum() == theirs.sum() == obs.size
    assert scipy.stats.chi2_contingency(np.stack([ours, theirs])).pvalue > 1e-3
    # and both are flat: obs and members are exchangeable
    assert scipy.stats.chisquare(ours).pvalue > 1e-3


def test_all_tied_is_uniform():
    forecast = xr.DataArray(np.zeros((4, 5000)), dims=("member", "case"))
    obs = xr.DataArray(np.zeros(5000), dims="case")
    counts = rank_histogram(forecast, obs).values
    assert counts.sum() == 5000 and scipy.stats.chisquare(counts).pvalue > 1e-3


def test_reliable_flat_and_underdispersive_rejected():
    forecast, obs = _reliable(np.random.default_rng(2), members=10)
    counts = rank_histogram(forecast, obs)
    assert list(counts["bin"].values) == list(range(1, 12))
    assert scipy.stats.chisquare(counts.values).pvalue > 1e-3
    narrow = 0.5 * forecast
    u_shape = rank_histogram(narrow, obs).values
    assert scipy.stats.chisquare(u_shape).pvalue < 1e-6
    assert u_shape[0] > 2 * u_shape[5] and u_shape[-1] > 2 * u_shape[5]


def test_nan_points_left_out_and_ranks_defined():
    forecast = xr.DataArray([[0.0, 1.0, 2.0], [0.0, np.nan, 2.0], [0.0, 1.0, 2.0]], dims=("case", "member"))
    obs = xr.DataArray([1.5, 1.0, np.nan], dims="case")
    assert list(observation_rank(forecast, obs).values) == [3, 0, 0]
    counts = rank_histogram(forecast, obs)
    assert counts.values.tolist() == [0, 0, 1, 0]


def test_lazy_on_dask():
    forecast, obs = _reliable(np.random.default_rng(3), members=5)
    lazy = rank_histogram(forecast.chunk(time=20), obs.chunk(time=20), dims=["time"])
    assert lazy.chunks is not None
    np.testing.assert_array_equal(lazy.compute().values, rank_histogram(forecast, obs, dims=["time"]).values)


@pytest.mark.parametrize("seed", [0, 7])
def test_seeded(seed):
    forecast = xr.DataArray(np.zeros((3, 100)), dims=("member", "case"))
    obs = xr.DataArray(np.zeros(100), dims="case")
    a = observation_rank(forecast, obs, seed=seed)
    assert (a == observation_rank(forecast, obs, seed=seed)).all()
    assert not (a == observation_rank(forecast, obs, seed=seed + 1)).all()


def _brute_rank(f: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """The definition by direct counting (the pre-shared-sort implementation), members first."""
    below, ties = (f < y).sum(axis=0), (f == y).sum(axis=0)
    extra = np.floor((ties + 1) * np.random.default_rng(seed).random(below.shape)).astype(np.int64)
    return np.where(np.isnan(y) | np.isnan(f).any(axis=0), 0, 1 + below + extra)


@pytest.mark.parametrize("use_numba", [False, True])
def test_ranks_from_the_sort_equal_direct_counting(use_numba, monkeypatch):
    """Same ranks, draw for draw, as counting below/equal directly: ties, NaNs, float32, chunks."""
    from diagnostics.metrics import sorted_ensemble
    if use_numba and not sorted_ensemble.NUMBA:
        pytest.skip("numba not installed")
    monkeypatch.setattr(sorted_ensemble, "NUMBA", use_numba)
    rng = np.random.default_rng(4)
    f = rng.integers(0, 5, size=(6, 30, 4, 5)).astype(np.float32)
    y = rng.integers(0, 5, size=(30, 4, 5)).astype(np.float32)
    f[2, 0, 0, 0] = np.nan
    y[1, 1, 1] = np.nan
    forecast = xr.DataArray(f, dims=("member", "time", "lat", "lon"))
    obs = xr.DataArray(y, dims=("time", "lat", "lon"))
    np.testing.assert_array_equal(observation_rank(forecast, obs, seed=5).values, _brute_rank(f, y, 5))
    lazy = observation_rank(forecast.chunk(time=10), obs.chunk(time=10), seed=5)
    expected = np.concatenate([_brute_rank(f[:, s:s + 10], y[s:s + 10], 5) for s in (0, 10, 20)])
    np.testing.assert_array_equal(lazy.values, expected)  # each chunk draws with the same seed


def test_histogram_of_ranks_counts_and_skips_invalid():
    rank = xr.DataArray([[1, 2, 2, 0], [4, 4, 0, 0]], dims=("time", "x"))
    counts = histogram_of_ranks(rank, 4, dims=["x"])
    assert counts.dims == ("time", "bin") and list(counts["bin"].values) == [1, 2, 3, 4]
    assert counts.values.tolist() == [[1, 2, 0, 0], [0, 0, 0, 2]]
    assert histogram_of_ranks(rank, 4).values.tolist() == [1, 2, 0, 2]
