"""The report plan: sections of figures, tables and notes built from a metrics directory.

Every section is built generically from the ``metrics.nc`` attributes (diagnostic, model,
channel, period, season, scenario, units, description) and the metrics.json keys; a
section whose fields are absent becomes a short note instead of figures. Fields of a
diagnostic no section knows end up in "Other fields", drawn by their dimensions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from diagnostics.data.grid import global_mean
from diagnostics.metrics.pattern import weighted_rms

from . import scorecard
from .figures import FigureSpec, Line, Panel, display_scale, display_units
from .metricsdir import REFERENCE, SCHEMA_V1, MetricsDir, canonical_dims
from .scorecard import Cell

MODEL_COLOURS = ("tab:red", "tab:blue", "tab:green", "tab:orange", "tab:purple", "tab:brown", "tab:pink",
                 "tab:olive", "tab:cyan")
SEASON_ORDER = ("ANN", "DJF", "MAM", "JJA", "SON", "")
PERIOD_ORDER = ("train", "test", "all", "")
MAX_PANELS_PER_ROW = 4
#: seasons drawn as climatology maps (the AI-MIP E1 set); other seasons stay in the tables
MAP_SEASONS = ("ANN", "DJF", "JJA", "")


@dataclass
class Figure:
    spec: FigureSpec
    number: int = 0

    @property
    def src(self) -> str:
        return f"figures/{self.spec.name}.png"


@dataclass
class Table:
    title: str
    caption: str
    header: list[str]
    rows: list[tuple[str, list[Cell]]]
    groups: list[tuple[str, int]] = field(default_factory=list)  # optional top header row (label, colspan)
    legend: list[tuple[str, str]] = field(default_factory=list)  # (term, explanation) below the table
    number: int = 0


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    items: list = field(default_factory=list)  # Figure | Table
    notes: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)

    @property
    def figures(self) -> list[Figure]:
        return [i for i in self.items if isinstance(i, Figure)]

    @property
    def tables(self) -> list[Table]:
        return [i for i in self.items if isinstance(i, Table)]


# ---------------------------------------------------------------- helpers


def slug(*parts: str) -> str:
    """File-name-safe stem from attribute values (which may hold anything)."""
    text = "-".join(p for p in parts if p)
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:120] or "figure"


def attr(da: xr.DataArray, name: str) -> str:
    return str(da.attrs.get(name, "") or "")


def variable_of(channel: str) -> str:
    """CMIP variable of a channel label (``ta850`` -> ``ta``)."""
    return re.sub(r"\d+$", "", channel)


def colour_maps(channel: str, units: str) -> tuple[str, str]:
    """(sequential, diverging) colour maps by convention: precipitation wet = green/blue."""
    var = variable_of(channel)
    if var == "pr" or var.startswith("hus") or var == "huss":
        return "YlGnBu", "BrBG"
    if units.split(" ")[0] == "K" or var in ("ta", "tas", "ts", "tdas"):
        return "RdYlBu_r", "RdBu_r"
    return "viridis", "RdBu_r"


def order_key(md: MetricsDir, channel: str) -> tuple[int, str]:
    chans = md.channels
    return (chans.index(channel) if channel in chans else len(chans), channel)


def model_order(md: MetricsDir, model: str) -> tuple[int, str]:
    order = md.models
    return (order.index(model) if model in order else len(order), model)


def model_colour(md: MetricsDir, model: str) -> str:
    ens = md.ensembles + md.baselines
    others = sorted({m for m in md.values("model") if m not in ens and m != REFERENCE})
    allm = ens + others
    return MODEL_COLOURS[allm.index(model) % len(MODEL_COLOURS)] if model in allm else "tab:gray"


def when(md: MetricsDir, period: str = "", season: str = "", scenario: str = "") -> str:
    """'test (2015-01:2024-12), DJF, scenario p2k' (only the parts that apply)."""
    bits = []
    if period:
        bits.append(f"period {md.period_label(period)}")
    if season:
        bits.append(f"season {season}")
    if scenario:
        bits.append(f"scenario {scenario}")
    return ", ".join(bits)


def sentence(text: str) -> str:
    """'period test, season DJF' -> 'Period test, season DJF. ' (only the first letter raised)."""
    return f"{text[0].upper()}{text[1:]}. " if text else ""


def groups(md: MetricsDir, diagnostic: str, keys=("channel", "period", "season", "scenario")) -> list[dict]:
    """Distinct attribute combinations of a diagnostic's fields, in a stable report order."""
    seen: dict[tuple, dict] = {}
    for da in md.select(diagnostic=diagnostic):
        k = tuple(attr(da, a) for a in keys)
        seen.setdefault(k, dict(zip(keys, k)))
    out = list(seen.values())

    def rank(g):
        return (order_key(md, g.get("channel", "")),
                PERIOD_ORDER.index(g["period"]) if g.get("period", "") in PERIOD_ORDER else 9,
                SEASON_ORDER.index(g["season"]) if g.get("season", "") in SEASON_ORDER else 9,
                g.get("scenario", ""))
    return sorted(out, key=rank)


def members_dim(da: xr.DataArray) -> str | None:
    return next((d for d in da.dims if str(d).startswith("member")), None)


