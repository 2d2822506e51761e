"""md-diagnose end to end on the synthetic climate (tiny grid, five years, three members).

Inputs: the synthetic climate written as AI-MIP per-variable files (Gregorian and a noleap
copy of the same numbers) for the ensembles, and as a prepared directory for the reference.
Independent checks: the metric functions applied directly to the same data, the identity
of a calendar-shifted copy, and exact zeros for an ensemble equal to the reference.
"""

from __future__ import annotations

import json
import math
import re

import pytest
import xarray as xr

from diagnostics.cli.diagnose import main
from diagnostics.data.grid import equiangular, global_mean
from diagnostics.data.timeaxis import Month, Period, to_monthly_axis
from diagnostics.io.open import open_dataset
from diagnostics.io.writer import write_aimip, write_prepared
from diagnostics.metrics import climatology, crps, nino34, spread_skill, trends, variability
from diagnostics.schema import FIELD_ATTRS
from diagnostics.synth.climate import synthesize

GRID = equiangular(11.25)  # 17 x 32
START, END = Month(2012, 1), Month(2016, 12)
TRAIN, TEST = "2012-01:2014-12", "2015-01:2016-12"
VARS = ["tas", "psl", "zg"]


def _decode(path):
    return xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("diagnose")
    ens, _ = synthesize(GRID, START, END, seed=1, members=3)
    keep = ["tas", "psl", "zg500", "ta", "tos", "time_bnds"]
    ens = ens[keep]
    write_aimip(ens, root / "syn", "SYN", "aimip")
    noleap = to_monthly_axis(ens, calendar="noleap")
    write_aimip(noleap, root / "synnl", "SYNNL", "aimip")
    ref, _ = synthesize(GRID, START, END, seed=2, members=1)
    ref = ref[["tas", "psl", "zg500", "ta", "tos", "ts", "time_bnds"]]
    write_prepared(ref, root / "ref", {"fingerprint": "ref-seed2"})
    return root


@pytest.fixture(scope="module")
def run_main(inputs):
    out = inputs / "out"
    code = main(["--ensemble", str(inputs / "syn"), "--ensemble", str(inputs / "synnl"),
                 "--reference", str(inputs / "ref"), "--out", str(out), "--train-period", TRAIN,
                 "--test-period", TEST, "--variables", *VARS, "--report", "none", "--no-progress"])
    assert code == 0
    return out


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_json_follows_schema(run_main):
    doc = _metrics(run_main)
    assert doc["schema"] == "md-metrics/2"
    # md-metrics/2: model roles and each qualifier kind's values, so a reader never guesses
    assert doc["ensembles"] == ["SYN", "SYNNL"] and doc["baselines"] == doc["models"][2:]
    assert doc["qualifiers"]["period"] == ["all", "test", "train"]
    assert doc["qualifiers"]["band"] == ["1-10", "10-30", "30+"]
    assert doc["qualifiers"]["member"] == ["member1", "member2", "member3"]
    assert doc["qualifiers"]["scenario"] == []
    prov = doc["provenance"]
    for key in ("command", "created", "versions", "inputs", "periods", "members", "spread_skill_correction"):
        assert key in prov
    assert prov["periods"]["train"] == TRAIN and prov["periods"]["test"] == TEST
    assert prov["members"] == {"SYN": 3, "SYNNL": 3}
    assert prov["command"].startswith("md-diagnose --ensemble")
    assert prov["inputs"]["ensembles"]["SYN"] and prov["inputs"]["reference"]
    assert doc["models"][:2] == ["SYN", "SYNNL"]
    assert set(doc["models"][2:]) == {"baseline-climatology", "baseline-persistence", "baseline-ar1"}
    assert doc["channels"] == ["tas", "psl", "zg500"]
    allowed_models = set(doc["models"]) | {"reference"}
    for key, value in doc["metrics"].items():
        parts = key.split(".")
        assert len(parts) >= 3 and parts[0] in allowed_models, key
        assert value is None or isinstance(value, float)
    m = doc["metrics"]
    # every metric group is there for the ensemble
    for key in ["SYN.tas.bias_mean.train.ANN", "SYN.tas.bias_rms.test.DJF", "SYN.tas.trend_global_diff.all",
                "SYN.tas.crps.test", "SYN.tas.crps_fair.test", "SYN.tas.ensmean_rmse.test", "SYN.tas.spread.test",
                "SYN.tas.spread_skill.test", "SYN.tas.spread_skill_corrected.test",
                "SYN.tas.sh_band_ratio.test.1-10", "SYN.tas.zonal_band_ratio.test.1-10",
                "SYN.tas.std_ratio.all", "SYN.tas.lag1_ratio.all", "SYN.tas.nino34_pattern_corr.all",
                "SYN.nao_z500.pattern_corr", "SYN.nao_psl.pc_std_ratio", "SYN.nh_z500_eof1.rms",
                "SYN.nao_z500.pattern_corr.member2", "reference.nao_z500.variance_fraction",
                "reference.nino34.index_std.all", "baseline-ar1.tas.crps_fair.test",
                "baseline-climatology.tas.spread_skill.test", "baseline-persistence.tas.crps.test"]:
        assert key in m and m[key] is not None and math.isfinite(m[key]), key
    # the persistence baseline has one member: its spread metrics are skipped, with the reason
    assert "baseline-persistence.tas.spread.test" not in m
    assert any("single member" in s["why"] for s in doc["skipped"])


