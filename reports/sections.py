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

from . import comparison as cmp, labels, scorecard, section_ensembles
from .figures import FigureSpec, Line, Panel, display_scale, display_units
from .metricsdir import REFERENCE, SCHEMA_V1, MetricsDir
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
    headline: bool = False  # shown in its section; the others go to the "All figures" appendix
    origin: str = ""  # title of the section it belongs to (set when moved to the appendix)

    @property
    def src(self) -> str:
        return f"figures/{self.spec.name}.png"


@dataclass
class Omitted:
    """A figure of the All figures appendix that this render lists but does not draw (the default;
    ``md-report --all-figures`` draws it): its title, PNG stem and the section it came from."""

    title: str
    name: str
    origin: str = ""


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

    @property
    def omitted(self) -> list[Omitted]:
        """Figures listed but not drawn (the All figures appendix without ``--all-figures``)."""
        return [i for i in self.items if isinstance(i, Omitted)]

    @property
    def by_origin(self) -> list[tuple[str, list]]:
        """Items grouped by the section they came from, in order (the appendix's collapsed groups)."""
        out: list[tuple[str, list]] = []
        for item in self.items:
            origin = getattr(item, "origin", "")
            if not out or out[-1][0] != origin:
                out.append((origin, []))
            out[-1][1].append(item)
        return out


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


def short_caption(md: MetricsDir, what: str, g: dict, units: str, look: str) -> str:
    """One line: what is shown, when, units, and what to look at."""
    w = when(md, g.get("period", ""), g.get("season", ""), g.get("scenario", ""))
    return f"{what}{'; ' + w if w else ''}. Units: {units or '1'}. {look}".strip()


def preferred_period(md: MetricsDir, diagnostic: str) -> str:
    """The period whose figures are headlines: test, else all, else train, else none."""
    have = set(md.values("period", diagnostic=diagnostic))
    return next((p for p in ("test", "all", "train", "") if p in have), "")


def is_preferred(md: MetricsDir, diagnostic: str, g: dict) -> bool:
    """Preferred period and the annual mean (or no season): the group a headline figure shows."""
    return (g.get("period", "") == preferred_period(md, diagnostic) and g.get("season", "") in ("ANN", "")
            and not g.get("scenario", ""))


def period_groups(md: MetricsDir, diagnostic: str) -> list[dict]:
    """Groups of a diagnostic drawn as figures: those of the preferred period (or without a period).
    The fields of the other periods stay in metrics.nc and their numbers in the tables (figure budget)."""
    best = preferred_period(md, diagnostic)
    return [g for g in groups(md, diagnostic) if g.get("period", "") in (best, "")]


def sentence(text: str) -> str:
    """'period test, season DJF' -> 'Period test, season DJF. ' (only the first letter raised)."""
    return f"{text[0].upper()}{text[1:]}. " if text else ""


def groups(md: MetricsDir, diagnostic: str, keys=("channel", "period", "season", "scenario")) -> list[dict]:
    """Distinct attribute combinations of a diagnostic's fields, in a stable report order."""
    seen: dict[tuple, dict] = {}
    models: dict[tuple, set[str]] = {}
    for _, a in md.attrs_index(diagnostic=diagnostic):  # attributes only: building every field costs ~0.4 ms
        k = tuple(a.get(name, "") for name in keys)
        seen.setdefault(k, dict(zip(keys, k)))
        models.setdefault(k, set()).add(a.get("model", ""))
    # a variable only the noise floor (and the reference or baselines) has is nothing to compare
    floor = scorecard.noise_floor(md)
    real = set(md.ensembles) - {floor}
    out = [g for k, g in seen.items() if floor not in models[k] or models[k] & real or not real]

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
            row.append(Panel(labels.model(m), disp, field_scale))
            if ref_disp is not None:
                row.append(Panel("reference", ref_disp, field_scale))
        if diff is not None:
            d, units = display_units(diff)
            row.append(Panel(diff_title(labels.model(m), d, units,
                                        bias_stats(md, m, sel) if diff_diagnostic == "bias" else None), d, "diff"))
        elif da is not None and ref is not None:
            d = display_units(da)[0] - ref_disp
            row.append(Panel(diff_title(labels.model(m), d, units), d, "diff"))
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
    layout = ("model | reference | model − reference" if len(rows[0]) == 3 else
              "one panel per model" if len(rows[0]) == 1 else "field | difference")
    caption = short_caption(md, f"{title} ({layout})", g, units, how)
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
        ("Models (ensembles)", ", ".join(f"{labels.model(m)} ({members[m]} members)" if m in members
                                         else labels.model(m) for m in md.ensembles) or "none"),
        ("Baselines", ", ".join(map(labels.model, md.baselines)) or "none"),
        ("Scenarios", "; ".join(f"{m}: {', '.join(s)}" for m, s in scen.items()) or "historical only"),
        ("Reference", ", ".join(map(str, inputs.get("reference") or [])) or "not recorded"),
        ("Periods", "; ".join(f"{k} {v}" for k, v in periods.items()) or "not recorded"),
        ("Variables", ", ".join(map(labels.channel, md.channels)) or "none listed"),
        ("Spread-skill", labels.prose(str(prov.get("spread_skill_correction", "not stated")))),
    ]
    sec = Section("overview", "Overview", facts=facts,
                  intro="What was compared, and the headline metrics of every evaluated ensemble.")
    sc = scorecard.build(md)
    if sc.rows:
        header = [labels.model(m) for c in sc.columns for m in sc.models_of(c.key)]
        groups_ = [(c.label, len(sc.models_of(c.key))) for c in sc.columns]
        rows = [(sc.row_label(r), [sc.cell(r, c.key, m) for c in sc.columns for m in sc.models_of(c.key)])
                for r in sc.rows]
        floor = (f" The {labels.NOISE_FLOOR_LABEL} column is the reference's own other realisations, the best "
                 "any emulator can do; the models are coloured by their distance from it." if sc.floor else "")
        sec.items.append(Table(
            "Scorecard", "Models, baselines" + (" and the noise floor" if sc.floor else "") + " side by side, test "
            "period and annual mean where available (hover a cell for its metrics.json key). Green good, yellow "
            "fair, red poor, by the rules below." + floor,
            header, rows, groups_, legend=[(c.label, c.rule_text) for c in sc.columns]
            + ([(labels.NOISE_FLOOR_LABEL, scorecard.FLOOR_RULE_TEXT)]
               if sc.floor else [])))
    else:
        sec.notes.append("No headline metrics found in metrics.json (none of the scorecard metric names "
                         "is present); the scorecard is skipped.")
    for s in md.info.get("skipped") or []:
        if isinstance(s, dict):
            sec.notes.append(f"Skipped by md-diagnose: {labels.channel(str(s.get('what', '?')))} "
                             f"({s.get('why', 'no reason given')}).")
    return sec