def decimal_year(time: xr.DataArray) -> np.ndarray:
    """Mid-month decimal years of a cftime or datetime64 time axis (for plotting without nc-time-axis)."""
    values = time.values
    if values.dtype.kind == "M":
        years = time.dt.year.values
        months = time.dt.month.values
    else:
        years = np.array([t.year for t in values])
        months = np.array([t.month for t in values])
    return years + (months - 0.5) / 12.0


def x_of(da: xr.DataArray) -> tuple[np.ndarray, str, str]:
    """x values, x label and the dim they come from, for 1-D or member x series fields."""
    dim = next(d for d in da.dims if not str(d).startswith("member"))
    if dim not in da.coords:
        return np.arange(da.sizes[dim], dtype=float), str(dim), dim
    if da[dim].values.dtype.kind in "MO":  # datetime64 or cftime (dim may be renamed, e.g. time_<model>)
        return decimal_year(da[dim]), "year", dim
    base = str(dim).split("_")[0]  # md-diagnose renames clashing dims to <dim>_<model>
    label = {"year": "year", "l": "total wavenumber l", "k": "zonal wavenumber k"}.get(base, str(dim))
    return np.asarray(da[dim].values, dtype=float), label, dim


def description(da: xr.DataArray) -> str:
    text = attr(da, "description").strip()
    return text if not text or text.endswith(".") else text + "."


def find_one(md: MetricsDir, **attrs) -> xr.DataArray | None:
    hits = md.select(**attrs)
    return hits[0] if hits else None


# ---------------------------------------------------------------- map figures


def diff_title(model: str, diff: xr.DataArray, units: str, stats: tuple[float, float] | None = None) -> str:
    """'M − reference (mean 0.12, RMS 0.63 K)': area-weighted mean and RMS of a difference map.

    ``stats`` (display units) are md-diagnose's bias_mean / bias_rms of the map shown, read from
    metrics.json; only differences md-diagnose does not summarise (e.g. of std maps) are
    summarised here, with the same area weights."""
    if stats is None and set(diff.dims) != {"lat", "lon"}:
        return f"{model} − reference"
    mean, rms = stats if stats is not None else (float(global_mean(diff)), float(weighted_rms(diff)))
    stats = f"(mean {mean:.2g}, RMS {rms:.2g} {units})".replace(" )", ")")
    head = f"{model} − reference"
    return f"{head} {stats}" if len(head) + len(stats) < 44 else f"{head}\n{stats}"


def bias_stats(md: MetricsDir, model: str, g: dict) -> tuple[float, float] | None:
    """(bias_mean, bias_rms) of metrics.json for one bias map, in display units; None if absent."""
    q = tuple(v for v in (g.get("period", ""), g.get("season", "")) if v)
    channel = g.get("channel", "")
    mean, rms = (md.scalar(model, channel, name, q) for name in ("bias_mean", "bias_rms"))
    if mean is None or rms is None:
        return None
    factor = display_scale(scorecard.channel_units(channel))[0] if channel else 1.0
    return mean * factor, rms * factor


def map_rows(md: MetricsDir, diagnostic: str, g: dict, diff_diagnostic: str | None,
             diverging_fields: bool) -> tuple[list[list[Panel]], str, list[str]]:
    """Rows model | reference | model - reference for one attribute group; units; models used."""
    sel = dict(g)
    fields = {attr(da, "model"): da for da in md.select(diagnostic=diagnostic, **sel)}
    ref = fields.pop(REFERENCE, None)
    models = set(fields)
    if diff_diagnostic:  # models with only a bias field still get a row
        models |= {attr(da, "model") for da in md.select(diagnostic=diff_diagnostic, **sel)} - {REFERENCE}
    models = sorted(models, key=lambda m: model_order(md, m))
    rows, units = [], ""
    field_scale = "diff_field" if diverging_fields else "abs"
    ref_disp = None
    if ref is not None:
        ref_disp, units = display_units(ref)
    for m in models:
        row = []
        da = fields.get(m)
        diff = find_one(md, diagnostic=diff_diagnostic, model=m, **sel) if diff_diagnostic else None
        if da is None and md.schema == SCHEMA_V1 and diff is not None and ref is not None and diff.dims == ref.dims:
            # md-metrics/1 stored the reference climatology and each model's bias only; the
            # model's own climatology is their sum (bias = model - reference)
            da = (ref + diff).assign_attrs(units=attr(ref, "units"))
        if da is not None:
            disp, units = display_units(da)
            row.append(Panel(m, disp, field_scale))
            if ref_disp is not None:
                row.append(Panel("reference", ref_disp, field_scale))
        if diff is not None:
            d, units = display_units(diff)
            row.append(Panel(diff_title(m, d, units, bias_stats(md, m, sel) if diff_diagnostic == "bias" else None),
                             d, "diff"))
        elif da is not None and ref is not None:
            d = display_units(da)[0] - ref_disp
            row.append(Panel(diff_title(m, d, units), d, "diff"))
        if row:
            rows.append(row)
    if not rows and ref_disp is not None:
        rows.append([Panel("reference", ref_disp, field_scale)])
    return rows, units, models