def test_netcdf_fields_follow_schema(run_main):
    with _decode(run_main / "metrics.nc") as ds:
        assert ds.attrs["schema"] == "md-metrics/2"
        names = list(ds.data_vars)
        for name in names:
            attrs = ds[name].attrs
            assert set(FIELD_ATTRS) <= set(attrs), name
            diag, model, channel = name.split("__")[:3]
            assert (attrs["diagnostic"], attrs["model"], attrs["channel"]) == (diag, model, channel)
            assert attrs["description"]
            for dim in ds[name].dims:
                assert re.fullmatch(r"(lat|lon|plev|l|k|bin|time|year|member)(_.+)?", dim), (name, dim)
        diags = {ds[n].attrs["diagnostic"] for n in names}
        assert {"bias", "climatology", "trend", "global_mean_series", "crps_map", "rank_histogram",
                "sh_spectrum", "zonal_spectrum", "std_anomaly", "nino34_regression", "nino34_index",
                "eof_pattern", "eof_pc"} <= diags
        # rank histogram of a 3-member ensemble: 4 bins counting every (month, cell) of the period
        rh = ds["rank_histogram__SYN__tas__test"]
        assert rh.size == 4 and int(rh.sum()) == 24 * GRID.lat.size * GRID.lon.size
        assert ds["bias__SYN__tas__train__ANN"].dims == ("lat", "lon")
        # md-metrics/2 stores the model's own climatology: reference + bias, to float32 rounding
        model = ds["climatology__SYN__tas__train__DJF"]
        ref = ds["climatology__reference__tas__train__DJF"]
        assert float(abs(model - ref - ds["bias__SYN__tas__train__DJF"]).max()) < 1e-3


def test_noleap_copy_scores_identically(run_main):
    """The same numbers in the noleap calendar are aligned by month index: every metric equal."""
    m = _metrics(run_main)["metrics"]
    syn = {k[len("SYN."):]: v for k, v in m.items() if k.startswith("SYN.")}
    nl = {k[len("SYNNL."):]: v for k, v in m.items() if k.startswith("SYNNL.")}
    assert syn.keys() == nl.keys() and len(syn) > 100
    for k, v in syn.items():
        if v is None:
            assert nl[k] is None, k
        else:
            assert nl[k] == pytest.approx(v, rel=1e-6, abs=1e-9), k


