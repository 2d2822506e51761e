"""The official AI-MIP E1-E5 through the whole md-diagnose command, against an independent
implementation of the published formulas (ai2cm/AIMIP notebooks) written here as plain loops
over members, cells, years, months and days -- no call to diagnostics.metrics.aimip.

One small generated AI-MIP submission (3 members, per-variable files, daily ``day`` files of the
first 15 months beside the monthly ones, a +2 K scenario) and an ERA5-like reference in the same
layout, with a planted bias map, an extra trend, a member equal to the reference plus a constant
(zero ENSO-coefficient error) and planted daily standard deviations.
"""

from __future__ import annotations

import json
import math

import cftime
import numpy as np
import pytest
import xarray as xr

from diagnostics.cli.diagnose import main
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.io.writer import write_aimip

GRID = equiangular(11.25)
START, END = Month(1978, 10), Month(1986, 12)
TRAIN, TEST = (Month(1979, 1), Month(1983, 12)), (Month(1984, 1), Month(1986, 12))
ALL = (Month(1979, 1), END)  # E3 "all": the official 1979-01..2024-12 within the window (no spin-up months)
N_MEMBERS = 3
BIAS = (0.5, 1.5, 3.0)            # K, times a spatial pattern for members 1 and 2
EXTRA_TREND = (0.4, -0.2, 0.0)    # K per decade added to the model's tas
DAILY_STD = (0.7, 1.1, 1.9)       # K, planted std of ta850's daily departures per member
REF_DAILY_STD = 1.3
RTOL = 1e-6
#: planted values are recovered to the precision of float32 files (values ~280 K: 3e-5 K)
PLANTED = 1e-4


# ----------------------------------------------------------------- independent formulas

def lat_ok(phi: float) -> bool:
    return abs(phi) <= 87.5 + 1e-9


def coslat_mean(field2d: np.ndarray) -> float:
    """sum cos(lat) x / sum cos(lat) over finite cells with |lat| <= 87.5 (compute_weighted_mean)."""
    num = den = 0.0
    for j, phi in enumerate(GRID.lat):
        if not lat_ok(phi):
            continue
        w = math.cos(math.radians(phi))
        for i in range(GRID.lon.size):
            v = float(field2d[j, i])
            if not math.isnan(v):
                num, den = num + w * v, den + w
    return num / den


def coslat_rms(field2d: np.ndarray) -> float:
    return math.sqrt(coslat_mean(np.asarray(field2d) ** 2))


def months_between(a: Month, b: Month) -> list[int]:
    return [k for k in range(len(MONTHS)) if a.index <= MONTHS[k].index <= b.index]


def time_mean(series3d: np.ndarray, period) -> np.ndarray:
    ks = months_between(*period)
    return sum(series3d[k] for k in ks) / len(ks)


def slope(t: list[float], y: list[float]) -> float:
    """Normal equations of y = a + b t."""
    n = len(t)
    st, sy = sum(t), sum(y)
    stt, sty = sum(a * a for a in t), sum(a * b for a, b in zip(t, y))
    return (n * sty - st * sy) / (n * stt - st * st)


def annual(series3d: np.ndarray, period) -> tuple[list[int], list[np.ndarray]]:
    years = list(range(period[0].year, period[1].year + 1))
    out = []
    for y in years:
        ks = [k for k in range(len(MONTHS)) if MONTHS[k].year == y]
        out.append(sum(series3d[k] for k in ks) / 12.0)
    return years, out


def median(values: list[float]) -> float:
    s = sorted(values)
    n = len(s)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def enso_coefficient(series3d: np.ndarray, index: np.ndarray, period) -> np.ndarray:
    """cov(i, x) / var(i) per cell, i' = i - mean(i) over the period's months where i is finite."""
    ks = [k for k in months_between(*period) if math.isfinite(index[k])]
    mean_i = sum(index[k] for k in ks) / len(ks)
    var_i = sum((index[k] - mean_i) ** 2 for k in ks) / len(ks)
    out = np.empty(series3d.shape[1:])
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            out[j, i] = sum(series3d[k, j, i] * (index[k] - mean_i) for k in ks) / len(ks) / var_i
    return out


def departure_std(days: np.ndarray, day_months: list[int], monthly: np.ndarray) -> np.ndarray:
    """Population std over the days of 1979 of (daily - monthly file value of the day's month)."""
    keep = [d for d, m in enumerate(day_months) if MONTHS[m].year == 1979]
    out = np.empty(days.shape[1:])
    for j in range(out.shape[0]):
        for i in range(out.shape[1]):
            dep = [days[d, j, i] - monthly[day_months[d], j, i] for d in keep]
            mu = sum(dep) / len(dep)
            out[j, i] = math.sqrt(sum((x - mu) ** 2 for x in dep) / len(dep))
    return out