def map_figure(md: MetricsDir, diagnostic: str, g: dict, title: str, how: str, diff_diagnostic: str | None = None,
               diverging_fields: bool = False, central_longitude: float = 0.0,
               name_prefix: str | None = None) -> Figure | None:
    rows, units, models = map_rows(md, diagnostic, g, diff_diagnostic, diverging_fields)
    if not rows:
        return None
    seq, div = colour_maps(g.get("channel", ""), units)
    candidates = md.select(diagnostic=diagnostic, **g) + md.select(diagnostic=diff_diagnostic or "", **g)
    da0 = next((d for d in candidates if attr(d, "model") != REFERENCE), candidates[0])  # describes a model field
    layout = "; ".join(
        ["left: each model", "middle: the reference", "right: model minus reference"] if len(rows[0]) == 3 else
        ["each panel one model"] if len(rows[0]) == 1 else ["left: field", "right: difference"])
    caption = (f"{description(da0)} {title}: {layout}; rows: {', '.join(models) or 'reference'}. "
               f"{sentence(when(md, g.get('period', ''), g.get('season', ''), g.get('scenario', '')))}"
               f"Units: {units or 'dimensionless'}. {how}")
    spec = FigureSpec("maps", slug(name_prefix or diagnostic, g.get("channel", ""), g.get("period", ""),
                                   g.get("season", ""), g.get("scenario", "")),
                      f"{title}, {when(md, g.get('period', ''), g.get('season', ''), g.get('scenario', ''))}".rstrip(", "),
                      caption, panels=rows, units={"abs": units, "diff_field": units, "diff": units},
                      options={"cmap_abs": seq, "cmap_diff_field": div, "cmap_diff": div,
                               "central_longitude": central_longitude})
    return Figure(spec)


# ---------------------------------------------------------------- sections


def overview(md: MetricsDir) -> Section:
    prov = md.provenance
    inputs = prov.get("inputs") or {}
    members = prov.get("members") or {}
    scen = inputs.get("scenarios") or {}
    periods = prov.get("periods") or {}
    facts = [
        ("Models (ensembles)", ", ".join(f"{m} ({members[m]} members)" if m in members else m for m in md.ensembles) or "none"),
        ("Baselines", ", ".join(md.baselines) or "none"),
        ("Scenarios", "; ".join(f"{m}: {', '.join(s)}" for m, s in scen.items()) or "historical only"),
        ("Reference", ", ".join(map(str, inputs.get("reference") or [])) or "not recorded"),
        ("Periods", "; ".join(f"{k} {v}" for k, v in periods.items()) or "not recorded"),
        ("Variables", ", ".join(md.channels) or "none listed"),
        ("Spread-skill", str(prov.get("spread_skill_correction", "not stated"))),
    ]
    sec = Section("overview", "Overview", facts=facts,
                  intro="What was compared, and the headline metrics of every evaluated ensemble.")
    sc = scorecard.build(md)
    if sc.rows:
        multi = len(sc.models) > 1
        header = [m for _ in sc.columns for m in sc.models] if multi else [c.label for c in sc.columns]
        groups_ = [(c.label, len(sc.models)) for c in sc.columns] if multi else []
        rows = [(sc.row_label(r), [sc.cell(r, c.key, m) for c in sc.columns for m in sc.models]) for r in sc.rows]
        sec.items.append(Table(
            "Scorecard", "Headline metrics per variable/level (rows) and metric (columns)"
            + (", models side by side" if multi else "") + ", test period and annual mean where available "
            "(hover a cell for its metrics.json key). Biases and CRPS are in the units after the row name; "
            "correlations and ratios are dimensionless. Colour: green good, yellow fair, red poor, by the rules "
            "below; uncoloured where the rule's reference value is missing.",
            header, rows, groups_, legend=[(c.label, c.rule_text) for c in sc.columns]))
    else:
        sec.notes.append("No headline metrics found in metrics.json (none of the scorecard metric names "
                         "is present); the scorecard is skipped.")
    for s in md.info.get("skipped") or []:
        if isinstance(s, dict):
            sec.notes.append(f"Skipped by md-diagnose: {s.get('what', '?')} ({s.get('why', 'no reason given')}).")
    return sec


def climatology(md: MetricsDir) -> Section:
    sec = Section("climatology", "Climatology and bias",
                  intro="Time-mean fields of each model and the reference, and their difference.")
    gs = groups(md, "climatology") or groups(md, "bias")
    omitted = sorted({g["season"] for g in gs if g["season"] not in MAP_SEASONS})
    if omitted:
        sec.notes.append(f"Maps are drawn for the annual mean, DJF and JJA; {', '.join(omitted)} are in metrics.nc "
                         "and their bias numbers in the All metrics table.")
    for g in [g for g in gs if g["season"] in MAP_SEASONS]:
        fig = map_figure(md, "climatology", g, f"{g['channel']} climatology", diff_diagnostic="bias",
                         name_prefix="climatology",
                         how="Model and reference share one colour scale; the difference uses a diverging scale "
                             "centred on zero (red/brown: model higher than the reference, blue/green: lower). "
                             "Where only the bias is stored, the model map is reference + bias.")
        if fig:
            sec.items.append(fig)
    if not sec.items:
        sec.notes.append("No climatology or bias fields in metrics.nc; section skipped.")
    return sec


