"""Trends (one intercept per calendar month) against numpy.linalg.lstsq with monthly dummies,
scipy.stats.linregress of deseasonalised series, and closed forms (seasonal cycle -> 0)."""

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback
from scipy import stats

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, month_index, monthly_axis
from diagnostics.metrics.trends import global_mean_trend, linear_trend, trend_difference

GRID = equiangular(11.25)


def _field(seed=0, slope_per_decade=0.0, years=6):
    axis = monthly_axis(Month(1990, 1), Month(1990 + years - 1, 12), "noleap")
    rng = np.random.default_rng(seed)
    months = np.arange(axis.sizes["time"])
    noise = rng.normal(size=(months.size, *GRID.shape))
    values = 250.0 + noise + np.asarray(slope_per_decade)[None] * (months / 120.0)[:, None, None]
    return xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": axis["time"], **GRID.coords()},
                        name="tas", attrs={"units": "K"})


def _areas(lat):
    lat = np.asarray(lat, float)
    edges = np.concatenate([[-90.0], 0.5 * (lat[1:] + lat[:-1]), [90.0]])
    return np.diff(np.sin(np.deg2rad(edges)))


def _dummy_fit(x, y):
    """Slope of y = a_month + b x by lstsq (12 calendar-month dummies + x), independent of the code."""
    n = x.size
    design = np.zeros((n, 13))
    design[np.arange(n), np.arange(n) % 12] = 1.0  # series start in January here
    design[:, 12] = x
    return np.linalg.lstsq(design, y, rcond=None)[0][12]


def test_trend_map_matches_a_monthly_dummy_regression():
    rng = np.random.default_rng(5)
    planted = rng.normal(size=GRID.shape)
    f = _field(slope_per_decade=planted)
    trend = linear_trend(f)
    assert trend.attrs["units"] == "K decade-1"
    x = np.arange(f.sizes["time"]) / 120.0 + 1990 * 12 / 120.0  # month index in decades
    flat = f.values.reshape(f.sizes["time"], -1)
    fit = np.array([_dummy_fit(x, flat[:, k]) for k in range(flat.shape[1])]).reshape(GRID.shape)
    np.testing.assert_allclose(trend.values, fit, rtol=1e-9, atol=1e-12)
    # the same as linregress of the series and the time axis both deseasonalised (Frisch-Waugh)
    y = f.values[:, 3, 7].reshape(-1, 12)
    xs = x.reshape(-1, 12)
    lr = stats.linregress((xs - xs.mean(0)).ravel(), (y - y.mean(0)).ravel())
    assert float(trend[3, 7]) == pytest.approx(lr.slope, rel=1e-9)


def test_pure_seasonal_cycle_has_zero_trend_over_a_span_of_partial_years():
    """1978-10..2024-12 (the AI-MIP span, 555 months): a plain OLS leaks the cycle into the slope."""
    axis = monthly_axis(Month(1978, 10), Month(2024, 12), "noleap")
    months = np.arange(axis.sizes["time"]) + 9  # calendar month 0..11 of each step (starts in October)
    cycle = 10.0 * np.cos(2 * np.pi * months / 12.0) + 3.0 * np.sin(4 * np.pi * months / 12.0)
    da = xr.DataArray(250.0 + cycle, dims="time", coords={"time": axis["time"]}, attrs={"units": "K"})
    assert abs(float(linear_trend(da))) < 1e-10
    t = np.arange(months.size) / 120.0
    leak = np.polyfit(t, da.values, 1)[0]
    assert abs(leak) > 0.01  # what the old monthly OLS gave (K per decade)
    # a planted trend on top is recovered exactly, the cycle removed
    assert float(linear_trend(da + 0.25 * xr.DataArray(t, dims="time", coords={"time": axis["time"]}))) == \
        pytest.approx(0.25, rel=1e-10)


