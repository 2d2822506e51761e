"""The one writer for contract datasets: AI-MIP per-variable netCDF, zarr, prepared dirs.

Every write is atomic: data go to a temporary name beside the target and are renamed
into place only when complete, so a final name never holds a half-written file.

AI-MIP file names: ``<var>_Amon_<model>_<experiment>_<member>_<grid>_<YYYYMM>-<YYYYMM>.nc``
(float32, CF metadata; ``zg500`` is written as ``zg`` with a one-element ``plev`` axis).
A prepared dataset directory holds ``dataset.zarr`` and ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Iterator

import numpy as np
import xarray as xr

from ..data import catalogue
from ..data.contract import conform, plev_coord
from ..data.errors import InputError
from ..data.timeaxis import TIME_UNITS, calendar_of, period_of

PREPARED_STORE = "dataset.zarr"
MANIFEST = "manifest.json"


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it to ``final`` on success.

    On any exception the temporary file or directory is removed and ``final`` is untouched.
    Replacing an existing directory moves the old one aside first, then deletes it.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(final, old)
            os.replace(tmp, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB blocks (checkpoints, rollout state)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json(obj: dict, path: str | os.PathLike) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")
    return Path(path)


def _encoding(ds: xr.Dataset, chunk_time: int | None = None) -> dict:
    enc: dict[str, dict] = {}
    for name, da in ds.data_vars.items():
        if name == "time_bnds":
            continue
        e: dict = {"dtype": "float32"}
        if np.issubdtype(da.dtype, np.floating):
            e["_FillValue"] = np.float32(1e20)
        enc[name] = e
    if "time" in ds.coords:
        enc["time"] = {"units": TIME_UNITS, "calendar": calendar_of(ds), "dtype": "float64"}
        if "time_bnds" in ds.variables:
            enc["time_bnds"] = {"units": TIME_UNITS, "calendar": calendar_of(ds), "dtype": "float64"}
    return enc


def write_netcdf(ds: xr.Dataset, path: str | os.PathLike) -> Path:
    """Write one contract dataset to a single netCDF-4 file, atomically."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, encoding=_encoding(ds), engine="netcdf4", format="NETCDF4")
    return Path(path)


def write_zarr(ds: xr.Dataset, path: str | os.PathLike, chunk_time: int = 12) -> Path:
    """Write a contract dataset to a zarr store (chunked by ``chunk_time`` months), atomically."""
    ds = ds.copy()
    for name in ds.data_vars:
        for k in ("chunks", "preferred_chunks", "compressor", "filters"):
            ds[name].encoding.pop(k, None)
    if "time" in ds.dims:
        ds = ds.chunk({"time": min(chunk_time, ds.sizes["time"])})
    enc = _encoding(ds)
    with atomic_path(path) as tmp:
        ds.to_zarr(tmp, mode="w", encoding=enc, consolidated=True, zarr_format=2)
    return Path(path)


def aimip_filename(var: str, model: str, experiment: str, member: str, start: str, end: str,
                   grid_label: str = "gn", table: str = "Amon") -> str:
    """AI-MIP / CMIP file name; ``start``/``end`` as ``YYYYMM``."""
    for part, label in ((model, "model"), (experiment, "experiment"), (member, "member")):
        if not part or "_" in part or "/" in part:
            raise ValueError(f"{label} {part!r} must be non-empty without '_' or '/'")
    return f"{var}_{table}_{model}_{experiment}_{member}_{grid_label}_{start}-{end}.nc"


def _as_cmip_variable(ds: xr.Dataset, name: str) -> tuple[str, xr.Dataset]:
    """One variable as its own CMIP file dataset (``zg500`` -> ``zg`` on a 1-level plev)."""
    var = catalogue.variable(name)
    da = ds[name]
    if len(var.levels) == 1:
        da = da.expand_dims(plev=plev_coord(var.levels), axis=da.dims.index("lat"))
    out = da.to_dataset(name=var.name)
    out[var.name].attrs = catalogue.cf_attrs(name)
    if "time_bnds" in ds.variables:
        out["time_bnds"] = ds["time_bnds"]
    out.attrs = {**ds.attrs, "variable_id": var.name, "frequency": "mon", "table_id": "Amon"}
    return var.name, out


def write_aimip(ds: xr.Dataset, out_dir: str | os.PathLike, model: str, experiment: str,
                grid_label: str = "gn", members: list[str] | None = None) -> list[Path]:
    """Write every variable (and member) of ``ds`` as AI-MIP per-variable netCDF files.

    Members are labelled ``r<N>i1p1f1`` from the ``member`` coordinate (integers, 1-based
    by default) unless ``members`` gives the labels. Returns the paths written.
    """
    ds = conform(ds)
    out_dir = Path(out_dir)
    period = period_of(ds)
    start, end = period.start.compact, period.end.compact
    if "member" in ds.dims:
        labels = members or [f"r{int(m)}i1p1f1" for m in ds["member"].values]
        per_member = [(lab, ds.isel(member=i, drop=True)) for i, lab in enumerate(labels)]
    else:
        per_member = [((members or ["r1i1p1f1"])[0], ds)]
    written: list[Path] = []
    for label, mds in per_member:
        for name in mds.data_vars:
            if name == "time_bnds" or "time" not in mds[name].dims:
                continue
            cmip_name, vds = _as_cmip_variable(mds, name)
            vds.attrs.update({"source_id": model, "experiment_id": experiment,
                              "variant_label": label, "grid_label": grid_label})
            path = out_dir / aimip_filename(cmip_name, model, experiment, label, start, end, grid_label)
            written.append(write_netcdf(vds, path))
    return written


def write_prepared(ds: xr.Dataset, out_dir: str | os.PathLike, manifest: dict) -> Path:
    """Write a prepared dataset directory (``dataset.zarr`` + ``manifest.json``).

    Refuses a directory that already holds a prepared dataset with a different manifest
    ``fingerprint``; an identical one is rewritten in place.
    """
    out_dir = Path(out_dir)
    existing = read_manifest(out_dir)
    if existing is not None and existing.get("fingerprint") != manifest.get("fingerprint"):
        raise InputError("output directory already holds a different dataset (fingerprint "
                         f"{existing.get('fingerprint')!r}, this one {manifest.get('fingerprint')!r}); "
                         "choose another --out or delete it", out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_zarr(conform(ds), out_dir / PREPARED_STORE)
    write_json(manifest, out_dir / MANIFEST)
    return out_dir


def read_manifest(out_dir: str | os.PathLike) -> dict | None:
    """The manifest of a prepared dataset directory, or None if there is none."""
    path = Path(out_dir) / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"manifest is not valid JSON ({exc})", path) from None