def zonal(md: MetricsDir) -> Section:
    sec = Section("zonal", "Zonal-mean bias by pressure level",
                  intro="Zonal-mean model minus reference as pressure-latitude sections.")
    for g in groups(md, "zonal_bias"):
        fields = sorted(md.select(diagnostic="zonal_bias", **g), key=lambda d: model_order(md, attr(d, "model")))
        panels, units = [], ""
        for da in fields:
            if "plev" not in da.dims or "lat" not in da.dims:
                continue
            disp, units = display_units(da)
            panels.append(Panel(attr(da, "model"), disp, "diff"))
        if not panels:
            continue
        rows = [panels[i:i + 3] for i in range(0, len(panels), 3)]
        _, div = colour_maps(g["channel"], units)
        caption = (f"{description(fields[0])} Zonal-mean bias of {g['channel']}, one panel per model; "
                   f"{when(md, g['period'], g['season'], g['scenario'])}. Units: {units}. x: latitude, "
                   "y: pressure (log scale, surface at the bottom). Diverging scale centred on zero: red where the "
                   "model is higher than the reference.")
        sec.items.append(Figure(FigureSpec("sections", slug("zonal-bias", g["channel"], g["period"], g["season"],
                                                               g["scenario"]),
                                           f"{g['channel']} zonal-mean bias, {when(md, g['period'], g['season'])}",
                                           caption, panels=rows, units={"diff": units},
                                           options={"cmap_diff": div})))
    if not sec.items:
        sec.notes.append("No zonal_bias fields (pressure-latitude) in metrics.nc; section skipped.")
    return sec


def trends_variability(md: MetricsDir) -> Section:
    sec = Section("variability", "Trends and variability",
                  intro="Linear trends and standard deviation of monthly anomalies.")
    for diag, label, diverging, how in (
            ("trend", "trend", True, "Model and reference share a diverging scale centred on zero; the right "
                                     "column is the trend difference."),
            ("std_anomaly", "standard deviation of anomalies", False,
             "Model and reference share one scale; right: model minus reference (red: model too variable).")):
        for g in groups(md, diag):
            fig = map_figure(md, diag, g, f"{g['channel']} {label}", diverging_fields=diverging, how=how)
            if fig:
                sec.items.append(fig)
    if not sec.items:
        sec.notes.append("No trend or std_anomaly fields in metrics.nc; section skipped.")
    return sec


def series_lines(md: MetricsDir, fields: list[xr.DataArray], ref: xr.DataArray | None,
                 mean_only_members: bool = False) -> tuple[list[Line], str, str]:
    """Member lines (thin) and ensemble means (thick) per model, the reference in black."""
    lines: list[Line] = []
    units, xlabel = "", ""
    for da in sorted(fields, key=lambda d: model_order(md, attr(d, "model"))):
        m = attr(da, "model")
        disp, units = display_units(da)
        x, xlabel, _ = x_of(disp)
        mdim = members_dim(disp)
        colour = model_colour(md, m)
        if mdim:
            disp = disp.dropna(mdim, how="all")
            if not mean_only_members:
                for i in range(disp.sizes[mdim]):
                    lines.append(Line(f"{m} members" if i == 0 else "", x, disp.isel({mdim: i}).values,
                                      colour, 0.6, 0.35))
            lines.append(Line(f"{m} ensemble mean", x, disp.mean(mdim).values, colour, 1.6))
        else:
            lines.append(Line(m, x, disp.values, colour, 1.4))
    if ref is not None:
        disp, units = display_units(ref)
        x, xlabel, _ = x_of(disp)
        lines.append(Line("reference", x, disp.values, "black", 1.6))
    return lines, units, xlabel


def enso(md: MetricsDir) -> Section:
    sec = Section("enso", "ENSO: Niño-3.4 teleconnections",
                  intro="Regression of monthly anomalies on the Niño-3.4 index (E3 of AI-MIP) and the index itself.")
    for g in groups(md, "nino34_regression"):
        fig = map_figure(md, "nino34_regression", g, f"{g['channel']} regression on Niño-3.4", diverging_fields=True,
                         central_longitude=180.0,
                         how="Coefficient = cov(index, field) / var(index), per kelvin of the index. Model and "
                             "reference share a diverging scale centred on zero; right: model minus reference.")
        if fig:
            sec.items.append(fig)
    for g in groups(md, "nino34_index"):
        fields = md.select(diagnostic="nino34_index", **g)
        ref = next((d for d in fields if attr(d, "model") == REFERENCE), None)
        models = [d for d in fields if attr(d, "model") != REFERENCE]
        lines, units, xlabel = series_lines(md, models, ref)
        caption = (f"{description(fields[0])} Niño-3.4 index of each member (thin), ensemble mean (thick) and the "
                   f"reference (black); {when(md, g['period'], g['season'], g['scenario'])}. Units: {units}. "
                   "Members are not expected to be in phase with the reference except through the prescribed SST.")
        sec.items.append(Figure(FigureSpec("lines", slug("nino34-index", g["channel"], g["period"], g["scenario"]),
                                           f"Niño-3.4 index, {when(md, g['period'])}", caption, lines=lines,
                                           options={"xlabel": xlabel, "ylabel": units, "zero_line": True})))
    if not sec.items:
        sec.notes.append("No nino34_regression or nino34_index fields in metrics.nc; section skipped.")
    return sec


