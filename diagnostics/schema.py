"""The metrics schema: keys, qualifiers, field attributes, periods and seasons of md-diagnose's outputs.

One module, read by the writer (:mod:`diagnostics.outputs`, the metric groups) and by the report
(:mod:`reports.metricsdir`), so neither re-derives what the other wrote (docs/metrics-schema.md).

A scalar is filed under the key ``<model>.<channel>.<metric>[.<period>][.<season>][.<scenario>]
[.<band>][.<member>]``: a :class:`MetricKey` with *named* qualifiers. Schema ``md-metrics/2``
writes, next to the flat ``metrics`` object, the vocabulary of each qualifier kind the file uses
(``qualifiers``) and the model roles (``ensembles``, ``baselines``), so a reader splits a key by
lookup, never by pattern. Files of schema ``md-metrics/1`` (no vocabulary) are read with
:func:`legacy_vocabulary`, the only place that still classifies qualifiers by their spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields

SCHEMA = "md-metrics/2"
SCHEMA_V1 = "md-metrics/1"
#: Schemas a reader of this version understands.
READABLE = (SCHEMA, SCHEMA_V1)

REFERENCE = "reference"
BASELINE_PREFIX = "baseline-"
#: The ensemble of the reference's own other realisations (``md-diagnose --noise-floor``).
NOISE_FLOOR = "noise-floor"
#: Evaluation periods a key or field may name (``all`` = the whole common window).
PERIODS = ("train", "test", "all")
#: Seasons of the climatology metrics (``ANN`` = all months).
SEASONS = ("ANN", "DJF", "MAM", "JJA", "SON")
#: Qualifier kinds, in the order they appear in a key.
QUALIFIERS = ("period", "season", "scenario", "band", "member")
#: Attributes every metrics.nc variable carries (empty string when not applicable).
FIELD_ATTRS = ("diagnostic", "model", "channel", "period", "season", "scenario", "units",
               "long_name", "description")
#: The attributes that identify a field (the rest describe it).
FIELD_SELECTORS = FIELD_ATTRS[:6]
#: Dims md-diagnose may rename to ``<dim>_<model>[_<channel>]`` when fields clash in one file.
CANONICAL_DIMS = ("lat", "lon", "plev", "time", "year", "member", "bin", "l", "k")


@dataclass(frozen=True, order=True)
class MetricKey:
    """One metrics.json key with its qualifiers named; ``str(key)`` is the dotted form."""

    model: str
    channel: str
    metric: str
    period: str = ""
    season: str = ""
    scenario: str = ""
    band: str = ""
    member: str = ""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("model", "channel", "metric") and not value:
                raise ValueError(f"metric key part {f.name} is empty")
            if "." in value:
                raise ValueError(f"metric key part {value!r} holds a dot")

    @property
    def qualifiers(self) -> tuple[str, ...]:
        """The non-empty qualifiers in key order (``("test", "DJF")``)."""
        return tuple(q for q in (getattr(self, k) for k in QUALIFIERS) if q)

    @property
    def other(self) -> tuple[str, ...]:
        """Qualifiers that are neither a period nor a season (a scenario, a band, a member)."""
        return tuple(q for q in (self.scenario, self.band, self.member) if q)

    def __str__(self) -> str:
        return ".".join((self.model, self.channel, self.metric, *self.qualifiers))


def key(model: str, channel: str, metric: str, **qualifiers: str) -> MetricKey:
    """The key of one scalar, qualifiers by name (``key("MD", "tas", "crps", period="test")``)."""
    return MetricKey(model, channel, metric, **qualifiers)


Vocabulary = dict[str, list[str]]


def vocabulary(keys) -> Vocabulary:
    """The values each qualifier kind takes among ``keys`` (what md-metrics/2 writes)."""
    out: dict[str, set[str]] = {k: set() for k in QUALIFIERS}
    for k in keys:
        for kind in QUALIFIERS:
            if getattr(k, kind):
                out[kind].add(getattr(k, kind))
    return {kind: sorted(values) for kind, values in out.items()}


def parse_key(text: str, vocab: Vocabulary) -> MetricKey | None:
    """A dotted key split with the file's qualifier vocabulary; None when it is not
    ``<model>.<channel>.<metric>[...]`` or a qualifier is in no kind's vocabulary."""
    parts = text.split(".")
    if len(parts) < 3:
        return None
    named: dict[str, str] = {}
    for q in parts[3:]:
        kind = next((k for k in QUALIFIERS if q in vocab.get(k, ()) and k not in named), None)
        if kind is None:
            return None
        named[kind] = q
    try:
        return MetricKey(parts[0], parts[1], parts[2], **named)
    except ValueError:
        return None


_V1_SCENARIO = re.compile(r"p\dk")
_V1_MEMBER = re.compile(r"member\d+")


def legacy_vocabulary(texts) -> Vocabulary:
    """Qualifier vocabulary of an md-metrics/1 file, which did not write one: periods and seasons
    by name, ``p<N>k`` scenarios, ``member<N>`` members, anything else a spectral band."""
    out: dict[str, set[str]] = {k: set() for k in QUALIFIERS}
    for text in texts:
        for q in str(text).split(".")[3:]:
            kind = ("period" if q in PERIODS else "season" if q in SEASONS else
                    "scenario" if _V1_SCENARIO.fullmatch(q) else "member" if _V1_MEMBER.fullmatch(q) else "band")
            out[kind].add(q)
    return {kind: sorted(values) for kind, values in out.items()}


def is_baseline(model: str) -> bool:
    return model.startswith(BASELINE_PREFIX)


def field_name(diagnostic: str, model: str, channel: str, *qualifiers: str) -> str:
    """``<diagnostic>__<model>__<channel>[__<qualifier>...]`` (the metrics.nc variable name)."""
    return "__".join([diagnostic, model, channel, *[q for q in qualifiers if q]])
