"""The synthetic monthly climate as a contract dataset: :func:`synthesize` (data + planted truth).

The model and its formulas are in :mod:`.model`, the truth file in :mod:`.truth`; this module
assembles a :class:`.model.Run` into the contract dataset, in memory or streamed through dask.
"""

from __future__ import annotations

import uuid

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from .. import __version__
from ..data import catalogue
from ..data.contract import conform, plev_coord
from ..data.grid import Grid
from ..data.timeaxis import Month, monthly_axis
from .model import Model, Run, make_run, progress
from .truth import make_truth

LAZY_BYTES = 512 * 2**20  # datasets larger than this are returned dask-backed


def _variable_shape(run: Run, store: str, nt: int) -> tuple[int, ...]:
    var = catalogue.variable(store)
    return (nt, len(var.levels), *run.model.grid.shape) if var.is_3d else (nt, *run.model.grid.shape)


def _state_arrays(run: Run, lazy: bool, show_progress: bool) -> dict[str, np.ndarray | dsa.Array]:
    """(member, time, [plev,] lat, lon) arrays of every state variable, in memory or as dask arrays.

    Both paths compute each (variable, member, chunk) block with the same code on the same
    inputs, so they are bit-identical; the dask path has one independent task per block, so
    writing streams block by block in bounded memory.
    """
    stores = [catalogue.variable(n).store_name for n in catalogue.STATE_VARIABLES]
    if not lazy:
        out = {s: np.empty((run.members, *_variable_shape(run, s, run.months.size)), np.float32) for s in stores}
        with progress(run, enabled=show_progress):
            for i in range(run.members):
                for k, sl in enumerate(run.chunks):
                    for s in stores:
                        out[s][i, sl] = run.variable_chunk(i, k, s)
        return out
    # pure=False: keys come from dask_key_name, so dask never hashes the (large) Run per task.
    block = dask.delayed(run.variable_chunk, pure=False)
    token = uuid.uuid4().hex[:12]  # distinct keys for distinct runs in one graph
    arrays = {}
    for s in stores:
        per_member = []
        for i in range(run.members):
            parts = [dsa.from_delayed(block(i, k, s, dask_key_name=f"synth-{s}-{i}-{k}-{token}"),
                                      shape=_variable_shape(run, s, sl.stop - sl.start), dtype=np.float32)
                     for k, sl in enumerate(run.chunks)]
            per_member.append(dsa.concatenate(parts, axis=0))
        arrays[s] = dsa.stack(per_member, axis=0)
    return arrays


def to_dataset(run: Run, lazy: bool = False, show_progress: bool = False) -> xr.Dataset:
    """The contract dataset of ``run``: 37 state channels, tos, siconc and the statics."""
    m = run.model
    state = _state_arrays(run, lazy, show_progress)
    axis = monthly_axis(Month.from_index(int(run.months[0])), Month.from_index(int(run.months[-1])))
    coords = {**m.grid.coords(), "time": axis["time"], "member": ("member", np.arange(1, run.members + 1))}
    data_vars: dict[str, xr.DataArray] = {}
    for name, values in state.items():
        dims = ("member", "time", "plev", "lat", "lon") if values.ndim == 5 else ("member", "time", "lat", "lon")
        data_vars[name] = xr.DataArray(values, dims=dims)
    data_vars["tos"] = xr.DataArray(run.forcing.tos, dims=("time", "lat", "lon"))
    data_vars["siconc"] = xr.DataArray(run.forcing.siconc, dims=("time", "lat", "lon"))
    st = m.statics
    for name in catalogue.STATIC_VARIABLES:
        data_vars[name] = xr.DataArray(getattr(st, name).astype(np.float32), dims=("lat", "lon"))
    ds = xr.Dataset(data_vars, coords=coords)
    ds = ds.assign_coords(plev=plev_coord())
    ds["time_bnds"] = axis["time_bnds"]
    if run.members == 1:
        ds = ds.isel(member=0, drop=True)
    else:
        ds["member"].attrs = {"long_name": "ensemble member (realisation index)"}
    ds.attrs = {"title": "Synthetic monthly climate with planted statistics (md-synth)",
                "source": f"diagnostics.synth {__version__}", "seed": int(run.seed),
                "sst_offset_K": float(run.sst_offset), "grid_resolution_deg": float(m.grid.resolution),
                "comment": "Planted truth in truth.nc beside the dataset; see docs/synthetic-climate.md"}
    if m.forced_trend:  # only then: the default dataset stays bit-identical
        ds.attrs["forced_trend"] = 1
    return conform(ds)


def synthesize(grid: Grid, start: Month, end: Month, seed: int, members: int = 1,
               sst_offset: float = 0.0, lazy: bool | None = None,
               show_progress: bool = False, nonlinear: bool = True,
               forced_trend: bool = False) -> tuple[xr.Dataset, xr.Dataset]:
    """A synthetic contract dataset and its planted truth.

    Args:
        grid: target grid (e.g. ``equiangular(5.625)``).
        start, end: first and last month (inclusive).
        seed: random seed; the same arguments give bit-identical data.
        members: independent realisations sharing the same forcing (``member`` dim when > 1).
        sst_offset: uniform SST warming in K (0 historical, 2 p2k, 4 p4k); sea ice unchanged.
        lazy: dask-backed (streamed chunk by chunk on compute) instead of in memory; default
            lazy only when the state channels exceed 512 MiB.
        nonlinear: plant the nonlinearity (ENSO asymmetry, Clausius-Clapeyron-like scaling of pr
            and hus, seasonal and ENSO-phase-dependent NAO variance); False gives the
            linear-Gaussian climate.
        forced_trend: make the atmosphere's historical trend its forced response to the
            tropical SST warming (trend = warming per K x 0.15 K/decade, :func:`.patterns.planted`),
            so historical data carry the warming response; off by default.
    Returns:
        (data, truth): the contract dataset (validates with ``contract.validate``) and the truth
        dataset of :mod:`.truth`.
    """
    model = Model.build(grid, forced_trend=forced_trend)
    run = make_run(model, start, end, seed, members, sst_offset, nonlinear)
    if lazy is None:
        size = members * run.months.size * len(model.labels) * grid.lat.size * grid.lon.size * 4
        lazy = size > LAZY_BYTES
    return to_dataset(run, lazy=lazy, show_progress=show_progress), make_truth(run)
