"""Prescribed forcing (SST ``tos``, sea ice ``siconc``) and initial states for a rollout.

Both come from a prepared dataset directory (``dataset.zarr`` + ``manifest.json``, from
md-prepare or md-synth). Forcing is read in blocks of :data:`BLOCK` months and only the
current block is held, so memory does not grow with the length of the run.

Warming experiments (AI-MIP aimip-p2k / aimip-p4k): ``tos + offset`` wherever SST is defined
(finite; NaN over land stays NaN), sea ice unchanged. The sum is taken in float64 and rounded
once to float32, so the stored SST differs from the historical one by the offset to within
float32 rounding (half a unit in the last place, 1.5e-5 K near 290 K).
"""

from __future__ import annotations

import os
import re

import numpy as np
import xarray as xr

from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Month, calendar_of, month_index

from .data import open_prepared_dataset
from .model import DataSpec

BLOCK = 12  # months read at once (the prepared store's time chunk)


def check_same_grid(ds: xr.Dataset, spec: DataSpec, what: str, source: str | os.PathLike) -> None:
    """InputError unless the dataset's lat/lon equal the checkpoint's (the model runs on one grid)."""
    lat, lon = np.asarray(ds["lat"].values, float), np.asarray(ds["lon"].values, float)
    ok = (lat.shape + lon.shape == spec.shape and np.allclose(lat, spec.lat, atol=1e-4)
          and np.allclose(lon, spec.lon, atol=1e-4))
    if not ok:
        raise InputError(f"the checkpoint's grid is {spec.shape[0]} x {spec.shape[1]} but the {what} is on "
                         f"{lat.size} x {lon.size}; give data on the checkpoint's grid (md-prepare --grid)", source)


def _covered(idx: np.ndarray) -> str:
    return f"{Month.from_index(int(idx.min()))}..{Month.from_index(int(idx.max()))}" if idx.size else "no months"


def _month_positions(ds: xr.Dataset, start: Month, end: Month, what: str, source) -> np.ndarray:
    """Positions along ``time`` of the run's months start..end; InputError naming the missing ones."""
    idx = month_index(ds["time"])
    pos = {int(i): p for p, i in enumerate(idx)}
    wanted = range(start.index, end.index + 1)
    missing = [i for i in wanted if i not in pos]
    if missing:
        first, last = Month.from_index(missing[0]), Month.from_index(missing[-1])
        span = str(first) if first == last else f"{first}..{last}"
        raise InputError(f"{what} is missing {len(missing)} month(s) ({span}) of the run {start}..{end}; "
                         f"the dataset covers {_covered(idx)}", source)
    return np.array([pos[i] for i in wanted])


def _month_position(ds: xr.Dataset, month: Month, source) -> int:
    """Position along ``time`` of the initial state's month (not a run span: issue 16's
    "the run 1990-01..1990-01" for a run of 2000-01..2000-06 came from reusing the above)."""
    idx = month_index(ds["time"])
    hit = np.flatnonzero(idx == month.index)
    if hit.size == 0:
        raise InputError(f"the initial-state dataset has no month {month} (the initial state); it covers "
                         f"{_covered(idx)}; give --initial-state YYYY-MM within it, or another dataset", source)
    return int(hit[0])


