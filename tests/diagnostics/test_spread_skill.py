"""Spread-skill against xskillscore (same weights) and the reliable-ensemble expectation."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
import xskillscore

from diagnostics.data.grid import area_weights, equiangular
from diagnostics.metrics.spread_skill import (ensemble_mean_rmse, ensemble_moments, ensemble_spread, spread_skill,
                                              spread_skill_ratio)


def _fields(rng: np.random.Generator, members: int, times: int, scale: np.ndarray | float = 1.0):
    """Members and observation drawn from one distribution per point on a 17 x 32 grid."""
    grid = equiangular(11.25)
    coords = {"lat": grid.lat, "lon": grid.lon}
    centre = rng.normal(size=(1, *grid.shape)) * 3
    shape = (times, *grid.shape)
    obs = xr.DataArray(centre + scale * rng.normal(size=shape), dims=("time", "lat", "lon"), coords=coords)
    forecast = xr.DataArray(centre + scale * rng.normal(size=(members, *shape)),
                            dims=("member", "time", "lat", "lon"), coords=coords, attrs={"units": "K"})
    return forecast, obs


def test_rmse_equals_xskillscore_with_area_weights():
    forecast, obs = _fields(np.random.default_rng(0), members=4, times=6)
    obs = obs.where(obs.lon < 300)  # NaN region, as SST over land
    dims = ["time", "lat", "lon"]
    weights = area_weights(obs["lat"]).broadcast_like(obs)
    ref = xskillscore.rmse(forecast.mean("member"), obs, dim=dims, weights=weights, skipna=True)
    assert float(ensemble_mean_rmse(forecast, obs)) == pytest.approx(float(ref), rel=1e-12)
    # per time step too (dims without time)
    ref_t = xskillscore.rmse(forecast.mean("member"), obs, dim=["lat", "lon"],
                             weights=weights.isel(time=0, drop=True), skipna=True)
    np.testing.assert_allclose(ensemble_mean_rmse(forecast, obs, dims=("lat", "lon")).values, ref_t.values,
                               rtol=1e-12)


def test_spread_equals_weighted_member_mse():
    """var_ddof1 = M/(M-1) * mean_i (x_i - mean)^2: an xskillscore.mse over members."""
    forecast, _ = _fields(np.random.default_rng(1), members=6, times=5)
    m = forecast.sizes["member"]
    dims = ["member", "time", "lat", "lon"]
    weights = area_weights(forecast["lat"]).broadcast_like(forecast)
    mse = xskillscore.mse(forecast, forecast.mean("member").broadcast_like(forecast), dim=dims, weights=weights)
    assert float(ensemble_spread(forecast)) == pytest.approx(float(np.sqrt(mse * m / (m - 1))), rel=1e-12)
    assert float(ensemble_spread(forecast, corrected=True)) == pytest.approx(
        float(np.sqrt(mse * (m + 1) / (m - 1))), rel=1e-12)


def test_reliable_ensemble_ratios():
    """M = 5, members and observation exchangeable: uncorrected -> sqrt(5/6) = 0.9129,
    corrected -> 1. 17 x 32 x 120 = 65 280 cases (scale varying in latitude, so the
    area weighting matters); the ratio's sampling error is about 0.004, tolerance 0.02."""
    m = 5
    rng = np.random.default_rng(2)
    scale = (1.0 + np.abs(equiangular(11.25).lat) / 45.0)[:, None]
    forecast, obs = _fields(rng, members=m, times=120, scale=scale)
    result = spread_skill(forecast, obs)
    assert set(result.data_vars) == {"ensemble_mean_rmse", "ensemble_spread", "spread_skill",
                                     "spread_skill_corrected"}
    assert float(result.spread_skill) == pytest.approx(np.sqrt(m / (m + 1)), abs=0.02)
    assert float(result.spread_skill_corrected) == pytest.approx(1.0, abs=0.02)
    assert float(spread_skill_ratio(forecast, obs, corrected=False)) == float(result.spread_skill)
    assert float(spread_skill_ratio(forecast, obs, corrected=True)) == float(result.spread_skill_corrected)
    assert float(result.spread_skill_corrected / result.spread_skill) == pytest.approx(np.sqrt((m + 1) / m))


def test_underdispersive_ensemble_is_detected():
    rng = np.random.default_rng(3)
    forecast, obs = _fields(rng, members=5, times=40)
    narrow = forecast.mean("member") + 0.5 * (forecast - forecast.mean("member"))
    assert float(spread_skill_ratio(narrow, obs, corrected=True)) < 0.7


def test_nan_observation_masks_spread_too():
    forecast, obs = _fields(np.random.default_rng(4), members=5, times=8)
    # make the spread huge where the observation is missing: it must not count
    forecast = forecast.where(forecast.lon < 180, forecast * 100)
    obs = obs.where(obs.lon < 180)
    inside = spread_skill(forecast.where(forecast.lon < 180, drop=True), obs.where(obs.lon < 180, drop=True))
    masked = spread_skill(forecast, obs)
    for name in masked.data_vars:
        assert float(masked[name]) == pytest.approx(float(inside[name]), rel=1e-12)


def test_lazy_on_dask():
    forecast, obs = _fields(np.random.default_rng(5), members=5, times=8)
    lazy = spread_skill(forecast.chunk(time=2), obs.chunk(time=2))
    assert lazy.spread_skill.chunks is not None
    eager = spread_skill(forecast, obs)
    for name in eager.data_vars:
        assert float(lazy[name].compute()) == pytest.approx(float(eager[name]), rel=1e-12)


@pytest.mark.parametrize("chunks", [None, {"time": 2}, {"time": 3, "member": 2}])
def test_ensemble_moments_equal_numpy_float64_with_nan_members(chunks):
    """The one-pass member count, mean and variance (ddof 1) against numpy's nan-functions on the
    float64 members, for float32 input, any chunking (members split across chunks are joined):
    NaN members left out per point, a point with one member has NaN variance, none NaN mean."""
    forecast, _ = _fields(np.random.default_rng(3), members=5, times=6)
    x = (290 + forecast).astype(np.float32)
    x[0, 1, 2, 3] = np.nan
    x[:4, 2, 4, 5] = np.nan
    x[:, 3, 6, 7] = np.nan
    with np.errstate(invalid="ignore"), warnings.catch_warnings():  # numpy: empty slices
        warnings.simplefilter("ignore", RuntimeWarning)
        values = x.values.astype(np.float64)
        expected = {"count": np.isfinite(values).sum(axis=0), "mean": np.nanmean(values, axis=0),
                    "variance": np.nanvar(values, axis=0, ddof=1)}
    got = ensemble_moments(x.chunk(chunks) if chunks else x)
    assert got.dims == ("term", "time", "lat", "lon") and got.dtype == np.float64
    for term, want in expected.items():
        np.testing.assert_allclose(got.sel(term=term).values, want, rtol=1e-13, atol=0, err_msg=term)
    assert np.isnan(got.sel(term="variance").values[2, 4, 5]) and np.isfinite(got.sel(term="mean").values[2, 4, 5])
    assert np.isnan(got.sel(term="mean").values[3, 6, 7]) and got.sel(term="count").values[3, 6, 7] == 0
