"""``md-report METRICS_DIR [--format html,pdf] [--jobs N] [--all-figures]``: render an md-diagnose output as HTML/PDF."""

from __future__ import annotations

import argparse
from pathlib import Path

from diagnostics.data.errors import InputError, add_debug_flag, cli_entry


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="md-report", description="Render the figure report (HTML and/or PDF) of an "
                                "md-diagnose output directory into METRICS_DIR/report/.")
    p.add_argument("metrics_dir", type=Path, help="directory holding metrics.json and metrics.nc")
    p.add_argument("--format", default="html,pdf", help="comma-separated subset of html,pdf (default both)")
    p.add_argument("--jobs", type=int, default=None, help="worker processes for figures (default min(4, CPUs))")
    p.add_argument("--all-figures", action="store_true",
                   help="also draw the 'All figures' appendix (default: listed by title, not drawn; the headline "
                        "figures of each section are drawn either way and cached)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    return p


def _main(argv: list[str]) -> int:
    args = add_debug_flag(_parser()).parse_args(argv)
    if args.jobs is not None and args.jobs < 1:
        raise InputError(f"--jobs {args.jobs}: expected a positive number of worker processes")
    from .render import render_report  # heavy imports (matplotlib, cartopy) only once the arguments are valid

    out = render_report(args.metrics_dir, formats=args.format.split(","), jobs=args.jobs, progress=not args.quiet,
                        command=" ".join(["md-report"] + argv), all_figures=args.all_figures)
    for kind in ("html", "pdf"):
        if kind in out:
            print(out[kind])
    return 0


main = cli_entry(_main)
