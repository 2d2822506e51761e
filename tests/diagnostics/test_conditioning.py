"""The ``conditioning`` group (ensembles around a trajectory, guided runs) on planted data.

Planted: a forced signal f (trend + annual cycle) shared by every realisation; the conditioning
run (the reference) c = f + n_c, the noise floor M realisations f + n_m, an ensemble "AROUND" of N
independent realisations f + n_j (what a residual ensemble should be), an ensemble "COPY" that
follows the reference's weather (c + small noise: what it must not be) and a "GUIDED" one held at
+2 K. Every number is recomputed here in numpy with the area weights written out (sin of the
cell edges), not with the diagnostics' helpers.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, Period, monthly_axis
from diagnostics.groups import Batch, Channel, Context, Subject
from diagnostics.groups.conditioning import Conditioning
from diagnostics.outputs import Results
from diagnostics.schema import NOISE_FLOOR, REFERENCE

GRID = equiangular(22.5)
YEARS = 6
CLIM = Period.parse("2000-01:2003-12")
SIGMA = 1.5  # K, the planted std of the internal variability (white in time, independent per cell)


def _weights() -> np.ndarray:
    lat = np.deg2rad(np.asarray(GRID.lat, float))
    edges = np.concatenate([[-np.pi / 2], (lat[1:] + lat[:-1]) / 2, [np.pi / 2]])
    w = np.diff(np.sin(edges))
    return np.broadcast_to((w / w.mean())[:, None], (lat.size, np.asarray(GRID.lon).size))


def _as_da(values: np.ndarray, members: bool) -> xr.DataArray:
    axis = monthly_axis(Month(2000, 1), Month(2000 + YEARS - 1, 12))
    dims = (("member",) if members else ()) + ("time", "lat", "lon")
    coords = {"time": axis["time"], "lat": GRID.lat, "lon": GRID.lon}
    if members:
        coords["member"] = np.arange(1, values.shape[0] + 1)
    return xr.DataArray(values, dims=dims, coords=coords, attrs={"units": "K"}, name="tas")


def _planted(n: int = 40, m: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = np.arange(12 * YEARS)
    h, w = np.asarray(GRID.lat).size, np.asarray(GRID.lon).size
    forced = 280.0 + 0.02 * t[:, None, None] + 8.0 * np.sin(2 * np.pi * t / 12)[:, None, None] * np.ones((h, w))
    noise = lambda k: SIGMA * rng.standard_normal((k, t.size, h, w))  # noqa: E731
    c = forced + noise(1)[0]
    return forced, c, forced + noise(n), forced + noise(m), c + 0.1 * noise(n), forced + 2.0 + noise(n)


def _score(c, ensembles: dict[str, np.ndarray]) -> dict[str, float]:
    ref = _as_da(c, False)
    ctx = Context(var="tas", is_3d=False, ref=ref, channels=[Channel("tas", "tas")], periods={},
                  window=Period.parse(f"2000-01:{2000 + YEARS - 1}-12"), clim_period=CLIM,
                  spectra_period=("all", CLIM), conditioned=frozenset(ensembles) - {NOISE_FLOOR})
    res, batch, group = Results(), Batch(), Conditioning()
    assert group.applies(ctx, Subject(REFERENCE, "reference", ref, {}))
    group.build(batch, res, ctx, Subject(REFERENCE, "reference", ref, {}))
    for name, values in ensembles.items():  # md-diagnose's order: the noise floor last
        assert group.applies(ctx, Subject(name, "ensemble", ref, {}))
        group.build(batch, res, ctx, Subject(name, "ensemble", _as_da(values, True).chunk({"time": 24}), {}))
    batch.compute()
    return {k: v for k, v in res.metrics.items()}, res


def _anom(x: np.ndarray) -> np.ndarray:
    """Minus each calendar month's mean over the first 4 years (CLIM), numpy reshape."""
    clim = x[..., :48, :, :].reshape(x.shape[:-3] + (4, 12) + x.shape[-2:]).mean(axis=-4)
    return x - np.tile(clim, (1,) * (x.ndim - 3) + (YEARS, 1, 1))


def _rms(d: np.ndarray) -> float:
    wt = _weights()
    return float(np.sqrt((wt * (d ** 2).mean(axis=0)).sum() / wt.sum()))