# ----------------------------------------------------------------- the generated submission

MONTHS = [START + k for k in range((END.index - START.index) + 1)]


def _days() -> tuple[list, list[int]]:
    """Noon of every day of the first 15 months (1978-10-01..1979-12-31, noleap), month positions."""
    days, pos = [], []
    d = cftime.DatetimeNoLeap(1978, 10, 1, 12)
    while d.year < 1980:
        days.append(d)
        pos.append(Month(d.year, d.month).index - START.index)
        d = d + __import__("datetime").timedelta(days=1)
    return days, pos


def _daily_file(path, values: np.ndarray, days: list, model: str, member: str) -> None:
    da = xr.DataArray(values[:, None], dims=("time", "plev", "lat", "lon"),
                      coords={"time": days, "plev": ("plev", [85000.0], {"units": "Pa"}), **GRID.coords()},
                      name="ta", attrs={"units": "K", "standard_name": "air_temperature"})
    ds = da.to_dataset()
    ds.attrs.update(source_id=model, variant_label=member)
    ds.to_netcdf(path / f"ta_day_{model}_aimip_{member}_gn_19781001-19791231.nc",
                 encoding={"time": {"units": "days since 1978-10-01", "calendar": "noleap"}})


def _planted_departures(rng, n_days_pos: list[int], std: float) -> np.ndarray:
    """Departures with mean 0 within every month and population std ``std`` over every cell."""
    dep = rng.normal(size=(len(n_days_pos), *GRID.shape))
    pos = np.asarray(n_days_pos)
    for m in np.unique(pos):
        sel = pos == m
        dep[sel] -= dep[sel].mean(axis=0)
    year = np.array([MONTHS[m].year == 1979 for m in pos])
    return dep * (std / dep[year].std(axis=0))


