"""The official AI-MIP E1 and E5 as md-diagnose groups: planted biases and responses recovered
exactly through the whole command, beside our own scores."""

from __future__ import annotations

import json

import pytest
import xarray as xr

from diagnostics.cli.diagnose import main
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.io.writer import write_aimip, write_prepared
from diagnostics.synth.climate import synthesize

GRID = equiangular(11.25)
FAST = ["--report", "none", "--no-progress", "--no-baselines", "--no-spectra", "--variables", "tas",
        "--train-period", "2010-01:2012-12", "--test-period", "2013-01:2014-12"]


def test_planted_bias_and_response_are_the_official_e1_and_e5(tmp_path, capsys):
    data, _ = synthesize(GRID, Month.parse("2010-01"), Month.parse("2014-12"), seed=5, members=1)
    ref = data[["tas", "time_bnds"]]
    write_prepared(ref, tmp_path / "ref", {"fingerprint": "r"})
    members = xr.concat([ref["tas"] + 0.5, ref["tas"] + 1.5], dim="member").assign_coords(member=[1, 2])
    hist = xr.Dataset({"tas": members.assign_attrs(ref["tas"].attrs), "time_bnds": ref["time_bnds"]})
    p2k = hist.assign(tas=(hist["tas"] + 2.0).assign_attrs(ref["tas"].attrs))
    write_aimip(hist, tmp_path / "hist", "PLANT", "aimip")
    write_aimip(p2k, tmp_path / "p2k", "PLANT", "aimip-p2k")
    out = tmp_path / "scores"
    code = main(["--ensemble", f"PLANT={tmp_path / 'hist'}", "--scenario", f"p2k={tmp_path / 'p2k'}",
                 "--reference", str(tmp_path / "ref"), "--out", str(out), *FAST])
    assert code == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())["metrics"]
    for period in ("train", "test"):
        # a uniform bias b has RMSB b: members 0.5 and 1.5 K; median of two = their mean (numpy)
        assert m[f"PLANT.tas.aimip_rmsb.{period}.member1"] == pytest.approx(0.5, abs=1e-5)
        assert m[f"PLANT.tas.aimip_rmsb.{period}.member2"] == pytest.approx(1.5, abs=1e-5)
        assert m[f"PLANT.tas.aimip_rmsb_median.{period}"] == pytest.approx(1.0, abs=1e-5)
        assert (m[f"PLANT.tas.aimip_rmsb_min.{period}"], m[f"PLANT.tas.aimip_rmsb_max.{period}"]) == \
            (pytest.approx(0.5, abs=1e-5), pytest.approx(1.5, abs=1e-5))
    for stat in ("median", "min", "max"):  # E5 in field units; ours per K of SST (2 K here)
        assert m[f"PLANT.tas.aimip_response_global_{stat}.p2k"] == pytest.approx(2.0, abs=1e-5)
    assert m["PLANT.tas.warming_per_K_global.p2k"] == pytest.approx(1.0, abs=1e-5)
