"""``md-synth``: write the embedded synthetic monthly climate (with its planted truth).

    md-synth --out DIR [--grid 1.5|3|5.625] [--start 1978-10] [--end 2024-12] [--seed N]
             [--members N] [--scenario historical|p2k|p4k] [--linear] [--forced-trend]

writes DIR/dataset.zarr + DIR/manifest.json (via :func:`diagnostics.io.writer.write_prepared`)
and DIR/truth.nc. A directory holding a different dataset is refused (exit 2).
"""

from __future__ import annotations

import argparse
import sys
import time

from .. import __version__
from ..data.errors import InputError, add_debug_flag, cli_entry
from ..data.grid import NAMED_GRIDS, equiangular
from ..data.timeaxis import Month
from ..io.writer import read_manifest, write_netcdf, write_prepared
from ..data.experiments import EXPERIMENTS, sst_offset_k
from ..data.provenance import digest
from ..synth.climate import LAZY_BYTES, to_dataset
from ..synth.model import Model, make_run, progress
from ..synth.truth import make_truth

GRIDS = ("1.5", "3", "5.625")
TRUTH_FILE = "truth.nc"


def _month(text: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="md-synth", description="Write the synthetic monthly climate with planted "
                                "statistics (ENSO, NAO, trends, warming response, red noise) and its truth file.")
    p.add_argument("--out", required=True, help="output directory (dataset.zarr, manifest.json, truth.nc)")
    p.add_argument("--grid", choices=GRIDS, default="5.625", help="equiangular grid spacing in degrees, with poles")
    p.add_argument("--start", type=_month, default=Month(1978, 10), help="first month YYYY-MM (default 1978-10)")
    p.add_argument("--end", type=_month, default=Month(2024, 12), help="last month YYYY-MM (default 2024-12)")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed -> identical data)")
    p.add_argument("--members", type=int, default=1, help="independent realisations with the same forcing")
    p.add_argument("--scenario", choices=tuple(EXPERIMENTS), default="historical",
                   help="uniform SST offset 0 / 2 / 4 K, sea ice unchanged")
    p.add_argument("--linear", action="store_true", help="leave out the planted nonlinearity (ENSO asymmetry, "
                   "Clausius-Clapeyron scaling of pr and hus, state-dependent NAO variance): a linear-Gaussian climate")
    p.add_argument("--forced-trend", action="store_true",
                   help="make the atmosphere's historical trend its forced response to the SST warming (trend = "
                   "warming per K x 0.15 K/decade), so the historical data carry the +2K / +4K response; off by default")
    return p


def _main(argv: list[str]) -> int:
    a = add_debug_flag(_parser()).parse_args(argv)
    if a.end < a.start:
        raise InputError(f"--end {a.end} is before --start {a.start}")
    if a.members < 1:
        raise InputError(f"--members must be at least 1, got {a.members}")
    res = float(a.grid)
    if res not in NAMED_GRIDS:
        raise InputError(f"--grid {a.grid} is not one of {GRIDS}")
    args = {"generator": "md-synth", "version": __version__, "grid": res, "start": str(a.start),
            "end": str(a.end), "seed": a.seed, "members": a.members, "scenario": a.scenario,
            "sst_offset_K": sst_offset_k(a.scenario), "nonlinear": not a.linear}
    if a.forced_trend:  # only when set: default datasets keep their fingerprint
        args["forced_trend"] = True
    manifest = {**args, "fingerprint": digest(args), "kind": "synthetic", "truth": TRUTH_FILE,
                "command": "md-synth " + " ".join(argv),
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    existing = read_manifest(a.out)
    if existing is not None and existing.get("fingerprint") != manifest["fingerprint"]:
        # write_prepared refuses too; checking first avoids generating the data for nothing.
        raise InputError(f"output directory already holds a different dataset (fingerprint "
                         f"{existing.get('fingerprint')!r}, this one {manifest['fingerprint']!r}); "
                         "choose another --out or delete it", a.out)
    t0 = time.perf_counter()
    model = Model.build(equiangular(res), forced_trend=a.forced_trend)
    run = make_run(model, a.start, a.end, a.seed, a.members, sst_offset_k(a.scenario), nonlinear=not a.linear)
    lazy = run.members * run.months.size * len(model.labels) * model.grid.lat.size * model.grid.lon.size * 4 > LAZY_BYTES
    with progress(run):
        # small grids are generated in memory (fastest); large ones stream chunk by chunk via dask
        ds = to_dataset(run, lazy=lazy)
        write_prepared(ds, a.out, manifest)
    write_netcdf(make_truth(run), f"{a.out}/{TRUTH_FILE}")
    print(f"md-synth: wrote {a.out} ({run.members} member(s), {run.months.size} months, "
          f"{model.grid.shape[0]}x{model.grid.shape[1]}, {a.scenario}{', linear' if a.linear else ''}{', forced trend' if a.forced_trend else ''}) in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
