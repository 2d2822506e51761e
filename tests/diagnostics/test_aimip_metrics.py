"""The official AI-MIP E1-E5 (diagnostics.metrics.aimip) against independent loop
implementations of the published formulas (ai2cm/AIMIP notebooks), planted truth and edge cases.

The reference implementations below are written differently on purpose: explicit Python
loops over members and cells, weights summed cell by cell, slopes from the normal equations,
standard deviations from sums of squares.
"""

import math

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import Grid
from diagnostics.data.timeaxis import Month, Period, month_index, monthly_axis
from diagnostics.metrics import aimip
from diagnostics.metrics.aimip import (
    OFFICIAL, AimipEvaluation, coslat_mean, daily_departure_std, decadal_trend, annual_means,
    e1_time_mean_bias, e2_trends, e3_enso, e4_daily_variability, e5_response, enso_coefficient,
    latitude_band, neuralgcm_grid,
)

# Rows beyond +-87.5 (the poles and 89) must be ignored; 87.5 itself is inside (closed band).
GRID = Grid(lat=np.array([-90.0, -87.5, -60.0, -30.0, 0.0, 30.0, 60.0, 87.5, 89.0]),
            lon=np.arange(6) * 60.0)
INSIDE = np.abs(GRID.lat) <= 87.5
RTOL = 1e-6


def _monthly(values, start=Month(1978, 10), calendar="noleap", name="tas", units="K", members=True):
    n = values.shape[1] if members else values.shape[0]
    axis = monthly_axis(start, start + (n - 1), calendar)
    dims = ("member", "time", "lat", "lon") if members else ("time", "lat", "lon")
    coords = {"time": axis["time"], **GRID.coords()}
    if members:
        coords["member"] = [f"r{i + 1}i1p1f1" for i in range(values.shape[0])]
    return xr.DataArray(values, dims=dims, coords=coords, name=name, attrs={"units": units})


def _n_months(start=Month(1978, 10), end=Month(2024, 12)):
    return end.index - start.index + 1


def _months_of(start, n):
    return [start + k for k in range(n)]


# ----------------------------------------------------------------- independent references

def ref_coslat_mean(field2d, lat):
    """Loop over cells: sum w x / sum w over finite cells and |lat| <= 87.5."""
    num = den = 0.0
    for j, phi in enumerate(lat):
        if abs(phi) > 87.5 + 1e-9:
            continue
        w = math.cos(math.radians(phi))
        for i in range(field2d.shape[1]):
            v = field2d[j, i]
            if not math.isnan(v):
                num += w * v
                den += w
    return num / den


def ref_period_mean(series, months, period):
    vals = [v for v, m in zip(series, months) if period.start <= m <= period.end]
    vals = [v for v in vals if not math.isnan(v)]
    return sum(vals) / len(vals)


def ref_slope(t, y):
    """Normal equations: (n sum ty - sum t sum y) / (n sum t^2 - (sum t)^2)."""
    n = len(t)
    st, sy = sum(t), sum(y)
    stt = sum(a * a for a in t)
    sty = sum(a * b for a, b in zip(t, y))
    return (n * sty - st * sy) / (n * stt - st * st)


# ----------------------------------------------------------------- E1

def _e1_fields(seed=0, n_members=3):
    rng = np.random.default_rng(seed)
    n = _n_months()
    ref = 280.0 + rng.normal(size=(n, *GRID.shape))
    model = 280.5 + rng.normal(size=(n_members, n, *GRID.shape))
    return _monthly(model), _monthly(ref, members=False)


def test_e1_matches_independent_loops():
    model, ref = _e1_fields()
    model[0, :, 3, 2] = np.nan                 # a below-ground cell in member 0: left out
    model[1, 5:9, 4, 4] = np.nan               # a few missing months: mean over the rest
    out = e1_time_mean_bias(model, ref)
    months = _months_of(Month(1978, 10), model.sizes["time"])
    for p_name, period in OFFICIAL.periods.items():
        rmsbs = []
        for m in range(model.sizes["member"]):
            bias = np.full(GRID.shape, np.nan)
            for j in range(GRID.shape[0]):
                for i in range(GRID.shape[1]):
                    series = model.values[m, :, j, i]
                    if np.all(np.isnan(series)):
                        continue
                    bias[j, i] = (ref_period_mean(series, months, period)
                                  - ref_period_mean(ref.values[:, j, i], months, period))
            rmsb = math.sqrt(ref_coslat_mean(bias**2, GRID.lat))
            rmsbs.append(rmsb)
            got = out["rmsb"].sel(period=p_name).isel(member=m)
            assert float(got) == pytest.approx(rmsb, rel=RTOL)
            assert float(out["global_bias"].sel(period=p_name).isel(member=m)) == pytest.approx(
                ref_coslat_mean(bias, GRID.lat), rel=RTOL)
        assert float(out["rmsb_median"].sel(period=p_name)) == pytest.approx(sorted(rmsbs)[1], rel=RTOL)
        assert float(out["rmsb_min"].sel(period=p_name)) == pytest.approx(min(rmsbs), rel=RTOL)
        assert float(out["rmsb_max"].sel(period=p_name)) == pytest.approx(max(rmsbs), rel=RTOL)
    assert out["bias"].sizes["lat"] == int(INSIDE.sum())
    assert out["rmsb"].attrs["units"] == "K"


