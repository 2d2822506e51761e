"""Warming response on constructed runs with a known response per K."""

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.metrics.warming import delta_sst_of, global_warming_response, warming_response, warming_responses

GRID = equiangular(11.25)
YEARS = 5


def _areas(lat):
    lat = np.asarray(lat, float)
    edges = np.concatenate([[-90.0], 0.5 * (lat[1:] + lat[:-1]), [90.0]])
    return np.diff(np.sin(np.deg2rad(edges)))


def _run(response, dsst, seed, members=3, noise=0.0):
    rng = np.random.default_rng(seed)
    nt = 12 * YEARS
    axis = monthly_axis(Month(1990, 1), Month(1990 + YEARS - 1, 12))
    season = 8 * np.cos(2 * np.pi * np.arange(nt) / 12)[:, None, None]
    values = 280.0 + season + response[None] * dsst + noise * rng.normal(size=(members, nt, *GRID.shape))
    return xr.DataArray(values, dims=("member", "time", "lat", "lon"),
                        coords={"time": axis["time"], **GRID.coords()}, name="tas", attrs={"units": "K"})


RESPONSE = 1.0 + 0.8 * np.abs(np.sin(np.deg2rad(GRID.lat)))[:, None] * np.ones(GRID.shape[1])  # polar amplification


def test_exact_response_per_k_and_global_mean():
    hist = _run(RESPONSE, 0.0, 0)
    p2k = _run(RESPONSE, 2.0, 0)
    out = warming_response(p2k, hist, "p2k")
    np.testing.assert_allclose(out.values, RESPONSE, rtol=1e-12)
    assert out.attrs["units"] == "K K-1"
    w = _areas(GRID.lat)
    expected = np.sum(RESPONSE * w[:, None]) / (w.sum() * GRID.shape[1])
    assert float(global_warming_response(p2k, hist, 2.0)) == pytest.approx(expected, rel=1e-12)


def test_noisy_ensembles_recover_response_within_sampling_error_lazily():
    sigma, members = 1.0, 4
    hist = _run(RESPONSE, 0.0, 1, members, sigma).chunk({"time": 12})
    runs = {"p2k": _run(RESPONSE, 2.0, 2, members, sigma), "p4k": _run(RESPONSE, 4.0, 3, members, sigma)}
    out = warming_responses(runs, hist, period="1991-01:1994-12", season="JJA")
    assert isinstance(out["p2k"].data, dsa.Array)
    n = members * 4 * 3  # member x JJA months in the period
    for name, dsst in (("p2k", 2.0), ("p4k", 4.0)):
        se = sigma * np.sqrt(2.0 / n) / dsst  # difference of two independent means, per K
        err = out[name].values - RESPONSE
        assert np.abs(err).max() < 5 * se
        assert abs(err.std() - se) < 0.2 * se


def test_delta_sst_names():
    assert delta_sst_of("aimip-p4k") == 4.0
    assert delta_sst_of(1.5) == 1.5
    with pytest.raises(ValueError, match="unknown scenario"):
        delta_sst_of("p3k")
    hist = _run(RESPONSE, 0.0, 0, members=1)
    with pytest.raises(ValueError, match="non-zero"):
        warming_response(hist, hist, 0.0)