def modes(md: MetricsDir) -> Section:
    sec = Section("modes", "NAO and Z500 modes",
                  intro="Leading EOF patterns (as regression on the standardised PC) and their principal components.")
    for g in groups(md, "eof_pattern"):
        fields = sorted(md.select(diagnostic="eof_pattern", **g),
                        key=lambda d: (attr(d, "model") != REFERENCE, model_order(md, attr(d, "model"))))
        panels, units = [], ""
        for da in fields:
            m = attr(da, "model")
            frac = scorecard.find(md, m, g["channel"], ("variance_fraction_model", "variance_fraction"))
            disp, units = display_units(da)
            panels.append(Panel(m + (f" ({100 * frac[1]:.1f} % of variance)" if frac else ""), disp, "diff_field"))
        rows = [panels[i:i + MAX_PANELS_PER_ROW] for i in range(0, len(panels), MAX_PANELS_PER_ROW)]
        _, div = colour_maps(g["channel"], units)
        caption = (f"{description(fields[0])} Leading EOF pattern of {g['channel']} for the reference and each model "
                   f"(titles give the fraction of variance explained); "
                   f"{when(md, g['period'], g['season'], g['scenario'])}. Units: {units} per standard deviation of "
                   "the PC. Shared diverging scale centred on zero; similar patterns and variance fractions mean the "
                   "mode is well simulated.")
        sec.items.append(Figure(FigureSpec("maps", slug("eof-pattern", g["channel"], g["period"], g["season"]),
                                           f"{g['channel']} leading EOF, {when(md, g['period'], g['season'])}",
                                           caption, panels=rows, units={"diff_field": units},
                                           options={"cmap_diff_field": div})))
    for g in groups(md, "eof_pc"):
        fields = md.select(diagnostic="eof_pc", **g)
        ref = next((d for d in fields if attr(d, "model") == REFERENCE), None)
        lines, units, xlabel = series_lines(md, [d for d in fields if attr(d, "model") != REFERENCE], ref)
        caption = (f"{description(fields[0])} Principal component of {g['channel']} for each model and the reference "
                   f"(black); {when(md, g['period'], g['season'], g['scenario'])}. Units: {units or '1'} "
                   "(standardised). Compare the amplitude (PC standard deviation) rather than the phase: free-running "
                   "members need not follow the observed sequence.")
        sec.items.append(Figure(FigureSpec("lines", slug("eof-pc", g["channel"], g["period"], g["season"]),
                                           f"{g['channel']} principal component, {when(md, g['period'], g['season'])}",
                                           caption, lines=lines,
                                           options={"xlabel": xlabel, "ylabel": "standardised PC" if units in ("", "1")
                                                    else units, "zero_line": True})))
    t = qualifier_table(md, lambda k: bool(k.member) and len(k.other) == 1,
                        "Per-member mode statistics",
                        "Mode statistics of each member against the reference (the figures and the scorecard use "
                        "the members pooled): pattern_corr (1), rms (field units), variance fractions (1), "
                        "pc_std_ratio (1). Rows model.mode.statistic, columns members.")
    if t:
        sec.items.append(t)
    if not sec.items:
        sec.notes.append("No eof_pattern or eof_pc fields in metrics.nc; section skipped.")
    return sec


def _metric_table(md: MetricsDir, title: str, caption: str, names: tuple[str, ...], models: list[str],
                  colour_rule: scorecard.Column | None) -> Table | None:
    rows = []
    chans = md.channels + [c for c in scorecard.mode_rows(md)]
    used_models = [m for m in models if any(scorecard.find(md, m, c, names) for c in chans)]
    for ch in chans:
        factor, units = display_scale(scorecard.channel_units(ch))
        if colour_rule is None or colour_rule.rule not in scorecard.UNIT_RULES:
            factor, units = 1.0, ""
        cells = []
        for m in used_models:
            hit = scorecard.find(md, m, ch, names)
            if hit is None:
                cells.append(Cell())
                continue
            key, x = hit
            colour = None
            if colour_rule is not None:
                b = scorecard._badness(md, colour_rule, m, ch, key, x)
                colour = None if b is None else scorecard.badness_colour(b)
            cells.append(Cell(f"{x * factor:.3g}", colour, f"{m}.{ch}.{key.metric}.{'.'.join(key.qualifiers)}"))
        if any(c.text != "–" for c in cells):
            rows.append((f"{ch} ({units})" if units else ch, cells))
    if not rows:
        return None
    return Table(title, caption, used_models, rows)


