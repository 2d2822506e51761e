"""The one experiment table."""

import pytest

from diagnostics.data.experiments import EXPERIMENTS, SCENARIOS, experiment, sst_offset_k


def test_every_spelling_of_an_experiment_maps_to_one_entry():
    assert [sst_offset_k(n) for n in ("historical", "aimip", "p2k", "aimip-p2k", "aimip-2k", "p4k", "aimip-4k")] \
        == [0.0, 0.0, 2.0, 2.0, 2.0, 4.0, 4.0]
    assert SCENARIOS == ("p2k", "p4k") and list(EXPERIMENTS) == ["historical", "p2k", "p4k"]
    assert experiment("aimip-p4k").name == "p4k"


def test_an_unknown_experiment_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown experiment 'p3k'; expected one of historical \(aimip\)"):
        experiment("p3k")