def _f32(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, np.float32).astype(float)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("aimip_official")
    rng = np.random.default_rng(14)
    n = len(MONTHS)
    axis = monthly_axis(START, END, "noleap")
    t_dec = np.arange(n) / 120.0
    lat = GRID.lat[:, None] * np.ones(GRID.shape)
    lon = GRID.lon[None, :] * np.ones(GRID.shape)
    seasonal = 8.0 * np.cos(2 * np.pi * (np.arange(n) + 9) / 12.0)
    enso = np.convolve(rng.normal(size=n + 4), np.ones(5) / 5, mode="valid")[:n] * 2.0
    in_box = (np.abs(lat) <= 5.0) & (lon >= 190.0) & (lon <= 240.0)
    tos = 300.0 + 0.2 * rng.normal(size=(n, *GRID.shape)) + 1.5 * enso[:, None, None] * in_box
    ref_tas = (280.0 - 30.0 * np.sin(np.deg2rad(lat)) ** 2 + seasonal[:, None, None] * np.cos(np.deg2rad(lat))
               + 0.3 * t_dec[:, None, None] + rng.normal(size=(n, *GRID.shape))
               + np.cos(np.deg2rad(lat)) * enso[:, None, None])
    pattern = 1.0 + 0.5 * np.cos(np.deg2rad(lon)) * np.cos(np.deg2rad(lat))
    tas = np.empty((N_MEMBERS, n, *GRID.shape))
    for m in range(N_MEMBERS):
        noise = 0.0 if m == 2 else 0.8 * rng.normal(size=(n, *GRID.shape))
        spread = 1.0 if m == 2 else pattern
        tas[m] = ref_tas + BIAS[m] * spread + EXTRA_TREND[m] * t_dec[:, None, None] + noise
    ref_ta = 260.0 + rng.normal(size=(n, *GRID.shape))
    ta = ref_ta[None] + 0.5 * rng.normal(size=(N_MEMBERS, n, *GRID.shape))
    # the files hold float32: the loops below see the values as written
    ref_tas, tas, ref_ta, ta, tos = (np.asarray(a, np.float32).astype(float) for a in (ref_tas, tas, ref_ta, ta, tos))
    days, day_pos = _days()

    def dataset(tas_v, ta_v, members: bool) -> xr.Dataset:
        dims = ("member", "time", "lat", "lon") if members else ("time", "lat", "lon")
        coords = {"time": axis["time"], **GRID.coords(), **({"member": [1, 2, 3]} if members else {})}
        plev = {"plev": ("plev", [85000.0], {"units": "Pa"})}
        ta_dims = dims[:-2] + ("plev", "lat", "lon")
        tos_v = np.broadcast_to(tos, (N_MEMBERS, *tos.shape)) if members else tos
        return xr.Dataset({
            "tas": xr.DataArray(tas_v, dims=dims, coords=coords, attrs={"units": "K"}),
            "tos": xr.DataArray(tos_v, dims=dims, coords=coords, attrs={"units": "K"}),
            "ta": xr.DataArray(ta_v[..., None, :, :], dims=ta_dims, coords={**coords, **plev},
                               attrs={"units": "K"}),
            "time_bnds": axis["time_bnds"]})

    ref_dir, hist_dir, p2k_dir = root / "ERA5", root / "hist", root / "p2k"
    for d in (ref_dir, hist_dir, p2k_dir):
        d.mkdir()
    write_aimip(dataset(ref_tas, ref_ta, False), ref_dir, "ERA5", "aimip")
    hist = dataset(tas, ta, True)
    write_aimip(hist, hist_dir, "PLANT", "aimip")
    write_aimip(hist.assign(tas=hist["tas"] + 2.0), p2k_dir, "PLANT", "aimip-p2k")
    ref_days = _f32(ref_ta[day_pos] + _planted_departures(rng, day_pos, REF_DAILY_STD))
    _daily_file(ref_dir, ref_days, days, "ERA5", "r1i1p1f1")
    model_days = []
    for m in range(N_MEMBERS):
        model_days.append(_f32(ta[m][day_pos] + _planted_departures(rng, day_pos, DAILY_STD[m])))
        _daily_file(hist_dir, model_days[m], days, "PLANT", f"r{m + 1}i1p1f1")
    out = root / "scores"
    code = main(["--ensemble", f"PLANT={hist_dir}", "--scenario", f"p2k={p2k_dir}", "--reference", str(ref_dir),
                 "--out", str(out), "--debug", "--report", "none", "--no-progress", "--no-baselines", "--no-spectra",
                 "--variables", "tas,ta", "--train-period", "1979-01:1983-12", "--test-period", "1984-01:1986-12"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    with xr.open_dataset(out / "metrics.nc") as nc:
        name = next(v for v in nc.data_vars if nc[v].attrs.get("diagnostic") == "nino34_index")
        index = nc[name].values.astype(float)
    return dict(m=metrics["metrics"], skipped=metrics.get("skipped", []), ref_tas=ref_tas, tas=tas,
                index=index, ref_ta=ref_ta, ta=ta, ref_days=ref_days, model_days=model_days, day_pos=day_pos)


# ----------------------------------------------------------------- E1..E5 against the loops

PERIODS = {"train": TRAIN, "test": TEST}


def test_e1_rmsb_per_member_and_over_members(case):
    m = case["m"]
    for pname, period in PERIODS.items():
        rmsb = []
        for k in range(N_MEMBERS):
            bias = time_mean(case["tas"][k], period) - time_mean(case["ref_tas"], period)
            rmsb.append(coslat_rms(bias))
            assert m[f"PLANT.tas.aimip_rmsb.{pname}.member{k + 1}"] == pytest.approx(rmsb[-1], rel=RTOL)
        assert m[f"PLANT.tas.aimip_rmsb_median.{pname}"] == pytest.approx(median(rmsb), rel=RTOL)
        assert m[f"PLANT.tas.aimip_rmsb_min.{pname}"] == pytest.approx(min(rmsb), rel=RTOL)
        assert m[f"PLANT.tas.aimip_rmsb_max.{pname}"] == pytest.approx(max(rmsb), rel=RTOL)
    # member 3: a uniform 3 K bias plus a trend of 0: RMSB 3 K exactly (planted)
    assert m["PLANT.tas.aimip_rmsb.train.member3"] == pytest.approx(3.0, abs=PLANTED)


def test_e2_trends_of_annual_means(case):
    m = case["m"]
    for pname, period in PERIODS.items():
        years, ref_annual = annual(case["ref_tas"], period)
        t = [y / 10.0 for y in years]
        ref_global = slope(t, [coslat_mean(a) for a in ref_annual])
        assert m[f"reference.tas.aimip_global_trend.{pname}"] == pytest.approx(ref_global, rel=RTOL)
        ref_map = np.array([[slope(t, [a[j, i] for a in ref_annual]) for i in range(GRID.lon.size)]
                            for j in range(GRID.lat.size)])
        gl, rms = [], []
        for k in range(N_MEMBERS):
            _, ann = annual(case["tas"][k], period)
            gl.append(slope(t, [coslat_mean(a) for a in ann]))
            tmap = np.array([[slope(t, [a[j, i] for a in ann]) for i in range(GRID.lon.size)]
                             for j in range(GRID.lat.size)])
            rms.append(coslat_rms(tmap - ref_map))
            assert m[f"PLANT.tas.aimip_global_trend.{pname}.member{k + 1}"] == pytest.approx(gl[-1], rel=RTOL)
            assert m[f"PLANT.tas.aimip_trend_bias_rms.{pname}.member{k + 1}"] == pytest.approx(rms[-1], rel=RTOL, abs=RTOL * abs(ref_global))
        for stat, f in (("median", median), ("min", min), ("max", max)):
            assert m[f"PLANT.tas.aimip_global_trend_{stat}.{pname}"] == pytest.approx(f(gl), rel=RTOL)
            assert m[f"PLANT.tas.aimip_trend_bias_rms_{stat}.{pname}"] == pytest.approx(f(rms), rel=RTOL, abs=1e-9)
        assert m[f"PLANT.tas.aimip_global_trend_error_median.{pname}"] == pytest.approx(median(gl) - ref_global,
                                                                                         rel=RTOL, abs=RTOL * abs(ref_global))
    # member 3 = reference + 3 K (no noise, no extra trend): trend bias 0 everywhere (planted)
    assert m["PLANT.tas.aimip_trend_bias_rms.train.member3"] == pytest.approx(0.0, abs=PLANTED)


def test_e3_enso_coefficient_rmse(case):
    m, index = case["m"], case["index"]
    assert np.isnan(index[-1]) and np.isfinite(index[1:-1]).all()  # 3-month centred running mean
    for pname, period in {**PERIODS, "all": ALL}.items():
        ref_c = enso_coefficient(case["ref_tas"], index, period)
        rmse = [coslat_rms(enso_coefficient(case["tas"][k], index, period) - ref_c) for k in range(N_MEMBERS)]
        for k in range(N_MEMBERS):
            assert m[f"PLANT.tas.aimip_enso_rmse.{pname}.member{k + 1}"] == pytest.approx(rmse[k], rel=RTOL, abs=1e-9)
        assert m[f"PLANT.tas.aimip_enso_rmse_median.{pname}"] == pytest.approx(median(rmse), rel=RTOL)
        assert m[f"PLANT.tas.aimip_enso_rmse_max.{pname}"] == pytest.approx(max(rmse), rel=RTOL)
        # member 3 = reference + constant: its regression map is the reference's (planted: error 0)
        assert m[f"PLANT.tas.aimip_enso_rmse.{pname}.member3"] == pytest.approx(0.0, abs=PLANTED)


def test_e4_daily_departure_std_from_the_day_files(case):
    m, pos = case["m"], case["day_pos"]
    ref_std = departure_std(case["ref_days"], pos, case["ref_ta"])
    assert m["reference.ta850.aimip_daily_std_global"] == pytest.approx(coslat_mean(ref_std), rel=RTOL)
    assert m["reference.ta850.aimip_daily_std_global"] == pytest.approx(REF_DAILY_STD, abs=PLANTED)  # planted
    glob, err = [], []
    for k in range(N_MEMBERS):
        std = departure_std(case["model_days"][k], pos, case["ta"][k])
        glob.append(coslat_mean(std))
        err.append(coslat_rms(std - ref_std))
        assert m[f"PLANT.ta850.aimip_daily_std_global.member{k + 1}"] == pytest.approx(glob[-1], rel=RTOL)
        assert m[f"PLANT.ta850.aimip_daily_std_global.member{k + 1}"] == pytest.approx(DAILY_STD[k], abs=PLANTED)
        assert m[f"PLANT.ta850.aimip_daily_std_error_rms.member{k + 1}"] == pytest.approx(err[-1], rel=RTOL)
        assert err[-1] == pytest.approx(abs(DAILY_STD[k] - REF_DAILY_STD), abs=PLANTED)
    for stat, f in (("median", median), ("min", min), ("max", max)):
        assert m[f"PLANT.ta850.aimip_daily_std_global_{stat}"] == pytest.approx(f(glob), rel=RTOL)
        assert m[f"PLANT.ta850.aimip_daily_std_error_rms_{stat}"] == pytest.approx(f(err), rel=RTOL)


def test_e5_response_in_field_units(case):
    for stat in ("median", "min", "max"):
        assert case["m"][f"PLANT.tas.aimip_response_global_{stat}.p2k"] == pytest.approx(2.0, abs=PLANTED)


def test_e1_on_neuralgcm_grid_skipped_on_a_coarser_grid(case):
    assert not any("aimip_rmsb_2p8deg" in k for k in case["m"])
    assert any(s["what"] == "*.aimip_rmsb_2p8deg" for s in case["skipped"])
