"""The climate metrics recover the planted truth of the synthetic climate (diagnostics.synth).

One 30-year, 2-member historical run on the 5.625-degree grid (seed 1) is shared by the tests;
every tolerance is a sampling error predicted from the truth (noise std, lag-1) or from the
data, not a tuned constant, unless a comment says otherwise.
"""

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular, global_mean
from diagnostics.data.timeaxis import Month
from diagnostics.metrics import modes, nino34, pattern, trends, variability, warming
from diagnostics.synth.climate import synthesize

pytestmark = pytest.mark.slow  # ~30 s: generating the synthetic climate dominates

GRID = equiangular(5.625)
START, END = Month(1980, 1), Month(2009, 12)
MEMBERS = 2


@pytest.fixture(scope="module")
def run():
    return synthesize(GRID, START, END, seed=1, members=MEMBERS)


def _lag1(x: np.ndarray) -> float:
    x = x - x.mean()
    return float(np.sum(x[1:] * x[:-1]) / np.sum(x * x))


def test_nino34_index_is_the_planted_one(run):
    data, truth = run
    index = nino34.nino34_index(data["tos"], smooth=None)
    # same definition; ours removes the sample monthly climatology, the truth the deterministic one
    diff = index - truth["nino34_relative_index"]
    assert float(np.corrcoef(index.values, truth["nino34_relative_index"].values)[0, 1]) > 0.99
    assert float(diff.std()) < 0.1 * float(index.std())


@pytest.mark.parametrize("var", ["zg500", "psl", "uas"])
def test_enso_regression_maps_within_sampling_error(run, var):
    data, truth = run
    index = nino34.nino34_index(data["tos"], smooth=None)
    estimate = nino34.regression_map(data[var], index, dims=("member", "time"))
    assert estimate.dims == ("lat", "lon")
    planted = truth[f"{var}_nino34_regression"]
    # OLS slope error for AR(1) noise (lag phi_x) on a persistent index (lag phi_n):
    # sigma / (std(N) sqrt(n)) * sqrt((1 + phi_x phi_n) / (1 - phi_x phi_n))  (Bretherton et al. 1999)
    phi_x, phi_n = float(truth[f"{var}_lag1"]), _lag1(index.values)
    n = index.size * MEMBERS
    se = truth[f"{var}_noise_std"] / (float(index.std()) * np.sqrt(n)) \
        * np.sqrt((1 + phi_x * phi_n) / (1 - phi_x * phi_n))
    # conditional expectation: planted slope plus the planted trend's share, trend x cov(y, N) / var(N)
    y = trends.decades(index)
    valid = np.isfinite(index.values)
    share = np.cov(y.values[valid], index.values[valid])[0, 1] / np.var(index.values[valid], ddof=1)
    z = (estimate - (planted + truth[f"{var}_trend"] * share)) / se
    # errors share one index realisation and a red spatial spectrum, so the map RMS of z
    # scatters widely around 1 (measured 0.46-1.1 for psl over seeds 1-4); a sign or
    # factor-2 error gives z of several units over the signal regions
    assert 0.3 < float(np.sqrt(global_mean(z**2))) < 2.0
    assert float(np.abs(z).max()) < 5.0
    # projection slope sum w b_hat b / sum w b^2 = 1 in expectation; its error is bounded by
    # sum w |b| se / sum w b^2 (errors fully correlated in space)
    slope = float(global_mean(estimate * planted) / global_mean(planted * planted))
    bound = float(global_mean(np.abs(planted) * se) / global_mean(planted * planted))
    assert abs(slope - 1.0) < 3 * bound, (slope, bound)
    # pattern correlation against its expectation sqrt(var b / (var b + mean se^2)) (about 0.85
    # for zg500 and uas, 0.65 for psl); the 0.2 margin is not derived (measured |diff| <= 0.17)
    var_b = float(global_mean((planted - global_mean(planted)) ** 2))
    expected_corr = np.sqrt(var_b / (var_b + float(global_mean(se**2))))
    corr = float(pattern.pattern_correlation(estimate, planted))
    assert corr > expected_corr - 0.2, (corr, expected_corr)


@pytest.mark.parametrize("var,short", [("zg500", "z500"), ("psl", "psl")])
def test_nao_pattern_and_variance_fraction(run, var, short):
    data, truth = run
    result = modes.nao(data[var], pooled=True)
    expected = modes.select_domain(truth[f"nao_{short}_eof_pattern"], modes.NAO_LAT, modes.NAO_LON)
    ours = result["pattern"].isel(mode=0)
    assert ours.shape == expected.shape and not expected.isnull().any()
    # measured 0.98 (zg500) / 0.88 (psl) for seed 1, 0.87-0.99 over seeds 1-3 (threshold not derived)
    assert float(pattern.pattern_correlation(ours, expected)) > 0.8
    assert float(ours.sel(lat=slice(60, 80)).mean()) < 0  # positive NAO: low near Iceland
    winters = result["pc"].sizes["time"] * MEMBERS
    se = float(truth[f"nao_{short}_variance_fraction_stderr1"]) / np.sqrt(winters)
    vf = float(result["variance_fraction"][0])
    assert abs(vf - float(truth[f"nao_{short}_variance_fraction"])) < 3 * se, (vf, se)


