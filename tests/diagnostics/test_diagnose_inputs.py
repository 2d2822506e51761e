"""md-diagnose on bad or awkward inputs: one-line messages, partial results, exit codes;
grid alignment; report rendering failures; the distributed scheduler."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics.cli.diagnose import main
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.io.writer import write_aimip, write_prepared
from diagnostics.synth.climate import synthesize

GRID = equiangular(11.25)  # 17 x 32
FAST = ["--report", "none", "--no-progress", "--no-baselines", "--no-spectra"]


def _synth(start, end, seed, members=1, grid=GRID, keep=("tas",)):
    data, _ = synthesize(grid, Month.parse(start), Month.parse(end), seed=seed, members=members)
    return data[list(keep) + ["time_bnds"]]


@pytest.fixture(scope="module")
def ref_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    write_prepared(_synth("2012-01", "2015-12", seed=2), root / "ref", {"fingerprint": "r"})
    return root / "ref"


@pytest.fixture(scope="module")
def ens_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("ens")
    write_aimip(_synth("2012-01", "2015-12", seed=1, members=2), root, "ENS", "aimip")
    return root


def _run(args, capsys):
    code = main(args)
    return code, capsys.readouterr().err


def _doc(out):
    return json.loads((out / "metrics.json").read_text())


def test_nonexistent_path_exits_2_with_one_line(tmp_path, ref_dir, capsys):
    code, err = _run(["--ensemble", str(tmp_path / "nope"), "--reference", str(ref_dir),
                      "--out", str(tmp_path / "out"), *FAST], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nope" in lines[0] and "no such file" in lines[0]
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_no_common_months_exits_2(tmp_path, ref_dir, capsys):
    write_aimip(_synth("2017-01", "2018-12", seed=1, members=2), tmp_path / "late", "LATE", "aimip")
    code, err = _run(["--ensemble", str(tmp_path / "late"), "--reference", str(ref_dir),
                      "--out", str(tmp_path / "out"), *FAST], capsys)
    assert code == 2
    assert "no month in common with the reference" in err and len(err.strip().splitlines()) == 1


def test_no_common_variable_exits_2(tmp_path, ref_dir, capsys):
    write_aimip(_synth("2012-01", "2015-12", seed=1, members=2, keep=("psl",)), tmp_path / "psl", "P", "aimip")
    code, err = _run(["--ensemble", str(tmp_path / "psl"), "--reference", str(ref_dir),
                      "--out", str(tmp_path / "out"), *FAST], capsys)
    assert code == 2
    assert "share no scored variable" in err


def test_reference_not_covering_the_ensemble_scores_the_overlap(tmp_path, ens_dir, capsys):
    write_prepared(_synth("2013-01", "2015-12", seed=2), tmp_path / "shortref", {"fingerprint": "s"})
    out = tmp_path / "out"
    code, err = _run(["--ensemble", str(ens_dir), "--reference", str(tmp_path / "shortref"), "--out", str(out),
                      "--train-period", "2012-01:2014-12", "--test-period", "2015-01:2015-12", *FAST], capsys)
    assert code == 0
    assert "does not cover all of ENS" in err
    doc = _doc(out)
    assert doc["provenance"]["periods"]["train"] == "2013-01:2014-12"
    assert doc["metrics"]["ENS.tas.bias_rms.train.ANN"] > 0


def test_unalignable_grid_is_refused_and_other_ensembles_still_scored(tmp_path, ref_dir, ens_dir, capsys):
    regional = _synth("2012-01", "2015-12", seed=1, members=2)
    regional = regional.isel(lat=slice(9, 14))  # 11.25N..56.25N only
    write_aimip(regional, tmp_path / "regional", "REG", "aimip")
    code, err = _run(["--ensemble", str(tmp_path / "regional"), "--reference", str(ref_dir),
                      "--out", str(tmp_path / "o1"), *FAST], capsys)
    assert code == 2 and "cannot be aligned" in err
    out = tmp_path / "o2"
    code, err = _run(["--ensemble", str(tmp_path / "regional"), "--ensemble", str(ens_dir),
                      "--reference", str(ref_dir), "--out", str(out), *FAST], capsys)
    assert code == 0
    doc = _doc(out)
    assert doc["models"] == ["ENS"]
    assert any("cannot be aligned" in s["why"] for s in doc["skipped"])


def test_finer_ensemble_is_regridded_conservatively_to_the_reference(tmp_path, ref_dir, capsys):
    """A 5.625-degree ensemble against the 11.25-degree reference: scored on 17 x 32, and its
    bias equals the bias of the ensemble coarsened by hand with the regridder."""
    from diagnostics.io.regrid import regrid
    from diagnostics.metrics.climatology import bias_map, bias_summary
    from diagnostics.io.open import open_dataset

    fine = _synth("2012-01", "2015-12", seed=1, members=2, grid=equiangular(5.625))
    write_aimip(fine, tmp_path / "fine", "FINE", "aimip")
    out = tmp_path / "out"
    code, err = _run(["--ensemble", str(tmp_path / "fine"), "--reference", str(ref_dir), "--out", str(out),
                      "--train-period", "2012-01:2014-12", "--test-period", "2015-01:2015-12", *FAST], capsys)
    assert code == 0 and "regridded conservatively" in err
    doc = _doc(out)
    assert doc["provenance"]["grid"].startswith("17 x 32")
    coarse = regrid(open_dataset(str(tmp_path / "fine")), GRID)["tas"].load()
    ref = open_dataset(str(ref_dir))["tas"].load()
    expected = bias_summary(bias_map(coarse, ref, "2012-01:2014-12", "ANN"))
    assert doc["metrics"]["FINE.tas.bias_rms.train.ANN"] == pytest.approx(float(expected["rms"]), rel=1e-6)


def test_missing_variables_are_reported_and_the_rest_computed(tmp_path, ref_dir, ens_dir, capsys):
    out = tmp_path / "out"
    code, err = _run(["--ensemble", str(ens_dir), "--reference", str(ref_dir), "--out", str(out),
                      "--variables", "tas", "psl", "zg", *FAST], capsys)
    assert code == 0
    doc = _doc(out)
    whats = {s["what"]: s["why"] for s in doc["skipped"]}
    assert "psl not in the reference" in whats["*.psl"]
    assert "zg500" in whats["nao_z500"] and "nao_psl" in whats and "nh_z500_eof1" in whats
    assert "nino34" in whats  # neither tos nor ts anywhere
    assert "skipped nao_psl" in err and "skipped nino34" in err
    assert doc["channels"] == ["tas"] and doc["metrics"]["ENS.tas.crps.test"] > 0


def test_bad_period_and_scenario_syntax_exit_2(tmp_path, ref_dir, ens_dir, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--ensemble", str(ens_dir), "--reference", str(ref_dir), "--out", str(tmp_path),
              "--train-period", "1979:2014"])
    assert exc.value.code == 2
    code, err = _run(["--ensemble", str(ens_dir), "--reference", str(ref_dir), "--out", str(tmp_path),
                      "--scenario", "p3x=/tmp", *FAST], capsys)
    assert code == 2 and "expected a scenario" in err


@pytest.mark.slow
def test_local_cluster_gives_identical_numbers(tmp_path, ref_dir, ens_dir, capsys):
    """The same run on a dask.distributed LocalCluster (2 worker processes) and on threads."""
    base = ["--ensemble", str(ens_dir), "--reference", str(ref_dir), "--train-period", "2012-01:2014-12",
            "--test-period", "2015-01:2015-12", "--report", "none", "--no-progress", "--no-spectra"]
    assert main(base + ["--out", str(tmp_path / "threads")]) == 0
    assert main(base + ["--out", str(tmp_path / "cluster"), "--scheduler", "local:2"]) == 0
    a = _doc(tmp_path / "threads")
    b = _doc(tmp_path / "cluster")
    assert "LocalCluster" in b["provenance"]["scheduler"]
    assert a["metrics"].keys() == b["metrics"].keys()
    assert any(k.startswith("baseline-ar1.") for k in a["metrics"])  # seeded random baseline included
    diffs = [abs(a["metrics"][k] - b["metrics"][k]) for k in a["metrics"]
             if a["metrics"][k] is not None and b["metrics"][k] is not None]
    assert max(diffs) <= 1e-12 * max(1.0, max(abs(v) for v in a["metrics"].values() if v is not None))
    assert all((a["metrics"][k] is None) == (b["metrics"][k] is None) for k in a["metrics"])


def test_prepared_ensemble_with_shared_forcing(tmp_path, ref_dir, capsys):
    """A prepared (md-synth layout) ensemble whose forcing tos has no member dim: the Niño-3.4
    index comes from that forcing."""
    ens = _synth("2012-01", "2015-12", seed=1, members=2, keep=("tas", "tos"))
    assert "member" not in ens["tos"].dims
    write_prepared(ens, tmp_path / "ens", {"fingerprint": "e"})
    out = tmp_path / "out"
    code, _ = _run([f"--ensemble=PREP={tmp_path / 'ens'}", "--reference", str(ref_dir), "--out", str(out),
                    *FAST], capsys)
    assert code == 0
    doc = _doc(out)
    assert doc["provenance"]["nino34_index_source"] == "forcing tos of PREP"
    assert doc["models"] == ["PREP"] and doc["provenance"]["members"] == {"PREP": 2}
    assert np.isfinite(doc["metrics"]["PREP.tas.nino34_pattern_corr.all"])


def test_interrupted_run_resumes_with_finished_variables(tmp_path, ref_dir, capsys, monkeypatch):
    """Ctrl-C after the first variable: exit 130, the finished variable is kept; the rerun
    scores only the rest and writes the same numbers as an uninterrupted run."""
    from diagnostics import pipeline

    ens = _synth("2012-01", "2015-12", seed=1, members=2, keep=("tas", "psl"))
    write_aimip(ens, tmp_path / "ens", "ENS", "aimip")
    ref = _synth("2012-01", "2015-12", seed=2, keep=("tas", "psl"))
    write_prepared(ref, tmp_path / "ref", {"fingerprint": "rp"})
    args = ["--ensemble", str(tmp_path / "ens"), "--reference", str(tmp_path / "ref"), *FAST]
    real = pipeline.score_variable
    calls = []

    def interrupted(var, *a, **k):
        calls.append(var)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(var, *a, **k)

    monkeypatch.setattr(pipeline, "score_variable", interrupted)
    code, err = _run(args + ["--out", str(tmp_path / "out")], capsys)
    assert code == 130 and "interrupted" in err and "resume" in err
    assert not (tmp_path / "out" / "metrics.json").exists()
    calls.clear()
    monkeypatch.setattr(pipeline, "score_variable", lambda var, *a, **k: (calls.append(var), real(var, *a, **k)))
    assert _run(args + ["--out", str(tmp_path / "out")], capsys)[0] == 0
    assert calls == ["psl"]  # tas came from the partial results
    assert not (tmp_path / "out" / ".md-diagnose-partial").exists()
    monkeypatch.setattr(pipeline, "score_variable", real)
    assert _run(args + ["--out", str(tmp_path / "fresh")], capsys)[0] == 0
    resumed, fresh = _doc(tmp_path / "out")["metrics"], _doc(tmp_path / "fresh")["metrics"]
    assert resumed == fresh


def test_large_variables_go_level_by_level_with_the_same_numbers(tmp_path, capsys, monkeypatch):
    """Above STAGE2_BYTES the two-pass statistics of a 3-D variable run one level (and one group) at a time, and
    above CHUNK_BYTES the inputs stream in chunks of one level and 12 months (bounded memory);
    the numbers are those of the all-in-one graph."""
    from diagnostics import pipeline

    write_aimip(_synth("2012-01", "2014-12", seed=1, members=2, keep=("ta", "tos")), tmp_path / "ens", "E", "aimip")
    write_prepared(_synth("2012-01", "2014-12", seed=2, keep=("ta",)), tmp_path / "ref", {"fingerprint": "t"})
    args = ["--ensemble", str(tmp_path / "ens"), "--reference", str(tmp_path / "ref"),
            "--train-period", "2012-01:2013-12", "--test-period", "2014-01:2014-12", *FAST]
    assert _run(args + ["--out", str(tmp_path / "whole")], capsys)[0] == 0
    monkeypatch.setattr(pipeline, "STAGE2_BYTES", 1)
    assert _run(args + ["--out", str(tmp_path / "levels")], capsys)[0] == 0
    # and streamed: one level and 12 months per chunk instead of one chunk per variable
    monkeypatch.setattr(pipeline, "CHUNK_BYTES", 1)
    assert _run(args + ["--out", str(tmp_path / "chunks")], capsys)[0] == 0
    whole = _doc(tmp_path / "whole")["metrics"]
    assert "E.ta850.std_ratio.all" in whole and "E.ta50.nino34_pattern_corr.all" in whole
    # same graph split by level, or other chunks: the time means, climatologies and std accumulate in float64, so
    # sums in another order agree to ~1e-15 relative per mean; in float32 a 250 K mean carried ~1e-6 K of
    # rounding, 1e-5 relative in a 0.08 K bias, and this needed rel=1e-4
    for other, tol in (("levels", 1e-9), ("chunks", 1e-9)):
        got = _doc(tmp_path / other)["metrics"]
        assert whole.keys() == got.keys()
        for k, v in whole.items():
            if v is None:
                assert got[k] is None, (other, k)
            else:
                assert got[k] == pytest.approx(v, rel=tol, abs=tol), (other, k)


def test_ensemble_on_fewer_pressure_levels_is_scored_on_the_shared_ones(tmp_path, capsys):
    """A model that outputs ta at 850 hPa only (like the demo emulator) against a 7-level
    reference: scored at 850 hPa, with a line saying so, instead of failing."""
    ref = _synth("2012-01", "2014-12", seed=2, keep=("ta",))
    write_prepared(ref, tmp_path / "ref", {"fingerprint": "r7"})
    ens = _synth("2012-01", "2014-12", seed=1, members=2, keep=("ta",)).sel(plev=[85000.0])
    write_aimip(ens, tmp_path / "ens", "ENS", "aimip")
    code, err = _run(["--ensemble", str(tmp_path / "ens"), "--reference", str(tmp_path / "ref"),
                      "--out", str(tmp_path / "out"), "--train-period", "2012-01:2013-12",
                      "--test-period", "2014-01:2014-12", *FAST], capsys)
    assert code == 0, err
    assert "scoring pressure levels [850] hPa" in err
    keys = _doc(tmp_path / "out")["metrics"]
    assert "ENS.ta850.bias_mean.test.ANN" in keys
    assert not any(k.startswith("ENS.ta500.") for k in keys)


# ---------------------------------------------------------------- issue 16: no stale results, one-line errors
def test_unknown_warming_scenario_is_refused_with_one_line(tmp_path, ref_dir, ens_dir, capsys):
    """--scenario p3k=DIR names no AI-MIP experiment: exit 2 before any work, not a silent skip."""
    code, err = _run(["--ensemble", str(ens_dir), "--reference", str(ref_dir), "--out", str(tmp_path / "out"),
                      "--scenario", f"p3k={ens_dir}", *FAST], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("md-diagnose: error: --scenario: 'p3k' is not an AI-MIP warming scenario")
    assert "p2k" in lines[0] and "p4k" in lines[0]
    assert not (tmp_path / "out").exists()
    # the AI-MIP ids and aliases of diagnostics.data.experiments name the same scenarios
    from diagnostics.align import parse_scenario
    assert parse_scenario(f"M:aimip-4k={ens_dir}") == ("M", "p4k", str(ens_dir))


def test_out_under_a_file_fails_before_any_input_is_opened(tmp_path, ref_dir, ens_dir, capsys, monkeypatch):
    from diagnostics import pipeline

    (tmp_path / "file").write_text("x")
    monkeypatch.setattr(pipeline, "load_inputs", lambda *a, **k: pytest.fail("inputs opened before --out checked"))
    code, err = _run(["--ensemble", str(ens_dir), "--reference", str(ref_dir), "--out", str(tmp_path / "file" / "o"),
                      *FAST], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--out" in lines[0] and "lies under a file" in lines[0], err


def _interrupt_after_first_variable(monkeypatch):
    from diagnostics import pipeline

    real, calls = pipeline.score_variable, []

    def interrupted(var, *a, **k):
        calls.append(var)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(var, *a, **k)

    monkeypatch.setattr(pipeline, "score_variable", interrupted)
    return real


def _two_variables(tmp_path):
    write_aimip(_synth("2012-01", "2015-12", seed=1, members=2, keep=("tas", "psl")), tmp_path / "ens", "ENS",
                "aimip")
    write_prepared(_synth("2012-01", "2015-12", seed=2, keep=("tas", "psl")), tmp_path / "ref", {"fingerprint": "rp"})
    return ["--ensemble", str(tmp_path / "ens"), "--reference", str(tmp_path / "ref"), *FAST]


def test_a_killed_rerun_leaves_no_finished_looking_outputs(tmp_path, capsys, monkeypatch):
    """The previous run's metrics.json / metrics.nc move aside when a new run starts: after the
    new run is killed, OUT holds no metrics.json that could pass for its result."""
    from diagnostics import pipeline

    args = _two_variables(tmp_path) + ["--out", str(tmp_path / "out")]
    assert _run(args, capsys)[0] == 0
    first = _doc(tmp_path / "out")
    real = _interrupt_after_first_variable(monkeypatch)
    code, err = _run(args, capsys)
    assert code == 130
    assert not (tmp_path / "out" / "metrics.json").exists() and not (tmp_path / "out" / "metrics.nc").exists()
    assert "moved the previous run's metrics.json, metrics.nc aside" in err
    assert _doc(tmp_path / "out" / ".md-diagnose-previous")["metrics"] == first["metrics"]
    monkeypatch.setattr(pipeline, "score_variable", real)
    assert _run(args, capsys)[0] == 0
    assert _doc(tmp_path / "out")["metrics"] == first["metrics"]


def test_a_corrupt_partial_result_is_recomputed_with_one_line(tmp_path, capsys, monkeypatch):
    """A truncated .md-diagnose-partial/*/tas.json on resume: said in one line, tas recomputed,
    the numbers those of an uninterrupted run (no JSONDecodeError)."""
    from diagnostics import pipeline

    args = _two_variables(tmp_path)
    real = _interrupt_after_first_variable(monkeypatch)
    assert _run(args + ["--out", str(tmp_path / "out")], capsys)[0] == 130
    (saved,) = (tmp_path / "out" / ".md-diagnose-partial").glob("*/tas.json")
    saved.write_text(saved.read_text()[:40])
    calls = []
    monkeypatch.setattr(pipeline, "score_variable", lambda var, *a, **k: (calls.append(var), real(var, *a, **k)))
    code, err = _run(args + ["--out", str(tmp_path / "out")], capsys)
    assert code == 0 and calls == ["tas", "psl"]
    said = [line for line in err.splitlines() if "cannot be read" in line]
    assert len(said) == 1 and "tas.json" in said[0] and "recomputing tas" in said[0] and "JSONDecodeError" in said[0]
    monkeypatch.setattr(pipeline, "score_variable", real)
    assert _run(args + ["--out", str(tmp_path / "fresh")], capsys)[0] == 0
    assert _doc(tmp_path / "out")["metrics"] == _doc(tmp_path / "fresh")["metrics"]


