"""Training data from a prepared dataset directory (``DIR/dataset.zarr`` + ``DIR/manifest.json``).

Samples are consecutive month pairs (t, t+1) inside one period, with the forcings and calendar
months of both. The (small) arrays of each period are loaded once into memory as float32,
one channel at a time, and normalised with statistics of the training period only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from diagnostics.data import catalogue, transforms
from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Period, month_index, select_period

from .model import DataSpec
from .normalisation import Normaliser, weighted_stats

_LEVEL_RE = re.compile(r"^([a-z]+?)(\d+)$")


def parse_channels(names: list[str], source: str = "config") -> list[tuple[str, int | None]]:
    """Channel list from config names: ``ta`` (all 7 levels), ``ta850`` (one level), ``zg500``, ``tas``."""
    out: list[tuple[str, int | None]] = []
    for name in names:
        try:
            var = catalogue.variable(name)
        except KeyError:
            var = None
        if var is not None and var.kind == "state":
            if var.is_3d:
                out.extend((var.store_name, lev) for lev in var.levels)
            else:
                out.append((var.store_name, None))
            continue
        m = _LEVEL_RE.match(name)
        if m and m.group(1) in catalogue.VARIABLES and catalogue.VARIABLES[m.group(1)].is_3d:
            var, level = catalogue.VARIABLES[m.group(1)], int(m.group(2))
            if level not in var.levels:
                raise InputError(f"data.state: {name!r} asks for level {level} hPa; {var.name} has {list(var.levels)}", source)
            out.append((var.store_name, level))
            continue
        raise InputError(f"data.state: {name!r} is not a predicted variable of the catalogue "
                         f"(expected one of {', '.join(catalogue.STATE_VARIABLES)} or e.g. ta850)", source)
    if len(set(out)) != len(out):
        raise InputError(f"data.state: a channel is listed twice in {names}", source)
    return out


def open_prepared_dataset(path: str | Path) -> xr.Dataset:
    """Open ``DIR/dataset.zarr`` lazily with cftime times (:func:`diagnostics.io.open.open_prepared`)."""
    path = Path(path)
    if not (path / "dataset.zarr").exists():
        raise InputError("not a prepared dataset directory (expected dataset.zarr and manifest.json; "
                         "make one with md-prepare or md-synth)", path)
    from diagnostics.io.open import open_prepared  # same wheel: no fallback (issue 12.8)

    return open_prepared(path)


def check_grid(ds: xr.Dataset, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Latitude/longitude of an equiangular grid with both poles, or InputError."""
    lat, lon = np.asarray(ds["lat"].values, float), np.asarray(ds["lon"].values, float)
    ok = (lat.size >= 3 and np.allclose(lat, np.linspace(-90.0, 90.0, lat.size), atol=1e-3)
          and np.allclose(lon, np.arange(lon.size) * 360.0 / lon.size, atol=1e-3))
    if not ok:
        raise InputError(f"the emulator needs an equiangular grid with both poles, lat -90..90 ascending and "
                         f"lon from 0 (e.g. 121 x 240 at 1.5 degrees); found {lat.size} x {lon.size} "
                         f"lat {lat[0]:.3f}..{lat[-1]:.3f}", source)
    return lat, lon


def _channel(ds: xr.Dataset, name: str, level: int | None, source: str) -> xr.DataArray:
    if name not in ds.data_vars:
        raise InputError(f"missing variable {name!r} (found {sorted(map(str, ds.data_vars))})", source)
    da = ds[name]
    if level is None:
        return da
    plev = np.asarray(da["plev"].values, float)
    hit = np.flatnonzero(np.isclose(plev, level * 100.0))
    if hit.size == 0:
        raise InputError(f"variable {name!r} has no level {level} hPa (levels {plev.tolist()} Pa)", source)
    return da.isel(plev=int(hit[0]))


