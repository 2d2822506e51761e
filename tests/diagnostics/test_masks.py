"""Below-ground masks end to end (issue 14): a CMOR-like submission whose ta is masked under the
ground (under its declared ``_FillValue``) and carries a planted bias elsewhere, scored by md-diagnose.

Planted truth: every member is the reference plus a bias map b(lat, lon) plus a member offset that
sums to zero over the members, constant in time. So the ensemble-mean bias is b exactly, anomalies
equal the reference's (trend, variability and ENSO-regression differences vanish), and every
area-weighted number must equal an independent numpy computation over the cells that are not masked,
weights renormalised to those cells (and differ from the unmasked global value).
"""

from __future__ import annotations

import json

import cftime
import numpy as np
import pytest
import xarray as xr

from diagnostics.cli.diagnose import main
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.io.writer import write_prepared
from diagnostics.metrics import climatology, coverage
from diagnostics.synth.climate import synthesize

GRID = equiangular(11.25)  # 17 x 32
START, END = Month(2012, 1), Month(2015, 12)
TRAIN, TEST = "2012-01:2013-12", "2014-01:2015-12"
#: CMIP6's 19 levels (Pa), with ACCESS-CM2's float noise on 1000 and 850 hPa
PLEV19 = np.array([100000.00000001, 92500, 85000.00000001, 70000, 60000, 50000, 40000, 30000, 25000, 20000,
                   15000, 10000, 7000, 5000, 3000, 2000, 1000, 500, 100])
OFFSETS = np.array([-0.3, 0.1, 0.2])  # member offsets (K), sum zero


def _independent_area_weights(lat_deg: np.ndarray) -> np.ndarray:
    """Cell areas of an equiangular grid with poles: sin of the cell edges (midpoints, +-90) differenced."""
    edges = np.concatenate([[-90.0], (lat_deg[1:] + lat_deg[:-1]) / 2, [90.0]])
    return np.diff(np.sin(np.deg2rad(edges)))


