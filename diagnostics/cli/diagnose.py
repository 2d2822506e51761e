"""``md-diagnose``'s arguments and its metrics step: score ensembles against a reference and write
metrics.json / metrics.nc.

The ``md-diagnose`` console script is :mod:`reports.cli_diagnose`, which parses these arguments,
runs this step and then renders the report (``diagnostics`` never imports ``reports``). Run as
``python -m diagnostics.cli.diagnose`` this module writes the metrics only.

    md-diagnose --ensemble [NAME=]DIR_OR_GLOB [--ensemble ...] --reference DIR_OR_GLOB --out DIR
                [--train-period 1979-01:2014-12] [--test-period 2015-01:2024-12]
                [--scenario [NAME:]p2k=DIR ...] [--physics NAME=DIR] [--variables tas,ta,...]
                [--scheduler ADDRESS|local[:N]] [--report html,pdf|none] [--members-max N] [--debug]

See docs/diagnose.md for the user's path and docs/metrics-schema.md for the outputs.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from ..data.errors import add_debug_flag, cli_entry
from ..data.timeaxis import Period
from ..pipeline import DEFAULT_TEST, DEFAULT_TRAIN, Config, run
from ..schema import NOISE_FLOOR

REPORT_FORMATS = ("html", "pdf")


def _period(text: str) -> Period:
    try:
        return Period.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _report(text: str) -> tuple[str, ...]:
    if text.strip().lower() == "none":
        return ()
    formats = tuple(f.strip().lower() for f in text.split(",") if f.strip())
    bad = [f for f in formats if f not in REPORT_FORMATS]
    if bad or not formats:
        raise argparse.ArgumentTypeError(f"expected html, pdf, html,pdf or none, got {text!r}")
    return formats


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="md-diagnose",
        description="Score monthly climate ensembles (AI-MIP files, prepared or zarr datasets) against a "
                    "reference: biases, trends, ENSO, modes, variability, CRPS, spread-skill, spectra, "
                    "warming response and baselines. Writes OUT/metrics.json and OUT/metrics.nc.")
    p.add_argument("--ensemble", action="append", required=True, metavar="[NAME=]PATH",
                   help="ensemble to score: a directory of AI-MIP files, a glob, a prepared directory or a "
                        "zarr store; repeat for several models (name defaults to the AI-MIP source_id)")
    p.add_argument("--reference", required=True, metavar="PATH", help="reference dataset (e.g. prepared ERA5)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--train-period", type=_period, default=Period.parse(DEFAULT_TRAIN), metavar="YYYY-MM:YYYY-MM",
                   help=f"training period (default {DEFAULT_TRAIN}); also the anomalies' climatology")
    p.add_argument("--test-period", type=_period, default=Period.parse(DEFAULT_TEST), metavar="YYYY-MM:YYYY-MM",
                   help=f"held-out period (default {DEFAULT_TEST})")
    p.add_argument("--scenario", action="append", default=[], metavar="[NAME:]p2k=PATH",
                   help="warming run of ensemble NAME (default: the first ensemble): p2k or p4k")
    p.add_argument("--physics", action="append", default=[], metavar="NAME=PATH",
                   help="a physics model's control run (e.g. GFDL-CM4 amip), scored for E5 only against its "
                        "--scenario NAME:p4k=PATH over the months both hold; it does not enter the common window")
    p.add_argument("--noise-floor", default=None, metavar="PATH",
                   help="other realisations of the reference's own climate (e.g. `md-synth --members 6`, "
                        "or a physics model's large ensemble): scored like an ensemble, named "
                        f"'{NOISE_FLOOR}', the best any model can do; members equal to the reference "
                        "(md-synth's member 0) are left out")
    p.add_argument("--nino34-index", choices=("relative", "absolute"), default="relative",
                   help="Nino-3.4 convention of the ENSO regressions: relative (AI-MIP, default: box anomaly "
                        "minus the 20S-20N mean anomaly) or absolute (CVDP / PMP; amplitudes ~10 %% apart)")
    p.add_argument("--variables", nargs="+", default=None, metavar="VAR",
                   help="score only these variables (tas ta zg ... or tas,ta); default: all in common")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|local[:N]",
                   help="dask: a dask.distributed scheduler address, or 'local' for a LocalCluster "
                        "(N workers, default 2); default: the threaded scheduler")
    p.add_argument("--report", type=_report, default=("html", "pdf"), metavar="html,pdf|none",
                   help="report formats to render after the metrics (default html,pdf); none to skip")
    p.add_argument("--members-max", type=_positive, default=None, metavar="N",
                   help="use at most the first N members of each ensemble")
    p.add_argument("--no-baselines", action="store_true", help="do not score the reference-built baselines")
    p.add_argument("--no-spectra", action="store_true", help="skip the power spectra (the costliest group)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--seed", type=int, default=0, help="seed of the AR(1) baseline and rank-histogram ties")
    return add_debug_flag(p)


def config(args: argparse.Namespace, argv: list[str]) -> Config:
    """The pipeline's configuration from parsed arguments (``argv`` is recorded in the provenance)."""
    return Config(ensembles=args.ensemble, reference=args.reference, out=Path(args.out),
                  train=args.train_period, test=args.test_period, scenarios=args.scenario, physics=args.physics,
                  variables=args.variables, scheduler=args.scheduler, noise_floor=args.noise_floor, nino34=args.nino34_index,
                  members_max=args.members_max, baselines=not args.no_baselines, spectra=not args.no_spectra,
                  progress=not args.no_progress, seed=args.seed, debug=args.debug,
                  command=shlex.join(["md-diagnose", *argv]))


def _main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    code = run(config(args, argv))
    if args.report and code == 0:
        print(f"md-diagnose: metrics only (python -m diagnostics.cli.diagnose); render the report with "
              f"md-report {args.out}", file=sys.stderr)
    return code


main = cli_entry(_main, prog="md-diagnose")

if __name__ == "__main__":
    sys.exit(main())
