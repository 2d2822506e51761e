"""Putting ensembles, scenarios and the reference on one grid and one monthly time axis.

Grids: every input is regridded (area-conservative, :mod:`diagnostics.io.regrid`) onto the
coarsest input grid, so nothing is ever interpolated to a finer grid than its data hold;
grids that do not cover the globe cannot be aligned and are refused with a message.

Time: datasets in different calendars (``noleap`` model, Gregorian ERA5) are matched by
month index (:func:`diagnostics.data.timeaxis.month_index`), never by timestamp: the
months both hold are selected and the model's time labels are replaced by the reference's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import xarray as xr

from .data import experiments
from .data.errors import InputError
from .data.grid import Grid, coverage_problem
from .data.timeaxis import Period, month_index, period_of, select_period
from .io.regrid import regrid

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+-]*$")
_SCENARIO_RE = re.compile(r"^(?:(?P<model>[A-Za-z0-9][A-Za-z0-9_+-]*):)?(?P<scenario>[A-Za-z0-9-]+)=(?P<path>.+)$")


def parse_named(spec: str) -> tuple[str | None, str]:
    """``NAME=PATH`` -> (NAME, PATH); a bare path (even one holding ``=`` after a ``/``) -> (None, PATH)."""
    head, sep, tail = spec.partition("=")
    if sep and _NAME_RE.match(head) and tail:
        return head, tail
    return None, spec


def parse_scenario(spec: str) -> tuple[str | None, str, str]:
    """``[MODEL:]p2k=PATH`` -> (MODEL or None, ``p2k``, PATH); ValueError otherwise.

    The scenario is a warming experiment of :mod:`diagnostics.data.experiments` by its short
    name, AI-MIP id or alias (``aimip-p4k``, ``aimip-4k`` -> ``p4k``); anything else (``p3k``,
    ``historical``) is refused.
    """
    choices = " or ".join(f"[MODEL:]{s}=PATH" for s in experiments.SCENARIOS)
    m = _SCENARIO_RE.match(spec)
    if not m:
        raise ValueError(f"expected a scenario as {choices}, got {spec!r}")
    try:
        exp = experiments.experiment(m.group("scenario"))
    except ValueError:
        exp = None
    if exp is None or exp.name not in experiments.SCENARIOS:
        raise ValueError(f"{m.group('scenario')!r} is not an AI-MIP warming scenario: expected a scenario as "
                         f"{choices}, got {spec!r}")
    return m.group("model"), exp.name, m.group("path")


def safe_model_name(name: str) -> str:
    """Model names never contain dots (metric keys are dot-separated) or path separators."""
    return re.sub(r"[./\\\s]+", "-", name).strip("-") or "model"


def check_global(grid: Grid, source: str) -> None:
    """InputError unless ``grid`` is a global regular grid (needed to align and area-weight);
    the rule is :func:`diagnostics.data.grid.coverage_problem`, the readers' and regridding's too."""
    if grid.lat.size < 3 or grid.lon.size < 4:
        raise InputError(f"grid {grid.lat.size}x{grid.lon.size} is too small to align with other grids", source)
    problem = coverage_problem(grid)
    if problem is not None:
        raise InputError(f"{problem}: cannot be aligned with the other inputs; expected a global regular "
                         "latitude-longitude grid", source)


def common_grid(grids: list[Grid]) -> Grid:
    """The coarsest of the grids (largest longitude spacing, then fewest rows)."""
    return max(grids, key=lambda g: (g.resolution, -g.shape[0]))


def on_grid(ds: xr.Dataset, grid: Grid) -> xr.Dataset:
    """``ds`` regridded (lazily) onto ``grid``; unchanged when already on it."""
    return regrid(ds, grid)


def common_plev(datasets: list[xr.Dataset]) -> np.ndarray | None:
    """Pressure levels (Pa, surface first) that every dataset with a ``plev`` axis holds.

    Models need not output all seven levels (the demo emulator predicts ``ta`` and ``ua`` at
    850 hPa only), so 3-D variables are scored on the levels all inputs share.
    """
    axes = [np.asarray(ds["plev"].values, dtype=float) for ds in datasets if "plev" in ds.dims]
    if not axes:
        return None
    common = axes[0]
    for levels in axes[1:]:
        common = common[np.isin(common, levels)]
    return common


def overlap(a: Period, b: Period) -> Period | None:
    """The months both periods hold, or None."""
    start, end = max(a.start, b.start), min(a.end, b.end)
    return Period(start, end) if start <= end else None


def clip_period(wanted: Period, window: Period) -> Period | None:
    """``wanted`` restricted to ``window`` (None if they share no month)."""
    return overlap(wanted, window)


def on_time_axis(ds: xr.Dataset, axis: xr.Dataset, source: str) -> xr.Dataset:
    """``ds`` restricted to the months of ``axis`` and relabelled with its time values.

    ``axis`` is a contract dataset whose ``time`` spans a period every month of which ``ds``
    holds (checked by month index, so a ``noleap`` model meets a Gregorian reference).
    """
    period = period_of(axis)
    out = select_period(ds, period)
    if not np.array_equal(month_index(out["time"]), month_index(axis["time"])):
        raise InputError(f"does not hold every month of {period}", source)
    out = out.drop_vars([v for v in ("time_bnds", "time_bounds") if v in out.variables])
    out = out.assign_coords(time=axis["time"])
    if "time_bnds" in axis.variables:
        out["time_bnds"] = axis["time_bnds"]
    return out


def first_member(ds: xr.Dataset) -> xr.Dataset:
    """A reference without ``member`` dim (the first member if it has several)."""
    if "member" in ds.dims:
        return ds.isel(member=0, drop=True)
    return ds


def with_member(ds: xr.Dataset) -> xr.Dataset:
    """An ensemble always has a ``member`` dim (size 1 for a single run)."""
    if "member" not in ds.dims:
        return ds.expand_dims(member=[1]).transpose("member", ...)
    return ds


@dataclass(frozen=True)
class Window:
    """The evaluation months: the overlap of all inputs, and the train/test periods inside it."""

    all: Period
    train: Period | None
    test: Period | None

    def periods(self) -> dict[str, Period]:
        """Named periods with at least one month (``train``, ``test``)."""
        return {k: p for k, p in (("train", self.train), ("test", self.test)) if p is not None}
