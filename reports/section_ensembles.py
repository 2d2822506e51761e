"""The report's section for ensembles around a trajectory (``emulator-run --around``) and guided runs
(``--guide``): what the ``conditioning`` group of md-diagnose computed (diagnostics/groups/conditioning.py).

Figures: per channel, the global-mean series of every member minus the reference's climatology
(members thin, ensemble means thick, reference black): a drift, or the offset a constraint
imposes, shows. Table: per ensemble and channel, the distance of the ensemble mean to the
reference (the conditioning run, when md-diagnose was given it as ``--reference``) and to the
forced signal (the noise floor's mean) beside the value sampling alone gives, the spread against
the noise floor's, the correlation with the reference's own weather beside its sampling-only
value, and the global-mean anomaly's mean and RMS.

This module builds neutral pieces (:class:`~reports.figures.FigureSpec` and :class:`TableSpec`);
:func:`reports.sections.ensembles_around` wraps them into the report's Section (no import of
``sections`` here: the package keeps no module cycles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import xarray as xr

from . import labels, scorecard
from .figures import FigureSpec, display_scale
from .metricsdir import REFERENCE, MetricsDir
from .scorecard import Cell

ID = "ensembles"
TITLE = "Ensembles around a trajectory and guided runs"
INTRO = ("Global means against the reference's climatology, and each ensemble mean's distance to the reference "
         "and to the forced signal (the noise floor's mean), with the values sampling alone would give "
         "(docs/residual.md, docs/metrics.md \"Ensembles around a trajectory\"). An ensemble generated around a "
         "conditioning run should sit at the sampling value with a spread ratio of 1 and a weather correlation "
         "at its sampling value; a guided run should hold its global mean at the target.")
SERIES = "global_anomaly_series"
#: the table's columns: (metric, header, kind) — kind "field" values are shown in display units
COLUMNS = (("distance_reference", "distance to reference", "field"),
           ("distance_forced", "distance to forced signal", "field"),
           ("distance_forced_sampling", "same, from sampling alone", "field"),
           ("spread_ratio_noise_floor", "spread / noise floor's", "ratio"),
           ("weather_corr_reference", "corr. with reference's weather", "1"),
           ("weather_corr_reference_sampling", "same, from sampling alone", "1"),
           ("global_anomaly_mean", "global-mean anomaly, mean", "field"),
           ("global_anomaly_rms", "global-mean anomaly, RMS", "field"))


@dataclass
class TableSpec:
    """A table as :class:`reports.sections.Table` takes it."""

    title: str
    caption: str
    header: list[str]
    rows: list[tuple[str, list[Cell]]]


Lines = Callable[[MetricsDir, list[xr.DataArray], xr.DataArray | None], tuple[list, str, str]]


def has_metrics(md: MetricsDir) -> bool:
    """Whether md-diagnose's ``conditioning`` group wrote anything (older metrics directories have none)."""
    return bool(md.select(diagnostic=SERIES)) or any(k.metric == COLUMNS[0][0] for k in md.scalars)


def _ratio_colour(x: float, expected: float) -> str | None:
    """Green at the expected value, red at a factor 2 from it (log scale)."""
    if not (x > 0 and expected > 0):
        return None
    return scorecard.badness_colour(abs(math.log(x / expected)) / math.log(2.0))


def _cells(md: MetricsDir, model: str, channel: str) -> list[Cell]:
    factor, _ = display_scale(scorecard.channel_units(channel))
    cells = []
    for metric, _, kind in COLUMNS:
        x = md.scalar(model, channel, metric, ("all",))
        if x is None or not np.isfinite(x):
            cells.append(Cell())
            continue
        colour = None
        if metric == "distance_forced":
            colour = _ratio_colour(x, md.scalar(model, channel, "distance_forced_sampling", ("all",)) or 0.0)
        elif metric == "spread_ratio_noise_floor":
            colour = _ratio_colour(x, 1.0)
        shown = x * factor if kind == "field" else x
        cells.append(Cell(f"{shown:.3g}", colour, f"{model}.{channel}.{metric}.all"))
    return cells


def table(md: MetricsDir) -> TableSpec | None:
    """One row per (ensemble or reference, channel) that has any of :data:`COLUMNS`."""
    names = {c[0] for c in COLUMNS}
    chans = sorted({k.channel for k in md.scalars if k.metric in names},
                   key=lambda c: (md.channels.index(c) if c in md.channels else len(md.channels), c))
    rows = []
    for model in [REFERENCE, *md.ensembles]:
        for ch in chans:
            cells = _cells(md, model, ch)
            if any(c.text != "–" for c in cells):
                _, units = display_scale(scorecard.channel_units(ch))
                rows.append((f"{labels.model(model)} — {labels.channel(ch)}" + (f" ({units})" if units else ""),
                             cells))
    if not rows:
        return None
    caption = ("Monthly anomalies (each field from its own climatology of the train period), area-weighted RMS over "
               "time and grid, in the units after the row name. With N members and M noise-floor members of std "
               "sigma, sampling alone gives a distance to the forced signal of sigma sqrt(1/N + 1/M) (the reference: "
               "sigma sqrt(1 + 1/M)) and a weather correlation of (1/M) / sqrt((1/N + 1/M)(1 + 1/M)); a correlation "
               "near 1 means the ensemble follows the reference's own weather. Colour: distance to the forced signal "
               "against its sampling value and the spread ratio against 1 (green at it, red at a factor 2). "
               "Global-mean anomaly: each member's global mean minus the reference's climatology (mean and RMS over "
               "members and months).")
    return TableSpec("Ensemble mean and spread against the reference and the noise floor", caption,
                     [h for _, h, _ in COLUMNS], rows)


def series_figures(md: MetricsDir, series_lines: Lines) -> list[FigureSpec]:
    """One ``lines`` figure per channel of the global-mean anomaly series (members, means, reference)."""
    out = []
    for ch in sorted({str(d.attrs.get("channel", "")) for d in md.select(diagnostic=SERIES)},
                     key=lambda c: (md.channels.index(c) if c in md.channels else len(md.channels), c)):
        fields = md.select(diagnostic=SERIES, channel=ch)
        ref = next((d for d in fields if d.attrs.get("model") == REFERENCE), None)
        lines, units, xlabel = series_lines(md, [d for d in fields if d.attrs.get("model") != REFERENCE], ref)
        caption = (f"Global mean of {labels.channel(ch)} minus the reference's monthly climatology (train period), "
                   f"{units or '1'}: members (thin), ensemble means (thick), reference (black). A drift away from 0, "
                   "or the offset a constraint imposes (a guided run), shows here; members around a trajectory "
                   "scatter about the reference's forced signal.")
        out.append(FigureSpec("lines", f"ensembles-global-anomaly-{ch}", f"{labels.channel(ch)}: global-mean "
                              "anomaly from the reference's climatology", caption, lines=lines,
                              options={"xlabel": xlabel, "ylabel": units}))
    return out


def items(md: MetricsDir, series_lines: Lines) -> list[FigureSpec | TableSpec]:
    """The section's figures then its table (empty when md-diagnose wrote no ``conditioning`` output)."""
    if not has_metrics(md):
        return []
    out: list[FigureSpec | TableSpec] = list(series_figures(md, series_lines))
    t = table(md)
    if t is not None:
        out.append(t)
    return out