def skill(md: MetricsDir) -> Section:
    sec = Section("skill", "Ensemble skill",
                  intro="Probabilistic skill of the ensembles against the reference and the baselines.")
    crps_col = next(c for c in scorecard.COLUMNS if c.key == "crps")
    ss_col = next(c for c in scorecard.COLUMNS if c.key == "spread_skill")
    t = _metric_table(md, "CRPS", "Ensemble CRPS per variable (rows) for each ensemble and baseline (columns), test "
                      "period where available, in the units after the row name; lower is better. Colour: CRPS relative "
                      "to baseline-climatology (green <= 0.5 times, yellow equal, red >= 1.5 times).",
                      ("crps", "crps_fair"), md.ensembles + md.baselines, crps_col)
    if t:
        sec.items.append(t)
    corr = str(md.provenance.get("spread_skill_correction", ""))
    for names, label in ((("spread_skill",), "uncorrected"), (("spread_skill_corrected",), "corrected")):
        t = _metric_table(md, f"Spread-skill ratio ({label})",
                          f"Ensemble spread / ensemble-mean RMSE ({label}) per variable and ensemble, dimensionless. "
                          "A reliable ensemble has 1 (corrected) or sqrt(M/(M+1)) (uncorrected, M members); below: "
                          f"under-dispersive, above: over-dispersive. {corr}", names, md.ensembles, ss_col)
        if t:
            sec.items.append(t)
    ratio_col = next(c for c in scorecard.COLUMNS if c.key == "variability")
    t = qualifier_table(md, lambda k: k.metric.endswith("band_ratio") and len(k.other) == 1, "Spectral band ratios",
                        "Power of the model divided by the power of the reference, summed over wavenumber bands "
                        "(columns; sh: total wavenumber l, zonal: zonal wavenumber k), test period. 1 is ideal; "
                        "below 1 at high wavenumbers means too smooth. Colour: |ln ratio|, yellow at a factor "
                        "sqrt(2), red at 2.", colour_rule=ratio_col)
    if t:
        sec.items.append(t)
    for g in groups(md, "crps_map"):
        fields = sorted(md.select(diagnostic="crps_map", **g), key=lambda d: model_order(md, attr(d, "model")))
        panels, units = [], ""
        for da in fields:
            disp, units = display_units(da)
            panels.append(Panel(attr(da, "model"), disp, "abs"))
        rows = [panels[i:i + 3] for i in range(0, len(panels), 3)]
        caption = (f"{description(fields[0])} CRPS of {g['channel']} per grid cell, one panel per model; "
                   f"{when(md, g['period'], g['season'], g['scenario'])}. Units: {units}. Shared scale; lower is "
                   "better (0 would be a perfect deterministic forecast).")
        sec.items.append(Figure(FigureSpec("maps", slug("crps-map", g["channel"], g["period"], g["season"]),
                                           f"{g['channel']} CRPS, {when(md, g['period'], g['season'])}", caption,
                                           panels=rows, units={"abs": units}, options={"cmap_abs": "magma_r"})))
    for g in groups(md, "rank_histogram"):
        fields = sorted(md.select(diagnostic="rank_histogram", **g), key=lambda d: model_order(md, attr(d, "model")))
        panels = [Panel(attr(d, "model"), d.dropna(d.dims[0], how="all"), "abs") for d in fields if d.ndim == 1]
        if not panels:
            continue
        rows = [panels[i:i + MAX_PANELS_PER_ROW] for i in range(0, len(panels), MAX_PANELS_PER_ROW)]
        units = "relative frequency (counts / total)"
        caption = (f"{description(fields[0])} Rank histogram of {g['channel']} (rank of the reference among the "
                   f"sorted members), one panel per model; {when(md, g['period'], g['season'], g['scenario'])}. "
                   f"Units: {units}. Flat (dashed line at 1 / number of ranks) = reliable; U-shaped = under-dispersive; dome = "
                   "over-dispersive; sloped = biased.")
        sec.items.append(Figure(FigureSpec("bars", slug("rank-histogram", g["channel"], g["period"], g["season"]),
                                           f"{g['channel']} rank histogram, {when(md, g['period'], g['season'])}",
                                           caption, panels=rows, units={"abs": units})))
    for g in groups(md, "global_mean_series"):
        fields = md.select(diagnostic="global_mean_series", **g)
        scen = g["scenario"]
        ref = next((d for d in fields if attr(d, "model") == REFERENCE), None)
        lines, units, xlabel = series_lines(md, [d for d in fields if attr(d, "model") != REFERENCE], ref)
        if scen:  # context: each model's historical ensemble mean, dashed
            for da in md.select(diagnostic="global_mean_series", channel=g["channel"], period=g["period"],
                                season=g["season"], scenario=""):
                m = attr(da, "model")
                if m == REFERENCE or not any(attr(d, "model") == m for d in fields):
                    continue
                disp, _ = display_units(da)
                x, _, _ = x_of(disp)
                mdim = members_dim(disp)
                y = disp.mean(mdim).values if mdim else disp.values
                lines.append(Line(f"{m} historical mean", x, y, model_colour(md, m), 1.0, 0.9, dashed=True))
        what = f"scenario {scen}" if scen else "historical"
        caption = (f"{description(fields[0])} Global-mean {g['channel']} ({what}): each member (thin), ensemble mean "
                   "(thick)" + (", reference (black)" if ref is not None else "")
                   + (", historical ensemble mean (dashed)" if scen else "")
                   + f"; {when(md, g['period'], g['season'], scen) or 'whole record'}. Units: {units}. "
                   + ("The gap between the thick and the dashed line is the warming response; member spread shows "
                      "internal variability." if scen else
                      "Offsets from the reference show global-mean bias; member spread shows internal variability."))
        sec.items.append(Figure(FigureSpec("lines", slug("global-mean", g["channel"], g["period"], g["season"], scen),
                                           f"Global-mean {g['channel']}, {what}", caption, lines=lines,
                                           options={"xlabel": xlabel, "ylabel": units})))
    for diag, label in (("sh_spectrum", "spherical-harmonic power spectrum"), ("zonal_spectrum", "zonal power spectrum")):
        for g in groups(md, diag):
            fields = md.select(diagnostic=diag, **g)
            ref = next((d for d in fields if attr(d, "model") == REFERENCE), None)
            lines, units, xlabel = series_lines(md, [d for d in fields if attr(d, "model") != REFERENCE], ref,
                                                mean_only_members=True)
            for ln in lines:  # wavenumber 0 (the mean) and empty bins cannot go on log axes
                keep = (ln.x > 0) & np.isfinite(ln.y) & (ln.y > 0)
                ln.x, ln.y = ln.x[keep], ln.y[keep]
            caption = (f"{description(fields[0])} {label.capitalize()} of {g['channel']} per model and the reference "
                       f"(black); {when(md, g['period'], g['season'], g['scenario'])}. Units: {units}. Log-log axes; "
                       "a model below the reference at high wavenumbers is too smooth.")
            sec.items.append(Figure(FigureSpec("lines", slug(diag, g["channel"], g["period"], g["season"]),
                                               f"{g['channel']} {label}, {when(md, g['period'])}", caption, lines=lines,
                                               options={"xlabel": xlabel, "ylabel": units, "logx": True,
                                                        "logy": True})))
    if not sec.items:
        sec.notes.append("No CRPS, spread-skill, rank-histogram, global-mean series or spectrum data; section skipped.")
    return sec


