"""The numbers of the "Models side by side" section (its figures are assembled in
:func:`reports.sections.comparison`), as the AI-MIP Phase-1 paper shows them: per-variable member
median with the min-max range (E1 RMSB, and E2 / E3 where metrics.json holds them) and the
portrait plot's relative errors (each error and variable normalised by the median over the models;
drawn as variables x models, one panel per error family, so that it stays readable at 37 channels).

Everything is read from metrics.json (``{stem}_median`` / ``_min`` / ``_max`` keys, one per model,
channel and period); nothing is recomputed. No import of :mod:`reports.sections` (it imports this).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from diagnostics import physics
from diagnostics.schema import NOISE_FLOOR

from . import labels, scorecard
from .metricsdir import MetricsDir

#: The official member statistics, in the paper's order: (metric stem, what it is, short name).
STEMS = (
    ("aimip_rmsb", "E1: RMS of the time-mean bias map", "E1 RMSB"),
    ("aimip_rmsb_2p8deg", "E1 on the 2.8-degree grid: RMS of the time-mean bias map", "E1 RMSB 2.8°"),
    ("aimip_trend_bias_rms", "E2: RMS of the trend-bias map", "E2 trend"),
    ("aimip_enso_rmse", "E3: RMSE of the Niño-3.4 regression map", "E3 ENSO"),
)
STATS = ("median", "min", "max")
#: E5's member statistics (perturbed minus control global mean), qualified by the scenario.
E5_STEM = "aimip_response_global"
#: Most variables in one map-grid figure (columns) and bar panels per row.
MAP_COLUMNS = 5
BARS_PER_ROW = 4


def period_of(md: MetricsDir, stem: str) -> str:
    """The period the comparison shows for ``stem``: test, else train, else all (what exists)."""
    have = {k.period for k in md.scalars if k.metric == f"{stem}_median"}
    return next((p for p in ("test", "train", "all", "") if p in have), "")


def comparison_models(md: MetricsDir) -> list[str]:
    """The evaluated ensembles in metrics.json order, the noise floor last (it is not a model)."""
    ens = [m for m in md.ensembles if m != NOISE_FLOOR]  # metrics.json lists them in command order
    return ens + ([NOISE_FLOOR] if NOISE_FLOOR in md.ensembles else [])


def member_stats(md: MetricsDir, stem: str, period: str,
                 scenario: str = "") -> dict[tuple[str, str], tuple[float, float, float]]:
    """``{(model, channel): (median, min, max)}`` over members of ``stem`` (of ``period`` and
    ``scenario``) where all three exist, for the channels at least one model (not only the noise
    floor) has."""
    out = {}
    order = md.channels
    channels = sorted({k.channel for k in md.scalars if k.metric == f"{stem}_median" and k.period == period
                       and k.scenario == scenario},
                      key=lambda c: (order.index(c) if c in order else len(order), c))
    qualifiers = tuple(q for q in (period, scenario) if q)
    for m in comparison_models(md):
        for ch in channels:
            vals = [md.scalar(m, ch, f"{stem}_{s}", qualifiers) for s in STATS]
            if all(v is not None for v in vals):
                out[(m, ch)] = (vals[0], vals[1], vals[2])
    modelled = {ch for m, ch in out if m != NOISE_FLOOR}  # a variable only the noise floor has is left out
    return {mc: v for mc, v in out.items() if mc[1] in modelled}


def e5_channels() -> tuple[str, ...]:
    """The channels the official E5 shows (:func:`diagnostics.physics.e5_channels`: ``tas, ts, pr,
    huss, ta850, ta500, zg500``)."""
    return tuple(label for label, _, _ in physics.e5_channels())


def physics_models(md: MetricsDir) -> list[str]:
    """Models with an E5 response that are not evaluated ensembles: md-diagnose's ``--physics``
    models (GFDL-CM4), in key order."""
    ens = set(md.ensembles)
    return list(dict.fromkeys(k.model for k in md.scalars if k.metric == f"{E5_STEM}_median" and k.model not in ens))


def response_stats(md: MetricsDir, scenario: str) -> dict[tuple[str, str], tuple[float, float, float]]:
    """E5 of ``scenario`` (``p2k``/``p4k``): ``{(model, channel): (median, min, max)}`` over members of
    the global-mean perturbed-minus-control response, for the :func:`e5_channels` present, in that
    order; the physics models (:func:`physics_models`) first, then the ensembles that have it."""
    out = {}
    for ch in e5_channels():
        for m in physics_models(md) + comparison_models(md):
            vals = [md.scalar(m, ch, f"{E5_STEM}_{s}", (scenario,)) for s in STATS]
            if all(v is not None for v in vals):
                out[(m, ch)] = (vals[0], vals[1], vals[2])
    return out


def response_scenarios(md: MetricsDir) -> list[str]:
    """The scenarios with an E5 response in metrics.json, in ``p2k``, ``p4k`` order."""
    have = {k.scenario for k in md.scalars if k.metric == f"{E5_STEM}_median"}
    return [s for s in sorted(have) if s]


def portrait_table(md: MetricsDir) -> xr.DataArray | None:
    """Relative error (model, column): each column (one stem and channel) is the member median of
    every model divided by the median of those medians over the models, minus one
    (0 = a typical model, -0.5 = half its error). The noise floor is shown on the same scale but
    does not enter the median. None when metrics.json holds none of :data:`STEMS` or fewer than
    two models."""
    models = comparison_models(md)
    if len([m for m in models if m != NOISE_FLOOR]) < 2:  # one model is its own median: nothing to compare
        return None
    cols, values, families, channels = [], [], [], []
    for stem, _, short in STEMS:
        period = period_of(md, stem)
        stats = member_stats(md, stem, period)
        for ch in dict.fromkeys(ch for _, ch in stats):
            med = np.array([stats[(m, ch)][0] if (m, ch) in stats else np.nan for m in models], dtype=float)
            peers = [v for m, v in zip(models, med) if m != NOISE_FLOOR and np.isfinite(v)]
            norm = float(np.median(peers)) if peers else np.nan
            if not np.isfinite(norm) or norm == 0:
                continue
            cols.append(f"{short}\n{labels.channel(ch)}")
            values.append(med / norm - 1.0)
            families.append(short)
            channels.append(ch)
    if not cols:
        return None
    return xr.DataArray(np.array(values).T, dims=("model", "column"),
                        coords={"model": [labels.model(m) for m in models], "column": cols,
                                "family": ("column", families), "channel": ("column", channels)},
                        name="relative_error", attrs={"units": "1"})


def portrait_panels(md: MetricsDir) -> list[tuple[str, xr.DataArray]]:
    """The portrait split by error family, for a plot that stays readable at 37 channels: one
    ``(short name, DataArray (variable, model))`` per :data:`STEMS` entry that has a column, rows the
    variables (:func:`labels.channel`) that any family has, in the same order in every panel (NaN
    where a family lacks a variable), so the panels share their row labels. Values are those of
    :func:`portrait_table`. Empty when there is no portrait."""
    table = portrait_table(md)
    if table is None:
        return []
    channels = list(dict.fromkeys(str(c) for c in table["channel"].values))
    rows = [labels.channel(ch) for ch in channels]
    out = []
    for family in dict.fromkeys(str(f) for f in table["family"].values):
        sub = table.isel(column=np.flatnonzero(table["family"].values == family))
        have = {str(c): k for k, c in enumerate(sub["channel"].values)}
        grid = np.full((len(channels), table.sizes["model"]), np.nan)
        for i, ch in enumerate(channels):
            if ch in have:
                grid[i] = sub.values[:, have[ch]]
        out.append((family, xr.DataArray(grid, dims=("variable", "model"),
                                         coords={"variable": rows, "model": table["model"].values},
                                         name="relative_error", attrs={"units": "1"})))
    return out


def channel_units_of(md: MetricsDir, channel: str) -> str:
    """Units of a channel: its bias field's in metrics.nc, else the catalogue's (scorecard)."""
    for da in md.select(diagnostic="bias", channel=channel):
        return str(da.attrs.get("units", ""))
    return scorecard.channel_units(channel)