@dataclass
class Split:
    """One period in memory: physical arrays and calendar months."""

    state: np.ndarray  # [T, C, H, W] float32, catalogue units
    forcing: np.ndarray  # [T, F, H, W] float32, NaN over land for tos
    month: np.ndarray  # [T] calendar month 1..12
    index: np.ndarray  # [T] month index year*12 + month - 1
    period: Period

    def __len__(self) -> int:
        return len(self.month)


def load_split(ds: xr.Dataset, spec: DataSpec, period: Period, source: str) -> Split:
    """Load one period of the state channels and forcings into memory (one channel at a time)."""
    sub = select_period(ds, period)
    idx = month_index(sub["time"])
    if idx.size < 2:
        raise InputError(f"period {period} holds {idx.size} months of data (need at least 2)", source)
    if np.any(np.diff(idx) != 1):
        raise InputError(f"period {period} has missing months in the time axis", source)
    t, (h, w) = idx.size, spec.shape
    state = np.empty((t, len(spec.channels), h, w), dtype=np.float32)
    for c, (name, level) in enumerate(spec.channels):
        state[:, c] = _channel(sub, name, level, source).transpose("time", "lat", "lon").values
    forcing = np.empty((t, len(spec.forcing_names), h, w), dtype=np.float32)
    for f, name in enumerate(spec.forcing_names):
        forcing[:, f] = _channel(sub, name, None, source).transpose("time", "lat", "lon").values
    bad = [spec.labels[c] for c in range(state.shape[1]) if not np.isfinite(state[:, c]).all()]
    if bad:
        raise InputError(f"state channels {bad} hold NaN or inf in {period}; only tos may be NaN (over land)", source)
    return Split(state, forcing, (idx % 12 + 1).astype(np.int64), idx, period)


def _monthly_climatology(y: np.ndarray, month: np.ndarray, period: Period) -> np.ndarray:
    """``[12, H, W]`` mean of each calendar month of ``y [T, H, W]`` (NaN-aware; all-NaN cells -> 0)."""
    clim = np.zeros((12, *y.shape[1:]), dtype=np.float32)
    for m in range(1, 13):
        if not (month == m).any():
            raise InputError(f"the training period {period} lacks calendar month {m}; "
                             "anomaly normalisation needs every month")
        sel = y[month == m]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.nansum(sel, axis=0) / np.isfinite(sel).sum(axis=0)
        clim[m - 1] = np.where(np.isfinite(mean), mean, 0.0)
    return clim


def compute_stats(split: Split, spec: DataSpec, anomaly: bool = False,
                  forcing_anomaly: bool = False) -> dict[str, np.ndarray]:
    """Training-period statistics in transformed space, area-weighted, per channel and forcing.

    With ``anomaly``: also ``state_clim [12, C, H, W]``, the mean of each calendar month at
    every grid point, and the state mean/std are those of the anomalies from it.
    With ``forcing_anomaly``: ``forcing_clim [12, F, H, W]`` likewise (NaN cells ignored) and
    ``forcing_anom_std [F]``, the area-weighted std of the forcing's monthly anomalies.
    """
    lat = np.asarray(spec.lat)
    out: dict[str, list] = {"state_mean": [], "state_std": [], "forcing_mean": [], "forcing_std": []}
    clim = np.zeros((12, len(spec.channels), *spec.shape), dtype=np.float32)
    for c, (name, _) in enumerate(spec.channels):
        y = transforms.forward(split.state[:, c], catalogue.variable(name).transform)
        if anomaly:
            clim[:, c] = _monthly_climatology(y, split.month, split.period)
            y = y - clim[split.month - 1, c]
        m_, s_ = weighted_stats(y, lat)
        out["state_mean"].append(m_)
        out["state_std"].append(s_)
    f_clim = np.zeros((12, len(spec.forcing_names), *spec.shape), dtype=np.float32)
    f_anom_std = []
    for f, name in enumerate(spec.forcing_names):
        y = transforms.forward(split.forcing[:, f], catalogue.variable(name).transform)
        m_, s_ = weighted_stats(y, lat)
        out["forcing_mean"].append(m_)
        out["forcing_std"].append(s_)
        if forcing_anomaly:
            f_clim[:, f] = _monthly_climatology(y, split.month, split.period)
            # floor: a forcing without interannual variability (a fixed seasonal cycle) would
            # otherwise blow float round-off up to O(1) anomalies
            f_anom_std.append(max(weighted_stats(y - f_clim[split.month - 1, f], lat)[1], 1e-2 * s_))
    stats = {k: np.asarray(v, dtype=np.float64) for k, v in out.items()}
    if anomaly:
        stats["state_clim"] = clim
    if forcing_anomaly:
        stats["forcing_clim"] = f_clim
        stats["forcing_anom_std"] = np.asarray(f_anom_std, dtype=np.float64)
    return stats