def _mask(lat: np.ndarray, lon: np.ndarray) -> dict[int, np.ndarray]:
    """Below-ground cells per level (hPa): Antarctica at 1000/850/700, a Tibet box at 1000/850."""
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    antarctica = la < -65
    tibet = (la > 25) & (la < 40) & (lo > 75) & (lo < 105)
    return {1000: antarctica | tibet, 850: antarctica | tibet, 700: antarctica}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    root = tmp_path_factory.mktemp("masks")
    ref, _ = synthesize(GRID, START, END, seed=4, members=1)
    ref = ref[["ta", "tas", "tos", "time_bnds"]].load()
    write_prepared(ref, root / "ref", {"fingerprint": "masks-ref"})
    lat, lon = ref["lat"].values, ref["lon"].values
    # K, not uniform: a mask changes its area mean; zonal wavenumbers 0 and 1 only
    bias = 1.5 + 0.8 * np.sin(np.deg2rad(lat))[:, None] + np.cos(np.deg2rad(lat))[:, None] * np.sin(np.deg2rad(lon))
    mask = _mask(lat, lon)
    months = ref.sizes["time"]
    time = np.array([cftime.datetime(2012 + k // 12, k % 12 + 1, 16, calendar="noleap") for k in range(months)])
    bnds = np.array([[cftime.datetime(2012 + k // 12, k % 12 + 1, 1, calendar="noleap"),
                      cftime.datetime(2012 + (k + 1) // 12, (k + 1) % 12 + 1, 1, calendar="noleap")]
                     for k in range(months)])
    src_levels = [int(round(p / 100)) for p in PLEV19]
    d = root / "CM4like"
    d.mkdir()
    for m, offset in enumerate(OFFSETS, start=1):
        ta = np.full((months, PLEV19.size, lat.size, lon.size), 230.0, np.float32)  # levels not scored
        for k, hpa in enumerate(src_levels):
            if hpa * 100.0 in ref["plev"].values:
                ta[:, k] = ref["ta"].sel(plev=hpa * 100.0).values + bias + offset
            if hpa in mask:
                ta[:, k][:, mask[hpa]] = np.nan  # written as the declared fill, 1e20
        tas = (ref["tas"].values + bias + offset).astype(np.float32)
        tos = ref["tos"].values.astype(np.float32)
        common = {"time_bnds": (("time", "bnds"), bnds),
                  "lat_bnds": (("lat", "bnds"), np.stack([lat - 5.625, lat + 5.625], 1).clip(-90, 90)),
                  "lon_bnds": (("lon", "bnds"), np.stack([lon - 5.625, lon + 5.625], 1))}
        for var, dims, data, units in (("ta", ("time", "plev", "lat", "lon"), ta, "K"),
                                       ("tas", ("time", "lat", "lon"), tas, "K"),
                                       ("tos", ("time", "lat", "lon"), tos, "K")):
            ds = xr.Dataset({var: (dims, data, {"units": units}), **common},
                            coords={"time": ("time", time, {"bounds": "time_bnds"}), "lat": lat, "lon": lon})
            if var == "ta":
                ds = ds.assign_coords(plev=("plev", PLEV19, {"units": "Pa", "positive": "down"}))
            enc = {v: {"units": "days since 1850-01-01", "calendar": "noleap"} for v in ("time", "time_bnds")}
            ds.to_netcdf(d / f"{var}_Amon_CM4like_aimip_r{m}i1p1f1_gr1_201201-201512.nc",
                         encoding={**enc, var: {"_FillValue": np.float32(1e20)}})
    out = root / "out"
    assert main(["--ensemble", f"CM4like={d}", "--reference", str(root / "ref"), "--out", str(out),
                 "--train-period", TRAIN, "--test-period", TEST, "--variables", "ta", "tas",
                 "--report", "none", "--no-progress", "--no-baselines"]) == 0
    doc = json.loads((out / "metrics.json").read_text())
    with xr.open_dataset(out / "metrics.nc", engine="netcdf4", decode_times=False) as nc:
        doc["descriptions"] = {name: nc[name].attrs["description"] for name in nc.data_vars}
    return doc, ref, bias, mask


def _wmean(values: np.ndarray, valid: np.ndarray, lat: np.ndarray) -> float:
    w = _independent_area_weights(lat)[:, None] * np.ones(valid.shape)
    return float((w * values)[valid].sum() / w[valid].sum())


@pytest.mark.parametrize("hpa", [1000, 850, 700, 500])
def test_planted_bias_recovered_over_the_cells_above_ground(scored, hpa):
    doc, ref, bias, mask = scored
    m, lat = doc["metrics"], ref["lat"].values
    valid = ~mask.get(hpa, np.zeros(bias.shape, bool))
    truth_mean = _wmean(bias, valid, lat)
    truth_rms = np.sqrt(_wmean(bias**2, valid, lat))
    for period, seasons in (("train", ("ANN", "DJF", "JJA")), ("test", ("ANN", "SON"))):
        for season in seasons:
            assert m[f"CM4like.ta{hpa}.bias_mean.{period}.{season}"] == pytest.approx(truth_mean, abs=2e-5)
            assert m[f"CM4like.ta{hpa}.bias_rms.{period}.{season}"] == pytest.approx(truth_rms, abs=2e-5)
        # every month is biased by b: the ensemble-mean RMSE is the same renormalised RMS
        assert m[f"CM4like.ta{hpa}.ensmean_rmse.{period}"] == pytest.approx(truth_rms, abs=2e-5)
        # CRPS of members ref + b + o_m against ref, pointwise in closed form, then the same mean
        crps_cell = np.mean(np.abs(bias[..., None] + OFFSETS), -1) - \
            np.abs(OFFSETS[:, None] - OFFSETS[None, :]).sum() / (2 * OFFSETS.size**2)
        assert m[f"CM4like.ta{hpa}.crps.{period}"] == pytest.approx(_wmean(crps_cell, valid, lat), abs=2e-5)
        assert m[f"CM4like.ta{hpa}.spread.{period}"] == pytest.approx(np.std(OFFSETS, ddof=1), abs=2e-5)
        fraction = doc["metrics"].get(f"CM4like.ta{hpa}.scored_area_fraction.{period}")
        if hpa in mask:
            assert fraction == pytest.approx(_wmean(valid.astype(float), np.ones_like(valid), lat), rel=1e-12)
            assert fraction < 0.95
            # renormalised: not what the unmasked global mean (or the masked sum over all weights) gives
            assert abs(truth_mean - _wmean(bias, np.ones_like(valid), lat)) > 1e-3
        else:
            assert fraction is None  # nothing masked, no extra number
    # anomalies equal the reference's: trend, variability and ENSO-pattern differences vanish
    assert m[f"CM4like.ta{hpa}.trend_global_diff.all"] == pytest.approx(0.0, abs=1e-5)
    assert m[f"CM4like.ta{hpa}.std_ratio.all"] == pytest.approx(1.0, abs=1e-5)
    assert m[f"CM4like.ta{hpa}.nino34_pattern_corr.all"] == pytest.approx(1.0, abs=1e-5)
    # the bias holds zonal wavenumbers 0 and 1: synoptic scales are the reference's, on the same rows
    assert m[f"CM4like.ta{hpa}.zonal_band_ratio.test.10-30"] == pytest.approx(1.0, abs=1e-4)


def test_spectra_of_masked_levels_skipped_with_the_reason(scored):
    doc = scored[0]
    skipped = {s["what"]: s["why"] for s in doc["skipped"]}
    for hpa in (1000, 850, 700):
        assert f"CM4like.ta{hpa}.sh_band_ratio.test.1-10" not in doc["metrics"]
        assert "below-ground masked" in skipped[f"CM4like.ta{hpa}.sh_band_ratio.test"]
    assert "CM4like.ta500.sh_band_ratio.test.1-10" in doc["metrics"]


def test_tas_bias_is_global(scored):
    doc, ref, bias, _ = scored
    truth = _wmean(bias, np.ones(bias.shape, bool), ref["lat"].values)
    assert doc["metrics"]["CM4like.tas.bias_mean.train.ANN"] == pytest.approx(truth, abs=2e-5)


def test_a_cell_missing_one_month_leaves_the_time_mean_not_biases_it():
    """A mask that comes and goes (surface pressure below the level in some months): the cell is
    left out of the time mean rather than averaged over the months it has."""
    time = xr.date_range("2000-01-01", periods=24, freq="MS", use_cftime=True)
    lat, lon = np.array([-45.0, 45.0]), np.array([0.0, 180.0])
    ref = xr.DataArray(np.zeros((24, 2, 2)) + np.arange(24)[:, None, None], dims=("time", "lat", "lon"),
                       coords={"time": time, "lat": lat, "lon": lon}, name="ta")
    model = ref + 1.0
    model[:12, 0, 0] = np.nan  # masked in the first year only (its colder months)
    bias = climatology.bias_map(model, ref)
    assert np.isnan(bias.values[0, 0]) and np.allclose(bias.values.ravel()[1:], 1.0)
    frac = float(coverage.scored_fraction(model, ref))
    assert frac == pytest.approx(0.75)  # four equal cells (+-45 rows have equal area), one left out


def test_bias_maps_say_the_area_they_cover(scored):
    doc, ref, _, mask = scored
    described = doc["descriptions"]
    fraction = _wmean((~mask[1000]).astype(float), np.ones(mask[1000].shape, bool), ref["lat"].values)
    assert described["bias__CM4like__ta1000__train__ANN"].endswith(
        f"; scored over {100 * fraction:.1f} % of the area: below-ground cells masked")
    assert "scored over" not in described["bias__CM4like__ta500__train__ANN"]
    assert "scored over" not in described["bias__CM4like__tas__train__ANN"]


def test_eofs_leave_out_a_cell_missing_some_months():
    """A cell missing some months is dropped whole, giving the EOFs of the field without that cell
    (independent: the same analysis with the cell NaN throughout)."""
    from diagnostics.metrics.modes import leading_eofs

    rng = np.random.default_rng(3)
    lat, lon = np.linspace(20, 80, 7), np.arange(12) * 30.0
    pattern = np.cos(np.deg2rad(lat))[:, None] * np.cos(np.deg2rad(lon))[None, :]
    data = rng.standard_normal(40)[:, None, None] * pattern + 0.3 * rng.standard_normal((40, 7, 12))
    field = xr.DataArray(data, dims=("time", "lat", "lon"), coords={"time": np.arange(40), "lat": lat, "lon": lon})
    intermittent = field.copy()
    intermittent[5:9, 2, 3] = np.nan  # below ground in four months
    fixed = field.copy()
    fixed[:, 2, 3] = np.nan
    got, want = leading_eofs(intermittent, n=2), leading_eofs(fixed, n=2)
    np.testing.assert_allclose(got["variance_fraction"].values, want["variance_fraction"].values, rtol=1e-12)
    np.testing.assert_allclose(got["pattern"].values, want["pattern"].values, rtol=1e-10, equal_nan=True)
