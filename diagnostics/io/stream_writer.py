"""Streaming writers: AI-MIP per-variable netCDF (or one zarr store) filled one month at a time.

A rollout produces one month of every member at a time and must not hold the run in
memory, so :mod:`.writer` (which writes a finished ``xarray.Dataset``) does not fit. These
writers create every output file up front under a temporary name, write each month into
its slot as it is produced, and rename the files to their final names only in
:meth:`finalise`, so a final name never holds an unfinished run.

netCDF files are created with a fixed-length ``time`` axis and *contiguous* float32
storage whose space is allocated at creation. Writing a month then changes raw data
bytes only, never HDF5 metadata, so a process killed at any instant (even SIGKILL) leaves
every file readable; the months after the last flushed one are simply rewritten on
resume. (An unlimited ``time`` axis would need chunked storage, whose index is metadata
updated by every write.) File names come from :func:`.writer.aimip_filename`, variable
attributes from the catalogue, the time axis from :func:`..data.timeaxis.monthly_axis`.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path

import cftime
import netCDF4
import numpy as np
import xarray as xr

from ..data import catalogue
from ..data.contract import plev_coord
from ..data.errors import InputError
from ..data.timeaxis import TIME_UNITS, Month, monthly_axis
from .writer import aimip_filename

FILL = np.float32(1e20)  # CMIP _FillValue
PARTIAL = ".partial"


@dataclass(frozen=True)
class StreamField:
    """One output variable: catalogue store name and its pressure levels (hPa) if it has a plev axis."""

    name: str
    levels: tuple[int, ...] = ()

    @property
    def cmip_name(self) -> str:
        return catalogue.variable(self.name).name

    @property
    def shape_extra(self) -> tuple[int, ...]:
        return (len(self.levels),) if self.levels else ()


def stream_fields(channels: list[tuple[str, int | None]], extra: tuple[str, ...] = ()) -> list[StreamField]:
    """Group model channels ``(store name, level hPa | None)`` into output variables.

    3-D variables keep the levels present (surface first, a subset of the catalogue's);
    single-level upper-air fields such as ``zg500`` get their one-element ``plev``.
    ``extra`` adds single-level fields (e.g. the forcings ``tos``, ``siconc``).
    """
    levels: dict[str, list[int]] = {}
    for name, level in list(channels) + [(n, None) for n in extra]:
        var = catalogue.variable(name)
        lev = [level] if level is not None else ([var.levels[0]] if len(var.levels) == 1 else [])
        levels.setdefault(name, []).extend(lev)
    out = []
    for name, lev in levels.items():
        order = catalogue.PLEV_HPA
        out.append(StreamField(name, tuple(sorted(set(lev), key=lambda h: order.index(h) if h in order else h))))
    return out


def _raise_open_file_limit(needed: int) -> None:
    """Keeping one netCDF file per variable and member open can exceed the soft limit of open files."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed + 64
    if soft != resource.RLIM_INFINITY and soft < want:
        if hard != resource.RLIM_INFINITY and hard < want:
            raise InputError(f"the run needs about {want} open files but the limit is {hard}; "
                             "use fewer --members per run or raise `ulimit -n`")
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


class _StreamTarget:
    """What both streaming writers know about the run: fields, members, period, grid, attributes."""

    def __init__(self, out_dir: str | os.PathLike, fields: list[StreamField], members: list[int], model: str,
                 experiment: str, start: Month, end: Month, lat: np.ndarray, lon: np.ndarray,
                 calendar: str = "proleptic_gregorian", grid_label: str = "gn", attrs: dict | None = None):
        self.out = Path(out_dir)
        self.fields, self.members = list(fields), list(members)
        self.model, self.experiment, self.grid_label = model, experiment, grid_label
        self.start, self.end, self.calendar = start, end, calendar
        self.lat, self.lon = np.asarray(lat, float), np.asarray(lon, float)
        self.attrs = dict(attrs or {})
        self.n_time = end.index - start.index + 1


class AimipStreamWriter(_StreamTarget):
    """One netCDF file per variable and member, ``<var>_Amon_<model>_<exp>_r<N>i1p1f1_<grid>_<start>-<end>.nc``.

    Usage: ``create()`` (new run) or nothing (resume), then ``open()``; ``write(t, member,
    name, values)`` for each month; ``sync()`` after each month; ``finalise()`` at the end.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._open: dict[tuple[str, int], netCDF4.Variable] = {}
        self._datasets: list[netCDF4.Dataset] = []

    # ------------------------------------------------------------------ names
    @staticmethod
    def label(member: int) -> str:
        return f"r{member}i1p1f1"

    def final_path(self, field: StreamField, member: int) -> Path:
        return self.out / aimip_filename(field.cmip_name, self.model, self.experiment, self.label(member),
                                         self.start.compact, self.end.compact, self.grid_label)

    def partial_path(self, field: StreamField, member: int) -> Path:
        final = self.final_path(field, member)
        return final.with_name(f".{final.name}{PARTIAL}")

    def paths(self) -> list[tuple[Path, Path]]:
        """(temporary, final) path of every file."""
        return [(self.partial_path(f, m), self.final_path(f, m)) for m in self.members for f in self.fields]

    # ------------------------------------------------------------------ creation
    def _create_one(self, field: StreamField, member: int) -> None:
        axis = monthly_axis(self.start, self.end, self.calendar)
        path = self.partial_path(field, member)
        path.parent.mkdir(parents=True, exist_ok=True)
        with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
            nc.set_fill_off()  # slots are written month by month; no need to pre-fill the file
            nc.createDimension("time", self.n_time)
            nc.createDimension("bnds", 2)
            dims = ["time"]
            if field.levels:
                nc.createDimension("plev", len(field.levels))
                dims.append("plev")
            nc.createDimension("lat", self.lat.size)
            nc.createDimension("lon", self.lon.size)
            dims += ["lat", "lon"]
            t = nc.createVariable("time", "f8", ("time",))
            t.setncatts({"units": TIME_UNITS, "calendar": self.calendar, "standard_name": "time",
                         "long_name": "time", "axis": "T", "bounds": "time_bnds"})
            t[:] = cftime.date2num(list(axis["time"].values), TIME_UNITS, self.calendar)
            tb = nc.createVariable("time_bnds", "f8", ("time", "bnds"))
            tb[:] = cftime.date2num(axis["time_bnds"].values, TIME_UNITS, self.calendar)
            if field.levels:
                coord = plev_coord(field.levels)
                p = nc.createVariable("plev", "f8", ("plev",))
                p.setncatts(coord.attrs)
                p[:] = coord.values
            for name, values, attrs in (
                    ("lat", self.lat, {"units": "degrees_north", "standard_name": "latitude",
                                       "long_name": "latitude", "axis": "Y"}),
                    ("lon", self.lon, {"units": "degrees_east", "standard_name": "longitude",
                                       "long_name": "longitude", "axis": "X"})):
                v = nc.createVariable(name, "f8", (name,))
                v.setncatts(attrs)
                v[:] = values
            v = nc.createVariable(field.cmip_name, "f4", tuple(dims), contiguous=True, fill_value=FILL)
            v.setncatts({**catalogue.cf_attrs(field.name), "missing_value": FILL})
            # Writing the last slot allocates the whole contiguous block now, so that later
            # writes touch raw data only (see the module docstring).
            v[self.n_time - 1] = np.full(v.shape[1:], FILL, np.float32)
            nc.setncatts({"Conventions": "CF-1.8", **{k: str(val) for k, val in self.attrs.items()},
                          "source_id": self.model, "experiment_id": self.experiment,
                          "variant_label": self.label(member), "grid_label": self.grid_label,
                          "variable_id": field.cmip_name, "frequency": "mon", "table_id": "Amon"})

    def create(self) -> None:
        """Create every temporary file (coordinates, time axis, attributes, allocated data)."""
        for m in self.members:
            for f in self.fields:
                self._create_one(f, m)

    def open(self) -> None:
        """Open every temporary file for writing (after :meth:`create`, or to resume)."""
        _raise_open_file_limit(len(self.fields) * len(self.members))
        for m in self.members:
            for f in self.fields:
                path = self.partial_path(f, m)
                if not path.exists():
                    raise InputError("an output file of the unfinished run is missing; cannot resume "
                                     "(delete the directory and start again)", path)
                try:
                    nc = netCDF4.Dataset(path, "r+")
                except OSError as exc:
                    raise InputError(f"an output file of the unfinished run cannot be opened ({exc})", path) from None
                self._datasets.append(nc)
                self._open[(f.name, m)] = nc[f.cmip_name]

    # ------------------------------------------------------------------ writing
    def write(self, t: int, member: int, name: str, values: np.ndarray) -> None:
        """Month ``t`` (0-based from ``start``) of one field and member; NaN is stored as _FillValue."""
        values = np.asarray(values, dtype=np.float32)
        var = self._open[(name, member)]
        var[t] = np.where(np.isfinite(values), values, FILL).reshape(var.shape[1:])

    def fill_from(self, t: int) -> None:
        """Mark months ``t..end`` as missing (_FillValue), e.g. after a run stopped."""
        for var in self._open.values():
            for i in range(t, self.n_time):
                var[i] = np.full(var.shape[1:], FILL, np.float32)

    def sync(self) -> None:
        """Hand all written data to the operating system (survives the process being killed)."""
        for nc in self._datasets:
            nc.sync()

    def close(self) -> None:
        for nc in self._datasets:
            if nc.isopen():
                nc.close()
        self._datasets, self._open = [], {}

    @staticmethod
    def _close_completely(path: Path) -> None:
        """Open and close a temporary file once, so that HDF5 clears the "open for write" flag
        (superblock byte 11) that a process killed with the file open leaves set: a file renamed
        with the flag set differs in bytes from an uninterrupted run's and some readers refuse it."""
        try:
            netCDF4.Dataset(path, "r+").close()
        except OSError as exc:
            raise InputError(f"an output file of the unfinished run cannot be opened ({exc})", path) from None

    def finalise(self) -> list[Path]:
        """Close every temporary file completely, then rename it to its final AI-MIP name
        (idempotent; after a kill, files the process had open are closed properly first)."""
        opened_here = bool(self._datasets)
        self.close()
        out = []
        for partial, final in self.paths():
            if partial.exists():
                if not opened_here:  # resumed while finalising: the killed process may have left it open
                    self._close_completely(partial)
                os.replace(partial, final)
            if not final.exists():
                raise InputError("output file vanished before the run was finalised", partial)
            out.append(final)
        return out


class ZarrStreamWriter(_StreamTarget):
    """All members and variables in one contract zarr store (dims member, time, [plev], lat, lon).

    Store name ``<model>_<experiment>_<grid>_<start>-<end>.zarr``; one chunk per member,
    month and variable, so a month's write replaces whole chunks and a killed run is
    resumed by rewriting the months after the last flushed one.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._arrays: dict = {}
        self._row = {m: i for i, m in enumerate(self.members)}

    def final_path(self) -> Path:
        for part in (self.model, self.experiment):
            if not part or "_" in part or "/" in part:
                raise ValueError(f"{part!r} must be non-empty without '_' or '/'")
        span = f"{self.start.compact}-{self.end.compact}"
        return self.out / f"{self.model}_{self.experiment}_{self.grid_label}_{span}.zarr"

    def partial_path(self) -> Path:
        final = self.final_path()
        return final.with_name(f".{final.name}{PARTIAL}")

    def paths(self) -> list[tuple[Path, Path]]:
        return [(self.partial_path(), self.final_path())]

    def create(self) -> None:
        import dask.array as da

        axis = monthly_axis(self.start, self.end, self.calendar)
        coords = {"member": ("member", np.asarray(self.members, np.int32)), "time": axis["time"],
                  "lat": ("lat", self.lat, {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}),
                  "lon": ("lon", self.lon, {"units": "degrees_east", "standard_name": "longitude", "axis": "X"})}
        data_vars, encoding = {}, {}
        layered = [f for f in self.fields if catalogue.variable(f.name).is_3d]
        if len({f.levels for f in layered}) > 1:
            raise InputError("--format zarr holds one plev axis, but the model's 3-D variables have different "
                             f"levels ({', '.join(f'{f.name} {list(f.levels)}' for f in layered)}); "
                             "use --format netcdf")
        if layered:
            coords["plev"] = plev_coord(layered[0].levels)
        for f in self.fields:
            extra = f.shape_extra if catalogue.variable(f.name).is_3d else ()  # zg500 stays 2-D in the contract
            dims = ("member", "time") + (("plev",) if extra else ()) + ("lat", "lon")
            shape = (len(self.members), self.n_time) + extra + (self.lat.size, self.lon.size)
            chunks = (1, 1) + extra + (self.lat.size, self.lon.size)
            data_vars[f.name] = xr.DataArray(da.zeros(shape, chunks=chunks, dtype=np.float32), dims=dims,
                                             attrs=catalogue.cf_attrs(f.name))
            encoding[f.name] = {"dtype": "float32", "_FillValue": FILL, "chunks": chunks}
        ds = xr.Dataset(data_vars, coords=coords)
        ds["time_bnds"] = axis["time_bnds"]
        ds.attrs = {"Conventions": "CF-1.8", **{k: str(v) for k, v in self.attrs.items()},
                    "source_id": self.model, "experiment_id": self.experiment, "grid_label": self.grid_label}
        encoding["time"] = {"units": TIME_UNITS, "calendar": self.calendar, "dtype": "float64"}
        encoding["time_bnds"] = {"units": TIME_UNITS, "calendar": self.calendar, "dtype": "float64"}
        path = self.partial_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        # metadata and coordinates only: the data chunks are written month by month
        ds.to_zarr(path, mode="w", compute=False, encoding=encoding, consolidated=True, zarr_format=2)

    def open(self) -> None:
        import zarr

        path = self.partial_path()
        if not path.exists():
            raise InputError("the output store of the unfinished run is missing; cannot resume", path)
        group = zarr.open_group(str(path), mode="r+", zarr_format=2)
        self._arrays = {f.name: group[f.name] for f in self.fields}

    def write(self, t: int, member: int, name: str, values: np.ndarray) -> None:
        """Month ``t`` of one field and member (one chunk); NaN is stored as _FillValue."""
        values = np.asarray(values, dtype=np.float32)
        arr = self._arrays[name]
        arr[self._row[member], t] = np.where(np.isfinite(values), values, FILL).reshape(arr.shape[2:])

    def fill_from(self, t: int) -> None:
        """Mark months ``t..end`` as missing."""
        for arr in self._arrays.values():
            arr[:, t:] = FILL

    def sync(self) -> None:
        """zarr writes each chunk to its own file immediately; nothing is buffered."""

    def close(self) -> None:
        self._arrays = {}

    def finalise(self) -> list[Path]:
        """Rename the temporary store to its final name (idempotent)."""
        self.close()
        partial, final = self.paths()[0]
        if partial.exists():
            os.replace(partial, final)
        return [final]
