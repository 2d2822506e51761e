"""The metrics schema: keys with named qualifiers, the vocabulary md-metrics/2 writes, the legacy
reading of md-metrics/1."""

from __future__ import annotations

import pytest

from diagnostics.schema import MetricKey, key, legacy_vocabulary, parse_key, vocabulary

KEYS = [key("MD", "tas", "bias_mean", period="test", season="DJF"),
        key("MD", "tas", "sh_band_ratio", period="test", band="30+"),
        key("MD", "tas", "warming_per_K_global", scenario="p2k"),
        key("MD", "nao_z500", "pattern_corr", member="member2"),
        key("reference", "nao_z500", "variance_fraction")]


def test_keys_round_trip_through_the_vocabulary_they_declare():
    vocab = vocabulary(KEYS)
    assert vocab == {"period": ["test"], "season": ["DJF"], "scenario": ["p2k"], "band": ["30+"],
                     "member": ["member2"]}
    assert [str(k) for k in KEYS] == ["MD.tas.bias_mean.test.DJF", "MD.tas.sh_band_ratio.test.30+",
                                      "MD.tas.warming_per_K_global.p2k", "MD.nao_z500.pattern_corr.member2",
                                      "reference.nao_z500.variance_fraction"]
    assert [parse_key(str(k), vocab) for k in KEYS] == KEYS
    # a qualifier the file does not declare is not guessed
    assert parse_key("MD.tas.crps.p3k", vocab) is None and parse_key("MD.tas", vocab) is None


def test_a_scenario_named_like_a_band_is_read_as_the_file_says():
    """md-metrics/2 classifies by the declared vocabulary, so any scenario name works, which
    md-metrics/1's spelling rule (p<N>k) could not do."""
    k = key("MD", "tas", "warming_per_K_global", scenario="aimip-uniform")
    assert parse_key(str(k), vocabulary([k])) == k
    assert parse_key(str(k), legacy_vocabulary([str(k)])).band == "aimip-uniform"  # the old rule's guess


def test_legacy_vocabulary_of_md_metrics_1_keys():
    vocab = legacy_vocabulary([str(k) for k in KEYS])
    assert [parse_key(str(k), vocab) for k in KEYS] == KEYS


@pytest.mark.parametrize("bad", [dict(model="M.1", channel="tas", metric="crps"),
                                 dict(model="", channel="tas", metric="crps"),
                                 dict(model="M", channel="tas", metric="crps", period="te.st")])
def test_key_parts_hold_no_dots_and_are_not_empty(bad):
    with pytest.raises(ValueError):
        MetricKey(**bad)
