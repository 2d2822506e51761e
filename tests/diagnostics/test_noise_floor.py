"""``md-diagnose --noise-floor``: the reference's own other realisations scored like an ensemble."""

from __future__ import annotations

import json

import numpy as np
import pytest

from diagnostics.cli.diagnose import main
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.io.writer import write_aimip, write_prepared
from diagnostics.schema import NOISE_FLOOR
from diagnostics.synth.climate import synthesize

GRID = equiangular(11.25)
FAST = ["--report", "none", "--no-progress", "--no-baselines", "--no-spectra", "--variables", "tas"]


def _synth(seed: int, members: int):
    data, _ = synthesize(GRID, Month.parse("2010-01"), Month.parse("2015-12"), seed=seed, members=members)
    return data[["tas", "time_bnds"]]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("floor")
    realisations = _synth(seed=3, members=4)  # member 0 is the reference (md-synth --members)
    write_prepared(realisations.isel(member=0, drop=True), root / "ref", {"fingerprint": "r"})
    write_prepared(realisations, root / "floor", {"fingerprint": "f"})
    write_aimip(_synth(seed=1, members=2), root / "ens", "ENS", "aimip")  # another climate's weather
    return root


def test_noise_floor_leaves_out_the_reference_and_is_scored_beside_the_models(dirs, tmp_path, capsys):
    out = tmp_path / "scores"
    code = main(["--ensemble", f"ENS={dirs / 'ens'}", "--reference", str(dirs / "ref"),
                 "--noise-floor", str(dirs / "floor"), "--out", str(out), *FAST])
    err = capsys.readouterr().err
    assert code == 0, err
    first = int(_synth(seed=3, members=4)["member"][0])
    assert f"left out member(s) {first} of" in err
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["noise_floor"] == NOISE_FLOOR and NOISE_FLOOR in doc["ensembles"]
    assert doc["provenance"]["members"][NOISE_FLOOR] == 3
    m = doc["metrics"]
    floor, other = m[f"{NOISE_FLOOR}.tas.crps.train"], m["ENS.tas.crps.train"]
    # same climate, independent weather: the floor's CRPS is far below that of unrelated weather
    assert np.isfinite(floor) and floor < 0.9 * other


def test_noise_floor_errors_are_one_line(dirs, tmp_path, capsys):
    base = ["--reference", str(dirs / "ref"), "--out", str(tmp_path / "o"), *FAST]
    assert main(["--ensemble", f"{NOISE_FLOOR}={dirs / 'ens'}", *base]) == 2
    assert "kept for --noise-floor" in capsys.readouterr().err
    assert main(["--ensemble", str(dirs / "ens"), "--noise-floor", str(dirs / "ref"), *base]) == 2
    err = capsys.readouterr().err.strip()
    assert "a noise floor needs 2 or more" in err and err.count("\n") == 0
