"""The front-page scorecard: headline metrics per variable/level, coloured by a stated rule.

Each column is one headline metric, looked up in metrics.json under the first of its
candidate metric names that is present (the names follow docs/metrics.md). Each cell is
coloured by a *badness* b in [0, 1] (green 0, yellow 0.5, red 1), defined per column:

- ``scale``    (global-mean bias, RMS of the bias map): b = |x| / s, s the reference's
  variability of that channel: the global mean of its standard deviation of monthly
  anomalies (``reference.<ch>.std_global``); yellow at half of it, red at one std or more.
- ``baseline`` (CRPS): b = x / x_clim - 0.5, x_clim the CRPS of ``baseline-climatology``;
  green at half the climatology CRPS, yellow when equal to it, red at 1.5 times.
- ``corr``     (pattern correlations): b = 1 - r; green at 1, yellow at 0.5, red at <= 0.
- ``ratio``    (spread-skill, variance and variability ratios): b = |ln(x / ideal)| / ln 2;
  yellow at a factor sqrt(2) from the ideal, red at a factor 2. The ideal is 1, except for
  uncorrected spread-skill of M members, whose reliable value is sqrt(M / (M + 1)).

With a noise floor (``md-diagnose --noise-floor``: the reference's own other realisations, the
best any emulator can do) the floor is a column of its own in each metric, shown in a neutral
colour, and the other models are coloured by their distance from it instead (:func:`floor_badness`):

- ``scale``    b = max(0, |x| - |x_floor|) / s;
- ``baseline`` b = 0.5 (r - r_floor) / (1 - r_floor), r = CRPS / climatology CRPS: green at the
  floor, yellow as poor as climatology;
- ``corr``     b = max(0, r_floor - r) / 0.2: yellow 0.1 below the floor, red 0.2 below;
- ``ratio``    b = |ln(x / x_floor)| / (2 ln 1.1): yellow 10 % off the floor's ratio, red 21 %.

CRPS is shown as the ratio it is coloured by (CRPS / climatology CRPS), raw values in the tooltip.
A cell whose rule cannot be evaluated (no reference scale, no baseline) is shown uncoloured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from matplotlib import colormaps
from matplotlib.colors import to_hex

from diagnostics.data import catalogue

from diagnostics.schema import NOISE_FLOOR

from . import labels
from .figures import display_scale
from .metricsdir import REFERENCE, MetricKey, MetricsDir

PERIOD_PREFERENCE = ("test", "all", "train", "")
SEASON_PREFERENCE = ("ANN", "", "DJF", "JJA", "MAM", "SON")
CLIMATOLOGY_BASELINE = "baseline-climatology"
#: the reference's variability scale of a channel: global mean of the std of monthly anomalies
SCALE_NAMES = ("std_global", "interannual_std")
#: background of the noise-floor cells: neutral, they are the yardstick, not a score
FLOOR_COLOUR = "#e3e7f0"
FLOOR_RULE_TEXT = ("neutral; where it has a value the others are coloured by their distance from it: biases "
                   "(|x| - |floor|) / reference std; CRPS ratio green at the floor's, yellow at climatology's; "
                   "correlations yellow 0.1 below the floor, red 0.2 below; ratios yellow 10 % off the floor's, "
                   "red 21 % off")


@dataclass(frozen=True)
class Column:
    """One headline metric: label, candidate metric names (first present wins), colouring rule."""

    key: str
    label: str
    names: tuple[str, ...]
    rule: str
    rule_text: str


COLUMNS: tuple[Column, ...] = (
    Column("bias", "Global-mean bias", ("bias_mean", "bias_global_mean"), "scale",
           "|bias| / reference std of monthly anomalies (global mean): green 0, yellow 0.5, red >= 1"),
    Column("bias_rms", "RMS of bias map", ("bias_rms",), "scale",
           "RMS / reference std of monthly anomalies (global mean): green 0, yellow 0.5, red >= 1"),
    Column("crps", "CRPS / climatology CRPS", ("crps", "crps_fair"), "baseline",
           "shown and coloured: CRPS / CRPS of the climatology baseline: green <= 0.5, yellow 1, red >= 1.5"),
    Column("spread_skill", "Spread-skill", ("spread_skill_corrected", "spread_skill"), "ratio",
           "|ln(ratio / ideal)|: yellow at a factor sqrt(2), red at 2 (ideal 1 corrected, sqrt(M/(M+1)) uncorrected)"),
    Column("nino34_corr", "Niño-3.4 pattern corr.", ("nino34_pattern_corr",), "corr",
           "correlation r: green 1, yellow 0.5, red <= 0"),
    Column("nao_corr", "NAO/mode pattern corr.", ("pattern_corr",), "corr",
           "EOF pattern correlation r: green 1, yellow 0.5, red <= 0"),
    Column("nao_var", "NAO/mode amplitude ratio", ("pc_std_ratio",), "ratio",
           "PC std (square root of the EOF variance) model / reference: |ln ratio|, yellow at a factor sqrt(2), "
           "red at 2"),
    Column("variability", "Variability ratio", ("std_ratio",), "ratio",
           "std of monthly anomalies model / reference: |ln ratio|, yellow at a factor sqrt(2), red at 2"),
)


@dataclass
class Cell:
    text: str = "–"
    colour: str | None = None
    title: str = ""


@dataclass
class Scorecard:
    """Rows (channels) x columns (metrics) x models, ready for HTML and PDF."""

    columns: list[Column]
    models: list[str]
    rows: list[str]
    cells: dict[tuple[str, str, str], Cell] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)  # row -> display units of bias values
    floor: str | None = None  # the noise-floor ensemble, a column of its own
    column_models: dict[str, list[str]] = field(default_factory=dict)  # column key -> models shown in it

    def row_label(self, row: str) -> str:
        text = labels.channel(row)
        return f"{text} ({self.units[row]})" if self.units.get(row) else text

    def models_of(self, column: str) -> list[str]:
        return self.column_models.get(column, self.models)

    def cell(self, row: str, column: str, model: str) -> Cell:
        return self.cells.get((row, column, model), Cell())


def badness_colour(b: float) -> str:
    """Pastel colour for badness b in [0, 1]: green - yellow - red (RdYlGn), mixed with white for legibility."""
    rgb = np.array(colormaps["RdYlGn_r"](float(np.clip(b, 0.0, 1.0)))[:3])
    return to_hex(0.55 * rgb + 0.45)


def _key_rank(key: MetricKey) -> tuple[int, int]:
    p = PERIOD_PREFERENCE.index(key.period) if key.period in PERIOD_PREFERENCE else len(PERIOD_PREFERENCE)
    s = SEASON_PREFERENCE.index(key.season) if key.season in SEASON_PREFERENCE else len(SEASON_PREFERENCE)
    return (p, s)


def find(md: MetricsDir, model: str, channel: str, names: tuple[str, ...],
         period: str | None = None) -> tuple[MetricKey, float] | None:
    """The preferred value of the first present metric name (test period, annual mean first).

    Keys with a scenario or other extra qualifier are not headline numbers and are skipped.
    ``period`` restricts the period when given.
    """
    for name in names:
        keys = [k for k in md.keys_for(model, channel, name) if not k.other
                and (period is None or k.period == period) and md.scalars.get(k) is not None]
        keys = [k for k in keys if math.isfinite(md.scalars[k])]
        if keys:
            best = min(keys, key=_key_rank)
            return best, md.scalars[best]
    return None


def crps_ratio(md: MetricsDir, channel: str, key: MetricKey, x: float) -> float | None:
    """CRPS / CRPS of the climatology baseline for the same channel and qualifiers (None without it)."""
    base = md.scalar(CLIMATOLOGY_BASELINE, channel, key.metric, key.qualifiers)
    return x / base if base and base > 0 else None


def floor_badness(md: MetricsDir, column: Column, channel: str, key: MetricKey, x: float,
                  floor: tuple[MetricKey, float]) -> float | None:
    """Badness relative to the noise floor's value of the same metric (rules in the module docstring)."""
    fkey, xf = floor
    if column.rule == "corr":
        return max(0.0, xf - x) / 0.2
    if column.rule == "scale":
        s = find(md, REFERENCE, channel, SCALE_NAMES, key.period or None) or find(md, REFERENCE, channel, SCALE_NAMES)
        return max(0.0, abs(x) - abs(xf)) / s[1] if s and s[1] > 0 else None
    if column.rule == "baseline":
        r, rf = crps_ratio(md, channel, key, x), crps_ratio(md, channel, fkey, xf)
        if r is None or rf is None or rf >= 1.0:
            return None
        return max(0.0, 0.5 * (r - rf) / (1.0 - rf))
    if column.rule == "ratio":
        return abs(math.log(x / xf)) / (2 * math.log(1.1)) if x > 0 and xf > 0 else 1.0
    raise ValueError(f"unknown colouring rule {column.rule!r}")