def test_e1_planted_member_biases_recovered_exactly():
    _, ref = _e1_fields(seed=1)
    planted = np.array([0.5, -2.0, 1.25, 3.0])
    model = ref.expand_dims(member=[f"r{i}" for i in range(1, 5)]) + xr.DataArray(planted, dims="member")
    model = model.copy()
    # Huge biases poleward of 87.5 must not count.
    model[:, :, 0, :] += 100.0
    model[:, :, -1, :] -= 100.0
    out = e1_time_mean_bias(model, ref)
    np.testing.assert_allclose(out["rmsb"].sel(period="train").values, np.abs(planted), rtol=1e-12)
    np.testing.assert_allclose(out["global_bias"].sel(period="test").values, planted, rtol=1e-12)
    assert float(out["rmsb_median"].sel(period="train")) == pytest.approx(np.median(np.abs(planted)), rel=1e-12)
    assert float(out["rmsb_min"].sel(period="test")) == pytest.approx(0.5, rel=1e-12)
    assert float(out["rmsb_max"].sel(period="test")) == pytest.approx(3.0, rel=1e-12)


def test_e1_one_member_and_dask_stay_lazy():
    model, ref = _e1_fields(seed=2, n_members=1)
    eager = e1_time_mean_bias(model, ref)
    lazy = e1_time_mean_bias(model.chunk({"time": 100}), ref.chunk({"time": 100}))
    assert isinstance(lazy["rmsb"].data, dsa.Array)
    xr.testing.assert_allclose(lazy.compute(), eager)
    assert float(eager["rmsb_median"].sel(period="train")) == float(eager["rmsb"].sel(period="train")[0])
    assert float(eager["rmsb_min"].sel(period="train")) == float(eager["rmsb_max"].sel(period="train"))


def test_e1_period_without_data_is_a_clear_error():
    model, ref = _e1_fields()
    short = model.isel(time=slice(0, 435))  # ends 2014-12: no month of the test period
    with pytest.raises(ValueError, match="covers 0 of the 120 months of period 2015-01:2024-12"):
        e1_time_mean_bias(short, ref)


def test_e1_grids_must_match():
    model, ref = _e1_fields()
    with pytest.raises(ValueError, match="not on the same grid"):
        e1_time_mean_bias(model, ref.assign_coords(lon=ref["lon"] + 1.0))


def test_e1_on_the_neuralgcm_grid_keeps_a_planted_bias():
    grid = neuralgcm_grid()
    assert grid.shape == (64, 128)
    assert np.all(np.diff(grid.lat) > 0) and grid.lat[-1] == pytest.approx(87.8638, abs=1e-3)
    model, ref = _e1_fields(seed=3, n_members=2)
    model = ref.expand_dims(member=["a", "b"]) + xr.DataArray([1.5, -0.5], dims="member")
    out = e1_time_mean_bias(model, ref, grid=grid)
    assert out["bias"].sizes["lat"] == 62        # the two rows beyond 87.5 dropped
    np.testing.assert_allclose(out["rmsb"].sel(period="train").values, [1.5, 0.5], rtol=1e-9)


# ----------------------------------------------------------------- E2

def _e2_fields(trend_map, n_members=2, seed=4, noise=0.3):
    rng = np.random.default_rng(seed)
    n = _n_months()
    years = np.array([m.year for m in _months_of(Month(1978, 10), n)], float)
    base = 250.0 + trend_map[None] * ((years - 1979.0) / 10.0)[:, None, None]
    ref = base + noise * rng.normal(size=base.shape)
    model = base[None] * 1.0 + noise * rng.normal(size=(n_members, *base.shape))
    return _monthly(model), _monthly(ref, members=False)


