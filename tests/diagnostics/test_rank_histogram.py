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

from diagnostics.metrics.rank_histogram import observation_rank, rank_histogram


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