def test_numbers_equal_the_metric_functions(inputs, run_main):
    """metrics.json numbers = the metric functions applied directly to the opened inputs."""
    m = _metrics(run_main)["metrics"]
    ens = open_dataset(str(inputs / "syn"))
    ref = open_dataset(str(inputs / "ref"))
    tas, rtas = ens["tas"].load(), ref["tas"].load()
    train, test = Period.parse(TRAIN), Period.parse(TEST)
    for season in ("ANN", "JJA"):
        s = climatology.bias_summary(climatology.bias_map(tas, rtas, train, season))
        assert m[f"SYN.tas.bias_mean.train.{season}"] == pytest.approx(float(s["mean"]), rel=1e-6)
        assert m[f"SYN.tas.bias_rms.train.{season}"] == pytest.approx(float(s["rms"]), rel=1e-6)
    f, o = climatology.in_period(tas, test), climatology.in_period(rtas, test)
    direct_crps = float(crps.crps_ensemble(f, o).mean("time").pipe(global_mean))
    assert m["SYN.tas.crps.test"] == pytest.approx(direct_crps, rel=1e-6)
    ss = spread_skill.spread_skill(f, o)
    assert m["SYN.tas.spread_skill.test"] == pytest.approx(float(ss["spread_skill"]), rel=1e-6)
    assert m["SYN.tas.spread_skill_corrected.test"] == pytest.approx(float(ss["spread_skill_corrected"]), rel=1e-6)
    assert m["SYN.tas.ensmean_rmse.test"] == pytest.approx(float(ss["ensemble_mean_rmse"]), rel=1e-6)
    whole = Period(START, END)
    td = trends.trend_difference(tas, rtas, whole)
    assert m["SYN.tas.trend_global_diff.all"] == pytest.approx(float(td["global_difference"]), rel=1e-5)
    assert m["SYN.tas.trend_map_rms_diff.all"] == pytest.approx(float(td["rms"]), rel=1e-5)
    vr = variability.variability_ratio(tas, rtas, climatology_period=train)
    assert m["SYN.tas.std_ratio.all"] == pytest.approx(float(vr["std_ratio_global"]), rel=1e-6)
    # Nino-3.4: index from the ensemble's forcing tos (member 1)
    index = nino34.nino34_index(ens["tos"].isel(member=0, drop=True).load(), climatology_period=train)
    assert m["reference.nino34.index_std.all"] == pytest.approx(float(index.std("time", ddof=1)), rel=1e-6)
    cmp = nino34.compare_patterns(nino34.regression_map(tas, index, train, dims=("member", "time")),
                                  nino34.regression_map(rtas, index, train))
    assert m["SYN.tas.nino34_pattern_corr.all"] == pytest.approx(float(cmp["pattern_corr"]), rel=1e-5)


def test_ensemble_equal_to_reference_scores_zero(tmp_path, capsys):
    """An ensemble whose members are the reference: zero bias, CRPS, RMSE and trend difference;
    a single-member copy of it gets the spread metrics skipped with a message."""
    ref, _ = synthesize(GRID, START, Month(2015, 12), seed=3, members=1)
    ref = ref[["tas", "tos", "time_bnds"]]
    write_prepared(ref, tmp_path / "ref", {"fingerprint": "ref3"})
    three = ref.copy()
    for v in ("tas", "tos"):
        three[v] = ref[v].expand_dims(member=[1, 2, 3]).copy()
    write_aimip(three, tmp_path / "same3", "SAME3", "aimip")
    write_aimip(ref, tmp_path / "same1", "SAME1", "aimip")
    code = main(["--ensemble", str(tmp_path / "same3"), "--ensemble", str(tmp_path / "same1"),
                 "--reference", str(tmp_path / "ref"), "--out", str(tmp_path / "out"),
                 "--train-period", "2012-01:2014-12", "--test-period", "2015-01:2015-12",
                 "--report", "none", "--no-progress", "--no-baselines", "--no-spectra"])
    assert code == 0
    doc = _metrics(tmp_path / "out")
    m = doc["metrics"]
    for model, tol in (("SAME1", 0.0), ("SAME3", 1e-4)):  # float32 ulp at 300 K is 3e-5 K
        for p, seasons in (("train", ("ANN", "DJF", "JJA")), ("test", ("ANN", "SON"))):
            for s in seasons:
                assert abs(m[f"{model}.tas.bias_mean.{p}.{s}"]) <= tol
                assert abs(m[f"{model}.tas.bias_rms.{p}.{s}"]) <= tol
            assert m[f"{model}.tas.crps.{p}"] == 0.0
            assert abs(m[f"{model}.tas.ensmean_rmse.{p}"]) <= tol
        assert m[f"{model}.tas.trend_global_diff.all"] == pytest.approx(0.0, abs=1e-6)
        assert m[f"{model}.tas.std_ratio.all"] == pytest.approx(1.0, rel=1e-6)
        assert m[f"{model}.tas.nino34_pattern_corr.all"] == pytest.approx(1.0, rel=1e-6)
    assert m["SAME3.tas.crps_fair.test"] == 0.0
    assert any(s["what"] == "SAME3.tas.bias.test.DJF" and "DJF" in s["why"] for s in doc["skipped"])
    assert "SAME1.tas.spread.test" not in m
    err = capsys.readouterr().err
    assert "SAME1 has a single member" in err
    assert any(s["what"].startswith("SAME1.") for s in doc["skipped"])