def warming(md: MetricsDir) -> Section:
    sec = Section("warming", "Warming response (+2K / +4K)",
                  intro="Response of the time-mean climate to the uniform SST warming scenarios (E5 of AI-MIP).")
    by_channel: dict[str, list[xr.DataArray]] = {}
    for da in md.select(diagnostic="warming_response"):
        by_channel.setdefault(attr(da, "channel"), []).append(da)
    for ch in sorted(by_channel, key=lambda c: order_key(md, c)):
        fields = by_channel[ch]
        models = sorted({attr(d, "model") for d in fields}, key=lambda m: model_order(md, m))
        scens = sorted({attr(d, "scenario") for d in fields})
        rows, units = [], ""
        for m in models:
            row = []
            for s in scens:
                da = next((d for d in fields if attr(d, "model") == m and attr(d, "scenario") == s), None)
                if da is not None:
                    disp, units = display_units(da)
                    row.append(Panel(f"{m}, {s}" if s else m, disp, "diff_field"))
            if row:
                rows.append(row)
        _, div = colour_maps(ch, units)
        caption = (f"{description(fields[0])} Warming response of {ch}: rows models ({', '.join(models)}), columns "
                   f"scenarios ({', '.join(scens)}). Units: {units}. Diverging scale centred on zero: red = increase.")
        sec.items.append(Figure(FigureSpec("maps", slug("warming-response", ch), f"{ch} warming response", caption,
                                           panels=rows, units={"diff_field": units}, options={"cmap_diff_field": div})))
    t = qualifier_table(md, lambda k: bool(k.scenario) and len(k.other) == 1, "Scenario metrics",
                        "Scalar metrics of the warming runs: model.channel.metric per row, scenario per column "
                        "(formulas in docs/metrics.md). Per-K responses are in the variable's display units per K "
                        "of SST warming (given after the row name).", unit_suffix=" K-1")
    if t:
        sec.items.append(t)
    if not sec.items:
        sec.notes.append("No scenario (+2K/+4K) runs were given, or no warming_response fields; section skipped.")
    return sec


def qualifier_table(md: MetricsDir, wanted, title: str, caption: str, unit_suffix: str | None = None,
                    colour_rule: scorecard.Column | None = None) -> Table | None:
    """Keys selected by ``wanted(key)``: one row per model.channel.metric, one column per extra qualifier.

    With ``unit_suffix`` the values are converted to the channel's display units (mm day-1,
    hPa) and the row label shows those units followed by the suffix.
    """
    keys = [k for k in md.scalars if md.scalars[k] is not None and wanted(k)]
    if not keys:
        return None
    def number(c: str) -> tuple[int, str]:  # "1-10" < "10-30" < "30+", "member2" < "member10"
        m = re.search(r"\d+", c)
        return (int(m.group()) if m else 10**9, c)

    cols = sorted({".".join(k.other) for k in keys}, key=number)
    by_row: dict[tuple[str, str, str], dict[str, float]] = {}
    for k in keys:
        by_row.setdefault((k.model, k.channel, k.metric), {})[".".join(k.other)] = md.scalars[k]
    rows = []
    for (model, channel, metric), values in sorted(by_row.items(), key=lambda kv: (model_order(md, kv[0][0]),
                                                                                  order_key(md, kv[0][1]), kv[0][2])):
        factor, units = 1.0, ""
        if unit_suffix is not None:
            factor, units = display_scale(scorecard.channel_units(channel))
        label = f"{model}.{channel}.{metric}" + (f" ({units}{unit_suffix})" if units else "")
        cells = []
        for c in cols:
            if c not in values:
                cells.append(Cell())
                continue
            x = values[c]
            colour = None
            if colour_rule is not None:
                colour = scorecard.badness_colour(abs(np.log(x)) / np.log(2.0)) if x > 0 else None
            cells.append(Cell(f"{x * factor:.3g}", colour, f"{model}.{channel}.{metric}.{c}"))
        rows.append((label, cells))
    return Table(title, caption, cols, rows)


