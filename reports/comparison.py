"""Models side by side, as the AI-MIP Phase-1 paper shows them: per-variable bars of the member
median with the min-max range (E1 RMSB, and E2 / E3 where metrics.json holds them), a portrait plot
(models x variables, each column normalised by the median over the models) and a map grid
(models x variables) of the time-mean bias.

Everything is read from metrics.json (``{stem}_median`` / ``_min`` / ``_max`` keys, one per model,
channel and period) and metrics.nc (``bias`` fields); nothing is recomputed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from diagnostics.schema import NOISE_FLOOR, REFERENCE

from . import labels, scorecard
from .figures import FigureSpec, Panel, display_scale, display_units
from .metricsdir import MetricsDir
from .sections import Figure, Section, colour_maps, find_one, model_order, order_key, preferred_period, slug

#: The official member statistics, in the paper's order: (metric stem, what it is, short name).
STEMS = (
    ("aimip_rmsb", "E1: RMS of the time-mean bias map", "E1 RMSB"),
    ("aimip_rmsb_2p8deg", "E1 on the 2.8-degree grid: RMS of the time-mean bias map", "E1 RMSB 2.8°"),
    ("aimip_trend_bias_rms", "E2: RMS of the trend-bias map", "E2 trend"),
    ("aimip_enso_rmse", "E3: RMSE of the Niño-3.4 regression map", "E3 ENSO"),
)
STATS = ("median", "min", "max")
#: Most variables in one map-grid figure (columns) and bar panels per row.
MAP_COLUMNS = 5
BARS_PER_ROW = 4


def period_of(md: MetricsDir, stem: str) -> str:
    """The period the comparison shows for ``stem``: test, else train, else all (what exists)."""
    have = {k.period for k in md.scalars if k.metric == f"{stem}_median"}
    return next((p for p in ("test", "train", "all", "") if p in have), "")


def comparison_models(md: MetricsDir) -> list[str]:
    """The evaluated ensembles in metrics.json order, the noise floor last (it is not a model)."""
    ens = sorted((m for m in md.ensembles if m != NOISE_FLOOR), key=lambda m: model_order(md, m))
    return ens + ([NOISE_FLOOR] if NOISE_FLOOR in md.ensembles else [])


def member_stats(md: MetricsDir, stem: str, period: str) -> dict[tuple[str, str], tuple[float, float, float]]:
    """``{(model, channel): (median, min, max)}`` over members of ``stem`` where all three exist."""
    out = {}
    channels = sorted({k.channel for k in md.scalars if k.metric == f"{stem}_median" and k.period == period},
                      key=lambda c: order_key(md, c))
    for m in comparison_models(md):
        for ch in channels:
            vals = [md.scalar(m, ch, f"{stem}_{s}", (period,) if period else ()) for s in STATS]
            if all(v is not None for v in vals):
                out[(m, ch)] = (vals[0], vals[1], vals[2])
    return out


def portrait_table(md: MetricsDir) -> xr.DataArray | None:
    """Relative error (model, column): each column (one stem and channel) is the member median of
    every model divided by the median of those medians over the models, minus one
    (0 = a typical model, -0.5 = half its error). The noise floor is shown on the same scale but
    does not enter the median. None when metrics.json holds none of :data:`STEMS`."""
    models = comparison_models(md)
    cols, values = [], []
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
    if not cols:
        return None
    return xr.DataArray(np.array(values).T, dims=("model", "column"),
                        coords={"model": [labels.model(m) for m in models], "column": cols},
                        name="relative_error", attrs={"units": "1"})


def bars_figure(md: MetricsDir, stem: str, what: str) -> Figure | None:
    """One panel per variable: a bar per model at its member median, whiskers from min to max."""
    period = period_of(md, stem)
    stats = member_stats(md, stem, period)
    if not stats:
        return None
    panels = []
    for ch in dict.fromkeys(ch for _, ch in stats):
        models = [m for m in comparison_models(md) if (m, ch) in stats]
        data = xr.DataArray(np.array([stats[(m, ch)] for m in models]), dims=("model", "stat"),
                            coords={"model": [labels.model(m) for m in models], "stat": list(STATS)})
        units = channel_units_of(md, ch)
        scale, disp_units = display_scale(units)
        panels.append(Panel(f"{labels.channel(ch)} ({disp_units})" if disp_units else labels.channel(ch),
                            data * scale))
    rows = [panels[i:i + BARS_PER_ROW] for i in range(0, len(panels), BARS_PER_ROW)]
    when = md.period_label(period)
    spec = FigureSpec("member_bars", slug("compare", stem, period), f"{what}, {when}".rstrip(", "),
                      f"{what} per variable ({when}): bar = median over members, whiskers = min-max over members. "
                      "Lower is better." + (f" The {labels.NOISE_FLOOR_LABEL} (grey) is the reference's own other "
                                            "realisations." if any(m == NOISE_FLOOR for m, _ in stats) else ""),
                      panels=rows, options={"noise_floor_label": labels.NOISE_FLOOR_LABEL})
    return Figure(spec, headline=stem == "aimip_rmsb")


def channel_units_of(md: MetricsDir, channel: str) -> str:
    """Units of a channel: its bias field's in metrics.nc, else the catalogue's (scorecard)."""
    for da in md.select(diagnostic="bias", channel=channel):
        return str(da.attrs.get("units", ""))
    return scorecard.channel_units(channel)


def portrait_figure(md: MetricsDir) -> Figure | None:
    table = portrait_table(md)
    if table is None:
        return None
    spec = FigureSpec("portrait", "compare-portrait", "Portrait: relative error of each model",
                      "Models x variables: each AI-MIP error (E1 RMSB, E2 trend, E3 ENSO; member median) divided by "
                      "the median over the models, minus one. Blue = smaller error than the typical model.",
                      panels=[[Panel("relative error", table, "diff")]])
    return Figure(spec, headline=True)


def map_grid_figures(md: MetricsDir) -> list[Figure]:
    """Rows models, columns variables: the time-mean bias of the headline period's annual mean, one
    colour scale per variable; :data:`MAP_COLUMNS` variables per figure (the first is a headline)."""
    period = preferred_period(md, "bias")
    models = [m for m in comparison_models(md) if m != REFERENCE]
    channels = sorted({c for m in models if m != NOISE_FLOOR
                       for c in md.values("channel", diagnostic="bias", model=m, period=period, season="ANN")},
                      key=lambda c: order_key(md, c))  # variables some model predicts
    out = []
    for start in range(0, len(channels), MAP_COLUMNS):
        chunk = channels[start:start + MAP_COLUMNS]
        rows, units, cmaps = [], {}, {}
        for m in models:
            row = []
            for ch in chunk:
                da = find_one(md, diagnostic="bias", model=m, channel=ch, period=period, season="ANN")
                if da is None:
                    continue
                d, u = display_units(da)
                scale = f"diff_{ch}"
                units[scale], cmaps[f"cmap_{scale}"] = f"{labels.channel(ch)} ({u})", colour_maps(ch, u)[1]
                row.append(Panel(f"{labels.model(m)}: {labels.channel(ch)}", d, scale))
            if row:
                rows.append(row)
        rows = [r for r in rows if len(r) == len(chunk)]  # a model lacking one of these variables is left out
        if not rows:
            continue
        spec = FigureSpec("maps", slug("compare-bias-grid", period, *chunk),
                          f"Time-mean bias, models x variables, {md.period_label(period)}, annual mean",
                          "Rows models, columns variables: model minus reference time mean, one colour scale per "
                          "variable (under its column). Red = model too high.",
                          panels=rows, units=units, options=cmaps)
        out.append(Figure(spec, headline=start == 0))
    return out


def section(md: MetricsDir) -> Section:
    """The "Models side by side" section (after the overview and its scorecard)."""
    sec = Section("comparison", "Models side by side",
                  intro="The AI-MIP official errors of every model: member median and range per variable, a "
                        "portrait of the relative errors, and the bias maps of all models together.")
    for stem, what, _ in STEMS:
        if (fig := bars_figure(md, stem, what)) is not None:
            sec.items.append(fig)
    if (fig := portrait_figure(md)) is not None:
        sec.items.append(fig)
    sec.items += map_grid_figures(md)
    if not sec.items:
        sec.notes.append("No AI-MIP member statistics (median, min and max over members of E1-E3) or bias "
                         "fields in the metrics; section skipped.")
    return sec
