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


def test_nino34_convention_is_named_and_absolute_is_an_option(tmp_path, capsys):
    """The regressions say which Nino-3.4 index they are per K of; --nino34-index absolute
    (CVDP / PMP) gives other amplitudes than the AI-MIP relative index."""
    from diagnostics.synth.climate import synthesize

    data, _ = synthesize(GRID, Month.parse("2000-01"), Month.parse("2009-12"), seed=4, members=2)
    write_prepared(data[["tas", "tos", "time_bnds"]].isel(member=0, drop=True), tmp_path / "ref",
                   {"fingerprint": "r"})
    write_aimip(data[["tas", "tos", "time_bnds"]], tmp_path / "ens", "ENS", "aimip")
    ratios = {}
    for conv in ("relative", "absolute"):
        out = tmp_path / conv
        assert main(["--ensemble", str(tmp_path / "ens"), "--reference", str(tmp_path / "ref"), "--out", str(out),
                     "--nino34-index", conv, *FAST]) == 0, capsys.readouterr().err
        doc = json.loads((out / "metrics.json").read_text())
        assert doc["provenance"]["nino34_index_convention"] == conv
        import xarray as xr
        with xr.open_dataset(out / "metrics.nc") as ds:
            idx = [ds[v] for v in ds.data_vars if ds[v].attrs.get("diagnostic") == "nino34_index"][0]
            assert idx.attrs["description"].startswith(f"{conv} Nino-3.4 index")
        ratios[conv] = doc["metrics"]["reference.nino34.index_std.all"]
    assert ratios["relative"] != ratios["absolute"]