class ForcingReader:
    """Monthly forcing ``[F, H, W]`` (float32, physical units, model forcing order) for months start..end."""

    def __init__(self, path: str | os.PathLike, spec: DataSpec, start: Month, end: Month, sst_offset: float = 0.0):
        self.path, self.spec = str(path), spec
        self.ds = open_prepared_dataset(path)
        missing = [n for n in spec.forcing_names if n not in self.ds.data_vars]
        if missing:
            raise InputError(f"forcing dataset has no {missing} (the checkpoint needs {list(spec.forcing_names)})",
                             path)
        check_same_grid(self.ds, spec, "forcing", path)
        self.start, self.end, self.sst_offset = start, end, float(sst_offset)
        self.positions = _month_positions(self.ds, start, end, "forcing", path)
        self.calendar = calendar_of(self.ds)
        self._block: tuple[int, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.positions)

    def calendar_month(self, k: int) -> int:
        """Calendar month 1..12 of run month ``k`` (0 = start)."""
        return Month.from_index(self.start.index + k).month

    def _load_block(self, b: int) -> np.ndarray:
        pos = self.positions[b * BLOCK:(b + 1) * BLOCK]
        sub = self.ds.isel(time=pos)
        out = np.empty((len(pos), len(self.spec.forcing_names), *self.spec.shape), np.float32)
        for f, name in enumerate(self.spec.forcing_names):
            values = sub[name].transpose("time", "lat", "lon").values.astype(np.float64)
            if name == "tos" and self.sst_offset:
                values = np.where(np.isfinite(values), values + self.sst_offset, values)
            out[:, f] = values
        return out

    def month(self, k: int) -> np.ndarray:
        """Forcing of run month ``k`` (SST offset applied), ``[F, H, W]``."""
        b = k // BLOCK
        if self._block is None or self._block[0] != b:
            self._block = (b, self._load_block(b))
        return self._block[1][k % BLOCK]


def initial_state(path: str | os.PathLike, spec: DataSpec, month: Month) -> np.ndarray:
    """The reference state ``[C, H, W]`` (float32, catalogue units, model channel order) of ``month``."""
    ds = open_prepared_dataset(path)
    check_same_grid(ds, spec, "initial-state dataset", path)
    pos = _month_position(ds, month, path)
    out = np.empty((len(spec.channels), *spec.shape), np.float32)
    for c, (name, level) in enumerate(spec.channels):
        if name not in ds.data_vars:
            raise InputError(f"no state variable {name!r} for the initial condition (found "
                             f"{sorted(map(str, ds.data_vars))}); give --initial-state DIR with the model's "
                             "state fields", path)
        da = ds[name].isel(time=pos)
        if level is not None:
            hit = np.flatnonzero(np.isclose(np.asarray(da["plev"].values, float), level * 100.0))
            if hit.size == 0:
                raise InputError(f"variable {name!r} has no level {level} hPa for the initial condition", path)
            da = da.isel(plev=int(hit[0]))
        out[c] = da.transpose("lat", "lon").values
    bad = [spec.labels[c] for c in range(out.shape[0]) if not np.isfinite(out[c]).all()]
    if bad:
        raise InputError(f"the initial state of {month} holds NaN in {bad}", path)
    return out


_DATE = re.compile(r"^\d{4}-?\d{2}$")


def forcing_directory(given: str | None, recorded: str | None, checkpoint: str | os.PathLike) -> str:
    """The forcing dataset of a run: ``--forcing`` when given, else the dataset the checkpoint
    was trained on; one-line errors when neither exists."""
    forcing_dir = given or recorded
    if not forcing_dir:
        raise InputError("the checkpoint does not record its dataset; give --forcing DIR", checkpoint)
    if not os.path.exists(forcing_dir):
        raise InputError("forcing dataset not found (give --forcing DIR: a prepared dataset with tos and siconc)",
                         forcing_dir)
    return forcing_dir


def resolve_initial_state(given: str | None, forcing_dir: str, spec: DataSpec,
                          start: Month) -> tuple[np.ndarray, str]:
    """The initial state of a run and its identity (``path@YYYY-MM``) from ``--initial-state``:
    absent -> the forcing dataset's month ``start``; ``YYYY-MM`` -> that month of the forcing
    dataset; a prepared dataset directory -> its month ``start``."""
    if given is None:
        return initial_state(forcing_dir, spec, start), f"{forcing_dir}@{start}"
    if _DATE.match(given) and not os.path.isdir(given):
        try:
            when = Month.parse(given)
        except ValueError as exc:
            raise InputError(f"--initial-state: {exc}") from None
        return initial_state(forcing_dir, spec, when), f"{forcing_dir}@{when}"
    if os.path.isdir(given):
        return initial_state(given, spec, start), f"{os.path.abspath(given)}@{start}"
    raise InputError("--initial-state: expected a prepared dataset directory or a month YYYY-MM", given)
