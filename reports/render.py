"""Render the report of one metrics directory: ``report/index.html`` (+ figures) and ``report/report.pdf``.

``md-report METRICS_DIR`` and ``md-diagnose --report html,pdf`` both call
:func:`render_report`. Output goes to ``METRICS_DIR/report/``; figures whose content did
not change since the last render are not redrawn (content-hash cache).
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from pathlib import Path

import diagnostics
from diagnostics.data.errors import InputError
from diagnostics.data.provenance import versions as package_versions

from . import __version__, html, labels, parallel, pdf, sections
from .layout import FIGURES_DIR, HTML_NAME, PDF_NAME, REPORT_DIR
from .metricsdir import load

FORMATS = ("html", "pdf")


def _versions() -> dict[str, str]:
    """The project's and the drawing libraries' versions, for the report's provenance."""
    return {"reports": __version__, "diagnostics": diagnostics.__version__,
            **package_versions(("matplotlib", "cartopy", "jinja2", "xarray", "numpy"))}


def _check_formats(formats) -> tuple[str, ...]:
    formats = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"unknown report format(s) {', '.join(bad) or '(none)'}; expected a subset of "
                         f"{','.join(FORMATS)}")
    return formats


def render_report(metrics_dir: Path, formats=("html", "pdf"), jobs: int | None = None,
                  progress: bool = True, command: str | None = None, all_figures: bool = False) -> dict[str, Path]:
    """Render the report of ``metrics_dir`` (an md-diagnose output directory).

    Args:
        metrics_dir: directory holding metrics.json and metrics.nc (schema md-metrics/1).
        formats: any of "html", "pdf".
        jobs: worker processes for the figures (default min(4, CPUs)); 1 draws in-process.
        progress: show a tqdm progress bar (on a terminal).
        command: command line recorded in the provenance (default: this process's argv).
        all_figures: also draw the "All figures" appendix (default: it lists those figures, the
            headline figures are drawn; see :func:`reports.sections.appendix`).

    Returns:
        {"html": .../report/index.html, "pdf": .../report/report.pdf} for the formats asked,
        plus "figures": the figure folder.

    Raises:
        InputError: the directory or its files are missing or unreadable, or a format is unknown.
    """
    formats = _check_formats(formats)
    t0 = time.perf_counter()
    md = load(metrics_dir)
    out_dir = Path(metrics_dir) / REPORT_DIR
    fig_dir = out_dir / FIGURES_DIR
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cmd = command if command is not None else " ".join([Path(sys.argv[0]).name] + sys.argv[1:])
    secs = sections.build(md, cmd, created, _versions(), all_figures=all_figures)
    specs = [f.spec for s in secs for f in s.figures]
    listed = {o.name for s in secs for o in s.omitted}
    errors, drawn = parallel.draw_all(specs, fig_dir, jobs=jobs, progress=progress, keep=listed)
    for name, err in errors.items():
        print(f"md-report: warning: figure {name} failed: {err}", file=sys.stderr)
    title = "AI-MIP evaluation report"
    subtitle = (f"{', '.join(map(labels.model, md.ensembles)) or 'no ensembles'} against the reference"
                + (f"; baselines {', '.join(map(labels.model, md.baselines))}" if md.baselines else "")
                + f" — {len(specs)} figures"
                + (f" ({len(listed)} more listed in All figures, not drawn)" if listed else "") + f" from {md.path}")
    result: dict[str, Path] = {"figures": fig_dir}
    if "html" in formats:
        result["html"] = html.write(secs, out_dir / HTML_NAME, title, subtitle, created, errors,
                                    PDF_NAME if "pdf" in formats else None)
    if "pdf" in formats:
        result["pdf"] = pdf.write(secs, out_dir / PDF_NAME, fig_dir, title, subtitle, created, errors)
    if progress:
        print(f"md-report: {len(specs)} figures ({drawn} drawn, {len(specs) - drawn - len(errors)} cached) in "
              f"{time.perf_counter() - t0:.1f} s -> {out_dir}", file=sys.stderr)
        if listed:
            print(f"md-report: {len(listed)} more figures listed in All figures, not drawn: "
                  f"{sections.ALL_FIGURES_HOW.replace('METRICS_DIR', str(metrics_dir))} draws them", file=sys.stderr)
    return result
