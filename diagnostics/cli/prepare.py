"""md-prepare: any supported ERA5 / AI-MIP layout -> a prepared monthly dataset directory.

    md-prepare --source PATH [PATH ...] --out DIR [--grid 1.5|native] [--start YYYY-MM]
               [--end YYYY-MM] [--variables tas ta zg ...] [--derive-huss] [--force]

Detects the layout, reads lazily (dask), converts to the contract (names, units, lat
ascending, lon 0..360, monthly axis), selects months and variables, regrids onto the
target equiangular grid (conservative when coarsening) and writes ``DIR/dataset.zarr``
(chunked by 12 months; progress bars on a terminal only) and ``DIR/manifest.json``
(fingerprint of sources + grid + period + variables, the sources' sizes and modification
times, the command and library versions). The computation
is staged in blocks of 12 months, so an interrupted run resumes where it stopped when
rerun with the same arguments. Rerunning the same command on a finished directory does
nothing unless a source changed (size or modification time), which prepares it again; a
directory holding a different dataset is refused. Every month's values are checked as they
are computed: a bad month stops the run with an error naming the month and the file.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shlex
import shutil
import sys
from pathlib import Path

import xarray as xr

from ..data.errors import InputError, add_debug_flag, cli_entry, ensure_output_dir
from ..data.grid import Grid, coverage_problem, equiangular, grid_of
from ..data.provenance import digest, file_identity, versions as package_versions
from ..data.timeaxis import Month, Period, calendar_of, period_of
from ..io.files import drs_summaries, expand_paths, is_prepared_dir
from ..io.open import describe_grid, open_dataset, store_names
from ..io.staging import progress_path, stage
from ..io.writer import MANIFEST, PREPARED_STORE, read_manifest, write_prepared

_VERSIONED = ("monthly-diffusion", "xarray", "dask", "zarr", "numpy", "netCDF4", "cftime")


def parse_grid(text: str) -> Grid | None:
    """``1.5`` -> the 1.5 degree equiangular grid with poles; ``native`` -> None (keep)."""
    if text.lower() == "native":
        return None
    try:
        res = float(text)
        if res <= 0:
            raise ValueError
        return equiangular(res)
    except ValueError:
        raise InputError(f"--grid {text!r}: expected a resolution in degrees dividing 360 "
                         "(1.5, 3, 5.625, ...) or 'native'") from None


def parse_period(start: str | None, end: str | None) -> Period | None:
    """Inclusive period from optional ``--start``/``--end`` (an open side takes every month)."""
    if start is None and end is None:
        return None
    try:
        lo = Month.parse(start) if start else Month(1, 1)
        hi = Month.parse(end) if end else Month(9999, 12)
    except ValueError as exc:
        raise InputError(f"--start/--end: {exc}") from None
    if hi < lo:
        raise InputError(f"--end {end} is before --start {start}")
    return Period(lo, hi)


def versions() -> dict[str, str]:
    """Versions recorded in the manifest (``provenance.versions``)."""
    return package_versions(_VERSIONED)


def fingerprint(sources: list[str], grid: Grid | None, period: Period | None, variables: list[str] | None,
                derive_huss: bool) -> str:
    """sha256 (16 hex) of what defines the output: resolved sources, grid, period, variables."""
    spec = {
        "sources": [os.path.realpath(p) for p in sources],
        "grid": None if grid is None else list(grid.shape),
        "period": None if period is None else str(period),
        "variables": None if variables is None else sorted(variables),
        "derive_huss": derive_huss,
    }
    return digest(spec)


def sources_state(sources: list[str]) -> str:
    """sha256 (16 hex) of the sources' content identity: each file's size and modification time
    (every file inside a zarr store or prepared directory), so a source rewritten since the last
    run is prepared again although its path is the same. Reading no data keeps it cheap; a
    change that keeps size and mtime (deliberately reset) goes unnoticed, as with ``make``."""
    return digest(file_identity(sources))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="md-prepare", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", nargs="+", required=True, metavar="PATH",
                   help="input: WB2 zarr, CDS netCDF files, AI-MIP files/directory/glob, a prepared "
                        "directory or contract netCDF/zarr")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (dataset.zarr + manifest.json)")
    p.add_argument("--grid", default="1.5", help="target resolution in degrees (equiangular with poles: "
                   "1.5 -> 121x240) or 'native' (default: 1.5)")
    p.add_argument("--start", metavar="YYYY-MM", help="first month to keep")
    p.add_argument("--end", metavar="YYYY-MM", help="last month to keep")
    p.add_argument("--variables", nargs="+", metavar="NAME",
                   help="catalogue names to keep (tas ta zg tos ...); default: every one found")
    p.add_argument("--derive-huss", action="store_true",
                   help="ERA5 only: add near-surface specific humidity from 2 m dewpoint and surface pressure")
    p.add_argument("--force", action="store_true", help="rewrite even if DIR already holds this dataset")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bars on stderr: auto (only on a terminal, never into a log file), on, off")
    return p


def _foreign_entries(out: Path) -> list[str]:
    """Entries of ``out`` other than a prepared dataset's own (or leftovers of an interrupted run)."""
    return sorted(p.name for p in out.iterdir()
                  if not p.name.startswith(".") and p.name not in (PREPARED_STORE, MANIFEST))