KNOWN = {"climatology", "bias", "zonal_bias", "trend", "std_anomaly", "nino34_regression", "nino34_index",
         "eof_pattern", "eof_pc", "crps_map", "rank_histogram", "global_mean_series", "sh_spectrum",
         "zonal_spectrum", "warming_response"}


def other(md: MetricsDir) -> Section:
    """Fields of diagnostics no section knows, drawn by their dimensions (one figure each)."""
    sec = Section("other", "Other fields", intro="Fields of diagnostics this report version has no section for.")
    for name in md.fields.data_vars:
        da = canonical_dims(md.fields[name])
        diag = attr(da, "diagnostic")
        if diag in KNOWN or not diag:
            continue
        disp, units = display_units(da.squeeze(drop=True))
        label = f"{diag}: {attr(da, 'model')} {attr(da, 'channel')}"
        caption = (f"{description(da)} {label}; {when(md, attr(da, 'period'), attr(da, 'season'), attr(da, 'scenario'))}."
                   f" Units: {units or '1'}.")
        name_ = slug("other", diag, attr(da, "model"), attr(da, "channel"), attr(da, "period"), attr(da, "season"),
                     attr(da, "scenario"))
        if set(disp.dims) == {"lat", "lon"}:
            sec.items.append(Figure(FigureSpec("maps", name_, label, caption, panels=[[Panel(attr(da, "model"), disp)]],
                                               units={"abs": units})))
        elif set(disp.dims) == {"plev", "lat"}:
            sec.items.append(Figure(FigureSpec("sections", name_, label, caption,
                                               panels=[[Panel(attr(da, "model"), disp, "diff")]], units={"diff": units})))
        elif disp.ndim == 1 or (disp.ndim == 2 and members_dim(disp)):
            lines, units, xlabel = series_lines(md, [disp.assign_attrs(da.attrs)], None)
            sec.items.append(Figure(FigureSpec("lines", name_, label, caption, lines=lines,
                                               options={"xlabel": xlabel, "ylabel": units})))
        else:
            sec.notes.append(f"{name}: dimensions {tuple(map(str, da.dims))} have no figure type; not drawn.")
    return sec


def provenance(md: MetricsDir, command: str, created: str, versions: dict[str, str]) -> Section:
    prov = md.provenance
    inputs = prov.get("inputs") or {}
    facts = [("md-diagnose command", str(prov.get("command", "not recorded"))),
             ("Metrics created", str(prov.get("created", "not recorded"))),
             ("Metrics directory", str(md.path))]
    for m, paths in (inputs.get("ensembles") or {}).items():
        facts.append((f"Inputs of {m}", ", ".join(map(str, paths if isinstance(paths, list) else [paths]))))
    if inputs.get("reference"):
        facts.append(("Reference inputs", ", ".join(map(str, inputs["reference"]))))
    for m, sc in (inputs.get("scenarios") or {}).items():
        for s, paths in (sc or {}).items():
            facts.append((f"Inputs of {m} {s}", ", ".join(map(str, paths if isinstance(paths, list) else [paths]))))
    for k, v in (prov.get("versions") or {}).items():
        facts.append((f"{k} (diagnose)", str(v)))
    facts += [("Report command", command), ("Report created", created)]
    facts += [(f"{k} (report)", v) for k, v in versions.items()]
    return Section("provenance", "Provenance", intro="Inputs, commands, software versions and times.", facts=facts)


def all_metrics(md: MetricsDir) -> Section:
    """Every scalar of metrics.json, for lookup (HTML only)."""
    rows = [(f"{k.model}.{k.channel}.{k.metric}" + ("." + ".".join(k.qualifiers) if k.qualifiers else ""),
             [Cell("null" if v is None else f"{v:.6g}")]) for k, v in md.scalars.items()]
    sec = Section("metrics", "All metrics", intro="Every number of metrics.json (formulas and units: docs/metrics.md).")
    if rows:
        sec.items.append(Table("All metrics", f"{len(rows)} values from metrics.json.", ["value"], rows))
    else:
        sec.notes.append("metrics.json holds no metrics.")
    return sec


def build(md: MetricsDir, command: str, created: str, versions: dict[str, str]) -> list[Section]:
    """All sections in report order, figures and tables numbered consecutively, figure names unique."""
    secs = [overview(md), climatology(md), zonal(md), trends_variability(md), enso(md), modes(md), skill(md),
            warming(md)]
    oth = other(md)
    if oth.items or oth.notes:
        secs.append(oth)
    secs += [provenance(md, command, created, versions), all_metrics(md)]
    n_fig = n_tab = 0
    names: set[str] = set()
    for sec in secs:
        for item in sec.items:
            if isinstance(item, Figure):
                n_fig += 1
                item.number = n_fig
                base, k = item.spec.name, 1
                while item.spec.name in names:
                    k += 1
                    item.spec.name = f"{base}-{k}"
                names.add(item.spec.name)
            else:
                n_tab += 1
                item.number = n_tab
    return secs
