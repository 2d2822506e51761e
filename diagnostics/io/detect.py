"""Which layout a set of input paths is in.

Layouts: ``prepared`` (manifest.json + dataset.zarr from md-prepare), ``wb2-zarr``
(WeatherBench 2 ERA5), ``contract-zarr``, ``cds-netcdf`` (ERA5 monthly means from the CDS),
``cds-grib`` (the same in GRIB, read with cfgrib), ``aimip`` (CMIP-named per-variable
files), ``contract-netcdf``. Decided from names and
metadata only (no data is read).
"""

from __future__ import annotations

from pathlib import Path

from ..data import catalogue
from ..data.errors import InputError
from .aimip import parse_name
from .files import expand_paths, is_grib, is_netcdf, is_prepared_dir, is_zarr_store, open_netcdf, open_zarr
from .wb2 import is_wb2

LAYOUTS: tuple[str, ...] = ("prepared", "wb2-zarr", "cds-netcdf", "cds-grib", "aimip", "contract-netcdf",
                            "contract-zarr")

_CDS_NAMES = {n for v in catalogue.VARIABLES.values() for n in v.cds} | {"z", "tp", "avg_tprate", "mtpr"}


def _is_catalogue_name(name: str) -> bool:
    try:
        catalogue.variable(name)
    except KeyError:
        return False
    return True


def _netcdf_layout(path: str) -> str:
    ds = open_netcdf(path, decode_times=False)
    try:
        dims = set(ds.dims)
        names = {str(n) for n in ds.data_vars}
        if ({"latitude", "longitude"} <= dims or "valid_time" in dims) and names & _CDS_NAMES:
            return "cds-netcdf"
        if {"lat", "lon"} & dims and any(_is_catalogue_name(n) for n in names):
            return "contract-netcdf"
    finally:
        ds.close()
    raise InputError("unknown layout: neither an ERA5 CDS file (latitude/longitude with short names "
                     "such as t2m, z) nor a contract/AI-MIP file (lat/lon with CMIP names such as tas)", path)


def _zarr_layout(path: str) -> str:
    ds = open_zarr(path)
    if is_wb2(ds):
        return "wb2-zarr"
    if {"lat", "lon"} <= set(ds.dims) and any(_is_catalogue_name(str(n)) for n in ds.data_vars):
        return "contract-zarr"
    raise InputError("unknown zarr layout: neither WeatherBench 2 (latitude/longitude, long names such as "
                     "2m_temperature) nor the contract (lat/lon, CMIP names such as tas)", path)


def layout_of(path: str) -> str:
    """Layout of one expanded path (file, zarr store or prepared directory)."""
    p = Path(path)
    if is_prepared_dir(p):
        return "prepared"
    if is_zarr_store(p) or (p.is_dir() and p.suffix == ".zarr"):
        return _zarr_layout(path)
    if is_netcdf(p):
        return "aimip" if parse_name(p) is not None else _netcdf_layout(path)
    if is_grib(p):
        return "cds-grib"
    if p.is_file():
        raise InputError("unknown layout: not a netCDF file (.nc), a GRIB file (.grib), a zarr store or a "
                         "prepared directory", path)
    raise InputError("no such file or directory", path)


def detect_layout(paths: str | list[str]) -> str:
    """The single layout of ``paths`` (files, directories or globs; expanded first).

    InputError for unknown or mixed layouts. A prepared directory or a WB2 store must be
    given alone; AI-MIP-named netCDF files are ``aimip`` as a group; other netCDF files are
    ``cds-netcdf`` or ``contract-netcdf``.
    """
    paths = expand_paths(paths)
    layouts = {p: layout_of(p) for p in paths}
    kinds = set(layouts.values())
    if len(kinds) > 1:
        # blame a file of the rarer layout (the odd one out), naming what the others are
        count = {k: sum(1 for v in layouts.values() if v == k) for k in kinds}
        major = max(sorted(kinds), key=lambda k: count[k])
        odd = next(p for p, k in layouts.items() if k != major)
        raise InputError(f"this {layouts[odd]} input is mixed with {count[major]} {major} input(s) (such as "
                         f"{next(p for p, k in layouts.items() if k == major)}); give one layout per call", odd)
    kind = kinds.pop()
    if kind in ("prepared", "wb2-zarr") and len(paths) > 1:
        raise InputError(f"give a single {kind} store per call ({len(paths)} given)", paths[0])
    return kind