def test_distances_spread_and_correlations_equal_numpy_and_the_planted_truth():
    forced, c, around, floor, copy, guided = _planted()
    got, res = _score(c, {"AROUND": around, "COPY": copy, "GUIDED": guided, NOISE_FLOOR: floor})
    k = lambda model, metric: got[f"{model}.tas.{metric}.all"]  # noqa: E731
    wt = _weights()
    forced_hat = _anom(floor.mean(0))
    for name, ens in (("AROUND", around), ("COPY", copy)):
        off = _anom(ens.mean(0)) - forced_hat
        assert k(name, "distance_forced") == pytest.approx(_rms(off), rel=1e-9)
        assert k(name, "distance_reference") == pytest.approx(_rms(_anom(ens.mean(0)) - _anom(c)), rel=1e-9)
        ref_off = _anom(c) - forced_hat
        ww = np.broadcast_to(wt, off.shape)
        x, y = off - np.average(off, weights=ww), ref_off - np.average(ref_off, weights=ww)
        assert k(name, "weather_corr_reference") == pytest.approx(
            np.sum(ww * x * y) / np.sqrt(np.sum(ww * x * x) * np.sum(ww * y * y)), rel=1e-9)
    sigma_floor = np.sqrt((wt * floor.var(axis=0, ddof=1).mean(axis=0)).sum() / wt.sum())
    sigma_around = np.sqrt((wt * around.var(axis=0, ddof=1).mean(axis=0)).sum() / wt.sum())
    assert k("AROUND", "spread_ratio_noise_floor") == pytest.approx(sigma_around / sigma_floor, rel=1e-9)
    assert k("AROUND", "distance_forced_sampling") == pytest.approx(sigma_floor * np.sqrt(1 / 40 + 1 / 5), rel=1e-9)
    assert k(REFERENCE, "distance_forced") == pytest.approx(_rms(_anom(c) - forced_hat), rel=1e-9)
    # planted truth: independent members sit on the forced signal (sampling distance, shared-estimate
    # correlation, spread ratio 1); the copy of the conditioning run does not
    assert k("AROUND", "distance_forced") == pytest.approx(k("AROUND", "distance_forced_sampling"), rel=0.05)
    assert k("AROUND", "weather_corr_reference") == pytest.approx(k("AROUND", "weather_corr_reference_sampling"),
                                                                  abs=0.05)
    assert k("AROUND", "spread_ratio_noise_floor") == pytest.approx(1.0, abs=0.05)
    assert k("COPY", "weather_corr_reference") > 0.95 and k("COPY", "spread_ratio_noise_floor") < 0.15
    assert k("COPY", "distance_forced") > 2 * k("COPY", "distance_forced_sampling")
    assert k("AROUND", "distance_reference") == pytest.approx(SIGMA * np.sqrt(1 + 1 / 40), rel=0.05)


def test_global_anomaly_series_shows_an_imposed_offset_against_the_reference_climatology():
    forced, c, around, floor, _, guided = _planted()
    got, res = _score(c, {"AROUND": around, "GUIDED": guided, NOISE_FLOOR: floor})
    wt = _weights()
    clim = c[:48].reshape(4, 12, *c.shape[1:]).mean(0)
    series = ((guided - np.tile(clim, (YEARS, 1, 1))) * wt).sum((-2, -1)) / wt.sum()
    field = next(v for n, v in res.fields.items() if n.startswith("global_anomaly_series__GUIDED__"))
    np.testing.assert_allclose(field.transpose(..., "time").values, series, rtol=0, atol=1e-9)
    assert got["GUIDED.tas.global_anomaly_mean.all"] == pytest.approx(series.mean(), abs=1e-9)
    assert got["GUIDED.tas.global_anomaly_rms.all"] == pytest.approx(np.sqrt((series ** 2).mean()), abs=1e-9)
    # +2 K imposed, 0.02 K/month of trend over 72 months around the 4-year climatology: 2 + 0.02 * 12
    assert got["GUIDED.tas.global_anomaly_mean.all"] == pytest.approx(2.0 + 0.02 * 12, abs=0.05)
    assert abs(got["AROUND.tas.global_anomaly_mean.all"] - 0.24) < 0.05


def test_without_a_noise_floor_only_the_ensemble_alone_metrics_and_other_variables_are_left_out():
    forced, c, around, *_ = _planted(n=4)
    got, _ = _score(c, {"AROUND": around})
    assert "AROUND.tas.distance_reference.all" in got
    assert not [name for name in got if "distance_forced" in name or "noise_floor" in name]
    ctx3d = Context(var="zg", is_3d=True, ref=_as_da(c, False), channels=[Channel("zg500", "zg", 50000.0)],
                    periods={}, window=CLIM, clim_period=CLIM, spectra_period=("all", CLIM))
    assert not Conditioning().applies(ctx3d, Subject("AROUND", "ensemble", _as_da(around, True), {}))


def test_only_ensembles_whose_files_say_they_are_conditioned_are_scored():
    """A free-running ensemble (no ``conditioning`` attribute) gets no distance to the reference's weather;
    with no conditioned ensemble at all neither the reference nor the noise floor is scored by the group."""
    _, c, around, *_ = _planted(n=4)
    ref = _as_da(c, False)
    ens = Subject("FREE", "ensemble", _as_da(around, True), {})

    def ctx(conditioned: frozenset[str]) -> Context:
        return Context(var="tas", is_3d=False, ref=ref, channels=[Channel("tas", "tas")], periods={},
                       window=CLIM, clim_period=CLIM, spectra_period=("all", CLIM), conditioned=conditioned)

    group, floor = Conditioning(), Subject(NOISE_FLOOR, "ensemble", _as_da(around, True), {})
    none = ctx(frozenset())
    assert not any(group.applies(none, s) for s in (Subject(REFERENCE, "reference", ref, {}), ens, floor))
    some = ctx(frozenset({"AROUND"}))
    assert not group.applies(some, ens)
    assert group.applies(some, floor) and group.applies(some, Subject(REFERENCE, "reference", ref, {}))
    assert group.applies(some, Subject("AROUND", "ensemble", _as_da(around, True), {}))