def test_the_same_skip_line_is_said_once_and_no_progress_bar_in_a_log(tmp_path, capsys):
    """Baselines on two variables: the persistence baseline's one-member skip is said once, not per
    variable; stderr is not a terminal here, so the progress bar (asked for) draws nothing."""
    args = _two_variables(tmp_path)
    args = [a for a in args if a not in ("--no-baselines", "--no-progress")]
    code, err = _run(args + ["--out", str(tmp_path / "out"), "--train-period", "2012-01:2014-12",
                             "--test-period", "2015-01:2015-12"], capsys)
    assert code == 0, err
    skip = [line for line in err.splitlines() if "skipped baseline-persistence.*" in line]
    assert len(skip) == 1, skip
    assert "\r" not in err and "unit/s" not in err and "it/s" not in err
    doc = _doc(tmp_path / "out")
    assert {"ENS.tas.crps.test", "ENS.psl.crps.test", "baseline-persistence.psl.crps.test"} <= set(doc["metrics"])


def test_a_group_added_to_the_registry_runs_with_no_other_change(tmp_path, ref_dir, ens_dir, capsys, monkeypatch):
    """A new metric is one class: registered, it is planned, computed in the single-pass batch, counted
    in the progress units and written under its key, with no change to the pipeline."""
    from diagnostics import groups
    from diagnostics.metrics.climatology import time_mean
    from diagnostics.schema import key

    class MaxAbsBias(groups.Group):
        name, stage, applies_to, metrics = "max_abs_bias", "single_pass", frozenset({"ensemble"}), ("max_abs_bias",)

        def build(self, batch, res, ctx, subject):
            p = ctx.periods["test"]
            lazy = abs(time_mean(subject.da, p).mean("member") - time_mean(ctx.ref, p)).max(("lat", "lon"))
            batch.add(lazy, groups.each_channel(ctx.channels, lambda v, ch: res.add(
                key(subject.name, ch.label, "max_abs_bias", period="test"), v)))

    monkeypatch.setitem(groups.REGISTRY, "max_abs_bias", MaxAbsBias())
    out = tmp_path / "out"
    code, err = _run(["--ensemble", str(ens_dir), "--reference", str(ref_dir), "--out", str(out),
                      "--train-period", "2012-01:2014-12", "--test-period", "2015-01:2015-12", *FAST], capsys)
    assert code == 0, err
    m = _doc(out)["metrics"]
    assert m["ENS.tas.max_abs_bias.test"] >= abs(m["ENS.tas.bias_mean.test.ANN"]) > 0


def test_what_planning_skips_is_recorded_in_metrics_json(tmp_path, ref_dir, ens_dir, capsys, monkeypatch):
    """Baselines that cannot be built (planted ValueError) are skipped while the variable is planned:
    said once and kept in metrics.json's skipped list, the ensemble still scored."""
    from diagnostics import pipeline

    def broken(*a, **k):
        raise ValueError("planted: no baseline")

    monkeypatch.setattr(pipeline, "_baseline_fields", broken)
    args = ["--ensemble", str(ens_dir), "--reference", str(ref_dir), "--out", str(tmp_path / "out"),
            "--train-period", "2012-01:2014-12", "--test-period", "2015-01:2015-12",
            "--report", "none", "--no-progress", "--no-spectra"]
    code, err = _run(args, capsys)
    assert code == 0 and err.count("planted: no baseline") == 1, err
    doc = _doc(tmp_path / "out")
    assert {"what": "baselines.tas", "why": "planted: no baseline"} in doc["skipped"]
    assert doc["models"] == ["ENS"] and "ENS.tas.crps.test" in doc["metrics"]