def test_e2_annual_means_and_trend_match_loops_and_polyfit():
    rng = np.random.default_rng(5)
    model, ref = _e2_fields(rng.normal(size=GRID.shape))
    out = e2_trends(model, ref)
    months = _months_of(Month(1978, 10), model.sizes["time"])
    for p_name, period in OFFICIAL.periods.items():
        years = list(range(period.start.year, period.end.year + 1))
        for m in range(2):
            gm = []
            for y in years:
                annual = np.zeros(GRID.shape)
                for j in range(GRID.shape[0]):
                    for i in range(GRID.shape[1]):
                        vals = [v for v, mo in zip(model.values[m, :, j, i], months) if mo.year == y]
                        assert len(vals) == 12
                        annual[j, i] = sum(vals) / 12.0
                gm.append(ref_coslat_mean(annual, GRID.lat))
            got = out["global_mean_series"].sel(period=p_name).isel(member=m).sel(year=years)
            np.testing.assert_allclose(got.values, gm, rtol=RTOL)
            slope = ref_slope([y / 10.0 for y in years], gm)
            assert float(out["global_trend"].sel(period=p_name).isel(member=m)) == pytest.approx(slope, rel=RTOL)
            # the notebooks' own call: numpy.polyfit(year / 10, y, 1)[0]
            assert np.polyfit(np.array(years) / 10.0, gm, 1)[0] == pytest.approx(slope, rel=RTOL)
            cell = [float(v) for v in annual_means(model.isel(member=m), period).values[:, 4, 3]]
            assert float(out["trend"].sel(period=p_name).isel(member=m).sel(lat=0.0).isel(lon=3)) == \
                pytest.approx(ref_slope([y / 10.0 for y in years], cell), rel=RTOL)
    assert out["trend"].attrs["units"] == "K decade-1"


def test_e2_planted_trends_recovered_exactly():
    planted = np.linspace(-1.0, 2.0, GRID.lat.size)[:, None] * np.ones(GRID.shape)
    model, ref = _e2_fields(planted, noise=0.0)
    model = model + xr.DataArray([0.0, 0.1], dims="member") * ((model["time"].dt.year - 1979) / 10.0)
    out = e2_trends(model, ref)
    inside = planted[INSIDE]
    for p_name in ("train", "test"):
        np.testing.assert_allclose(out["reference_trend"].sel(period=p_name).values, inside, atol=1e-9)
        np.testing.assert_allclose(out["trend_bias"].sel(period=p_name).isel(member=1).values, 0.1, atol=1e-9)
        np.testing.assert_allclose(out["trend_bias_rms"].sel(period=p_name).values, [0.0, 0.1], atol=1e-9)
        np.testing.assert_allclose(out["global_trend_error"].sel(period=p_name).values, [0.0, 0.1], atol=1e-9)
        assert float(out["global_trend_min"].sel(period=p_name)) == pytest.approx(
            float(out["reference_global_trend"].sel(period=p_name)), abs=1e-9)


def test_e2_needs_whole_years_and_a_nan_cell_stays_nan():
    model, ref = _e2_fields(np.zeros(GRID.shape))
    with pytest.raises(ValueError, match="whole years"):
        annual_means(ref, Period.parse("1979-03:2014-12"))
    model[0, 30, 4, 1] = np.nan            # a whole missing year cell: the annual mean uses 11 months
    ann = annual_means(model, aimip.TRAIN)
    assert np.isfinite(ann.values).all()
    ann[0, 3, 4, 1] = np.nan
    assert np.isnan(float(decadal_trend(ann)[0, 4, 1])) and np.isfinite(float(decadal_trend(ann)[1, 4, 1]))


# ----------------------------------------------------------------- E3

def _index(n, start=Month(1978, 10), seed=6):
    rng = np.random.default_rng(seed)
    raw = np.cumsum(rng.normal(size=n)) * 0.2
    raw = raw - raw.mean()
    axis = monthly_axis(start, start + (n - 1), "proleptic_gregorian")
    return xr.DataArray(raw, dims="time", coords={"time": axis["time"]}, name="nino34", attrs={"units": "K"})


