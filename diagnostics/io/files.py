"""Finding and opening the files a user names: directories, globs, lists; netCDF and zarr.

Every open is lazy (dask, the store's own chunks) and decodes times with cftime so any
model calendar works. Library errors from unreadable files (a truncated netCDF raises
``OSError`` or ``ValueError`` inside netCDF4/h5py) become one-line :class:`InputError`
naming the file.
"""

from __future__ import annotations

import glob
import os
import warnings
from pathlib import Path

import numpy as np
import xarray as xr

from ..data.contract import NC_DEFAULT_FILL
from ..data.errors import InputError
from .names import find_drs_files
from .writer import MANIFEST, PREPARED_STORE

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
GRIB_SUFFIXES = (".grib", ".grb", ".grib1", ".grib2", ".grb2")

_CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)


def is_zarr_store(path: str | os.PathLike) -> bool:
    """A directory holding zarr v2 or v3 metadata at its root."""
    p = Path(path)
    return p.is_dir() and any((p / m).exists() for m in (".zgroup", ".zmetadata", "zarr.json", ".zattrs"))


def is_prepared_dir(path: str | os.PathLike) -> bool:
    """A prepared dataset directory (``manifest.json`` + ``dataset.zarr``)."""
    p = Path(path)
    return p.is_dir() and (p / MANIFEST).is_file() and (p / PREPARED_STORE).is_dir()


def is_netcdf(path: str | os.PathLike) -> bool:
    return Path(path).is_file() and str(path).lower().endswith(NETCDF_SUFFIXES)


def drs_summaries(paths: list[str]) -> list[str]:
    """``<dir>: CMIP DRS tree: <what was found>`` for each given directory read as a DRS tree."""
    out = []
    for text in paths:
        p = Path(text)
        if p.is_dir() and not (is_prepared_dir(p) or is_zarr_store(p)) and \
                not any(is_netcdf(f) or is_grib(f) for f in p.iterdir()):
            out.append(f"{text}: CMIP DRS tree: {find_drs_files(p).summary}")
    return out


def is_grib(path: str | os.PathLike) -> bool:
    return Path(path).is_file() and str(path).lower().endswith(GRIB_SUFFIXES)