def _badness(md: MetricsDir, column: Column, model: str, channel: str, key: MetricKey, x: float) -> float | None:
    if column.rule == "corr":
        return 1.0 - x
    if column.rule == "scale":
        s = find(md, REFERENCE, channel, SCALE_NAMES, key.period or None) or find(md, REFERENCE, channel, SCALE_NAMES)
        return abs(x) / s[1] if s and s[1] > 0 else None
    if column.rule == "baseline":
        base = md.scalar(CLIMATOLOGY_BASELINE, channel, key.metric, key.qualifiers)
        return x / base - 0.5 if base and base > 0 else None
    if column.rule == "ratio":
        ideal = 1.0
        if key.metric == "spread_skill":
            m = (md.provenance.get("members") or {}).get(model)
            ideal = math.sqrt(m / (m + 1)) if m else 1.0
        return abs(math.log(x / ideal)) / math.log(2.0) if x > 0 else 1.0
    raise ValueError(f"unknown colouring rule {column.rule!r}")


def channel_units(channel: str) -> str:
    """Catalogue units of a channel label (``ta850`` -> K); "" for modes and unknown names."""
    for name in (channel, channel.rstrip("0123456789")):
        try:
            return catalogue.variable(name).units
        except KeyError:
            continue
    return ""


UNIT_RULES = ("scale", "baseline")  # columns whose values carry the variable's units (CRPS when no ratio)