@pytest.mark.parametrize("var", ["vas", "va"])
def test_lag1_autocorrelation_and_std_of_clean_channels(run, var):
    data, truth = run
    field = data[var] if var == "vas" else data[var].sel(plev=85000.0)
    r1 = variability.lag1_autocorrelation(field)
    phi = float(truth[f"{var}_lag1"])
    n = field.sizes["time"]
    expected = phi - (1 + 4 * phi) / n  # small-sample bias of r1 with the mean removed
    se_cell = np.sqrt((1 - phi**2) / n)
    assert np.mean(np.abs(r1.values - expected) < 3 * se_cell) > 0.95
    # cells share noise (red spectrum), so the global mean averages few independent values: the
    # planted spectrum's effective spatial degrees of freedom (Bretherton et al. 1999; ~5 here) per
    # member. r1 errors correlate like rho^2 < rho between cells, so this bound is conservative
    # (the former fixed 0.03 failed for seed 2: 0.036 and 0.037, now inside 3 s.e. = 0.047-0.048).
    ell = np.arange(1, int(truth["noise_lmax"]))
    power = ell ** float(truth["noise_spectral_slope"])
    dof = float(power.sum() ** 2 / np.sum(power**2 / (2 * ell + 1)))
    assert abs(float(global_mean(r1).mean()) - expected) < 3 * se_cell / np.sqrt(dof * MEMBERS)
    sigma = truth[f"{var}_noise_std"] if var == "vas" else truth[f"{var}_noise_std"].sel(plev=85000.0)
    std = variability.anomaly_std(field)
    assert float(global_mean(std).mean()) == pytest.approx(float(global_mean(sigma)), rel=0.05)


def test_global_mean_trend_within_its_standard_error(run):
    data, truth = run
    series = global_mean(data["tas"])
    est = trends.linear_trend(series)
    assert est.attrs["units"] == "K decade-1"
    t = trends.decades(series).values
    for m in range(MEMBERS):
        y = series.isel(member=m).values.astype(float)
        resid = y - np.polyval(np.polyfit(t, y, 1), t)
        phi = min(_lag1(resid), 0.95)  # residuals hold ENSO and red noise: widen by AR(1) of residuals
        se = np.sqrt(np.sum(resid**2) / (y.size - 2) / np.sum((t - t.mean()) ** 2)) * np.sqrt((1 + phi) / (1 - phi))
        assert abs(float(est[m]) - float(truth["tas_trend_global"])) < 3 * se, (float(est[m]), se)


def test_trend_map_within_sampling_error(run):
    data, truth = run
    estimate = trends.linear_trend(data["tas"]).mean("member")
    # conditional expectation: the planted trend plus the ENSO term's share, beta x (trend of N)
    index = truth["nino34_relative_index"]
    expected = truth["tas_trend"] + truth["tas_nino34_regression"] * float(trends.linear_trend(index))
    t = trends.decades(data["tas"]).values
    phi = float(truth["tas_lag1"])
    se = truth["tas_noise_std"] / np.sqrt(np.sum((t - t.mean()) ** 2) * MEMBERS) * np.sqrt((1 + phi) / (1 - phi))
    z = (estimate - expected) / se
    assert 0.5 < float(np.sqrt(global_mean(z**2))) < 1.7
    assert float(np.abs(z).max()) < 5.0
    diff = trends.trend_difference(data["tas"], data["tas"].isel(member=0))
    assert float(diff["global_difference"]) == pytest.approx(
        float(global_mean(estimate) - global_mean(trends.linear_trend(data["tas"].isel(member=0)))), abs=1e-6)


def test_warming_response_same_seed_is_exact():
    hist, truth = synthesize(GRID, Month(2000, 1), Month(2001, 12), seed=3, members=1)
    p2k, _ = synthesize(GRID, Month(2000, 1), Month(2001, 12), seed=3, members=1, sst_offset=2.0)
    for var, tol in (("tas", 1e-3), ("zg500", 1e-2)):
        response = warming.warming_response(p2k[var], hist[var], "p2k")
        planted = truth[f"{var}_warming_per_K"]
        assert float(np.abs(response - planted).max()) < tol  # float32 rounding of the fields only
        assert float(warming.global_warming_response(p2k[var], hist[var], 2.0)) == pytest.approx(
            float(global_mean(planted)), abs=tol)
