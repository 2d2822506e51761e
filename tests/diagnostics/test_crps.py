"""CRPS against properscoring / xskillscore / scoringrules, the pairwise definition and closed forms;
the shared sort (numba kernel and numpy path bit-identical) and its layouts."""

from __future__ import annotations

import warnings

import numpy as np
import properscoring
import pytest
import scipy.stats
import xarray as xr
import xskillscore

from diagnostics.metrics import sorted_ensemble
from diagnostics.metrics.crps import crps_ensemble, ensemble_scores
from diagnostics.metrics.rank_histogram import histogram_of_ranks, observation_rank, rank_histogram


def _ensemble(rng: np.random.Generator, members: int = 7, shape: tuple[int, ...] = (40, 6)):
    """Random ensemble with ties (values rounded to 0.1) and NaNs in obs and members."""
    f = rng.normal(size=(members, *shape)).round(1)
    o = rng.normal(size=shape).round(1)
    f[0, 0, 0] = np.nan          # one NaN member
    f[:3, 1, 1] = np.nan         # several NaN members
    f[:, 2, 2] = np.nan          # all members NaN
    f[1:, 3, 3] = np.nan         # a single valid member
    o[4, 4] = np.nan             # NaN observation
    o[5, 5] = f[2, 5, 5]         # observation tied with a member
    dims = ("time", "lat")
    return (xr.DataArray(f, dims=("member", *dims), attrs={"units": "K"}),
            xr.DataArray(o, dims=dims, attrs={"units": "K"}))


def _pairwise(f: np.ndarray, y: float, fair: bool) -> float:
    """The definition, O(M^2), NaN members dropped (independent of the sorted form)."""
    x = f[~np.isnan(f)]
    m = x.size
    if np.isnan(y) or m == 0 or (fair and m < 2):
        return np.nan
    pair_sum = np.abs(x[:, None] - x[None, :]).sum()
    return np.abs(x - y).mean() - pair_sum / (2 * m * (m - 1) if fair else 2 * m * m)


def test_standard_form_equals_properscoring_and_xskillscore():
    forecast, obs = _ensemble(np.random.default_rng(0))
    ours = crps_ensemble(forecast, obs)
    with warnings.catch_warnings():  # properscoring warns on the all-NaN point
        warnings.simplefilter("ignore", RuntimeWarning)
        ps = properscoring.crps_ensemble(obs.values, forecast.values, axis=0)
        xs = xskillscore.crps_ensemble(obs, forecast, dim=[])
    assert ours.dims == obs.dims and ours.attrs["units"] == "K"
    np.testing.assert_array_equal(np.isnan(ours.values), np.isnan(ps))
    assert np.isnan(ours.values).sum() == 2  # NaN observation, all members NaN
    np.testing.assert_allclose(ours.values, ps, atol=1e-6, rtol=0)
    np.testing.assert_allclose(ours.values, xs.transpose(*ours.dims).values, atol=1e-6, rtol=0)


@pytest.mark.parametrize("fair", [False, True])
def test_matches_pairwise_definition(fair):
    forecast, obs = _ensemble(np.random.default_rng(1), members=9)
    ours = crps_ensemble(forecast, obs, fair=fair).values
    f = np.moveaxis(forecast.values, 0, -1)
    ref = np.array([[_pairwise(f[i, j], obs.values[i, j], fair) for j in range(f.shape[1])]
                    for i in range(f.shape[0])])
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, atol=1e-12, rtol=0)


def test_two_member_closed_form():
    forecast = xr.DataArray([0.0, 1.0], dims="member")
    obs = xr.DataArray(0.0)
    assert float(crps_ensemble(forecast, obs)) == pytest.approx(0.25, abs=1e-15)
    assert float(crps_ensemble(forecast, obs, fair=True)) == pytest.approx(0.0, abs=1e-15)


def test_nan_policy_drops_members_and_propagates_observation():
    forecast = xr.DataArray([[0.0, 1.0, np.nan], [0.0, 1.0, 2.0]], dims=("case", "member"))
    obs = xr.DataArray([0.0, np.nan], dims="case")
    out = crps_ensemble(forecast, obs)
    assert float(out[0]) == pytest.approx(0.25)  # as if only [0, 1]
    assert np.isnan(out[1])
    one = xr.DataArray([3.0, np.nan], dims="member")
    assert float(crps_ensemble(one, xr.DataArray(1.0))) == pytest.approx(2.0)  # MAE of one member
    assert np.isnan(crps_ensemble(one, xr.DataArray(1.0), fair=True))


