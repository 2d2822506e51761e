"""md-synth --forced-trend and the identifiability of the warming response (issue 13).

By default the atmosphere's historical trend and its response to a uniform SST offset are
independent planted maps and the offset is 0 in every historical month, so the historical data
cannot depend on the warming maps at all (the first test: bit for bit). ``--forced-trend`` ties
the trend to the warming map (trend = 0.15 K/decade x warming per K), which the data then carry
exactly; the default output is unchanged (no new key in the manifest, dataset or truth).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from diagnostics import __version__
from diagnostics.cli.synth import main as synth_main
from diagnostics.data import catalogue
from diagnostics.data.grid import equiangular
from diagnostics.data.provenance import digest
from diagnostics.data.timeaxis import Month
from diagnostics.synth import patterns
from diagnostics.synth.climate import synthesize
from diagnostics.synth.model import Model, make_run

COARSE = equiangular(11.25)  # 17 x 32
START, END = Month(1999, 1), Month(2000, 12)
ADDITIVE = ("ts", "tas", "uas", "vas", "psl", "ta", "ua", "va", "zg500")


def _with_random_warming(model: Model) -> Model:
    """The same climate with random warming maps (the forced trend, when on, follows them)."""
    rng = np.random.default_rng(0)
    maps = {kind: dict(m) for kind, m in model.maps.items()}
    maps["warming"] = {lab: rng.normal(0.0, 10.0, g.shape) for lab, g in maps["warming"].items()}
    if model.forced_trend:
        maps["trend"] = patterns.forced_trends(maps["warming"])
    return Model(grid=model.grid, slope=model.slope, statics=model.statics, clim=model.clim, maps=maps,
                 noise=model.noise, forced_trend=model.forced_trend)


@pytest.mark.parametrize("forced", [False, True])
def test_historical_data_carry_the_warming_maps_only_with_forced_trend(forced):
    """Default: historical data are bit-identical whatever the warming maps are (unidentifiable by
    any estimator); forced trend: they change with them."""
    model = Model.build(COARSE, forced_trend=forced)
    runs = [make_run(m, START, END, seed=3) for m in (model, _with_random_warming(model))]
    same = all(np.array_equal(runs[0].variable_chunk(0, k, s), runs[1].variable_chunk(0, k, s), equal_nan=True)
               for s in ("tas", "psl", "zg500", "pr", "ta") for k in range(len(runs[0].chunks)))
    assert same == (not forced)


@pytest.fixture(scope="module")
def pair():
    """(default, forced) historical and p2k datasets and truths of one seed."""
    out = {}
    for forced in (False, True):
        for dt in (0.0, 2.0):
            out[forced, dt] = synthesize(COARSE, START, END, seed=5, sst_offset=dt, forced_trend=forced)
    return out


def test_forced_trend_truth_is_the_warming_map_times_the_tropical_sst_trend(pair):
    default, forced = pair[False, 0.0][1], pair[True, 0.0][1]
    rate = float(forced["forced_trend_rate"])
    assert rate == pytest.approx(0.15) and forced.attrs["forced_trend"] == 1
    tropics = np.abs(default["lat"].values) <= 25  # the SST trend is exactly uniform there
    assert float(np.nanmax(np.abs(default["tos_trend"].values[tropics] - rate))) < 1e-6
    inside = forced["nao_domain_mask"].values > 0
    for name in catalogue.STATE_VARIABLES:
        s = catalogue.variable(name).store_name
        gamma, trend = forced[f"{s}_warming_per_K"].values, forced[f"{s}_trend"].values
        np.testing.assert_allclose(trend, rate * gamma, rtol=1e-6, atol=1e-12 * max(np.abs(gamma).max(), 1))
        if s in ("zg500", "psl", "ps"):  # tapered in the NAO domain: the NAO truth stays exact
            assert np.abs(gamma[..., inside]).max() < 1e-6 and np.abs(trend[..., inside]).max() < 1e-6
        else:  # everywhere else the warming response is the default one
            np.testing.assert_array_equal(gamma, default[f"{s}_warming_per_K"].values)
    # the default trends are the independent planted maps (psl none, zg500 only in the tropics)
    assert np.abs(default["psl_trend"].values).max() == 0 and np.abs(forced["psl_trend"].values).max() > 4
    assert "forced_trend_rate" not in default and "forced_trend" not in default.attrs


def test_forced_trend_changes_only_the_trend_term(pair):
    """forced - default data = (forced trend - default trend) x years / 10 (additive channels, float32)."""
    (d, td), (f, tf) = pair[False, 0.0], pair[True, 0.0]
    years = (np.arange(START.index, END.index + 1) - 2000 * 12) / 12.0
    for name in ADDITIVE:
        change = (tf[f"{name}_trend"] - td[f"{name}_trend"]).values
        expected = change[None] * (years / 10.0).reshape((-1,) + (1,) * change.ndim)
        scale = float(np.abs(d[name].values).max())
        np.testing.assert_allclose(f[name].values - d[name].values, expected, atol=4e-7 * scale, err_msg=name)
    for name in ("tos", "siconc"):
        np.testing.assert_array_equal(f[name].values, d[name].values)  # the forcing is the same
    assert "forced_trend" not in d.attrs and f.attrs["forced_trend"] == 1


def test_p2k_minus_historical_is_the_warming_map_with_forced_trend(pair):
    (h, truth), (w, _) = pair[True, 0.0], pair[True, 2.0]
    for name in ("tas", "psl", "zg500", "ta"):
        gamma = truth[f"{name}_warming_per_K"].values
        scale = float(np.abs(h[name].values).max())
        np.testing.assert_allclose(((w[name] - h[name]) / 2.0).values, np.broadcast_to(gamma, h[name].shape),
                                   atol=4e-7 * scale, err_msg=name)


def test_cli_forced_trend_is_recorded_and_the_default_is_unchanged(tmp_path):
    base = ["--grid", "5.625", "--start", "2005-01", "--end", "2005-01", "--seed", "1"]
    assert synth_main(["--out", str(tmp_path / "d")] + base) == 0
    assert synth_main(["--out", str(tmp_path / "f"), "--forced-trend"] + base) == 0
    md, mf = (json.loads((tmp_path / k / "manifest.json").read_text()) for k in ("d", "f"))
    # the default's fingerprint is that of the arguments without the new key: existing default
    # datasets (make demo's) keep theirs and are not refused as "a different dataset"
    args = {"generator": "md-synth", "version": __version__, "grid": 5.625, "start": "2005-01", "end": "2005-01",
            "seed": 1, "members": 1, "scenario": "historical", "sst_offset_K": 0.0, "nonlinear": True}
    assert "forced_trend" not in md and md["fingerprint"] == digest(args)
    assert mf["forced_trend"] is True and mf["fingerprint"] == digest({**args, "forced_trend": True})
    ds = {k: xr.open_zarr(tmp_path / k / "dataset.zarr", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
          for k in ("d", "f")}
    assert "forced_trend" not in ds["d"].attrs and ds["f"].attrs["forced_trend"] == 1
    assert not np.array_equal(ds["f"]["zg500"].values, ds["d"]["zg500"].values)  # the trend reached the data
    with xr.open_dataset(tmp_path / "f" / "truth.nc", engine="netcdf4") as truth:
        assert truth.attrs["forced_trend"] == 1 and float(truth["forced_trend_rate"]) == pytest.approx(0.15)