def test_e3_coefficient_matches_loops():
    n = _n_months()
    idx = _index(n)
    rng = np.random.default_rng(7)
    season = np.cos(2 * np.pi * np.arange(n) / 12.0)
    x = 5.0 + 3.0 * season[None, :, None, None] + rng.normal(size=(2, n, *GRID.shape))
    model = _monthly(x, name="pr", units="kg m-2 s-1")
    model[0, 40, 2, 2] = np.nan
    coeff = enso_coefficient(model, idx)
    months = _months_of(Month(1978, 10), n)
    use = [k for k, mo in enumerate(months) if aimip.ENSO_PERIOD.start <= mo <= aimip.ENSO_PERIOD.end]
    iv = [float(idx.values[k]) for k in use]
    ibar = sum(iv) / len(iv)
    var = sum((a - ibar) ** 2 for a in iv) / len(iv)
    for m, j, i in [(0, 2, 2), (0, 4, 0), (1, 7, 5)]:
        terms = [(iv[q] - ibar) * model.values[m, k, j, i] for q, k in enumerate(use)]
        terms = [t for t in terms if not math.isnan(t)]
        expect = (sum(terms) / len(terms)) / var
        assert float(coeff[m, j, i]) == pytest.approx(expect, rel=RTOL)
    assert coeff.attrs["units"] == "kg m-2 s-1 K-1"


def test_e3_planted_regression_and_rmse():
    n = _n_months()
    idx = _index(n)
    b_ref = np.linspace(-2, 2, GRID.lat.size * GRID.lon.size).reshape(GRID.shape)
    ref = _monthly(280.0 + b_ref[None] * idx.values[:, None, None], members=False)
    delta = np.array([0.0, 0.4])
    model = _monthly(280.0 + (b_ref[None, None] + delta[:, None, None, None]) * idx.values[None, :, None, None])
    out = e3_enso(model, ref, idx)
    assert list(out["period"].values) == ["train", "test", "all"]
    for p_name in ("train", "test", "all"):
        np.testing.assert_allclose(out["reference_coefficient"].sel(period=p_name).values, b_ref[INSIDE], rtol=1e-9)
        np.testing.assert_allclose(out["coefficient_rmse"].sel(period=p_name).values, delta, atol=1e-9)
        assert float(out["coefficient_rmse_median"].sel(period=p_name)) == pytest.approx(0.2, abs=1e-9)
    assert "relative Nino-3.4" in out.attrs["enso_index"]


def test_e3_index_must_cover_the_period():
    n = _n_months()
    model = _monthly(np.ones((1, n, *GRID.shape)))
    with pytest.raises(ValueError, match="is finite in 97 of the 552 months of 1979-01:2024-12; more than 85%"):
        enso_coefficient(model, _index(100))
    # A 3-month running mean is NaN in Dec 2024: that month is left out, the rest is used.
    idx = _index(n)
    idx[-1] = np.nan
    rng = np.random.default_rng(11)
    x = _monthly(rng.normal(size=(1, n, *GRID.shape)))
    coeff = enso_coefficient(x, idx, aimip.TEST)
    assert coeff.attrs["months_used"] == 119
    iv = idx.values[-120:-1]
    ip = iv - iv.mean()
    expect = np.mean(ip * x.values[0, -120:-1, 5, 1]) / np.mean(ip**2)
    assert float(coeff[0, 5, 1]) == pytest.approx(expect, rel=RTOL)


def test_relative_index_is_the_projects_nino34():
    n = 60
    lat = np.array([-25.0, -15.0, -5.0, 0.0, 5.0, 15.0, 25.0])
    lon = np.arange(0, 360, 30.0)
    rng = np.random.default_rng(8)
    tos = xr.DataArray(300 + rng.normal(size=(n, lat.size, lon.size)), dims=("time", "lat", "lon"),
                       coords={"time": monthly_axis(Month(1979, 1), Month(1983, 12))["time"], "lat": lat,
                               "lon": lon}, attrs={"units": "K"})
    from diagnostics.metrics.nino34 import nino34_index
    xr.testing.assert_identical(aimip.relative_nino34_index(tos), nino34_index(tos, relative=True, smooth=3))


# ----------------------------------------------------------------- E4

def _daily(values, start="1979-01-01", members=True):
    time = xr.date_range(start, periods=values.shape[1 if members else 0], freq="D", calendar="noleap", use_cftime=True)
    dims = ("member", "time", "lat", "lon") if members else ("time", "lat", "lon")
    coords = {"time": time, **GRID.coords()}
    if members:
        coords["member"] = [f"r{i + 1}i1p1f1" for i in range(values.shape[0])]
    return xr.DataArray(values, dims=dims, coords=coords, name="ta", attrs={"units": "K"})


