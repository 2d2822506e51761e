"""Spectra of monthly anomalies (group ``anomaly_spectra``): planted annual cycle removed exactly,
values equal to an independent numpy anomaly computation, Parseval against area weights."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import area_weights, equiangular
from diagnostics.data.timeaxis import Month, Period, monthly_axis
from diagnostics.groups import Batch, Channel, Context, Subject
from diagnostics.groups.spectra import AnomalySpectra
from diagnostics.metrics import spectra
from diagnostics.outputs import Results

GRID = equiangular(11.25)  # 17 x 32, poles included
YEARS = 4
CLIM, TEST = Period.parse("2000-01:2002-12"), Period.parse("2003-01:2003-12")


def _field(rng: np.random.Generator, members: int | None, noise: float, smooth: bool = False) -> xr.DataArray:
    """A large annual cycle (the same every year; l = 1-2 patterns) plus noise of std ``noise``: white
    (grid-scale, beyond the transform's lmax) or ``smooth`` (random amplitudes of l = 1 patterns,
    band-limited, so Parseval holds exactly)."""
    axis = monthly_axis(Month(2000, 1), Month(2000 + YEARS - 1, 12))
    lat, lon = np.deg2rad(GRID.lat), np.deg2rad(GRID.lon)
    months = np.arange(12 * YEARS) % 12
    cycle = 20.0 * np.cos(2 * np.pi * months / 12)[:, None, None] * np.sin(lat)[None, :, None] \
        + 5.0 * np.sin(2 * np.pi * months / 12)[:, None, None] * (np.cos(lat)[:, None] * np.cos(lon)[None, :])
    shape = ((members,) if members else ()) + cycle.shape
    if smooth:
        a, b = rng.standard_normal(shape[:-2] + (1, 1)), rng.standard_normal(shape[:-2] + (1, 1))
        eps = a * np.sin(lat)[:, None] + b * (np.cos(lat)[:, None] * np.sin(lon)[None, :])
    else:
        eps = rng.standard_normal(shape)
    values = 280.0 + cycle + noise * eps
    dims = (("member",) if members else ()) + ("time", "lat", "lon")
    coords = {"time": axis["time"], "lat": GRID.lat, "lon": GRID.lon}
    if members:
        coords["member"] = np.arange(1, members + 1)
    return xr.DataArray(values, dims=dims, coords=coords, attrs={"units": "K"}, name="tas")


def _run(model: xr.DataArray, ref: xr.DataArray) -> Results:
    ctx = Context(var="tas", is_3d=False, ref=ref, channels=[Channel("tas", "tas")],
                  periods={"test": TEST}, window=Period.parse(f"2000-01:{2000 + YEARS - 1}-12"),
                  clim_period=CLIM, spectra_period=("test", TEST))
    res, batch = Results(), Batch()
    AnomalySpectra().build(batch, res, ctx, Subject("M", "ensemble", model.chunk({"time": 12}), ctx.periods,
                                                    first=True))
    batch.compute()
    return res


def _numpy_anomalies(values: np.ndarray) -> np.ndarray:
    """(..., time, lat, lon) minus the mean of each calendar month over the first 3 years, test year kept."""
    clim = values[..., :36, :, :].reshape(values.shape[:-3] + (3, 12) + values.shape[-2:]).mean(axis=-4)
    return values[..., 36:48, :, :] - clim


def _field_of(res: Results, diag: str, model: str) -> xr.DataArray:
    return next(v for k, v in res.fields.items() if k.startswith(f"{diag}__{model}__"))


def test_anomaly_spectra_remove_the_planted_annual_cycle_and_match_numpy():
    rng = np.random.default_rng(3)
    ref = _field(rng, None, noise=0.0)  # pure annual cycle: no anomaly at all
    model = _field(rng, 3, noise=0.5, smooth=True)
    res = _run(model, ref)
    sh_ref = _field_of(res, "anomaly_sh_spectrum", "reference")
    full_ref = spectra.sh_power_spectrum(ref.sel(time=ref["time"][36:])).mean("time")
    assert float(full_ref.sum()) > 1e4 and float(np.abs(sh_ref).max()) < 1e-18 * float(full_ref.sum())
    # the model's: the published formula on anomalies computed independently (numpy reshape)
    anom = xr.DataArray(_numpy_anomalies(model.values), dims=model.dims,
                        coords={"lat": GRID.lat, "lon": GRID.lon})
    expected = spectra.sh_power_spectrum(anom).mean(("member", "time"))
    got = _field_of(res, "anomaly_sh_spectrum", "M")
    np.testing.assert_allclose(got.values, expected.values, rtol=1e-12)
    # Parseval (a band-limited field): total power = area mean of the squared anomaly
    w = np.asarray(area_weights(GRID.lat))[:, None] * np.ones(GRID.lon.size)
    area_mean_sq = float((anom.values**2 * w).sum(axis=(-2, -1)).mean() / w.sum())
    assert float(got.sum()) == pytest.approx(area_mean_sq, rel=5e-3)
    # the reference has no anomaly power: every band ratio is x/0, written as null, never a number
    ratios = [v for k, v in res.metrics.items() if ".anomaly_sh_band_ratio." in k]
    assert len(ratios) == 3 and all(r is None or not np.isfinite(r) for r in ratios)


def test_anomaly_band_ratio_is_one_for_the_same_noise_level():
    rng = np.random.default_rng(4)
    res = _run(_field(rng, 4, noise=1.0), _field(rng, None, noise=1.0))
    large = {k: float(v) for k, v in res.metrics.items() if "_band_ratio." in k and k.endswith(".1-10")}
    assert set(large) == {"M.tas.anomaly_sh_band_ratio.test.1-10", "M.tas.anomaly_zonal_band_ratio.test.1-10"}
    for value in large.values():  # white noise of equal std: equal power in every band, to sampling error
        assert value == pytest.approx(1.0, rel=0.15)
