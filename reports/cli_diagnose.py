"""``md-diagnose``: the metrics (:mod:`diagnostics.pipeline`), then the report (:mod:`reports.render`).

The command layer composes the two steps, so the layers point one way: ``reports`` reads what
``diagnostics`` computes, and ``diagnostics`` imports neither ``reports`` nor ``emulator``.
Arguments are those of :func:`diagnostics.cli.diagnose.parser` (docs/diagnose.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

from diagnostics import pipeline
from diagnostics.cli import diagnose
from diagnostics.data.errors import cli_entry

from .layout import FINAL_FILES


def _say(text: str) -> None:
    print(f"md-diagnose: {text}", file=sys.stderr)


def render(out: Path, formats: tuple[str, ...]) -> bool:
    """Render the report of ``out``; False (said in one line, metrics kept) when rendering fails."""
    from .render import render_report  # matplotlib and cartopy only once the metrics are written

    try:
        paths = render_report(out, formats=formats)
    except Exception as exc:  # noqa: BLE001 — any renderer failure leaves the metrics usable
        _say(f"report rendering failed ({type(exc).__name__}: {exc}); metrics.json and metrics.nc are written")
        return False
    for fmt, p in (paths or {}).items():
        _say(f"report ({fmt}): {p}")
    return True


def _main(argv: list[str]) -> int:
    args = diagnose.parser().parse_args(argv)
    cfg = diagnose.config(args, argv)
    code = pipeline.run(cfg, also_stale=FINAL_FILES)  # the figure cache stays
    if code != 0 or not args.report:
        return code
    return 0 if render(cfg.out, args.report) else 1


main = cli_entry(_main, prog="md-diagnose")

if __name__ == "__main__":
    sys.exit(main())