def test_e4_planted_daily_std_recovered_exactly():
    """Departures s sqrt(2) cos(2 pi k / n_days) have mean 0 and mean square s^2 in each month."""
    days = 365
    time = xr.date_range("1979-01-01", periods=days, freq="D", calendar="noleap", use_cftime=True)
    month = np.array([t.month for t in time])
    dep = np.zeros(days)
    for mo in range(1, 13):
        k = np.flatnonzero(month == mo)
        dep[k] = math.sqrt(2.0) * np.cos(2 * np.pi * np.arange(k.size) / k.size)
    s = np.array([1.0, 2.5])
    monthly_mean = 250.0 + month.astype(float)
    values = monthly_mean[None, :, None, None] + s[:, None, None, None] * dep[None, :, None, None]
    values = np.broadcast_to(values, (2, days, *GRID.shape)).copy()
    daily = _daily(values)
    std = daily_departure_std(daily)
    np.testing.assert_allclose(std.values, s[:, None, None] * np.ones((2, *GRID.shape)), rtol=1e-12)
    # With the run's own monthly means passed explicitly: the same.
    amon = _monthly(np.broadcast_to((250.0 + np.arange(1, 13.0))[None, :, None, None], (2, 12, *GRID.shape)).copy(),
                    start=Month(1979, 1))
    std2 = daily_departure_std(daily, amon)
    np.testing.assert_allclose(std2.values, std.values, rtol=1e-12)


def test_e4_matches_loops_with_monthly_files_and_reference():
    rng = np.random.default_rng(9)
    days = 400  # 1979-01-01 .. 1980-02-04: days outside 1979 are not used
    model = _daily(280 + rng.normal(size=(2, days, *GRID.shape)))
    ref = _daily(280 + 2 * rng.normal(size=(days, *GRID.shape)), members=False)
    amon = _monthly(280 + 0.1 * rng.normal(size=(2, 12, *GRID.shape)), start=Month(1979, 1))
    out = e4_daily_variability(model, ref, model_monthly=amon)
    month = [t.month for t in model["time"].values]
    year = [t.year for t in model["time"].values]
    for m, j, i in [(0, 1, 0), (1, 4, 3), (1, 7, 5)]:
        deps = [model.values[m, k, j, i] - amon.values[m, month[k] - 1, j, i] for k in range(days) if year[k] == 1979]
        mean = sum(deps) / len(deps)
        expect = math.sqrt(sum((d - mean) ** 2 for d in deps) / len(deps))   # ddof = 0
        got = out["std"].isel(member=m).sel(lat=GRID.lat[j], lon=GRID.lon[i])
        assert float(got) == pytest.approx(expect, rel=RTOL)
    ref_std = np.zeros(GRID.shape)
    for j in range(GRID.shape[0]):
        for i in range(GRID.shape[1]):
            deps = []
            for mo in range(1, 13):
                vals = [ref.values[k, j, i] for k in range(days) if year[k] == 1979 and month[k] == mo]
                mmean = sum(vals) / len(vals)
                deps += [v - mmean for v in vals]
            mean = sum(deps) / len(deps)
            ref_std[j, i] = math.sqrt(sum((d - mean) ** 2 for d in deps) / len(deps))
    np.testing.assert_allclose(out["reference_std"].values, ref_std[INSIDE], rtol=RTOL)
    assert float(out["reference_global_std"]) == pytest.approx(ref_coslat_mean(ref_std, GRID.lat), rel=RTOL)


def test_e4_needs_every_month_of_the_daily_period():
    daily = _daily(np.ones((1, 100, *GRID.shape)))
    with pytest.raises(ValueError, match="no days in 8 of the 12 months"):
        daily_departure_std(daily)


# ----------------------------------------------------------------- E5

def test_e5_planted_response_and_member_pairing():
    rng = np.random.default_rng(10)
    n = _n_months()
    control = 280 + rng.normal(size=(3, n, *GRID.shape))
    warming = (4.0 + np.cos(np.deg2rad(GRID.lat)))[:, None] * np.ones(GRID.shape)
    shift = np.array([0.0, 0.2, -0.2])
    perturbed = control + warming[None, None] + shift[:, None, None, None]
    out = e5_response(_monthly(perturbed, name="ts"), _monthly(control, name="ts"))
    np.testing.assert_allclose(out["response"].values, (warming[None] + shift[:, None, None])[:, INSIDE], atol=1e-9)
    gm = ref_coslat_mean(warming, GRID.lat)
    np.testing.assert_allclose(out["global_response"].values, gm + shift, rtol=RTOL)
    assert float(out["global_response_median"]) == pytest.approx(gm, rel=RTOL)
    np.testing.assert_allclose(out["response_mean"].values, warming[INSIDE], atol=1e-9)
    with pytest.raises(ValueError, match="differ in grid or members"):
        e5_response(_monthly(perturbed).isel(member=[0, 1]), _monthly(control).isel(member=[1, 2]))


