"""Baselines on a synthetic AR(1) climate with planted truth (seasonal cycle, month-
dependent variance, phi = 0.6 at every grid point)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import xarray as xr

from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.metrics.baselines import ar1_ensemble, ar1_mean, climatology_ensemble, fit_ar1, persistence
from diagnostics.metrics.crps import crps_ensemble
from diagnostics.metrics.rank_histogram import rank_histogram
from diagnostics.metrics.spread_skill import spread_skill

PHI = 0.6
TRAIN = "1900-01:2049-12"  # 150 years
NLAT, NLON = 5, 8


def _seasonal(months: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    angle = 2 * np.pi * months / 12
    return 280 + 10 * np.cos(angle), 1.0 + 0.5 * np.sin(angle)


@pytest.fixture(scope="module")
def reference() -> xr.DataArray:
    """200 years of x = mu_c + s_c z, z_t = PHI z_{t-1} + sqrt(1 - PHI^2) eps."""
    axis = monthly_axis(Month(1900, 1), Month(2099, 12), calendar="noleap")
    n = axis.sizes["time"]
    rng = np.random.default_rng(0)
    z = np.empty((n, NLAT, NLON))
    z[0] = rng.normal(size=(NLAT, NLON))
    for t in range(1, n):
        z[t] = PHI * z[t - 1] + np.sqrt(1 - PHI**2) * rng.normal(size=(NLAT, NLON))
    mu, sigma = _seasonal(np.arange(n) % 12)
    x = mu[:, None, None] + sigma[:, None, None] * z
    return xr.DataArray(x.astype("float32"), dims=("time", "lat", "lon"), name="tas", attrs={"units": "K"},
                        coords={"time": axis["time"], "lat": np.linspace(-60, 60, NLAT),
                                "lon": np.arange(NLON) * 45.0})


@pytest.fixture(scope="module")
def test_period(reference) -> xr.DataArray:
    return reference.isel(time=slice(150 * 12, None))  # 2050-2099, out of sample


def test_fit_recovers_planted_parameters(reference):
    fit = fit_ar1(reference, TRAIN)
    assert fit["phi"].dims == ("month", "lat", "lon") and list(fit["month"].values) == list(range(1, 13))
    # 150 pairs per month and point: standard error (1 - phi^2)/sqrt(150) = 0.052
    se = (1 - PHI**2) / np.sqrt(150)
    assert float(fit["phi"].mean()) == pytest.approx(PHI, abs=4 * se / np.sqrt(12 * NLAT * NLON))
    assert float(np.abs(fit["phi"] - PHI).max()) < 4.5 * se
    mu, sigma = _seasonal(np.arange(12))
    np.testing.assert_allclose(fit["sigma"].mean(("lat", "lon")).values, sigma, rtol=0.05)
    np.testing.assert_allclose(fit["climatology"].mean(("lat", "lon")).values, mu, atol=0.15)


def test_ar1_ensemble_is_reliable(reference, test_period):
    ens = ar1_ensemble(reference, TRAIN, n_members=10, seed=1, like=test_period)
    assert ens.dims == ("member", "time", "lat", "lon") and ens.shape == (10, 600, NLAT, NLON)
    assert ens.dtype == np.float32 and ens.attrs["units"] == "K"
    assert (ens["time"].values == test_period["time"].values).all()
    counts = rank_histogram(ens, test_period).values  # 24 000 cases in 11 bins
    assert scipy.stats.chisquare(counts).pvalue > 1e-3
    # spread-skill sampling error ~0.005 here; tolerance 0.03
    scores = spread_skill(ens, test_period)
    assert float(scores.spread_skill_corrected) == pytest.approx(1.0, abs=0.03)
    assert float(scores.spread_skill) == pytest.approx(np.sqrt(10 / 11), abs=0.03)
    # it beats persistence and climatology in CRPS on AR(1) data, as it should
    crps_ar1 = float(crps_ensemble(ens, test_period).mean())
    crps_pers = float(crps_ensemble(persistence(reference, like=test_period), test_period).mean())
    crps_clim = float(crps_ensemble(climatology_ensemble(reference, TRAIN, like=test_period),
                                    test_period).mean())
    assert crps_ar1 < crps_clim < crps_pers


def test_ar1_mean_is_the_planted_conditional_mean(reference, test_period):
    """``ar1_mean`` is mu_c + s_c phi_c z_{t-1}: with the planted parameters its error is the
    innovation, variance s_c^2 (1 - PHI^2); and it is the ensemble's mean (same formula)."""
    mean = ar1_mean(reference, TRAIN, like=test_period)
    assert mean.dims == ("time", "lat", "lon") and (mean["time"].values == test_period["time"].values).all()
    months = np.arange(test_period.sizes["time"]) % 12  # the test period starts in January
    _, sigma = _seasonal(months)
    innovation = (test_period - mean).values / sigma[:, None, None]
    assert innovation.var() == pytest.approx(1 - PHI**2, rel=0.03)  # 24 000 cases: +-1 %
    ens = ar1_ensemble(reference, TRAIN, n_members=400, seed=3, like=test_period.isel(time=slice(0, 24)))
    spread = float(ens.std("member").mean())
    assert float(np.abs(ens.mean("member") - mean.isel(time=slice(0, 24))).max()) < 5 * spread / np.sqrt(400)


