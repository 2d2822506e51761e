"""``--physics NAME=DIR``: the physics model's specs parsed and its scenarios routed away from the
ensembles' (the end-to-end E5 test is in test_io_layouts_scored.py)."""

from __future__ import annotations

import pytest

from diagnostics import physics
from diagnostics.cli.diagnose import main
from diagnostics.data.errors import InputError


def test_e5_channels_are_the_official_ones():
    assert [c for c, _, _ in physics.e5_channels()] == ["tas", "ts", "pr", "huss", "ta850", "ta500", "zg500"]
    assert dict((c, (v, p)) for c, v, p in physics.e5_channels())["ta500"] == ("ta", 50000.0)


def test_physics_scenarios_are_split_from_the_ensembles():
    phys = physics.physics_names(["GFDL-CM4=cmip6/CMIP/NOAA-GFDL/GFDL-CM4/amip"])
    assert phys == {"GFDL-CM4": "cmip6/CMIP/NOAA-GFDL/GFDL-CM4/amip"}
    own, theirs = physics.split_scenarios(["GFDL-CM4:p4k=cm4/amip-p4K", "ACE2:aimip-p2k=ace/p2k", "p4k=first/p4k",
                                           "GFDL-CM4:p3k=x"], phys)
    assert theirs == [("GFDL-CM4", "p4k", "cm4/amip-p4K")]
    assert own == ["ACE2:aimip-p2k=ace/p2k", "p4k=first/p4k", "GFDL-CM4:p3k=x"]  # p3k: refused later, with its message


@pytest.mark.parametrize("specs, match", [(["cmip6/amip"], "expected NAME=PATH"),
                                          (["A=x", "A=y"], "given twice")])
def test_physics_spec_errors(specs, match):
    with pytest.raises(InputError, match=match):
        physics.physics_names(specs)


def test_a_physics_model_named_like_an_ensemble_is_refused():
    with pytest.raises(InputError, match="both as --ensemble and --physics"):
        physics.check_names({"CM4": "a"}, [("CM4", "b"), (None, "c")])
    physics.check_names({"CM4": "a"}, [("ACE2", "b"), (None, "c")])


def test_physics_without_a_name_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "ens").mkdir()
    code = main(["--ensemble", str(tmp_path / "ens"), "--reference", str(tmp_path / "ens"), "--out",
                 str(tmp_path / "o"), "--physics", str(tmp_path / "amip"), "--report", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "--physics" in err[0] and "NAME=PATH" in err[0]


def test_a_physics_model_named_like_the_reference_or_the_noise_floor_is_refused():
    for name in ("reference", "noise-floor"):
        with pytest.raises(InputError, match="both as --ensemble"):
            physics.check_names({name: "a"}, [("ACE2", "b")])


def test_a_mistyped_physics_path_fails_before_any_scoring(tmp_path, capsys):
    """Specs.parse checks the physics model's control and scenario paths with the others."""
    from diagnostics.data.grid import equiangular
    from diagnostics.data.timeaxis import Month
    from diagnostics.io.writer import write_aimip
    from diagnostics.synth.climate import synthesize

    ens, _ = synthesize(equiangular(11.25), Month(2012, 1), Month(2012, 12), seed=1, members=1)
    write_aimip(ens[["tas", "time_bnds"]], tmp_path / "ens", "A", "aimip")
    code = main(["--ensemble", f"A={tmp_path / 'ens'}", "--reference", str(tmp_path / "ens"), "--out",
                 str(tmp_path / "o"), "--physics", f"CM4={tmp_path / 'ens'}",
                 "--scenario", f"CM4:p4k={tmp_path / 'amip-p4K-typo'}", "--report", "none"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "amip-p4K-typo" in err[0], err