def bias_figure(md: MetricsDir, gs: list[dict], what: str = "") -> Figure | None:
    """Bias maps (titled with md-diagnose's mean and RMS): rows models, one column per group of ``gs``
    (one group: the models side by side, three per row)."""
    rows, units = [], ""
    models = sorted({attr(d, "model") for g in gs for d in md.select(diagnostic="bias", **g)} - {REFERENCE},
                    key=lambda m: model_order(md, m))
    for m in models:
        row = []
        for g in gs:
            da = find_one(md, diagnostic="bias", model=m, **g)
            if da is None:
                continue
            d, units = display_units(da)
            tag = "" if len(gs) == 1 else ", " + ", ".join(v for v in (g.get("period", ""), g.get("season", "")) if v)
            row.append(Panel(diff_title(labels.model(m) + tag, d, units, bias_stats(md, m, g)), d, "diff"))
        if row:
            rows.append(row)
    if not rows:
        return None
    if len(gs) == 1:  # one map per model: fill rows of three
        flat = [p for r in rows for p in r]
        rows = [flat[i:i + 3] for i in range(0, len(flat), 3)]
    g0 = gs[0]
    _, div = colour_maps(g0.get("channel", ""), units)
    name = labels.channel(g0.get("channel", ""))
    w = when(md, g0.get("period", ""), g0.get("season", "")) if len(gs) == 1 else what
    spec = FigureSpec("maps", slug("bias", g0.get("channel", ""), *(f"{g.get('period', '')}-{g.get('season', '')}"
                                                                      for g in gs)),
                      f"{name} bias, {w}".rstrip(", "),
                      short_caption(md, f"{name}: model minus reference time mean"
                                    + (", one panel per model" if len(gs) == 1 else f", rows models, columns {what}"),
                                    g0 if len(gs) == 1 else {}, units,
                                    "Look for large-scale patterns; red = model too high."),
                      panels=rows, units={"diff": units}, options={"cmap_diff": div})
    return Figure(spec)


