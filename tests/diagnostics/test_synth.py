"""md-synth and diagnostics.synth: contract, reproducibility, land mask, physical plausibility, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr

from diagnostics.cli.synth import main as synth_main
from diagnostics.data import catalogue, contract
from diagnostics.data.grid import area_weights, equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.synth.climate import synthesize
from diagnostics.synth.landmask import land_fraction
from diagnostics.synth.spectral_noise import SphericalNoise, correlation

COARSE = equiangular(11.25)  # 17 x 32
G5 = equiangular(5.625)  # 33 x 64


@pytest.fixture(scope="module")
def two_years():
    return synthesize(G5, Month(2000, 1), Month(2001, 12), seed=3)


def _open(path):
    return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


def test_contract_and_variables(two_years):
    ds, truth = two_years
    contract.validate(ds, "synthetic")
    names = {n for n, _ in catalogue.channels()}
    assert names | {"tos", "siconc", "sftlf", "orog", "sdor", "slor"} <= set(ds.data_vars)
    assert sum(ds[n].sizes.get("plev", 1) for n in names) == 37
    assert ds.sizes == {"time": 24, "lat": 33, "lon": 64, "plev": 7, "bnds": 2}
    assert ds["time"].values[0].calendar == "proleptic_gregorian"
    for name in truth.data_vars:
        if name != "time_bnds":
            assert truth[name].attrs["description"] and "units" in truth[name].attrs, name


def test_reproducible_for_a_seed_and_chunking_independent():
    a, ta = synthesize(COARSE, Month(1999, 11), Month(2001, 2), seed=11)
    b, tb = synthesize(COARSE, Month(1999, 11), Month(2001, 2), seed=11, lazy=True)
    c, _ = synthesize(COARSE, Month(1999, 11), Month(2001, 2), seed=12)
    xr.testing.assert_identical(a, b.load())  # eager vs dask-streamed: bit-identical
    xr.testing.assert_identical(ta, tb)
    assert not np.array_equal(a["tas"].values, c["tas"].values)


def test_members_are_independent_realisations_with_the_same_forcing():
    one, _ = synthesize(COARSE, Month(2000, 1), Month(2000, 12), seed=5)
    ens, truth = synthesize(COARSE, Month(2000, 1), Month(2000, 12), seed=5, members=3)
    contract.validate(ens)
    assert ens["tas"].dims == ("member", "time", "lat", "lon") and ens.sizes["member"] == 3
    assert "member" not in ens["tos"].dims  # forcing is shared
    np.testing.assert_array_equal(ens["tas"].isel(member=0).values, one["tas"].values)
    assert not np.allclose(ens["tas"].isel(member=1).values, ens["tas"].isel(member=2).values)
    assert truth["nao_amplitude"].dims == ("member", "time")


def test_land_mask_resembles_continents():
    frac = land_fraction(G5)
    w = area_weights(G5.lat).values[:, None]
    assert abs(float((frac * w).mean()) - 0.29) < 0.05
    cell = lambda la, lo: frac[np.argmin(abs(G5.lat - la)), np.argmin(abs(G5.lon - lo))]  # noqa: E731
    assert cell(23.0, 10.0) == 1.0  # Sahara
    assert cell(0.0, 200.0) == 0.0  # central Pacific
    assert cell(-85.0, 100.0) == 1.0  # Antarctica
    assert cell(50.0, 340.0) == 0.0  # North Atlantic
    assert cell(60.0, 100.0) == 1.0  # Siberia
    assert 0.0 < cell(-35.0, 140.0) or 0.0 < cell(-28.0, 135.0)  # Australia


def test_physical_plausibility(two_years):
    ds, _ = two_years
    w = area_weights(ds["lat"])
    zonal = lambda name: ds[name].mean(("time", "lon"))  # noqa: E731
    gmean = lambda da: float(da.weighted(w).mean(("lat", "lon")).mean())  # noqa: E731
    for name in ("pr", "hus"):
        assert float(ds[name].min()) > 0.0
    ta = zonal("ta")
    assert (ta.sel(plev=slice(100000, 25000)).diff("plev") < 0).all()  # colder with height
    hus = zonal("hus")
    assert (hus.diff("plev") < 0).all() and float(hus.sel(plev=100000).max() / hus.sel(plev=25000).max()) > 50
    ua = zonal("ua").sel(plev=25000)
    assert 25 < float(ua.sel(lat=slice(10, 60)).max()) < 50 and 25 < float(ua.sel(lat=slice(-70, -20)).max()) < 50
    assert 5400 < gmean(ds["zg500"]) < 5800 and abs(gmean(ds["psl"]) - 101325) < 600
    assert 280 < gmean(ds["tas"]) < 292 and float((ds["tdas"] <= ds["tas"]).mean()) == 1.0
    tibet = dict(lat=33.75, lon=87.1875, method="nearest")
    assert float(ds["ps"].sel(**tibet).mean()) < 0.6 * float(ds["psl"].sel(**tibet).mean())
    # Seasonal cycle: hemispheres opposite, amplitude growing with latitude.
    jul_jan = ds["tas"].sel(time=ds["time.month"] == 7).mean("time") - ds["tas"].sel(time=ds["time.month"] == 1).mean("time")
    zj = jul_jan.mean("lon")
    assert float(zj.sel(lat=67.5)) > float(zj.sel(lat=22.5)) > 0 > float(zj.sel(lat=-22.5)) > float(zj.sel(lat=-67.5))
    # Sea ice follows SST: SST at freezing under full ice, none in the tropics.
    assert float(ds["siconc"].min()) >= 0 and float(ds["siconc"].max()) <= 1
    assert float(ds["siconc"].sel(lat=slice(-30, 30)).max()) == 0.0
    tos, ice = ds["tos"], ds["siconc"]
    assert float(tos.min()) >= 271.35 - 1e-4
    assert float(tos.where(ice > 0.9).max()) < 271.35 + 0.5
    assert (np.isnan(tos.isel(time=0)).values == (ds["sftlf"].values >= 0.5)).all()


def test_noise_has_the_planted_point_correlation():
    """Closed form rho(gamma) = sum_l P(l) P_l(cos gamma) / 4 pi vs the sample covariance."""
    noise = SphericalNoise(COARSE, slope=-2.5)
    rng = np.random.default_rng(0)
    x = noise.synthesize(rng.standard_normal((4000, noise.ncoef)))
    assert abs(x.var() - 1.0) < 0.03
    i, j = (8, 5), (10, 9)  # two cells; great-circle cosine
    la, lo = np.deg2rad(COARSE.lat), np.deg2rad(COARSE.lon)
    cosg = np.sin(la[i[0]]) * np.sin(la[j[0]]) + np.cos(la[i[0]]) * np.cos(la[j[0]]) * np.cos(lo[i[1]] - lo[j[1]])
    sample = np.corrcoef(x[:, i[0], i[1]], x[:, j[0], j[1]])[0, 1]
    assert abs(sample - correlation(np.array(cosg), noise.lmax, -2.5)) < 4 / np.sqrt(4000)


def test_cli_writes_dataset_manifest_and_truth(tmp_path, capsys):
    out = tmp_path / "synth"
    argv = ["--out", str(out), "--grid", "5.625", "--start", "2000-01", "--end", "2000-06", "--seed", "4"]
    assert synth_main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 4 and manifest["scenario"] == "historical" and manifest["fingerprint"]
    ds = xr.open_zarr(out / "dataset.zarr", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    contract.validate(ds, "dataset.zarr")
    ref, _ = synthesize(G5, Month(2000, 1), Month(2000, 6), seed=4)
    np.testing.assert_array_equal(ds["ta"].values, ref["ta"].values)
    truth = _open(out / "truth.nc")
    assert "tas_nino34_regression" in truth and truth["tas_nino34_regression"].attrs["units"] == "K K-1"
    assert synth_main(argv) == 0  # same arguments: rewritten in place
    assert synth_main(argv[:-1] + ["5"]) == 2  # a different dataset is refused
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "different dataset" in err and str(out) in err


def test_cli_scenario_offsets_sst_only(tmp_path):
    base = ["--grid", "5.625", "--start", "2000-01", "--end", "2000-02", "--seed", "1"]
    assert synth_main(["--out", str(tmp_path / "h")] + base) == 0
    assert synth_main(["--out", str(tmp_path / "w"), "--scenario", "p4k"] + base) == 0
    hist = xr.open_zarr(tmp_path / "h" / "dataset.zarr", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    warm = xr.open_zarr(tmp_path / "w" / "dataset.zarr", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert json.loads((tmp_path / "w" / "manifest.json").read_text())["sst_offset_K"] == 4.0
    np.testing.assert_allclose((warm["tos"] - hist["tos"]).values[np.isfinite(hist["tos"].values)], 4.0, atol=1e-4)
    np.testing.assert_array_equal(warm["siconc"].values, hist["siconc"].values)
    assert float((warm["tas"] - hist["tas"]).mean()) > 4.0  # land amplifies the response


def test_nao_domain_holds_only_nao_and_noise(two_years):
    """zg500 / psl ENSO maps and trends vanish in the NAO domain: the planted fraction is exact."""
    _, truth = two_years
    inside = truth["nao_domain_mask"].values > 0
    for name in ("zg500", "psl", "ps"):
        for kind in ("nino34_regression", "trend"):
            assert np.abs(truth[f"{name}_{kind}"].values[inside]).max() < 1e-6, (name, kind)
    assert np.abs(truth["nao_z500_pattern"].values[inside]).max() > 50


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    assert synth_main(["--out", str(tmp_path / "x"), "--start", "2001-01", "--end", "2000-01"]) == 2
    assert "before" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synth_main(["--out", str(tmp_path / "x"), "--grid", "2"])


def _synth_imports() -> dict[str, set[str]]:
    """Module -> diagnostics.synth modules it imports anywhere (module level or inside functions)."""
    import ast
    from pathlib import Path

    import diagnostics.synth as pkg

    graph = {}
    for path in Path(pkg.__file__).parent.glob("*.py"):
        name = f"diagnostics.synth.{path.stem}"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level == 1:  # from .x import y / from . import x
                    targets = [f"diagnostics.synth.{base}"] if base else [f"diagnostics.synth.{a.name}" for a in node.names]
                elif node.level == 0 and base.startswith("diagnostics.synth."):
                    targets = [base]
                else:
                    targets = []
                deps.update(t for t in targets if t != name)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name.startswith("diagnostics.synth."))
        graph[name] = deps
    return graph


def test_truth_imports_alone_and_synth_has_no_import_cycle():
    """The truth module stands on the model alone (issue 12 point 8): importing it in a fresh
    interpreter works and does not pull in climate.py; no import cycle inside diagnostics.synth
    (function-level imports included)."""
    import subprocess
    import sys

    code = ("import sys, diagnostics.synth.truth as t; assert callable(t.make_truth); "
            "assert 'diagnostics.synth.climate' not in sys.modules, 'truth imports climate'")
    subprocess.run([sys.executable, "-c", code], check=True)
    graph = _synth_imports()
    assert "diagnostics.synth.model" in graph["diagnostics.synth.truth"]

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        return any(d == b or (d not in seen and reaches(d, b, seen | {d})) for d in graph.get(a, ()))

    for a in graph:
        assert not reaches(a, a, {a}), f"import cycle through {a}"


def test_cli_linear_switches_the_planted_nonlinearity_off(tmp_path):
    """--linear writes the linear-Gaussian climate (synthesize(nonlinear=False), bit for bit),
    recorded in the manifest (a different fingerprint) and truth.nc; the default is nonlinear."""
    base = ["--grid", "5.625", "--start", "1999-12", "--end", "2000-03", "--seed", "2"]
    assert synth_main(["--out", str(tmp_path / "nl")] + base) == 0
    assert synth_main(["--out", str(tmp_path / "lin"), "--linear"] + base) == 0
    manifests = {k: json.loads((tmp_path / k / "manifest.json").read_text()) for k in ("nl", "lin")}
    assert manifests["nl"]["nonlinear"] is True and manifests["lin"]["nonlinear"] is False
    assert manifests["nl"]["fingerprint"] != manifests["lin"]["fingerprint"]
    ref, _ = synthesize(G5, Month(1999, 12), Month(2000, 3), seed=2, nonlinear=False)
    for key, nonlinear in (("lin", False), ("nl", True)):
        ds = xr.open_zarr(tmp_path / key / "dataset.zarr", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
        truth = _open(tmp_path / key / "truth.nc")
        assert truth.attrs["nonlinear"] == int(nonlinear)
        assert (float(truth["cc_scaling_rate"]) > 0) == nonlinear
        for name in ("pr", "psl", "tas"):
            assert np.array_equal(ds[name].values, ref[name].values) == (not nonlinear), (key, name)
        np.testing.assert_array_equal(ds["tos"].values, ref["tos"].values)  # the forcing is the same