def _write(ds: xr.Dataset, out: Path, manifest: dict, progress: bool) -> None:
    """Compute into a resumable staging store (blocks of 12 months), then write the prepared dir."""
    from tqdm.dask import TqdmCallback

    out.mkdir(parents=True, exist_ok=True)
    key = f"{manifest['fingerprint']}-{manifest['sources_state']}"
    staging = out / f".staging-{key}.zarr"
    for old in out.glob(".staging-*"):  # left by an interrupted run with other arguments
        if old.name not in (staging.name, progress_path(staging).name):
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink()
    if "time" in ds.dims:
        attrs = dict(ds.attrs)
        ds = stage(ds, staging, key, desc=f"computing {out.name}", progress=progress)
        ds.attrs = attrs
    with TqdmCallback(desc=f"writing {out.name}/dataset.zarr", unit="task", leave=False, mininterval=1.0,
                      disable=not progress):
        write_prepared(ds, out, manifest)
    shutil.rmtree(staging, ignore_errors=True)
    progress_path(staging).unlink(missing_ok=True)


def _main(argv: list[str]) -> int:
    args = add_debug_flag(build_parser()).parse_args(argv)
    grid = parse_grid(args.grid)
    period = parse_period(args.start, args.end)
    variables = store_names(args.variables)
    sources = expand_paths(args.source)
    out = Path(args.out)
    if any(os.path.realpath(s) == os.path.realpath(out) for s in sources):
        raise InputError("--out is the same as the source", out)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a directory", out)
    if out.is_dir() and read_manifest(out) is None and _foreign_entries(out):
        raise InputError("output directory is not empty and holds no prepared dataset "
                         f"(found {_foreign_entries(out)[0]!r}); choose another --out", out)
    fp = fingerprint(sources, grid, period, variables, args.derive_huss)
    state = sources_state(sources)
    existing = read_manifest(out)
    if existing is not None:
        if existing.get("fingerprint") != fp:
            raise InputError(f"output directory already holds a different dataset (fingerprint "
                             f"{existing.get('fingerprint')!r}, this one {fp!r}); choose another --out "
                             "or delete it", out)
        if existing.get("sources_state") != state:
            # the same command on rewritten sources: the old values are stale, so they leave
            # their final names before the (long) work, never to be read as finished
            print(f"md-prepare: the sources changed since {out} was prepared "
                  f"({existing.get('created_utc', 'earlier')}); preparing it again", file=sys.stderr)
            (out / MANIFEST).unlink(missing_ok=True)
            shutil.rmtree(out / PREPARED_STORE, ignore_errors=True)
        elif is_prepared_dir(out) and not args.force:
            print(f"md-prepare: {out} already holds this dataset (fingerprint {fp}); nothing to do "
                  "(--force rewrites it)")
            return 0
    ensure_output_dir(out, "--out")
    ds = open_dataset(sources, variables, grid, period, derive_huss=args.derive_huss)
    used = period_of(ds) if "time" in ds.dims else None
    manifest = {
        "fingerprint": fp,
        "sources_state": state,
        "command": "md-prepare " + shlex.join(argv),
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(),
        "source_layout": ds.attrs.get("source_layout"),
        "sources": [os.path.realpath(p) for p in sources],
        "grid": {"resolution_deg": grid_of(ds).resolution, "nlat": ds.sizes["lat"], "nlon": ds.sizes["lon"],
                 "regrid": ds.attrs.get("regrid", "none (native grid)"),
                 "coverage": coverage_problem(grid_of(ds)) or "global"},
        "period": None if used is None else str(used),
        "calendar": calendar_of(ds) if "time" in ds.dims else None,
        "variables": [str(v) for v in ds.data_vars if v != "time_bnds"],
        "members": int(ds.sizes.get("member", 0)),
    }
    for key in ("source_id", "experiment_id"):
        if key in ds.attrs:
            manifest[key] = ds.attrs[key]
    ds.attrs["prepared_from"] = ds.attrs.get("source_layout", "")
    for line in drs_summaries(args.source):
        print(f"md-prepare: {line}", file=sys.stderr)
    if "found" in ds.attrs:
        print(f"md-prepare: read {ds.attrs['found']}", file=sys.stderr)
    if ds.attrs.get("reader_notes"):
        print(f"md-prepare: note: {ds.attrs['reader_notes']}", file=sys.stderr)
        manifest["reader_notes"] = ds.attrs["reader_notes"]
    masked = ds.attrs.get("below_ground_masked")
    if masked:
        print(f"md-prepare: note: {masked} are masked below the ground in the source (NaN there, kept as "
              "missing; md-diagnose scores the cells both sides have)", file=sys.stderr)
        manifest["below_ground_masked"] = masked
    progress = args.progress == "on" or (args.progress == "auto" and sys.stderr.isatty())
    _write(ds, out, manifest, progress)
    print(f"md-prepare: wrote {out} ({manifest['source_layout']} -> {describe_grid(ds)}; "
          f"{manifest['period'] or 'static fields only'}; {len(manifest['variables'])} variables)")
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