def climatology(md: MetricsDir) -> Section:
    """Per channel: the bias maps of the preferred period's annual mean as the headline; in the
    appendix the model climatology once (model | reference | bias), the preferred period's seasonal
    biases in one figure, and the other periods' annual-mean biases in one figure."""
    sec = Section("climatology", "Climatology and bias",
                  intro="Time-mean bias of each model (headline), with the climatologies in the appendix.")
    gs = groups(md, "bias") or groups(md, "climatology")
    omitted = sorted({g["season"] for g in gs if g["season"] not in MAP_SEASONS})
    if omitted:
        sec.notes.append(f"Maps are drawn for the annual mean, DJF and JJA; {', '.join(omitted)} are in metrics.nc "
                         "and their bias numbers in the All metrics table.")
    diag = "bias" if groups(md, "bias") else "climatology"
    left_out = False
    for ch in dict.fromkeys(g["channel"] for g in gs):
        mine = [g for g in gs if g["channel"] == ch and g["season"] in MAP_SEASONS]
        head = next((g for g in mine if is_preferred(md, diag, g)), mine[0] if mine else None)
        if head is None:
            continue
        label = labels.channel(ch)
        fig = bias_figure(md, [head])
        full = map_figure(md, "climatology", head, f"{label} climatology", diff_diagnostic="bias",
                          name_prefix="climatology", how="Model and reference share one scale.")
        if fig is not None:
            fig.headline = True
            sec.items.append(fig)
        if full is not None:
            full.headline = fig is None
            sec.items.append(full)
        seasonal = [g for g in mine if g["period"] == head["period"] and g is not head]
        periods = [g for g in mine if g["period"] != head["period"] and g["season"] == head["season"]]
        left_out |= len(mine) > 1 + len(seasonal) + len(periods)
        for extra, what in ((seasonal, f"seasons of period {md.period_label(head['period'])}"),
                            (periods, f"periods ({head['season'] or 'all months'})")):
            if extra and (f := bias_figure(md, extra, what)) is not None:
                sec.items.append(f)
    if left_out:
        sec.notes.append("Seasonal bias maps are drawn for the headline period; those of the other periods are in "
                         "metrics.nc.")
    if not sec.items:
        sec.notes.append("No climatology or bias fields in metrics.nc; section skipped.")
    return sec


def zonal(md: MetricsDir) -> Section:
    sec = Section("zonal", "Zonal-mean bias by pressure level",
                  intro="Zonal-mean model minus reference as pressure-latitude sections.")
    for g in period_groups(md, "zonal_bias"):
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
        caption = short_caption(md, f"Zonal-mean bias of {labels.channel(g['channel'])} by pressure and latitude, "
                                "one panel per model", g, units, "Red = model too high; surface at the bottom.")
        sec.items.append(Figure(FigureSpec("sections", slug("zonal-bias", g["channel"], g["period"], g["season"],
                                                               g["scenario"]),
                                           f"{labels.channel(g['channel'])} zonal-mean bias, "
                                           f"{when(md, g['period'], g['season'])}",
                                           caption, panels=rows, units={"diff": units},
                                           options={"cmap_diff": div}), headline=is_preferred(md, "zonal_bias", g)))
    if not sec.items:
        sec.notes.append("No zonal-mean bias fields (pressure-latitude) in metrics.nc; section skipped.")
    return sec


def trends_variability(md: MetricsDir) -> Section:
    sec = Section("variability", "Trends and variability",
                  intro="Linear trends and standard deviation of monthly anomalies.")
    for diag, label, diverging, how in (
            ("trend", "trend", True, "Compare the sign and pattern of the trends."),
            ("std_anomaly", "std of monthly anomalies", False, "Red difference = model too variable.")):
        for g in period_groups(md, diag):
            fig = map_figure(md, diag, g, f"{labels.channel(g['channel'])} {label}", diverging_fields=diverging,
                             how=how)
            if fig:
                fig.headline = diag == "std_anomaly" and is_preferred(md, diag, g)
                sec.items.append(fig)
    if not sec.items:
        sec.notes.append("No trend or anomaly-variability maps in metrics.nc; section skipped.")
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
    for g in period_groups(md, "nino34_regression"):
        fig = map_figure(md, "nino34_regression", g, f"{labels.channel(g['channel'])} regression on Niño-3.4",
                         diverging_fields=True, central_longitude=180.0,
                         how="Per K of the index; compare the pattern and amplitude of the teleconnection.")
        if fig:
            fig.headline = is_preferred(md, "nino34_regression", g)
            sec.items.append(fig)
    for g in groups(md, "nino34_index"):
        fields = md.select(diagnostic="nino34_index", **g)
        ref = next((d for d in fields if attr(d, "model") == REFERENCE), None)
        models = [d for d in fields if attr(d, "model") != REFERENCE]
        lines, units, xlabel = series_lines(md, models, ref)
        caption = short_caption(md, "Niño-3.4 index: members (thin), ensemble mean (thick), reference (black)", g,
                                units, "Members follow the reference only through the prescribed SST.")
        sec.items.append(Figure(FigureSpec("lines", slug("nino34-index", g["channel"], g["period"], g["scenario"]),
                                           f"Niño-3.4 index, {when(md, g['period'])}", caption, lines=lines,
                                           options={"xlabel": xlabel, "ylabel": units, "zero_line": True})))
    if not sec.items:
        sec.notes.append("No Niño-3.4 regression maps or index series in metrics.nc; section skipped.")
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
            panels.append(Panel(labels.model(m) + (f" ({100 * frac[1]:.1f} % of variance)" if frac else ""), disp,
                                "diff_field"))
        rows = [panels[i:i + MAX_PANELS_PER_ROW] for i in range(0, len(panels), MAX_PANELS_PER_ROW)]
        _, div = colour_maps(g["channel"], units)
        caption = short_caption(md, f"{labels.channel(g['channel'])}: leading EOF of the reference and each model "
                                "(variance fraction in the titles)", g, f"{units} per PC std",
                                "Similar patterns and variance fractions = the mode is well simulated.")
        sec.items.append(Figure(FigureSpec("maps", slug("eof-pattern", g["channel"], g["period"], g["season"]),
                                           f"{labels.channel(g['channel'])} leading EOF, "
                                           f"{when(md, g['period'], g['season'])}",
                                           caption, panels=rows, units={"diff_field": units},
                                           options={"cmap_diff_field": div}), headline=True))
    for g in groups(md, "eof_pc"):
        fields = md.select(diagnostic="eof_pc", **g)
        ref = next((d for d in fields if attr(d, "model") == REFERENCE), None)
        lines, units, xlabel = series_lines(md, [d for d in fields if attr(d, "model") != REFERENCE], ref)
        caption = short_caption(md, f"{labels.channel(g['channel'])} principal component, models and the reference "
                                "(black)", g, units or "1", "Compare the amplitude, not the phase.")
        sec.items.append(Figure(FigureSpec("lines", slug("eof-pc", g["channel"], g["period"], g["season"]),
                                           f"{labels.channel(g['channel'])} principal component, "
                                           f"{when(md, g['period'], g['season'])}",
                                           caption, lines=lines,
                                           options={"xlabel": xlabel, "ylabel": "standardised PC" if units in ("", "1")
                                                    else units, "zero_line": True})))
    t = qualifier_table(md, lambda k: bool(k.member) and len(k.other) == 1,
                        "Per-member mode statistics",
                        "Mode statistics of each member against the reference (the scorecard uses the members "
                        "pooled); RMS in field units, the rest dimensionless.")
    if t:
        sec.items.append(t)
    if not sec.items:
        sec.notes.append("No EOF patterns or principal components in metrics.nc; section skipped.")
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
            if colour_rule is not None and colour_rule.rule != "baseline":  # raw CRPS is not coloured by a ratio
                b = scorecard._badness(md, colour_rule, m, ch, key, x)
                colour = None if b is None else scorecard.badness_colour(b)
            cells.append(Cell(f"{x * factor:.3g}", colour, f"{m}.{ch}.{key.metric}.{'.'.join(key.qualifiers)}"))
        if any(c.text != "–" for c in cells):
            rows.append((f"{labels.channel(ch)} ({units})" if units else labels.channel(ch), cells))
    if not rows:
        return None
    return Table(title, caption, [labels.model(m) for m in used_models], rows)