def test_overconfident_ar1_is_rejected(reference, test_period):
    """Negative control: shrinking the innovation (phi forced to 0.95) breaks reliability."""
    fit = fit_ar1(reference, TRAIN)
    ens = ar1_ensemble(reference, TRAIN, n_members=10, seed=1, like=test_period,
                       fit=fit.assign(phi=fit["phi"] * 0 + 0.95))
    assert scipy.stats.chisquare(rank_histogram(ens, test_period).values).pvalue < 1e-6


def test_ar1_seeded_and_first_month_undefined(reference):
    head = reference.isel(time=slice(0, 24))
    a = ar1_ensemble(reference, TRAIN, n_members=3, seed=5, like=head)
    b = ar1_ensemble(reference, TRAIN, n_members=3, seed=5, like=head)
    c = ar1_ensemble(reference, TRAIN, n_members=3, seed=6, like=head)
    xr.testing.assert_identical(a, b)
    assert not np.allclose(a.isel(time=slice(1, None)), c.isel(time=slice(1, None)))
    assert bool(a.isel(time=0).isnull().all()) and bool(a.isel(time=slice(1, None)).notnull().all())


def test_ar1_lazy_on_dask(reference, test_period):
    ens = ar1_ensemble(reference.chunk(time=120), TRAIN, n_members=4, seed=2, like=test_period)
    assert ens.chunks is not None
    assert ens.compute().notnull().all()


def test_persistence_crps_equals_mae(reference):
    pers = persistence(reference)
    assert pers.dims == ("member", "time", "lat", "lon") and pers.sizes["member"] == 1
    crps = crps_ensemble(pers, reference)
    x = reference.values.astype(np.float64)
    mae = np.abs(x[:-1] - x[1:])  # previous month against this month, by hand
    assert bool(crps.isel(time=0).isnull().all())
    np.testing.assert_allclose(crps.values[1:], mae, rtol=0, atol=1e-12)


def test_climatology_members_are_training_years(reference, test_period):
    ens = climatology_ensemble(reference, TRAIN, like=test_period)
    assert ens.dims == ("member", "time", "lat", "lon") and ens.sizes["member"] == 150
    years = np.array([t.year for t in reference["time"].values])
    months = np.array([t.month for t in reference["time"].values])
    for member, t in ((0, 0), (37, 5), (149, 599)):
        target = test_period["time"].values[t]
        want = reference.isel(time=np.flatnonzero((years == 1900 + member) & (months == target.month))[0])
        np.testing.assert_array_equal(ens.isel(member=member, time=t).values, want.values)
    few = climatology_ensemble(reference, TRAIN, like=test_period, n_members=4)
    assert list(few["source_year"].values) == [1900, 1950, 1999, 2049]
    np.testing.assert_array_equal(few.isel(member=2).values, ens.sel(member=99).values)
    # same-distribution members: the climatology is reliable for the unconditional distribution
    assert float(spread_skill(ens, test_period).spread_skill_corrected) == pytest.approx(1.0, abs=0.05)


def test_missing_training_year_gives_nan_member(reference):
    gappy = reference.drop_isel(time=np.arange(12, 24))  # no 1901
    ens = climatology_ensemble(gappy, "1900-01:1904-12", like=reference.isel(time=slice(0, 3)))
    assert bool(ens.sel(member=1).isnull().all()) and bool(ens.sel(member=2).notnull().all())
    # CRPS drops the NaN member and still scores the point
    assert bool(crps_ensemble(ens, reference.isel(time=slice(0, 3))).notnull().all())


def test_constant_and_missing_points():
    """Sea ice that never varies gets its climatology; an all-NaN point (land for tos) stays NaN."""
    axis = monthly_axis(Month(2000, 1), Month(2009, 12))
    x = np.random.default_rng(9).random((120, 2, 3))
    x[:, 0, 0] = 0.0
    x[:, 1, 1] = np.nan
    ref = xr.DataArray(x, dims=("time", "lat", "lon"), coords={"time": axis["time"]})
    ens = ar1_ensemble(ref, "2000-01:2007-12", n_members=3).isel(time=slice(1, None))
    assert float(np.abs(ens.isel(lat=0, lon=0)).max()) == 0.0
    assert bool(ens.isel(lat=1, lon=1).isnull().all())
    assert int(ens.isnull().sum()) == ens.sizes["member"] * ens.sizes["time"]


def test_ar1_fit_in_latitude_bands_is_bit_identical(reference, test_period, monkeypatch):
    """fit_ar1 cuts the whole-series chunk into latitude bands (memory); the parameters and the
    seeded draws (which follow the reference's spatial chunks) must not change by a bit."""
    import diagnostics.metrics.baselines as baselines

    lazy = reference.chunk(time=120)
    whole = ar1_ensemble(lazy, TRAIN, n_members=3, seed=5, like=test_period).compute()
    fit_whole = fit_ar1(lazy, TRAIN).compute()
    monkeypatch.setattr(baselines, "FIT_CHUNK_BYTES", 8 * 1800 * NLON * 2)  # 2 latitudes per band
    assert baselines._bands(lazy.isel(time=slice(0, 1800)).chunk(time=-1)) == {"lat": 2}
    fit = fit_ar1(lazy, TRAIN)
    assert fit["phi"].chunksizes["lat"] == (NLAT,)  # the reference's spatial chunks back
    banded = ar1_ensemble(lazy, TRAIN, n_members=3, seed=5, like=test_period).compute()
    xr.testing.assert_identical(fit.compute(), fit_whole)
    np.testing.assert_array_equal(banded.values, whole.values)
