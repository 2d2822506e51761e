"""Drawing one report figure from a picklable :class:`FigureSpec` to a PNG file.

A spec holds the data already selected and converted to display units, so drawing needs
no access to the metrics directory and runs in any worker process. Kinds:

- ``maps``: rows of map panels; panels with the same ``scale`` share one colour scale
  (``abs``: sequential, robust 1-99 % range; ``diff``: diverging, symmetric about zero).
- ``sections``: zonal-mean pressure-latitude panels (log-pressure axis, surface at bottom).
- ``lines``: series or spectra on one axes (optional log axes).
- ``bars``: one bar chart per panel (rank histograms) with the flat expectation marked.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402
from matplotlib.colors import BoundaryNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from PIL import Image  # noqa: E402

from diagnostics.io.writer import atomic_path  # noqa: E402

from . import maps  # noqa: E402

DPI = 100
WIDTH_IN = 11.0
SECONDS_PER_DAY = 86400.0


@dataclass
class Panel:
    """One panel: a title, its data and the name of the colour scale it shares."""

    title: str
    data: xr.DataArray
    scale: str = "abs"


@dataclass
class Line:
    """One curve of a ``lines`` figure (x numeric: decimal years or wavenumbers)."""

    label: str
    x: np.ndarray
    y: np.ndarray
    color: str | None = None
    width: float = 1.2
    alpha: float = 1.0
    dashed: bool = False


@dataclass
class FigureSpec:
    """Everything needed to draw one figure; ``name`` is the PNG file stem."""

    kind: str
    name: str
    title: str
    caption: str
    panels: list[list[Panel]] = field(default_factory=list)
    lines: list[Line] = field(default_factory=list)
    units: dict[str, str] = field(default_factory=dict)  # scale name -> units (colour-bar label)
    options: dict = field(default_factory=dict)


def display_scale(units: str) -> tuple[float, str]:
    """(factor, units) to show a quantity as climate scientists read it.

    kg m-2 s-1 -> mm day-1 (x 86400; 1 kg m-2 of water is 1 mm), Pa -> hPa (/ 100);
    any suffix (``K-1``, ``decade-1``) is kept. Other units are unchanged (factor 1).
    """
    units = (units or "").strip()
    if units.startswith("kg m-2 s-1"):
        return SECONDS_PER_DAY, "mm day-1" + units[len("kg m-2 s-1"):]
    if units == "Pa" or units.startswith("Pa "):
        return 0.01, "hPa" + units[2:]
    return 1.0, units


def display_units(da: xr.DataArray) -> tuple[xr.DataArray, str]:
    """Field values and units in display units (see :func:`display_scale`); a ``plev``
    coordinate stays in Pa."""
    factor, units = display_scale(str(da.attrs.get("units", "")))
    return (da * factor if factor != 1.0 else da), units


def _levels(values: np.ndarray, diverging: bool) -> tuple[np.ndarray, np.ndarray]:
    """(colour boundaries, colour-bar ticks) spanning the robust range of ``values``.

    Sequential: about 12 'nice' levels over the 1-99 % range. Diverging: symmetric about
    zero over the 98th percentile of |values|, with boundaries at +-(j + 1/2) step so that
    one white bin is centred on zero; ticks sit at the bin centres (multiples of step).
    """
    v = values[np.isfinite(values)]
    if diverging:
        m = float(np.percentile(np.abs(v), 98)) if v.size else 1.0
        m = m if m > 0 else (float(np.abs(v).max()) if v.size and np.abs(v).max() > 0 else 1.0)
        ticks = MaxNLocator(nbins=10, symmetric=True).tick_values(-m, m)
        step = float(ticks[1] - ticks[0])
        k = max(1, int(np.ceil(m / step - 0.5)))
        edges = (np.arange(k + 1) + 0.5) * step
        centres = np.arange(-k, k + 1) * step
        return np.concatenate([-edges[::-1], edges]), centres
    if v.size == 0:
        levels = np.linspace(0, 1, 11)
        return levels, levels
    lo, hi = (float(x) for x in np.percentile(v, [1, 99]))
    if hi <= lo:
        lo, hi = lo - 1.0, hi + 1.0
    levels = MaxNLocator(nbins=12).tick_values(lo, hi)
    return levels, levels


def _norms(spec: FigureSpec) -> dict[str, tuple[object, BoundaryNorm, np.ndarray]]:
    """One (cmap, norm, ticks) per scale name, from all panels that share it."""
    out = {}
    scales = {p.scale for row in spec.panels for p in row}
    for scale in sorted(scales):
        values = np.concatenate([np.ravel(p.data.values) for row in spec.panels for p in row if p.scale == scale])
        diverging = scale.startswith("diff")
        cmap_name = spec.options.get(f"cmap_{scale}") or ("RdBu_r" if diverging else "viridis")
        cmap = plt.get_cmap(cmap_name)
        levels, ticks = _levels(values, diverging)
        out[scale] = (cmap, BoundaryNorm(levels, cmap.N, extend="both"), ticks)
    return out


def _set_ticks(cb, ticks: np.ndarray, max_ticks: int) -> None:
    """Colour-bar ticks, thinned (keeping zero on diverging bars) so labels do not touch."""
    ticks = np.asarray(ticks)
    stride = int(np.ceil(len(ticks) / max_ticks))
    if stride > 1:
        zero = np.argmin(np.abs(ticks))
        ticks = ticks[(np.arange(len(ticks)) - zero) % stride == 0]
    cb.set_ticks(ticks)
    cb.set_ticklabels([f"{t:.4g}" for t in ticks])


def _colorbars(fig, spec: FigureSpec, axes: np.ndarray, mappables: dict, norms: dict) -> None:
    """One horizontal colour bar per scale under the panel columns that use it, labelled with units."""
    for scale, mappable in mappables.items():
        cols = sorted({j for row in spec.panels for j, p in enumerate(row) if p.scale == scale})
        ax_list = [axes[i, j] for i in range(axes.shape[0]) for j in cols if axes[i, j] is not None]
        cb = fig.colorbar(mappable, ax=ax_list, location="bottom", shrink=0.9, aspect=35, pad=0.02,
                          fraction=0.05)
        cb.set_label(spec.units.get(scale, ""), fontsize=9)
        cb.ax.tick_params(labelsize=8)
        _set_ticks(cb, norms[scale][2], 9 if len(cols) > 1 else 7)


def draw_maps(spec: FigureSpec):
    """Rows of map panels with coastlines and shared colour scales.

    Laid out by hand (not constrained layout, which draws every map twice): a title band,
    rows of (panel title + map), and one colour bar per scale under the columns using it.
    """
    maps.configure_cartopy()
    nrow = len(spec.panels)
    ncol = max(len(row) for row in spec.panels)
    extent = tuple(spec.options.get("extent") or maps.finite_extent(spec.panels[0][0].data))
    proj = maps.choose_projection(extent, spec.options.get("central_longitude", 0.0))
    extra_lines = max(p.title.count("\n") for row in spec.panels for p in row)
    gap, title_h, head_h, bar_h = 0.15, 0.45, 0.28 + 0.16 * extra_lines, 0.85
    panel_w = (WIDTH_IN - gap * (ncol + 1)) / ncol
    map_h = min(panel_w * maps.projected_aspect(proj, extent), 4.0)
    panel_w_eff = min(panel_w, map_h / max(maps.projected_aspect(proj, extent), 1e-3))
    height = title_h + nrow * (head_h + map_h) + bar_h
    fig = plt.figure(figsize=(WIDTH_IN, height))
    axes = np.full((nrow, ncol), None, dtype=object)
    norms = _norms(spec)
    mappables = {}
    for i, row in enumerate(spec.panels):
        for j, panel in enumerate(row):
            x0 = gap + j * (panel_w + gap) + (panel_w - panel_w_eff) / 2
            y0 = height - title_h - (i + 1) * (head_h + map_h)
            ax = fig.add_axes([x0 / WIDTH_IN, y0 / height, panel_w_eff / WIDTH_IN, map_h / height], projection=proj)
            axes[i, j] = ax
            cmap, norm, _ = norms[panel.scale]
            mappables[panel.scale] = maps.draw_field(ax, panel.data, cmap, norm)
            maps.setup_axes(ax, extent)
            ax.set_title(panel.title, fontsize=9, pad=4)
    for scale, mappable in mappables.items():
        cols = sorted({j for row in spec.panels for j, p in enumerate(row) if p.scale == scale})
        x0 = gap + cols[0] * (panel_w + gap)
        x1 = gap + cols[-1] * (panel_w + gap) + panel_w
        inset = 0.08 * (x1 - x0)
        cax = fig.add_axes([(x0 + inset) / WIDTH_IN, 0.5 / height, (x1 - x0 - 2 * inset) / WIDTH_IN, 0.14 / height])
        cb = fig.colorbar(mappable, cax=cax, orientation="horizontal")
        cb.set_label(spec.units.get(scale, ""), fontsize=9, labelpad=1)
        cb.ax.tick_params(labelsize=8)
        _set_ticks(cb, norms[scale][2], 9 if len(cols) > 1 else 6)
    fig.text(0.5, 1 - 0.12 / height, spec.title, ha="center", va="top", fontsize=11)
    return fig


def draw_sections(spec: FigureSpec):
    """Pressure-latitude panels of zonal means; y is log pressure in hPa, surface at the bottom."""
    nrow = len(spec.panels)
    ncol = max(len(row) for row in spec.panels)
    fig, axs = plt.subplots(nrow, ncol, figsize=(WIDTH_IN, 2.6 * nrow + 0.9), layout="constrained",
                            squeeze=False, sharey=True)
    norms = _norms(spec)
    mappables = {}
    axes = np.full((nrow, ncol), None, dtype=object)
    for i, row in enumerate(spec.panels):
        for j in range(ncol):
            if j >= len(row):
                axs[i, j].set_visible(False)
                continue
            panel, ax = row[j], axs[i, j]
            axes[i, j] = ax
            da = panel.data.transpose("plev", "lat")
            p_hpa = da["plev"].values / 100.0
            order = np.argsort(p_hpa)
            p_e = np.exp(maps.cell_edges(np.log(p_hpa[order])))
            lat_e = maps.cell_edges(da["lat"].values, -90.0, 90.0)
            cmap, norm, _ = norms[panel.scale]
            mappables[panel.scale] = ax.pcolormesh(lat_e, p_e, np.ma.masked_invalid(da.values[order]),
                                                   cmap=cmap, norm=norm, shading="flat")
            ax.set_yscale("log")
            ax.set_ylim(p_e.max(), p_e.min())
            ax.set_yticks(p_hpa, [f"{p:g}" for p in p_hpa])
            ax.minorticks_off()
            ax.set_xticks([-90, -60, -30, 0, 30, 60, 90], ["90S", "60S", "30S", "EQ", "30N", "60N", "90N"])
            ax.tick_params(labelsize=8)
            ax.set_title(panel.title, fontsize=9)
            if j == 0:
                ax.set_ylabel("pressure (hPa)", fontsize=9)
    _colorbars(fig, spec, axes, mappables, norms)
    fig.suptitle(spec.title, fontsize=11)
    return fig


def draw_lines(spec: FigureSpec):
    """Curves on one axes; log axes for spectra; legend outside when many curves."""
    o = spec.options
    fig, ax = plt.subplots(figsize=(WIDTH_IN, o.get("height", 3.6)))
    for ln in spec.lines:
        ax.plot(ln.x, ln.y, color=ln.color, lw=ln.width, alpha=ln.alpha, ls="--" if ln.dashed else "-",
                label=ln.label or None)
    if o.get("logx"):
        ax.set_xscale("log")
    if o.get("logy"):
        ax.set_yscale("log")
    if o.get("zero_line"):
        ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_xlabel(o.get("xlabel", ""), fontsize=9)
    ax.set_ylabel(o.get("ylabel", ""), fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", lw=0.3, alpha=0.6)
    legend = None
    if any(ln.label for ln in spec.lines):
        legend = ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_title(spec.title, fontsize=11)
    _fixed_margins(fig, legend)
    return fig


def _fixed_margins(fig, legend=None, left_in: float = 0.75, bottom_in: float = 0.45, top_in: float = 0.32,
                   right_in: float = 0.15) -> None:
    """Place the one axes of ``fig`` with fixed margins (inches), widened on the right by the
    legend's measured width when it sits outside the axes.

    Constrained layout measured every tick label to place the axes: about 70 ms of a 200 ms
    line figure. The margins fit 8-point tick labels of up to 8 characters and a 9-point axis label.
    """
    width, height = fig.get_size_inches()
    if legend is not None:
        right_in += legend.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi + 0.02 * width
    fig.subplots_adjust(left=left_in / width, right=1 - min(right_in, 0.5 * width) / width,
                        bottom=bottom_in / height, top=1 - top_in / height)


def _panel_grid(spec: FigureSpec, row_height_in: float, fixed: bool = False, **subplots):
    """A figure with one axis per panel of ``spec`` (rows of panels; axes past a short row hidden),
    titled; returns ``(figure, [(axis, panel, column), ...])``.

    ``fixed``: fixed margins and gaps (inches: room for y tick labels and label on the left, a panel
    title above and an x label below each row) instead of constrained layout, which measured every
    tick label (about 170 ms of a 370 ms rank-histogram figure); for panels whose tick labels are
    short (numbers), not for rotated model names.
    """
    ncol = max(len(row) for row in spec.panels)
    nrow = len(spec.panels)
    height = row_height_in * nrow + 0.6
    fig, axs = plt.subplots(nrow, ncol, figsize=(WIDTH_IN, height), layout=None if fixed else "constrained",
                            squeeze=False, **subplots)
    if fixed:
        left, right, top, bottom, gap_w, gap_h = 0.7, 0.15, 0.5, 0.5, 0.15, 0.8
        axis_w = (WIDTH_IN - left - right - (ncol - 1) * gap_w) / ncol
        axis_h = (height - top - bottom - (nrow - 1) * gap_h) / nrow
        fig.subplots_adjust(left=left / WIDTH_IN, right=1 - right / WIDTH_IN, top=1 - top / height,
                            bottom=bottom / height, wspace=gap_w / axis_w, hspace=gap_h / axis_h)
    cells = []
    for i, row in enumerate(spec.panels):
        for j in range(ncol):
            if j < len(row):
                cells.append((axs[i, j], row[j], j))
            else:
                axs[i, j].set_visible(False)
    if fixed:  # suptitle's default y (0.98) sits too low for a fixed top margin
        fig.suptitle(spec.title, fontsize=11, y=1 - 0.08 / height, va="top")
    else:
        fig.suptitle(spec.title, fontsize=11)
    return fig, cells


def draw_bars(spec: FigureSpec):
    """One bar chart per panel (rank histograms), dashed line at the flat (reliable) frequency."""
    fig, cells = _panel_grid(spec, 2.6, fixed=True, sharey=True)
    for ax, panel, j in cells:
        y = np.asarray(panel.data.values, dtype=float)
        y = y / np.nansum(y) if np.nansum(y) > 0 else y  # counts or frequencies -> relative frequency
        x = np.arange(1, y.size + 1)
        ax.bar(x, y, color="tab:blue", width=0.85)
        ax.axhline(1.0 / y.size, color="k", ls="--", lw=0.8)  # flat = reliable
        ax.set_title(panel.title, fontsize=9)
        ax.set_xticks(x)
        ax.set_xlabel("rank of the reference among the members", fontsize=8)
        ax.tick_params(labelsize=8)
        if j == 0:
            ax.set_ylabel("relative frequency", fontsize=9)
    return fig


def draw_member_bars(spec: FigureSpec):
    """One panel per variable: a bar per model at ``stat=median``, whiskers from ``min`` to ``max``
    (panel data: dims ``(model, stat)``); the noise floor grey."""
    floor = spec.options.get("noise_floor_label", "")
    fig, cells = _panel_grid(spec, 3.0)
    for ax, panel, _ in cells:
        da = panel.data
        names = [str(m) for m in da["model"].values]
        med, lo, hi = (np.asarray(da.sel(stat=s).values, dtype=float) for s in ("median", "min", "max"))
        x = np.arange(len(names))
        colours = ["0.7" if n == floor else f"C{k % 10}" for k, n in enumerate(names)]
        ax.bar(x, med, color=colours, width=0.7)
        ax.errorbar(x, med, yerr=[med - lo, hi - med], fmt="none", ecolor="k", capsize=3, lw=1)
        ax.set_xticks(x)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_title(panel.title, fontsize=9)
        ax.tick_params(axis="y", labelsize=8)
        if spec.options.get("signed"):  # responses may be negative: a zero line, no floor
            ax.axhline(0.0, color="0.4", lw=0.6)
        else:
            ax.set_ylim(bottom=0)
    return fig


#: Portrait cells: at most this size (inches), smaller when many columns must fit in WIDTH_IN;
#: values are written in the cells only when they are at least PORTRAIT_TEXT_CELL_IN wide.
PORTRAIT_CELL_IN = 0.5
PORTRAIT_TEXT_CELL_IN = 0.38


def draw_portrait(spec: FigureSpec):
    """A portrait plot of relative errors: the panels of ``spec.panels[0]`` side by side (one per
    error family), each a grid of rows (dim 0, e.g. variables, shared by the panels: labels on the
    first) x columns (dim 1, e.g. models, labelled on top), square cells of a size that fits every
    column into the page width (at most :data:`PORTRAIT_CELL_IN`), so the figure grows in height with
    the rows; one symmetric diverging colour scale about 0 (clipped at +-1: arrows beyond), NaN grey,
    values written in the cells when they are wide enough."""
    panels = spec.panels[0]
    nrow = panels[0].data.shape[0]
    ncols = [p.data.shape[1] for p in panels]
    label_in, bar_in, gap_in = 1.9, 0.9, 0.25
    cell = min(PORTRAIT_CELL_IN, (WIDTH_IN - label_in - bar_in - gap_in * (len(panels) - 1)) / sum(ncols))
    top_in = 0.35 + 0.065 * max(len(str(c)) for p in panels for c in p.data[p.data.dims[1]].values)
    width = label_in + bar_in + gap_in * (len(panels) - 1) + cell * sum(ncols)
    fig, axs = plt.subplots(1, len(panels), figsize=(width, top_in + 0.5 + cell * nrow), squeeze=False,
                            gridspec_kw={"width_ratios": ncols}, layout="constrained")
    values = [np.asarray(p.data.values, dtype=float) for p in panels]
    finite = np.abs(np.concatenate([v[np.isfinite(v)] for v in values]))
    peak = float(finite.max()) if finite.size else 1.0
    lim = min(max(peak, 0.05), 1.0)
    cmap = plt.get_cmap("RdBu_r").with_extremes(bad="0.88")
    size = 7 if cell >= 0.3 else 6
    for k, (ax, panel, v) in enumerate(zip(axs[0], panels, values)):
        im = ax.imshow(np.ma.masked_invalid(v), cmap=cmap, vmin=-lim, vmax=lim, aspect="equal")
        if cell >= PORTRAIT_TEXT_CELL_IN:
            for (r, c), x in np.ndenumerate(v):
                if np.isfinite(x):
                    ax.text(c, r, f"{x:+.2f}", ha="center", va="center", fontsize=6,
                            color="white" if abs(x) > 0.6 * lim else "black")
        da = panel.data
        ax.set_xticks(range(v.shape[1]))
        ax.set_xticklabels([str(c) for c in da[da.dims[1]].values], fontsize=size, rotation=90)
        ax.xaxis.tick_top()
        ax.set_yticks(range(nrow))
        ax.set_yticklabels([str(r) for r in da[da.dims[0]].values] if k == 0 else [], fontsize=size)
        ax.set_xticks(np.arange(-0.5, v.shape[1]), minor=True)
        ax.set_yticks(np.arange(-0.5, nrow), minor=True)
        ax.grid(which="minor", color="white", lw=0.6)
        ax.tick_params(which="minor", length=0)
        ax.set_title(panel.title, fontsize=9)
    cb = fig.colorbar(im, ax=axs[0, -1], shrink=min(1.0, 3.0 / max(cell * nrow, 1e-9)),
                      extend="max" if peak > lim else "neither")  # relative errors are >= -1
    cb.set_label("relative error", fontsize=8)
    cb.ax.tick_params(labelsize=7)
    fig.suptitle(spec.title, fontsize=11)
    return fig


DRAWERS = {"maps": draw_maps, "sections": draw_sections, "lines": draw_lines, "bars": draw_bars,
           "member_bars": draw_member_bars, "portrait": draw_portrait}


def save_png(fig, path: Path) -> Path:
    """Save atomically as a palette PNG.

    Figures use discrete colour levels, so 256 colours lose nothing visible and the file is
    about three times smaller than RGBA. The Agg buffer is quantised directly (no
    intermediate RGBA PNG to encode and decode again).
    """
    fig.set_dpi(DPI)
    fig.patch.set_facecolor("white")
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]
    pal = Image.fromarray(np.ascontiguousarray(rgb)).quantize(colors=256, method=Image.Quantize.MEDIANCUT,
                                                              dither=Image.Dither.NONE)
    with atomic_path(path) as tmp:
        pal.save(tmp, format="PNG", compress_level=7)
    return path


def render(spec: FigureSpec, path: str | os.PathLike) -> Path:
    """Draw ``spec`` and write it to ``path`` (PNG). Returns the path."""
    fig = DRAWERS[spec.kind](spec)
    try:
        return save_png(fig, Path(path))
    finally:
        plt.close(fig)