def skill(md: MetricsDir) -> Section:
    sec = Section("skill", "Ensemble skill",
                  intro="Probabilistic skill of the ensembles against the reference and the baselines.")
    crps_col = next(c for c in scorecard.COLUMNS if c.key == "crps")
    ss_col = next(c for c in scorecard.COLUMNS if c.key == "spread_skill")
    t = _metric_table(md, "CRPS", "CRPS of each ensemble and baseline, test period where available, in the units "
                      "after the row name; lower is better (the scorecard shows it relative to climatology).",
                      ("crps", "crps_fair"), md.ensembles + md.baselines, crps_col)
    if t:
        sec.items.append(t)
    corr = labels.prose(str(md.provenance.get("spread_skill_correction", "")))
    for names, label in ((("spread_skill",), "uncorrected"), (("spread_skill_corrected",), "corrected")):
        t = _metric_table(md, f"Spread-skill ratio ({label})",
                          f"Ensemble spread / ensemble-mean RMSE ({label}); reliable = 1 (corrected) or sqrt(M/(M+1)) "
                          f"(uncorrected, M members), below = under-dispersive. {corr}", names, md.ensembles, ss_col)
        if t:
            sec.items.append(t)
    ratio_col = next(c for c in scorecard.COLUMNS if c.key == "variability")
    t = qualifier_table(md, lambda k: k.metric.endswith("band_ratio") and len(k.other) == 1, "Spectral band ratios",
                        "Model power / reference power per wavenumber band (of the full fields, not anomalies), "
                        "test period; 1 is ideal, below 1 at high wavenumbers = too smooth. Colour: yellow at a "
                        "factor sqrt(2), red at 2.", colour_rule=ratio_col)
    if t:
        sec.items.append(t)
    for g in period_groups(md, "crps_map"):
        fields = sorted(md.select(diagnostic="crps_map", **g), key=lambda d: model_order(md, attr(d, "model")))
        panels, units = [], ""
        for da in fields:
            disp, units = display_units(da)
            panels.append(Panel(labels.model(attr(da, "model")), disp, "abs"))
        rows = [panels[i:i + 3] for i in range(0, len(panels), 3)]
        caption = short_caption(md, f"CRPS of {labels.channel(g['channel'])} per grid cell, one panel per model", g,
                                units, "Lower is better; shared scale.")
        sec.items.append(Figure(FigureSpec("maps", slug("crps-map", g["channel"], g["period"], g["season"]),
                                           f"{labels.channel(g['channel'])} CRPS, "
                                           f"{when(md, g['period'], g['season'])}", caption,
                                           panels=rows, units={"abs": units}, options={"cmap_abs": "magma_r"})))
    for g in period_groups(md, "rank_histogram"):
        fields = sorted(md.select(diagnostic="rank_histogram", **g), key=lambda d: model_order(md, attr(d, "model")))
        panels = [Panel(labels.model(attr(d, "model")), d.dropna(d.dims[0], how="all"), "abs")
                  for d in fields if d.ndim == 1]
        if not panels:
            continue
        rows = [panels[i:i + MAX_PANELS_PER_ROW] for i in range(0, len(panels), MAX_PANELS_PER_ROW)]
        units = "relative frequency (counts / total)"
        caption = short_caption(md, f"Rank of the reference among the members, {labels.channel(g['channel'])}", g,
                                units, "Flat = reliable, U = under-dispersive, dome = over-dispersive.")
        sec.items.append(Figure(FigureSpec("bars", slug("rank-histogram", g["channel"], g["period"], g["season"]),
                                           f"{labels.channel(g['channel'])} rank histogram, "
                                           f"{when(md, g['period'], g['season'])}",
                                           caption, panels=rows, units={"abs": units}),
                                headline=is_preferred(md, "rank_histogram", g)))
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
        caption = short_caption(
            md, f"Global-mean {labels.channel(g['channel'])} ({labels.qualifier(scen) if scen else what}): members "
            "(thin), ensemble mean (thick)" + (", reference (black)" if ref is not None else "")
            + (", historical mean (dashed)" if scen else ""), {**g, "scenario": ""}, units,
            "The thick-dashed gap is the warming response." if scen else "Offsets from black = global-mean bias.")
        sec.items.append(Figure(FigureSpec("lines", slug("global-mean", g["channel"], g["period"], g["season"], scen),
                                           f"Global-mean {labels.channel(g['channel'])}, "
                                           f"{labels.qualifier(scen) if scen else what}", caption, lines=lines,
                                           options={"xlabel": xlabel, "ylabel": units})))
    for diag, label in (("sh_spectrum", "spherical-harmonic power spectrum"), ("zonal_spectrum", "zonal power spectrum"),
                        ("anomaly_sh_spectrum", "spherical-harmonic power spectrum of monthly anomalies")):
        for g in groups(md, diag):
            fields = md.select(diagnostic=diag, **g)
            ref = next((d for d in fields if attr(d, "model") == REFERENCE), None)
            lines, units, xlabel = series_lines(md, [d for d in fields if attr(d, "model") != REFERENCE], ref,
                                                mean_only_members=True)
            for ln in lines:  # wavenumber 0 (the mean) and empty bins cannot go on log axes
                keep = (ln.x > 0) & np.isfinite(ln.y) & (ln.y > 0)
                ln.x, ln.y = ln.x[keep], ln.y[keep]
            caption = short_caption(md, f"{label.capitalize()} of {labels.channel(g['channel'])}"
                                    f"{'' if diag.startswith('anomaly_') else ' (full fields)'}, "
                                    "models and the reference (black)", g, units,
                                    "Below black at high wavenumbers = too smooth.")
            sec.items.append(Figure(FigureSpec("lines", slug(diag, g["channel"], g["period"], g["season"]),
                                               f"{labels.channel(g['channel'])} {label}, {when(md, g['period'])}",
                                               caption, lines=lines,
                                               options={"xlabel": xlabel, "ylabel": units, "logx": True,
                                                        "logy": True}),
                                    headline=diag == "sh_spectrum" and is_preferred(md, diag, g)))
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
                    row.append(Panel(f"{labels.model(m)}, {labels.qualifier(s)}" if s else labels.model(m), disp,
                                     "diff_field"))
            if row:
                rows.append(row)
        _, div = colour_maps(ch, units)
        caption = short_caption(md, f"Warming response of {labels.channel(ch)} per K of SST warming: rows models, "
                                "columns scenarios", {}, units, "Red = increase; compare the patterns.")
        sec.items.append(Figure(FigureSpec("maps", slug("warming-response", ch), f"{labels.channel(ch)} warming response",
                                           caption, panels=rows, units={"diff_field": units},
                                           options={"cmap_diff_field": div}), headline=True))
    t = qualifier_table(md, lambda k: bool(k.scenario) and len(k.other) == 1, "Scenario metrics",
                        "Scalar metrics of the warming runs, one column per scenario; per-K responses in the units "
                        "after the row name (formulas in docs/metrics.md).", unit_suffix=" K-1")
    if t:
        sec.items.append(t)
    if not sec.items:
        sec.notes.append("No scenario (+2K/+4K) runs were given, or no warming-response maps; section skipped.")
    return sec