def expand_paths(paths: str | os.PathLike | list) -> list[str]:
    """Expand one path, a glob, or a list of them into the files/stores to read, sorted.

    A prepared directory or a zarr store is one entry; any other directory stands for the
    netCDF (or GRIB) files directly inside it or, holding none, for the monthly files of the CMIP
    DRS tree below it (:func:`.names.find_drs_files`: Amon, latest version).
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise InputError("no input paths given")
    out: list[str] = []
    for item in items:
        text = str(item)
        if not os.path.exists(text):
            matches = sorted(glob.glob(text))
            if not matches:
                what = "no files match the pattern" if glob.has_magic(text) else "no such file or directory"
                raise InputError(what, text)
            out.extend(expand_paths(matches))
            continue
        p = Path(text)
        if p.is_dir() and not (is_prepared_dir(p) or is_zarr_store(p)):
            files = sorted(str(f) for f in p.iterdir() if is_netcdf(f) or is_grib(f))
            if not files:  # a CMIP DRS tree (or part of one): the monthly files below
                files = find_drs_files(p).files
            if not files:
                raise InputError("directory holds no prepared dataset (manifest.json + dataset.zarr), "
                                 "no zarr store, no netCDF or GRIB files and no CMIP DRS tree of monthly "
                                 "(Amon) files below it", text)
            out.extend(files)
        else:
            out.append(text)
    seen: set[str] = set()
    return [p for p in out if not (p in seen or seen.add(p))]


#: Target bytes of one dask chunk when a netCDF file is opened (largest variable, all its levels).
NETCDF_CHUNK_BYTES = 16 * 2**20


def netcdf_time_chunk(ds: xr.Dataset, dim: str, target: int = NETCDF_CHUNK_BYTES) -> int:
    """Time steps per dask chunk: as many as fit in ``target`` bytes of the largest variable
    with a ``dim`` axis (at least 1). A 0.25-degree file holds 4 months of a 2-D field per chunk
    and 1 of a 37-level one; a coarse file (the demo's 5.625 degrees: 8 KB a month) is one
    chunk, because dask's per-task overhead
    would otherwise dominate (measured: one task per month made ``md-diagnose`` of the demo
    spend most of its time scheduling 186,000 tasks)."""
    sizes = [v.dtype.itemsize * int(np.prod([n for d, n in v.sizes.items() if d != dim]))
             for v in ds.data_vars.values() if dim in v.dims]
    return max(1, target // max(sizes, default=1))




#: Attribute naming where a field's missing cells may come from (see :func:`mask_default_fill`).
DEFAULT_FILL_ATTR = "missing_value_source"
DEFAULT_FILL_NOTE = (f"the file declares no _FillValue: cells holding the netCDF default fill {NC_DEFAULT_FILL:.4g} "
                     "(never written) are read as missing")


def library_reason(exc: Exception) -> str:
    """A short reason from a reading library's exception, without its advice or links.

    xarray's "found no engine" error is 430 characters of installation hints: it means the
    bytes are neither netCDF-3 nor netCDF-4/HDF5.
    """
    text = " ".join(str(exc).split())
    if "match in any of xarray's currently installed IO backends" in text or "Unknown file format" in text:
        return "not a netCDF-3 or netCDF-4/HDF5 file"
    if "HDF error" in text or "truncated" in text.lower():
        return "the file is truncated or damaged"
    text = text.split(". Consider")[0].split(" see: ")[0]
    return f"{type(exc).__name__}: {text[:160]}"


def mask_default_fill(ds: xr.Dataset) -> xr.Dataset:
    """NaN for the netCDF default fill in float variables that declare no ``_FillValue``
    (and no ``missing_value``): CMIP writers that mask below-ground cells without declaring a
    fill leave 9.97e36 there, which would otherwise read as data (lazy)."""
    for name, da in ds.data_vars.items():
        declared = {"_FillValue", "missing_value"} & (set(da.encoding) | set(da.attrs))
        if declared or not np.issubdtype(da.dtype, np.floating):
            continue
        masked = da.where(np.abs(da) < 0.5 * NC_DEFAULT_FILL)
        masked.attrs, masked.encoding = dict(da.attrs), da.encoding
        # said in any "holds NaN" message: a NaN here may be a cell the writer never filled
        masked.attrs[DEFAULT_FILL_ATTR] = DEFAULT_FILL_NOTE
        ds[name] = masked
    return ds


#: The engine every netCDF file is opened with (netCDF-3 and netCDF-4/HDF5 alike). Naming it keeps
#: xarray from trying every installed backend: its cfgrib backend imports ecCodes, whose bundled
#: libraries crash the interpreter at exit once pyproj (cartopy, the report) is loaded too
#: (``double free or corruption``, exit 134, measured with eccodes 2.50 and pyproj 3.7).
NETCDF_ENGINE = "netcdf4"


def open_netcdf(path: str | os.PathLike, decode_times: bool = True) -> xr.Dataset:
    """Open one netCDF file lazily with cftime times, in time chunks of :func:`netcdf_time_chunk`.

    Explicit chunks along time matter: a contiguous (unchunked) 0.25-degree file would
    otherwise be one dask chunk, read whole at the first access. The netCDF default fill of
    float variables without a declared fill is masked (:func:`mask_default_fill`).
    """
    try:
        ds = xr.open_dataset(path, engine=NETCDF_ENGINE, decode_times=_CFTIME if decode_times else False,
                             decode_timedelta=False)
        dim = next((d for d in ("time", "valid_time") if d in ds.dims), None)
        return mask_default_fill(ds.chunk({dim: netcdf_time_chunk(ds, dim)} if dim else {}))
    except (OSError, ValueError, RuntimeError, KeyError, IndexError) as exc:
        reason = library_reason(exc) if has_netcdf_signature(path) else "not a netCDF-3 or netCDF-4/HDF5 file"
        raise InputError(f"cannot read as netCDF ({reason}); expected a netCDF-3 or "
                         "netCDF-4 file (.nc)", path) from None


def has_netcdf_signature(path: str | os.PathLike) -> bool:
    """Whether the file starts like netCDF-3 (``CDF`` + version byte) or HDF5 (its 8-byte signature,
    which HDF5 may place at 0, 512, 1024, ... bytes); an unreadable file counts as one (the open
    error then says why)."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
            if head[:3] == b"CDF" and head[3:4] in (b"\x01", b"\x02", b"\x05"):
                return True
            for offset in (0, 512, 1024, 2048, 4096):
                f.seek(offset)
                if f.read(8) == b"\x89HDF\r\n\x1a\n":
                    return True
    except OSError:
        return True
    return False


GRIB_HELP = ("GRIB is read with cfgrib and ecCodes (pip install cfgrib eccodes); without them, convert "
             "it first (ecCodes: grib_to_netcdf -o era5.nc era5.grib, or ask the CDS for netCDF)")


def open_grib(path: str | os.PathLike) -> list[xr.Dataset]:
    """Open one GRIB file lazily with cfgrib: one dataset per hypercube (cfgrib splits messages
    whose level types or steps differ, e.g. ``2t`` at 2 m beside ``sp`` at the surface).

    No index file is written beside the source (``indexpath=""``): sources may be read-only.
    """
    try:
        import cfgrib
    except ImportError:
        raise InputError(f"cannot read GRIB here: {GRIB_HELP}", path) from None
    try:
        with warnings.catch_warnings():  # cfgrib's own xr.merge call: a FutureWarning about xarray defaults
            warnings.simplefilter("ignore", FutureWarning)
            parts = cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""}, cache=False)
    except Exception as exc:  # eccodes raises its own types for damaged messages
        raise InputError(f"cannot read as GRIB ({library_reason(exc)}); expected GRIB 1 or 2 messages "
                         "such as the CDS hands out", path) from None
    if not parts:
        raise InputError("GRIB file holds no message cfgrib can read", path)
    out = []
    for ds in parts:
        dim = next((d for d in ("time", "valid_time") if d in ds.dims), None)
        out.append(ds.chunk({dim: netcdf_time_chunk(ds, dim)} if dim else {}))
    return out


def open_zarr(path: str | os.PathLike, use_cftime: bool = False) -> xr.Dataset:
    """Open a zarr store lazily with its own chunks (consolidated metadata when present)."""
    kwargs = {"decode_times": _CFTIME} if use_cftime else {}
    try:
        return xr.open_zarr(path, chunks={}, decode_timedelta=False, **kwargs)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"cannot read as a zarr store ({library_reason(exc)}); expected a zarr v2 or v3 "
                         "store (a directory with .zgroup/.zmetadata or zarr.json)", path) from None