def test_warming_response_of_a_p2k_scenario(tmp_path):
    """E5: the same seed with SST + 2 K; the written response equals warming_response applied
    directly, and its global mean is near the planted response of the synthetic climate."""
    from diagnostics.metrics.warming import warming_response

    end = Month(2014, 12)
    hist, _ = synthesize(GRID, START, end, seed=4, members=2)
    p2k, truth = synthesize(GRID, START, end, seed=4, members=2, sst_offset=2.0)
    ref, _ = synthesize(GRID, START, end, seed=5, members=1)
    write_aimip(hist[["tas", "time_bnds"]], tmp_path / "hist", "W", "aimip")
    write_aimip(p2k[["tas", "time_bnds"]], tmp_path / "p2k", "W", "aimip-p2k")
    write_prepared(ref[["tas", "time_bnds"]], tmp_path / "ref", {"fingerprint": "w"})
    out = tmp_path / "out"
    assert main(["--ensemble", f"W={tmp_path / 'hist'}", "--scenario", f"W:p2k={tmp_path / 'p2k'}",
                 "--reference", str(tmp_path / "ref"), "--out", str(out), "--train-period", "2012-01:2013-12",
                 "--test-period", "2014-01:2014-12", "--report", "none", "--no-progress", "--no-baselines",
                 "--no-spectra"]) == 0
    doc = _metrics(out)
    got = doc["metrics"]["W.tas.warming_per_K_global.p2k"]
    direct = global_mean(warming_response(p2k["tas"], hist["tas"], "p2k"))
    assert got == pytest.approx(float(direct), rel=1e-5)
    planted = float(global_mean(truth["tas_warming_per_K"]))
    assert got == pytest.approx(planted, abs=0.15 * abs(planted) + 0.05)
    assert doc["provenance"]["inputs"]["scenarios"]["W"]["p2k"]
    with _decode(out / "metrics.nc") as ds:
        assert ds["warming_response__W__tas__p2k"].attrs["scenario"] == "p2k"


def test_a_failing_batch_is_skipped_with_its_reason_not_a_crash(monkeypatch, capsys):
    """An unexpected exception inside one dask batch skips that batch's metrics (reason recorded
    in metrics.json's skipped list) and the run goes on; with --debug it re-raises."""
    import dask
    import dask.array as dsa

    from diagnostics import groups, pipeline
    from diagnostics.outputs import Results

    def broken(block):
        raise ZeroDivisionError("planted failure")

    lazy = xr.DataArray(dsa.ones((4,), chunks=2).map_blocks(broken, dtype=float), dims="x")
    batch, res, got = groups.Batch(), Results(), []
    batch.add(lazy, got.append)
    with dask.config.set(scheduler="synchronous"):
        pipeline._compute(batch, res, "MODEL.tas.trend")
    assert got == [] and any("planted failure" in str(s) and "MODEL.tas.trend" in str(s) for s in res.skipped)
    assert "scoring failed (ZeroDivisionError" in capsys.readouterr().err
    with pytest.raises(ZeroDivisionError), dask.config.set(scheduler="synchronous"):
        pipeline._compute(batch, res, "MODEL.tas.trend", debug=True)


def test_every_key_and_field_written_is_declared_by_a_registered_group(run_main):
    """The registry's declarations are what the groups write: each metric name of metrics.json and
    each diagnostic of metrics.nc belongs to a group (the pipeline's own Niño-3.4 index aside), and
    every group is documented in docs/metrics.md."""
    from pathlib import Path

    from diagnostics.groups import REGISTRY, STAGES

    declared_metrics = {m for g in REGISTRY.values() for m in g.metrics} | {"index_std"}
    declared_fields = {f for g in REGISTRY.values() for f in g.fields} | {"nino34_index"}
    doc = _metrics(run_main)
    written = {k.split(".")[2] for k in doc["metrics"]}
    assert written <= declared_metrics, written - declared_metrics
    with _decode(run_main / "metrics.nc") as ds:
        diags = {ds[n].attrs["diagnostic"] for n in ds.data_vars}
    assert diags <= declared_fields, diags - declared_fields
    docs = (Path(__file__).parents[2] / "docs" / "metrics.md").read_text()
    for g in REGISTRY.values():
        assert g.stage in STAGES and g.applies_to <= {"reference", "ensemble", "baseline"}
        assert f"`{g.name}`" in docs, g.name
        for m in g.metrics:
            assert f"`{m}`" in docs, (g.name, m)
