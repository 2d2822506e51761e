"""md-describe: a short human summary of any readable dataset.

    md-describe PATH [PATH ...]

The paths are read together as one dataset (e.g. CDS single- and pressure-level files).
A directory that is not itself one dataset is searched (two levels deep) for datasets:
prepared directories, zarr stores, GRIB/netCDF files, and AI-MIP files grouped by model and
experiment; finding none there, the CMIP DRS tree below it (the AI-MIP archive layout).
For each: layout, grid, period and calendar, members, variables with units and levels,
and the contract status ("conforms to the contract" or the problems found).
Exit 0 when everything conforms, 1 when some dataset has problems, 2 when unreadable.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import xarray as xr

from ..data.contract import problems
from ..data.errors import InputError, add_debug_flag, cli_entry
from ..data.timeaxis import calendar_of, period_of
from ..io.files import is_grib, is_netcdf, is_prepared_dir, is_zarr_store
from ..io.names import find_drs_files, parse_name
from ..io.open import describe_grid, open_dataset
from ..io.writer import read_manifest


def find_datasets(directory: Path, depth: int = 2) -> list[list[str]]:
    """Groups of paths that each form one dataset, found inside ``directory``.

    Two levels deep; when that finds nothing, the CMIP DRS tree below ``directory`` (the
    AI-MIP archive: files six or seven levels down), one group per model and experiment.
    """
    found = _find_near(directory, depth)
    if found:
        return found
    groups: dict[tuple, list[str]] = {}
    for f in find_drs_files(directory).files:
        n = parse_name(f)
        groups.setdefault((n.model, n.experiment), []).append(f)
    return [groups[k] for k in sorted(groups)]


def _find_near(directory: Path, depth: int) -> list[list[str]]:
    if is_prepared_dir(directory) or is_zarr_store(directory):
        return [[str(directory)]]
    groups: dict[tuple, list[str]] = {}
    for f in sorted(directory.iterdir()):
        if is_netcdf(f) or is_grib(f):
            n = parse_name(f)
            key = ("aimip", n.model, n.experiment) if n else ("netcdf",) if is_netcdf(f) else ("grib",)
            groups.setdefault(key, []).append(str(f))
    found = list(groups.values())
    if depth > 1:
        for sub in sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith(".")):
            found.extend(_find_near(sub, depth - 1))
    return found


def _variables(ds: xr.Dataset) -> list[str]:
    lines = []
    for name, da in ds.data_vars.items():
        if name == "time_bnds":
            continue
        text = f"{name} [{da.attrs.get('units', '?')}]"
        if "plev" in da.dims:
            text += f" on {da.sizes['plev']} levels"
        if "time" not in da.dims:
            text += " static"
        lines.append(text)
    return lines


def summary(paths: list[str]) -> tuple[str, bool]:
    """The text block describing one dataset, and whether it conforms to the contract."""
    ds = open_dataset(paths, check=False)
    label = paths[0] if len(paths) == 1 else f"{os.path.commonpath(paths) or '.'}/ ({len(paths)} files)"
    rows = [("layout", ds.attrs.get("source_layout", "?"))]
    if ds.attrs.get("source_layout") == "prepared":
        manifest = read_manifest(paths[0]) or {}
        origin = (f"by {manifest['generator']}" if "generator" in manifest
                  else f"from {manifest.get('source_layout', '?')}")
        rows[0] = ("layout", f"prepared {origin} (fingerprint {manifest.get('fingerprint', '?')})")
    if "source_id" in ds.attrs:
        rows.append(("model", f"{ds.attrs['source_id']}, experiment {ds.attrs.get('experiment_id', '?')}"))
    rows.append(("grid", describe_grid(ds)))
    if "time" in ds.dims and ds.sizes["time"]:
        rows.append(("period", f"{period_of(ds)} ({ds.sizes['time']} months), calendar {calendar_of(ds)}"))
    if "member" in ds.dims:
        labels = ds["member_label"].values.tolist() if "member_label" in ds.coords else ds["member"].values.tolist()
        shown = ", ".join(map(str, labels[:6])) + (" ..." if len(labels) > 6 else "")
        rows.append(("members", f"{ds.sizes['member']} ({shown})"))
    else:
        rows.append(("members", "none (a single realisation)"))
    if "plev" in ds.coords:
        hpa = (np.asarray(ds["plev"].values) / 100).astype(int).tolist()
        rows.append(("levels", f"{len(hpa)}: {', '.join(map(str, hpa))} hPa"))
    variables = _variables(ds)
    rows.append(("variables", f"{len(variables)}: " + "; ".join(variables)))
    for key in ("reader_notes", "below_ground_masked"):
        if ds.attrs.get(key):
            rows.append(("notes" if key == "reader_notes" else "masked", str(ds.attrs[key])
                         + (" (NaN below the ground, kept as missing)" if key == "below_ground_masked" else "")))
    found = problems(ds, check_values=True)
    rows.append(("status", "conforms to the contract" if not found else
                 f"{len(found)} problem(s): " + "; ".join(found)))
    width = max(len(k) for k, _ in rows)
    text = "\n".join([label] + [f"  {k.ljust(width)}  {v}" for k, v in rows])
    return text, not found


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="md-describe", description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", metavar="PATH", help="dataset files, directories or globs")
    args = add_debug_flag(parser).parse_args(argv)
    groups = [args.paths]
    if len(args.paths) == 1 and Path(args.paths[0]).is_dir():
        groups = find_datasets(Path(args.paths[0]))
        if not groups:
            raise InputError("no dataset found in the directory (no prepared dataset, zarr store, netCDF "
                             "or GRIB files two levels deep, and no CMIP DRS tree of monthly files)",
                             args.paths[0])
    ok = True
    for i, group in enumerate(groups):
        text, conforms = summary(group)
        print(("\n" if i else "") + text)
        ok &= conforms
    return 0 if ok else 1


main = cli_entry(_main)

if __name__ == "__main__":
    sys.exit(main())
