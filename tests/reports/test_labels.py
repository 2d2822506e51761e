"""Readable metric labels: every metric a registered group writes has one, member statistics say so."""

from __future__ import annotations

from diagnostics.groups import REGISTRY
from reports import labels


def test_every_group_metric_has_a_readable_label():
    """No raw key (``aimip_rmsb_median``) reaches a table: each declared metric is in METRICS or is
    a member statistic of one that is."""
    def known(m: str) -> bool:
        base, _, stat = m.rpartition("_")
        return m in labels.METRICS or (base in labels.METRICS and stat in labels.MEMBER_STATS)

    unlabelled = sorted({m for g in REGISTRY.values() for m in g.metrics if not known(m)})
    assert unlabelled == []


def test_member_statistics_name_the_statistic():
    assert labels.metric("aimip_rmsb_median") == "RMS of time-mean bias (AI-MIP E1), member median"
    assert labels.metric("aimip_trend_bias_rms_max").endswith(", member max")
    assert labels.metric("not_a_metric_median") == "not a metric median"