def qualifier_table(md: MetricsDir, wanted, title: str, caption: str, unit_suffix: str | None = None,
                    colour_rule: scorecard.Column | None = None) -> Table | None:
    """Keys selected by ``wanted(key)``: one row per model.channel.metric, one column per extra qualifier.

    With ``unit_suffix`` the values are converted to the channel's display units (mm day-1,
    hPa) and the row label shows those units, followed by the suffix for per-K metrics (names
    holding ``per_K``).
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
        # the suffix only on per-K metrics: E5's perturbed-minus-control is in the field's units
        suffix = unit_suffix if unit_suffix and "per_K" in metric else ""
        label = (f"{labels.model(model)} — {labels.channel(channel)}: {labels.metric(metric)}"
                 + (f" ({units}{suffix})" if units else ""))
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
    return Table(title, caption, [labels.qualifier(c) for c in cols], rows)


KNOWN = {"climatology", "bias", "zonal_bias", "trend", "std_anomaly", "nino34_regression", "nino34_index",
         "eof_pattern", "eof_pc", "crps_map", "rank_histogram", "global_mean_series", "sh_spectrum",
         "zonal_spectrum", "anomaly_sh_spectrum", "anomaly_zonal_spectrum", "warming_response",
         section_ensembles.SERIES}
#: Fields of the official AI-MIP groups (diagnostics/groups/aimip.py), drawn by :func:`aimip_official`.
AIMIP_FIELDS = {"aimip_trend_bias", "aimip_global_mean_series", "aimip_enso_coefficient", "aimip_daily_std"}
KNOWN |= AIMIP_FIELDS


def aimip_official(md: MetricsDir) -> Section:
    """The official AI-MIP E2-E4 fields (preferred period only; every number is in the tables)."""
    sec = Section("aimip", "AI-MIP official evaluation (E2-E4)",
                  intro="Fields of the official AI-MIP evaluation as ai2cm/AIMIP computes it (cos-lat weights, "
                        "|lat| <= 87.5, member means of per-member maps; docs/metrics.md, \"AI-MIP E1-E5\").")
    for diag, title, diverging, how, lon0 in (
            ("aimip_trend_bias", "trend bias of annual means (E2)", True,
             "Member mean of model minus reference trend per decade.", 0.0),
            ("aimip_enso_coefficient", "regression on the relative Niño-3.4 index (E3)", True,
             "Raw monthly field per K of the index; compare pattern and amplitude.", 180.0),
            ("aimip_daily_std", "std of daily departures from the monthly mean (E4)", False,
             "Within-month (weather) variability of the day files.", 0.0)):
        for g in period_groups(md, diag):
            fig = map_figure(md, diag, g, f"{labels.channel(g['channel'])} {title}", how=how,
                             diverging_fields=diverging, central_longitude=lon0)
            if fig:
                sec.items.append(fig)
    for g in period_groups(md, "aimip_global_mean_series"):
        fields = md.select(diagnostic="aimip_global_mean_series", **g)
        ref = next((d for d in fields if attr(d, "model") == REFERENCE), None)
        lines, units, xlabel = series_lines(md, [d for d in fields if attr(d, "model") != REFERENCE], ref)
        caption = short_caption(md, "Cos-lat global mean of annual means (E2): members (thin), ensemble mean "
                                    "(thick), reference (black)", g, units, "The E2 trends are the slopes of these.")
        sec.items.append(Figure(FigureSpec("lines", slug("aimip-global-mean-series", g["channel"], g["period"]),
                                           f"{labels.channel(g['channel'])} annual global mean (E2), "
                                           f"{when(md, g['period'])}", caption, lines=lines,
                                           options={"xlabel": xlabel, "ylabel": units})))
    return sec


def other(md: MetricsDir) -> Section:
    """Fields of diagnostics no section knows, drawn by their dimensions (one figure each)."""
    sec = Section("other", "Other fields", intro="Fields of diagnostics this report version has no section for.")
    for name, a in md.attrs_index():
        # known or unnamed diagnostics from the attribute index: only the fields drawn here are built
        diag = a.get("diagnostic", "")
        if diag in KNOWN or not diag:
            continue
        da = md.field(name)
        disp, units = display_units(da.squeeze(drop=True))
        label = f"{labels.metric(diag)}: {labels.model(attr(da, 'model'))} {labels.channel(attr(da, 'channel'))}"
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


def ensembles_around(md: MetricsDir) -> Section:
    """Ensembles around a trajectory and guided runs (:mod:`reports.section_ensembles`)."""
    sec = Section(section_ensembles.ID, section_ensembles.TITLE, intro=section_ensembles.INTRO)
    for item in section_ensembles.items(md, series_lines):
        sec.items.append(Figure(item, headline=True) if isinstance(item, FigureSpec)
                         else Table(item.title, item.caption, item.header, item.rows))
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
    rows = [(labels.key(k), [Cell("null" if v is None else f"{v:.6g}", title=str(k))]) for k, v in md.scalars.items()]
    sec = Section("metrics", "All metrics", intro="Every number of metrics.json (formulas and units: docs/metrics.md).")
    if rows:
        sec.items.append(Table("All metrics", f"{len(rows)} values from metrics.json.", ["value"], rows))
    else:
        sec.notes.append("metrics.json holds no metrics.")
    return sec


# ---------------------------------------------------------------- models side by side (AI-MIP paper)


def comparison_bars(md: MetricsDir, stem: str, what: str) -> Figure | None:
    """One panel per variable: a bar per model at its member median, whiskers from min to max."""
    period = cmp.period_of(md, stem)
    stats = cmp.member_stats(md, stem, period)
    if not stats:
        return None
    panels = []
    for ch in dict.fromkeys(ch for _, ch in stats):
        models = [m for m in cmp.comparison_models(md) if (m, ch) in stats]
        data = xr.DataArray(np.array([stats[(m, ch)] for m in models]), dims=("model", "stat"),
                            coords={"model": [labels.model(m) for m in models], "stat": list(cmp.STATS)})
        units = cmp.channel_units_of(md, ch)
        scale, disp_units = display_scale(units)
        panels.append(Panel(f"{labels.channel(ch)} ({disp_units})" if disp_units else labels.channel(ch),
                            data * scale))
    rows = [panels[i:i + cmp.BARS_PER_ROW] for i in range(0, len(panels), cmp.BARS_PER_ROW)]
    floor = any(m == cmp.NOISE_FLOOR for m, _ in stats)
    spec = FigureSpec("member_bars", slug("compare", stem, period), f"{what}, {when(md, period)}".rstrip(", "),
                      short_caption(md, f"{what}: bar = median over members, whiskers = min-max", {"period": period},
                                    "each panel's (in its title)", "Lower is better."
                                    + (f" Grey: the {labels.NOISE_FLOOR_LABEL}." if floor else "")),
                      panels=rows, options={"noise_floor_label": labels.NOISE_FLOOR_LABEL})
    return Figure(spec, headline=stem == "aimip_rmsb")


def comparison_response(md: MetricsDir, scenario: str) -> Figure | None:
    """E5 of one scenario, one panel per E5 variable: a bar per model (physics baseline included) at
    its member median of the global-mean perturbed-minus-control response, whiskers min-max."""
    stats = cmp.response_stats(md, scenario)
    if not stats:
        return None
    panels = []
    for ch in dict.fromkeys(ch for _, ch in stats):
        models = [m for m in cmp.physics_models(md) + cmp.comparison_models(md) if (m, ch) in stats]
        data = xr.DataArray(np.array([stats[(m, ch)] for m in models]), dims=("model", "stat"),
                            coords={"model": [labels.model(m) for m in models], "stat": list(cmp.STATS)})
        scale, disp_units = display_scale(cmp.channel_units_of(md, ch))
        panels.append(Panel(f"{labels.channel(ch)} ({disp_units})" if disp_units else labels.channel(ch),
                            data * scale))
    rows = [panels[i:i + cmp.BARS_PER_ROW] for i in range(0, len(panels), cmp.BARS_PER_ROW)]
    what = f"E5: perturbed minus control, global mean, {labels.qualifier(scenario)}"
    spec = FigureSpec("member_bars", slug("compare", cmp.E5_STEM, scenario), what,
                      short_caption(md, f"{what}: bar = median over members, whiskers = min-max", {"scenario": scenario},
                                    "each panel's (in its title)", "Not an error: compare each model's response "
                                    "with the physics model's."),
                      panels=rows, options={"noise_floor_label": labels.NOISE_FLOOR_LABEL, "signed": True})
    return Figure(spec, headline=True)


def comparison_portrait(md: MetricsDir) -> Figure | None:
    panels = cmp.portrait_panels(md)
    if not panels:
        return None
    spec = FigureSpec("portrait", "compare-portrait", "Portrait: relative error of each model",
                      short_caption(md, "Variables x models, one panel per AI-MIP error (E1 RMSB, E2 trend, E3 ENSO; "
                                    "member median) / the median over the models - 1", {}, "1",
                                    "Blue = smaller error than the typical model; grey = not computed."),
                      panels=[[Panel(family, data, "diff") for family, data in panels]])
    return Figure(spec, headline=True)


def comparison_map_grids(md: MetricsDir) -> list[Figure]:
    """Rows models, columns variables: the time-mean bias of the headline period's annual mean, one
    colour scale per variable; :data:`reports.comparison.MAP_COLUMNS` variables per figure (the first is a headline)."""
    period = preferred_period(md, "bias")
    models = [m for m in cmp.comparison_models(md) if m != REFERENCE]
    channels = sorted({c for m in models if m != cmp.NOISE_FLOOR
                       for c in md.values("channel", diagnostic="bias", model=m, period=period, season="ANN")},
                      key=lambda c: order_key(md, c))  # variables some model predicts
    out = []
    for start in range(0, len(channels), cmp.MAP_COLUMNS):
        chunk = channels[start:start + cmp.MAP_COLUMNS]
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
                          short_caption(md, "Rows models, columns variables: model minus reference time mean",
                                        {"period": period, "season": "ANN"}, "under each column",
                                        "One colour scale per variable; red = model too high."),
                          panels=rows, units=units, options=cmaps)
        out.append(Figure(spec, headline=start == 0))
    return out


def comparison(md: MetricsDir) -> Section:
    """The "Models side by side" section (after the overview and its scorecard; numbers from
    :mod:`reports.comparison`)."""
    sec = Section("comparison", "Models side by side",
                  intro="The AI-MIP official errors of every model: member median and range per variable, a "
                        "portrait of the relative errors, and the bias maps of all models together.")
    for stem, what, _ in cmp.STEMS:
        if (fig := comparison_bars(md, stem, what)) is not None:
            sec.items.append(fig)
    for scenario in cmp.response_scenarios(md):
        if (fig := comparison_response(md, scenario)) is not None:
            sec.items.append(fig)
    if (fig := comparison_portrait(md)) is not None:
        sec.items.append(fig)
    sec.items += comparison_map_grids(md)
    if not sec.items:
        sec.notes.append("No AI-MIP member statistics (median, min and max over members of E1-E3) or bias "
                         "fields in the metrics; section skipped.")
    return sec


#: the figure budget: at most this many headline figures per section; the rest are in the appendix
HEADLINE_PER_SECTION = 6
APPENDIX = "appendix"
#: how the appendix figures are drawn (the line every report without them shows)
ALL_FIGURES_HOW = "md-report METRICS_DIR --all-figures"


def appendix(secs: list[Section], all_figures: bool = False) -> Section:
    """Move every non-headline figure (and headlines beyond the budget) into one "All figures" section,
    grouped by the section they came from, in order.

    ``all_figures`` False (the default of md-report and md-diagnose): the appendix lists the moved
    figures (:class:`Omitted`: title and name) instead of holding them, so they are not drawn; at 37
    channels that is 581 of 614 figures, most of the drawing time. True: they are drawn.
    """
    app = Section(APPENDIX, "All figures", intro="Every other figure, by section (HTML: click a group to open it).")
    for sec in secs:
        keep, n = [], 0
        for item in sec.items:
            if isinstance(item, Figure) and (not item.headline or n >= HEADLINE_PER_SECTION):
                item.origin = sec.title
                app.items.append(item if all_figures else Omitted(item.spec.title, item.spec.name, sec.title))
                continue
            n += isinstance(item, Figure)
            keep.append(item)
        moved = len(sec.items) - len(keep)
        sec.items = keep
        if moved:
            sec.notes.append(f"{moved} more figure{'s' if moved > 1 else ''} of this section in All figures"
                             + ("." if all_figures else f" (listed, not drawn: {ALL_FIGURES_HOW} draws them)."))
    if app.items and not all_figures:
        app.intro = (f"{len(app.items)} more figures, listed by section and not drawn in this report: "
                     f"{ALL_FIGURES_HOW} draws them (the figures above are cached, only these are drawn). "
                     "Their numbers are in the All metrics table and metrics.nc.")
    return app


def build(md: MetricsDir, command: str, created: str, versions: dict[str, str],
          all_figures: bool = False) -> list[Section]:
    """All sections in report order (headline figures in their sections, the rest in the "All figures"
    appendix after them: drawn with ``all_figures``, else only listed, see :func:`appendix`), figures and
    tables numbered consecutively, figure names unique (listed figures keep the names they have when drawn)."""
    secs = [overview(md), comparison(md), climatology(md), zonal(md), trends_variability(md), enso(md), modes(md), skill(md),
            warming(md)]
    around = ensembles_around(md)  # only when md-diagnose's conditioning group wrote its numbers
    if around.items:
        secs.append(around)
    official = aimip_official(md)
    if official.items:
        secs.append(official)
    oth = other(md)
    if oth.items or oth.notes:
        secs.append(oth)
    app = appendix(secs, all_figures)
    if app.items:
        skipped = sorted({p for d in ("zonal_bias", "trend", "std_anomaly", "nino34_regression", "crps_map",
                                      "rank_histogram") for p in md.values("period", diagnostic=d)}
                         - {preferred_period(md, d) for d in ("zonal_bias", "trend", "std_anomaly",
                                                              "nino34_regression", "crps_map", "rank_histogram")}
                         - {""})
        if skipped:
            app.notes.append(f"Zonal, trend, variability, ENSO, CRPS-map and rank-histogram figures are drawn for "
                             f"the headline period only; those of the {', '.join(skipped)} period(s) are in "
                             "metrics.nc, their numbers in the All metrics table.")
        secs.append(app)
    secs += [provenance(md, command, created, versions), all_metrics(md)]
    n_fig = n_tab = 0
    names: set[str] = set()
    for sec in secs:
        for item in sec.items:
            if isinstance(item, (Figure, Omitted)):
                named = item.spec if isinstance(item, Figure) else item
                base, k = named.name, 1
                while named.name in names:
                    k += 1
                    named.name = f"{base}-{k}"
                names.add(named.name)
                if isinstance(item, Figure):
                    n_fig += 1
                    item.number = n_fig
            else:
                n_tab += 1
                item.number = n_tab
    return secs