def test_gaussian_closed_form_approached_by_large_ensemble():
    exact = 2 * scipy.stats.norm.pdf(0.0) - 1 / np.sqrt(np.pi)  # crps(N(0,1), 0)
    assert exact == pytest.approx(0.2336950, abs=5e-8)
    assert properscoring.crps_gaussian(0.0, 0.0, 1.0) == pytest.approx(exact, abs=1e-12)
    # quantile ensemble x_i = Phi^-1((i - 1/2)/M): the standard form converges as O(1/M^2)
    # (measured 6.8e-5 at M = 100, 7.9e-7 at M = 1000); the fair form, built for random
    # draws, is lower by (1/2) E|X - X'| / (M - 1) = 0.564 / M on a quantile ensemble.
    for m, tol in ((100, 1e-4), (1000, 1e-6)):
        members = xr.DataArray(scipy.stats.norm.ppf((np.arange(m) + 0.5) / m), dims="member")
        standard = float(crps_ensemble(members, xr.DataArray(0.0)))
        fair = float(crps_ensemble(members, xr.DataArray(0.0), fair=True))
        assert standard == pytest.approx(exact, abs=tol)
        assert fair == pytest.approx(exact - 1 / np.sqrt(np.pi) / m, abs=2 * tol)
    # random ensemble: sampling error of the fair CRPS ~ 0.5/sqrt(M) = 0.0022 at M = 50000
    draws = xr.DataArray(np.random.default_rng(2).normal(size=50_000), dims="member")
    assert float(crps_ensemble(draws, xr.DataArray(0.0), fair=True)) == pytest.approx(exact, abs=0.009)


def test_calibrated_five_member_ensemble():
    """Members and observation iid N(0,1), M = 5, averaged over N cases.

    Exact expectations: E|X - Y| = 2/sqrt(pi), so
    E[standard] = (2/sqrt(pi)) (1 - (M-1)/(2M)) = 0.67703 and
    E[fair] = 1/sqrt(pi) = 0.56419 = E[crps(N(0,1), Y)] (the fair form is unbiased).
    (The issue's 0.682 / 0.569 / 0.567 are within 1 % of these; the exact values are
    used.) The per-case std of the score is about 0.5, so with N = 200 000 the sampling
    error of each mean is about 0.0011; tolerance 0.005 (4.5 sigma).
    """
    rng = np.random.default_rng(3)
    n, m = 200_000, 5
    forecast = xr.DataArray(rng.normal(size=(m, n)), dims=("member", "case"))
    obs = xr.DataArray(rng.normal(size=n), dims="case")
    standard = crps_ensemble(forecast, obs)
    fair = crps_ensemble(forecast, obs, fair=True)
    sqrt_pi = np.sqrt(np.pi)
    assert float(standard.std()) / np.sqrt(n) < 0.0015
    assert float(standard.mean()) == pytest.approx(2 / sqrt_pi * (1 - (m - 1) / (2 * m)), abs=0.005)
    assert float(fair.mean()) == pytest.approx(1 / sqrt_pi, abs=0.005)
    # exact CRPS of the true N(0,1) forecast on the same observations
    assert float(np.mean(properscoring.crps_gaussian(obs.values, 0.0, 1.0))) == pytest.approx(1 / sqrt_pi, abs=0.005)
    # the difference between the two forms is deterministic given the spread term
    assert float((standard - fair).mean()) > 0.1


@pytest.mark.parametrize("fair", [False, True])
def test_dask_is_lazy_and_equal(fair):
    forecast, obs = _ensemble(np.random.default_rng(4), members=6, shape=(40, 6))
    lazy = crps_ensemble(forecast.chunk({"member": 2, "time": 10}), obs.chunk({"time": 10}), fair=fair)
    assert lazy.chunks is not None  # nothing computed yet
    assert lazy.chunks[0] == (10, 10, 10, 10)
    np.testing.assert_allclose(lazy.compute().values, crps_ensemble(forecast, obs, fair=fair).values,
                               atol=1e-13, rtol=1e-12, equal_nan=True)


def test_missing_member_dim_is_an_error():
    with pytest.raises(ValueError, match="member"):
        crps_ensemble(xr.DataArray([1.0, 2.0], dims="x"), xr.DataArray(1.0))