def test_global_mean_trend_and_partial_nan():
    f = _field(seed=1, slope_per_decade=np.full(GRID.shape, 0.3))
    w = _areas(GRID.lat)
    series = (f.values * w[None, :, None]).sum(axis=(1, 2)) / (w.sum() * GRID.shape[1])
    x = np.arange(f.sizes["time"]) / 120.0
    assert float(global_mean_trend(f)) == pytest.approx(_dummy_fit(x, series), rel=1e-9)
    # a cell missing its first year uses only its valid months
    g = f.copy()
    g[:12, 2, 2] = np.nan
    assert float(linear_trend(g)[2, 2]) == pytest.approx(_dummy_fit(x[12:], f.values[12:, 2, 2]), rel=1e-9)
    g[:, 4, 4] = np.nan
    assert np.isnan(float(linear_trend(g)[4, 4]))


def test_trend_difference_recovers_planted_extra_trend_and_is_lazy():
    ref = _field(seed=2, slope_per_decade=np.zeros(GRID.shape))
    extra = xr.DataArray(0.2 * np.arange(ref.sizes["time"]) / 120.0, dims="time", coords={"time": ref["time"]})
    model = xr.concat([ref + extra + d for d in (-1.0, 1.0)],
                      dim="member").assign_attrs(units="K").chunk({"time": 24})
    out = trend_difference(model, ref, "1991-01:1995-12")
    assert isinstance(out["map"].data, dsa.Array)
    np.testing.assert_allclose(out["map"].values, 0.2, rtol=1e-9)
    assert float(out["rms"]) == pytest.approx(0.2, rel=1e-9)
    assert float(out["global_difference"]) == pytest.approx(0.2, rel=1e-9)


def _plain_trend(field):
    """The formula written with xarray's groupby arithmetic (what linear_trend computed before)."""
    t = xr.DataArray(month_index(field["time"]) / 120.0, dims="time", coords={"time": field["time"]})
    month = xr.DataArray(month_index(field["time"]) % 12, dims="time", name="calendar_month",
                         coords={"time": field["time"]})
    tv = t.where(field.notnull())
    dt = tv.groupby(month) - tv.groupby(month).mean("time")
    dx = field.groupby(month) - field.groupby(month).mean("time", dtype=np.float64)  # float64 sums, as ours
    return ((dt * dx).sum("time") / (dt**2).sum("time")).where(field.notnull().sum("time") >= 2)


class _Held(Callback):
    """Largest total of array bytes dask holds between tasks (synchronous scheduler)."""

    def __init__(self):
        super().__init__()
        self.peak = 0

    def _posttask(self, key, result, dsk, state, id):
        self.peak = max(self.peak, sum(getattr(v, "nbytes", 0) for v in state["cache"].values()))


def test_dask_trend_equals_the_groupby_formula_and_holds_less(tmp_path):
    axis = monthly_axis(Month(1990, 1), Month(2009, 12), "noleap")
    rng = np.random.default_rng(3)
    raw = xr.DataArray((250 + rng.normal(size=(2, 240, 16, 32))).astype("float32"),
                       dims=("member", "time", "lat", "lon"), coords={"time": axis["time"]}, name="tas",
                       attrs={"units": "K"})
    raw[0, :30, 3, 3] = np.nan  # a cell missing its first months, one missing everywhere
    raw[1, :, 4, 4] = np.nan
    raw.to_dataset().chunk({"member": 1, "time": 12}).to_zarr(tmp_path / "s.zarr")
    field = xr.open_zarr(tmp_path / "s.zarr")["tas"]
    held = {}
    for name, fn in (("plain", _plain_trend), ("ours", linear_trend)):
        h = _Held()
        with dask.config.set(scheduler="sync"), h:
            held[name] = (fn(field).values, h.peak / field.nbytes)
    np.testing.assert_array_equal(held["ours"][0], held["plain"][0])  # bit-identical, NaN cells included
    assert np.isnan(held["ours"][0][1, 4, 4]) and np.isfinite(held["ours"][0][0, 3, 3])
    # the plain graph keeps the float64 deviations of the whole field (measured 2.2x the float32
    # field); ours keeps about the field's chunks (1.2x)
    assert held["plain"][1] > 1.8
    assert held["ours"][1] < 1.5