def mode_rows(md: MetricsDir) -> list[str]:
    """Channels of metrics.json keys that are modes (not listed in ``channels``), e.g. ``nao_z500``."""
    listed = set(md.channels)
    rows: dict[str, None] = {}
    for key in md.scalars:
        if key.channel not in listed and key.channel != "nino34" and "_" in key.channel:
            rows.setdefault(key.channel, None)
    return list(rows)


def noise_floor(md: MetricsDir) -> str | None:
    """The noise-floor ensemble of the file (metrics.json ``noise_floor``, or an ensemble so named)."""
    name = md.info.get("noise_floor")
    if name:
        return str(name)
    return NOISE_FLOOR if NOISE_FLOOR in md.ensembles else None


def build(md: MetricsDir, models: list[str] | None = None) -> Scorecard:
    """Scorecard of ``models`` (default: the evaluated ensembles) over channels and modes, with the
    noise floor as its own column of every metric and the baselines in the CRPS column.

    Columns and rows without any value are dropped.
    """
    floor = noise_floor(md)
    models = [m for m in (models if models is not None else md.ensembles) if m != floor]
    rows = md.channels + mode_rows(md) + (["nino34"] if md.keys_for(channel="nino34") else [])
    cells: dict[tuple[str, str, str], Cell] = {}
    units: dict[str, str] = {}
    column_models: dict[str, list[str]] = {}
    for row in rows:
        factor, units[row] = display_scale(channel_units(row))
        for col in COLUMNS:
            extra = [b for b in md.baselines if b != CLIMATOLOGY_BASELINE] if col.rule == "baseline" else []
            shown_models = models + ([floor] if floor else []) + extra
            floor_hit = find(md, floor, row, col.names) if floor else None
            for model in shown_models:
                hit = find(md, model, row, col.names)
                if hit is None:
                    continue
                key, x = hit
                if model == floor:
                    colour = FLOOR_COLOUR
                else:
                    b = floor_badness(md, col, row, key, x, floor_hit) if floor_hit is not None else None
                    if b is None:  # no floor value, or its rule is undefined (floor CRPS >= climatology's)
                        b = _badness(md, col, model, row, key, x)
                    colour = None if b is None else badness_colour(b)
                qual = ".".join(key.qualifiers)
                tip = f"{model}.{row}.{key.metric}" + (f".{qual}" if qual else "") + f" = {x:.4g}; {col.rule_text}"
                ratio = crps_ratio(md, row, key, x) if col.rule == "baseline" else None
                shown = ratio if ratio is not None else x * factor if col.rule in UNIT_RULES else x
                cells[(row, col.key, model)] = Cell(f"{shown:.3g}", colour, tip)
            have = [m for m in shown_models if (row, col.key, m) in cells]
            column_models[col.key] = [m for m in shown_models if m in have or m in column_models.get(col.key, [])]
    used_cols = [c for c in COLUMNS if any(k[1] == c.key for k in cells)]
    # a row only the noise floor or the baselines have (a variable no model predicts) is not shown
    used_rows = [r for r in rows if any(k[0] == r and k[2] in models for k in cells)]
    # rows whose only unit-bearing values are CRPS ratios need no units
    row_units = {r: units[r] if any((r, c.key, m) in cells for c in used_cols if c.rule == "scale"
                                    for m in column_models.get(c.key, [])) else "" for r in used_rows}
    return Scorecard(used_cols, models, used_rows, cells, row_units, floor,
                     {c.key: column_models[c.key] for c in used_cols})