def test_e5_uses_the_whole_run_including_spin_up():
    n = _n_months()
    control = np.zeros((1, n, *GRID.shape))
    perturbed = control.copy()
    perturbed[:, :3] = 1.0            # Oct-Dec 1978 only
    out = e5_response(_monthly(perturbed), _monthly(control))
    np.testing.assert_allclose(out["global_response"].values, [3.0 / n], rtol=1e-12)


# ----------------------------------------------------------------- config and helpers

def test_config_is_strict_and_band_is_closed():
    with pytest.raises(TypeError):
        AimipEvaluation(daily_period="1979-01:1979-12")
    with pytest.raises(TypeError):
        AimipEvaluation(enso_periods={"all": "1979-01:2024-12"})
    with pytest.raises(ValueError):
        AimipEvaluation(lat_limits=(10.0, -10.0))
    model, _ = _e1_fields()
    assert list(latitude_band(model)["lat"].values) == [-87.5, -60.0, -30.0, 0.0, 30.0, 60.0, 87.5]
    with pytest.raises(ValueError, match="no latitude"):
        latitude_band(model, (88.0, 88.5))
    x = xr.DataArray(np.ones((2, 3)), dims=("lat", "lon"), coords={"lat": [0.0, 60.0], "lon": [0, 1, 2.0]})
    x[1, 0] = np.nan
    assert float(coslat_mean(x * xr.DataArray([1.0, 3.0], dims="lat"))) == pytest.approx(
        (3 * 1.0 + 2 * 0.5 * 3.0) / (3 * 1.0 + 2 * 0.5), rel=1e-12)
    assert month_index(model["time"])[0] == Month(1978, 10).index


# ----------------------------------------------------------------- ours vs official (docs/metrics.md)

def test_difference_from_our_weights_is_the_polar_cap_closed_form():
    from diagnostics.data.grid import equiangular
    from diagnostics.metrics.climatology import bias_summary
    g = equiangular(1.0)
    b = xr.DataArray(np.ones(g.shape), dims=("lat", "lon"), coords=g.coords())
    b = b.where(np.abs(b["lat"]) <= 87.5, 10.0)
    cap = 1.0 - math.sin(math.radians(87.5))   # area fraction poleward of 87.5 in each hemisphere
    assert float(bias_summary(b)["rms"]) == pytest.approx(math.sqrt(1.0 + 99.0 * cap), rel=1e-9)
    assert float(aimip.coslat_rms(latitude_band(b))) == pytest.approx(1.0, rel=1e-12)


def test_our_monthly_trend_no_longer_has_the_seasonal_leak_of_a_plain_ols():
    from diagnostics.metrics.trends import linear_trend
    years, amplitude = 36, 10.0
    axis = monthly_axis(Month(1979, 1), Month(2014, 12))
    t = np.arange(12 * years)
    f = xr.DataArray(amplitude * np.cos(2 * np.pi * t / 12), dims="time", coords={"time": axis["time"]},
                     attrs={"units": "K"})
    n = t.size
    leak = -6.0 * amplitude * years / (n * (n**2 - 1) / 12.0) * 120.0
    # a plain monthly OLS leaks the cycle by the closed form; ours (monthly intercepts) gives 0
    assert np.polyfit(t / 120.0, f.values, 1)[0] == pytest.approx(leak, rel=1e-9)
    assert leak == pytest.approx(-0.0386, abs=1e-4)
    assert abs(float(linear_trend(f))) < 1e-12
    assert abs(float(decadal_trend(annual_means(f, aimip.TRAIN)))) < 1e-12


def test_mask_intermittent_is_the_notebooks_cm4_rule():
    model, ref = _e1_fields(n_members=1)
    cm4 = ref.copy()
    cm4[17, 3, 2] = np.nan                  # below ground in one month only
    masked = aimip.mask_intermittent(cm4)
    assert bool(masked[:, 3, 2].isnull().all()) and int(masked.isnull().sum()) == masked.sizes["time"]
    era5 = ref.mean("time").where(aimip.time_mean(masked, aimip.TRAIN).notnull())
    assert np.isnan(float(era5[3, 2])) and np.isfinite(float(era5[3, 3]))