# --------------------------------------------------------------------------- shared sort, numba and numpy
needs_numba = pytest.mark.skipif(not sorted_ensemble.NUMBA, reason="numba not installed")


@pytest.mark.parametrize("n", [*range(0, 18), 31, 50, 64])
def test_batcher_network_sorts(n):
    """0-1 principle (exhaustive up to 12 wires) and random reals: the network sorts."""
    net = sorted_ensemble.batcher_network(n)
    assert ((net[:, 0] < net[:, 1]) & (net[:, 1] < max(n, 1))).all() if len(net) else n <= 1
    rng = np.random.default_rng(n)
    cases = (((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(float) if n <= 12
             else rng.integers(0, 2, size=(2000, n)).astype(float))
    cases = np.concatenate([cases, rng.normal(size=(200, n)).round(1)])
    for i, j in net:  # compare-exchange on all cases at once
        lo, hi = np.minimum(cases[:, i], cases[:, j]), np.maximum(cases[:, i], cases[:, j])
        cases[:, i], cases[:, j] = lo, hi
    assert (np.diff(cases, axis=1) >= 0).all()
    if n == 50:
        assert len(net) == 403  # Batcher on 64 wires has 543; restricted to 50: 403


def _hard_case(rng: np.random.Generator, members: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """(member, 7, 45) with ties, NaN members (some, all, all but one), NaN obs, -0.0 and inf obs."""
    f = rng.normal(size=(members, 7, 45)).round(1).astype(dtype)
    o = rng.normal(size=(7, 45)).round(1).astype(dtype)
    if members:
        f[0, 0, 0] = np.nan
        f[: members // 2, 1, 1] = np.nan
        f[:, 2, 2] = np.nan
        f[1:, 3, 3] = np.nan
        o[5, 5] = f[-1, 5, 5]
        f[:, 6, :3] = f[0, 6, :3]  # all members tied
    o[4, 4] = np.nan
    return f, o


@needs_numba
@pytest.mark.parametrize("members", [0, 1, 2, 3, 5, 17, 50, 64, 65, 300])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_numba_and_numpy_paths_identical(members, dtype):
    """Same arithmetic in the same order: bit-identical CRPS (both forms) and rank counts.

    Sorting networks from 0 to 300 wires (padding to 2^k dropped: 65 and 300 are just past it).
    """
    f, o = _hard_case(np.random.default_rng(members), members, dtype)
    fast = sorted_ensemble.sorted_scores(f, o, use_numba=True)
    slow = sorted_ensemble.sorted_scores(f, o, use_numba=False)
    np.testing.assert_array_equal(fast.crps, slow.crps)
    np.testing.assert_array_equal(fast.crps_fair, slow.crps_fair)
    np.testing.assert_array_equal(fast.complete, slow.complete)
    np.testing.assert_array_equal(fast.below[fast.complete], slow.below[slow.complete])
    np.testing.assert_array_equal(fast.ties[fast.complete], slow.ties[slow.complete])
    if members >= 2:  # and both are the definition
        ref = np.array([[_pairwise(f[:, i, j].astype(float), float(o[i, j]), False) for j in range(45)]
                        for i in range(7)])
        np.testing.assert_allclose(fast.crps, ref, atol=1e-12, rtol=0)


@pytest.mark.parametrize("use_numba", [False, pytest.param(True, marks=needs_numba)])
def test_layouts_read_in_place_or_copied_give_the_same(use_numba):
    """Member-first contiguous, a time slice (rows apart), member-last, reversed, broadcast obs, ints."""
    rng = np.random.default_rng(5)
    f = rng.normal(size=(9, 30, 8, 10))
    o = rng.normal(size=(30, 8, 10))
    base = sorted_ensemble.sorted_scores(f, o, use_numba=use_numba)
    part = sorted_ensemble.sorted_scores(f[:, 3:7], o[3:7], use_numba=use_numba)
    np.testing.assert_array_equal(part.crps, base.crps[3:7])
    last = sorted_ensemble.sorted_scores(np.moveaxis(f, 0, -1), o, member_axis=-1, use_numba=use_numba)
    np.testing.assert_array_equal(last.crps_fair, base.crps_fair)
    flipped = sorted_ensemble.sorted_scores(f[::-1, :, ::-1], o[:, ::-1], use_numba=use_numba)
    np.testing.assert_array_equal(flipped.crps, base.crps[:, ::-1])
    one = sorted_ensemble.sorted_scores(f, o[:1], use_numba=use_numba)  # observation broadcast over time
    np.testing.assert_array_equal(one.crps[0], base.crps[0])
    ints = sorted_ensemble.sorted_scores((f * 10).astype(np.int32), (o * 10).astype(np.int32),
                                         use_numba=use_numba)
    np.testing.assert_array_equal(ints.crps, sorted_ensemble.sorted_scores(
        (f * 10).astype(np.int32).astype(float), (o * 10).astype(np.int32), use_numba=use_numba).crps)


def test_fair_and_standard_equal_scoringrules():
    """scoringrules' energy/quantile-decomposition (standard) and fair/PWM (fair) estimators."""
    sr = pytest.importorskip("scoringrules")
    rng = np.random.default_rng(6)
    f = rng.normal(size=(20, 30, 12)).round(1)  # ties included
    o = rng.normal(size=(30, 12)).round(1)
    ours = crps_ensemble(xr.DataArray(f, dims=("member", "a", "b")), xr.DataArray(o, dims=("a", "b")))
    fair = crps_ensemble(xr.DataArray(f, dims=("member", "a", "b")), xr.DataArray(o, dims=("a", "b")), fair=True)
    for estimator in ("nrg", "qd"):
        np.testing.assert_allclose(ours.values, sr.crps_ensemble(o, f, m_axis=0, estimator=estimator,
                                                                 backend="numpy"), atol=1e-12, rtol=0)
    for estimator in ("fair", "pwm"):
        np.testing.assert_allclose(fair.values, sr.crps_ensemble(o, f, m_axis=0, estimator=estimator,
                                                                 backend="numpy"), atol=1e-12, rtol=0)


@pytest.mark.parametrize("chunked", [False, True])
def test_ensemble_scores_equal_the_single_entry_points(chunked):
    forecast, obs = _ensemble(np.random.default_rng(7), members=6)
    if chunked:
        forecast, obs = forecast.chunk({"time": 15}), obs.chunk({"time": 15})
    scores = ensemble_scores(forecast, obs, seed=3)
    assert set(scores.data_vars) == {"crps", "crps_fair", "rank"}
    assert (scores["crps"].chunks is not None) == chunked
    assert scores["crps"].attrs["units"] == "K" and scores["rank"].dtype == np.int64
    xr.testing.assert_identical(scores["crps"].compute(), crps_ensemble(forecast, obs).compute())
    xr.testing.assert_identical(scores["crps_fair"].compute(), crps_ensemble(forecast, obs, fair=True).compute())
    np.testing.assert_array_equal(scores["rank"].values, observation_rank(forecast, obs, seed=3).values)
    counts = histogram_of_ranks(scores["rank"], 7, dims=("time",))
    np.testing.assert_array_equal(counts.values, rank_histogram(forecast, obs, dims=("time",), seed=3).values)


def test_dask_path_reads_members_in_place_one_task_per_chunk():
    """No member-last concatenation in the graph, and each chunk is sorted once for all outputs."""
    forecast, obs = _ensemble(np.random.default_rng(8), members=5)
    scores = ensemble_scores(forecast.chunk({"time": 10}), obs.chunk({"time": 10}))
    graph = dict(scores.__dask_graph__())
    kernel_tasks = [k for k in graph if isinstance(k, tuple) and "stacked_block" in str(k[0])]
    assert len(kernel_tasks) == 4  # 40 months / 10


def test_numpy_fallback_when_numba_is_unavailable():
    """MD_NO_NUMBA=1 (as without numba installed): same numbers from the numpy path, numba never imported."""
    code = ("import sys; import numpy as np; from diagnostics.metrics import crps, sorted_ensemble as s; "
            "assert not s.NUMBA; "
            "f = np.random.default_rng(0).normal(size=(7, 50)); r = s.sorted_scores(f, f[0] * 0.5); "
            "assert 'numba' not in sys.modules; "
            "print(np.stack([r.crps, r.crps_fair]).tolist())")  # repr of a float round-trips exactly
    import ast
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True,
                         env={**os.environ, "MD_NO_NUMBA": "1"}).stdout
    f = np.random.default_rng(0).normal(size=(7, 50))
    r = sorted_ensemble.sorted_scores(f, f[0] * 0.5)
    np.testing.assert_array_equal(np.array(ast.literal_eval(out.decode())), np.stack([r.crps, r.crps_fair]))