def normalised_statics(ds: xr.Dataset, spec: DataSpec, source: str) -> np.ndarray:
    """Static fields z-scored over the sphere (area-weighted) -> ``[S, H, W]`` float32."""
    out = []
    for name in spec.static_names:
        values = _channel(ds, name, None, source)
        if "time" in values.dims:
            values = values.isel(time=0)
        values = np.asarray(values.transpose("lat", "lon").values, dtype=np.float64)
        if not np.isfinite(values).all():
            raise InputError(f"static field {name!r} holds NaN", source)
        m, s = weighted_stats(values, np.asarray(spec.lat))
        out.append((values - m) / s)
    return np.asarray(out, dtype=np.float32).reshape(len(spec.static_names), *spec.shape)


@dataclass
class PairTensors:
    """Normalised tensors of one split; sample i is the pair (i, i+1)."""

    state: torch.Tensor  # [T, C, H, W]
    forcing: torch.Tensor  # [T, normaliser.n_forcing_channels, H, W]
    month: torch.Tensor  # [T]
    index: np.ndarray

    def __len__(self) -> int:
        return self.state.shape[0] - 1

    def batch(self, ids: torch.Tensor, device: torch.device) -> tuple[torch.Tensor, ...]:
        """(x_t, x_t1, f_t, f_t1, month_t, month_t1) for pair indices ``ids``."""
        nxt = ids + 1
        return tuple(a.to(device, non_blocking=True) for a in (
            self.state[ids], self.state[nxt], self.forcing[ids], self.forcing[nxt], self.month[ids], self.month[nxt]))


def to_tensors(split: Split, normaliser: Normaliser, chunk: int = 64) -> PairTensors:
    """Normalise a split; the state is normalised IN PLACE (the split's physical state array is
    consumed) so the reference config holds one copy of its training data, not two."""
    state = torch.from_numpy(split.state)  # shares memory with split.state
    month = torch.from_numpy(split.month.copy())
    mean, std = normaliser.state_mean, normaliser.state_std
    with torch.no_grad():
        for c, kind in enumerate(normaliser.state_transforms):
            for i in range(0, len(split), chunk):
                block = state[i:i + chunk, c]
                clim = normaliser.climatology(month[i:i + chunk])
                clim = clim[:, c] if torch.is_tensor(clim) else clim
                block.copy_((transforms.forward(block, kind) - clim - mean[c]) / std[c])
        forcing = torch.cat([normaliser.normalise_forcing(torch.from_numpy(split.forcing[i:i + chunk]),
                                                          month[i:i + chunk])
                             for i in range(0, len(split), chunk)])
    return PairTensors(state, forcing.contiguous(), month, split.index)


def data_spec(ds: xr.Dataset, state: list[str], forcings: list[str], statics: list[str], source: str) -> DataSpec:
    """The :class:`DataSpec` of a dataset for the configured fields (checks grid and presence)."""
    lat, lon = check_grid(ds, source)
    channels = parse_channels(state, source)
    for name, level in channels:
        _channel(ds, name, level, source)
    for name in list(forcings) + list(statics):
        _channel(ds, name, None, source)
    return DataSpec(tuple(channels), tuple(forcings), tuple(statics), tuple(float(v) for v in lat),
                    tuple(float(v) for v in lon))
