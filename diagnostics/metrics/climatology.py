"""Time means, seasonal means, monthly climatologies and time-mean biases (AI-MIP E1).

Conventions (the same everywhere in :mod:`diagnostics.metrics`):

* **Month-equal weighting.** A period or seasonal mean is the plain mean of its monthly
  means; months are not weighted by their number of days. This keeps means independent of
  the calendar (models run in ``noleap`` or ``360_day`` are compared with ERA5 in the
  proleptic Gregorian calendar month by month). Because model and reference get the same
  rule, a bias changes with the weighting only through the model-minus-reference
  difference of the cycle inside the season. ``time_bnds`` is therefore not needed.
* **Seasons** are ``ANN``, ``DJF``, ``MAM``, ``JJA``, ``SON``. DJF of year Y is December of
  Y-1 with January and February of Y, and carries the label Y. Only complete seasons
  (all three months inside the selected period) enter seasonal means, so for a period
  1979-01:2014-12 the DJF mean uses the 35 winters 1980..2014 (Jan-Feb 1979 and Dec 2014
  are dropped). ``ANN`` time means use every month of the period.
* **Periods** are :class:`diagnostics.data.timeaxis.Period` (or ``"YYYY-MM:YYYY-MM"``)
  and must be fully covered by the data: the train and test periods are given separately
  by the caller and a field that misses months of a period is an error, not a shorter mean.
* **Ensembles**: a ``member`` dim is kept by time means; biases are those of the ensemble
  mean (mean over members of the time mean).
* **Missing cells** (below-ground masks of ``ta``/``ua``/``va``/``hus``/``zg500`` in physical
  models, SST over land): a time mean, seasonal mean or ensemble mean is NaN at a cell that misses
  any of its months (or members), so a mask that comes and goes with the surface pressure cannot
  bias a mean towards the months it left; area-weighted statistics of the maps then use the cells
  both sides have, weights renormalised (:mod:`.pattern`, :func:`diagnostics.data.grid.global_mean`;
  :mod:`.coverage` gives the area fraction scored).

All reductions are xarray reductions, so dask-backed inputs stay lazy.
"""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from ..data.grid import global_mean
from ..data.timeaxis import Period, month_index, select_period
from .pattern import weighted_rms

SEASON_MONTHS: dict[str, tuple[int, ...]] = {
    "ANN": tuple(range(1, 13)), "DJF": (12, 1, 2), "MAM": (3, 4, 5), "JJA": (6, 7, 8), "SON": (9, 10, 11)}
SEASONS: tuple[str, ...] = tuple(SEASON_MONTHS)


def _as_period(period: Period | str | None) -> Period | None:
    return Period.parse(period) if isinstance(period, str) else period


def in_period(field: xr.DataArray, period: Period | str | None) -> xr.DataArray:
    """The months of ``period`` (all of them, else ValueError); the whole field when None."""
    period = _as_period(period)
    if period is None:
        return field
    out = select_period(field, period)
    if out.sizes["time"] != len(period):
        raise ValueError(f"field {field.name!r} covers {out.sizes['time']} of the {len(period)} "
                         f"months of period {period}")
    return out


def month_of_year(field: xr.DataArray) -> xr.DataArray:
    """Calendar month 1..12 of each time step, as a ``time`` DataArray named ``month``."""
    return xr.DataArray(month_index(field["time"]) % 12 + 1, dims="time", name="month",
                        coords={"time": field["time"]})


def _season_positions(time: xr.DataArray, season: str) -> tuple[np.ndarray, np.ndarray]:
    """Positions along ``time`` of the months of each complete season, grouped in order,
    and the season years (DJF labelled by its January)."""
    if season not in SEASON_MONTHS:
        raise ValueError(f"unknown season {season!r}; expected one of {', '.join(SEASONS)}")
    wanted = SEASON_MONTHS[season]
    idx = month_index(time)
    months, years = idx % 12 + 1, idx // 12
    season_year = years + ((months == 12) & (season == "DJF"))
    groups: dict[int, list[int]] = {}
    for pos in np.flatnonzero(np.isin(months, wanted)):
        groups.setdefault(int(season_year[pos]), []).append(int(pos))
    complete = [y for y in sorted(groups)
                if sorted(months[groups[y]]) == sorted(wanted)]
    positions = np.array([p for y in complete for p in sorted(groups[y], key=lambda q: idx[q])], dtype=int)
    return positions, np.array(complete, dtype=int)


def seasonal_mean(field: xr.DataArray, season: str = "DJF") -> xr.DataArray:
    """One mean per complete season (month-equal weights), along a new ``time`` dim.

    ``time`` holds the time value of the season's middle month (January for DJF, July for
    ANN = calendar-year means) and a ``year`` coordinate the season year (DJF 1980 =
    Dec 1979 + Jan + Feb 1980). Units of ``field``. Lazy for dask inputs.
    """
    positions, years = _season_positions(field["time"], season)
    n = len(SEASON_MONTHS[season])
    if years.size == 0:
        raise ValueError(f"field {field.name!r} holds no complete {season} season")
    selected = field.isel(time=positions)
    middle = selected["time"].values[n // 2::n]
    time_coords = [c for c in selected.coords if "time" in selected[c].dims]
    # groups of n consecutive months; a missing month makes its season NaN (coarsen's mean would skip it)
    grouped = selected.drop_vars(time_coords).coarsen(time=n).construct(time=("season_index", "season_month"))
    out = grouped.mean("season_month", skipna=False).rename(season_index="time")
    out = out.assign_coords(time=("time", middle, field["time"].attrs),
                            year=("time", years))
    out.attrs = dict(field.attrs)
    out.attrs["cell_methods"] = f"time: mean over {season} months"
    return out


def time_mean(field: xr.DataArray, period: Period | str | None = None, season: str = "ANN") -> xr.DataArray:
    """Time mean over ``period`` (whole field if None) and ``season`` (month-equal weights).

    ANN: mean of all months of the period; DJF/MAM/JJA/SON: mean over the complete seasons
    inside the period. Units of ``field``; ``member``/``plev`` dims are kept. Accumulated in
    float64 (result float64): dask sums a float32 field in float32, chunk by chunk, so a
    120-month mean of 1e5 Pa moved by tenths of a Pa with the chunking.
    """
    field = in_period(field, period)
    masks = season_masks(field["time"])
    if season not in masks:
        raise ValueError(f"unknown season {season!r}; expected one of {', '.join(SEASONS)}")
    count = int(masks[season].sum())
    if not count:
        raise ValueError(f"field {field.name!r} holds no complete {season} season")
    # all five seasons in one pass (equal graphs for equal fields: dask computes it once for every
    # season asked); a cell missing a month is left out (NaN), not biased
    out = season_sums(field, masks).sel(season=season, drop=True) / count
    out.attrs = dict(field.attrs)
    return out


def season_masks(time: xr.DataArray) -> dict[str, np.ndarray]:
    """For each of :data:`SEASONS`, which steps of ``time`` its time mean uses: every month for
    ``ANN``, the months of the complete seasons for the others (possibly none)."""
    masks = {"ANN": np.ones(time.size, dtype=bool)}
    for season in SEASONS[1:]:
        mask = np.zeros(time.size, dtype=bool)
        mask[_season_positions(time, season)[0]] = True
        masks[season] = mask
    return masks


def _season_sums_block(x: np.ndarray, masks: np.ndarray, axis: int) -> np.ndarray:
    """Float64 sums of one time block of ``x`` over the steps of each row of ``masks`` (seasons x
    steps), NaN-propagating, shaped ``(season, *x.shape)`` with the time axis of length 1."""
    moved = np.moveaxis(x, axis, 0)
    out = np.zeros((len(masks), 1) + moved.shape[1:], dtype=np.float64)
    for row, mask in enumerate(masks):
        pos = np.flatnonzero(mask)
        if pos.size:
            out[row, 0] = moved[pos].sum(axis=0, dtype=np.float64)
    return np.moveaxis(out, 1, axis + 1)


def season_sums(field: xr.DataArray, masks: dict[str, np.ndarray]) -> xr.DataArray:
    """Float64 sums along ``time`` over the steps of each mask of :func:`season_masks` (dim
    ``season``, then the other dims of ``field``); NaN where a cell misses any of those months.

    One task per time chunk for all seasons (the previous seasonal means took five passes, each
    with a fancy-indexed copy, and rounded each 3-month mean to float32 before the float64 mean).
    """
    names = list(masks)
    stacked = np.stack([masks[n] for n in names])
    sums = sum_time_blocks(field, _season_sums_block, [stacked], {"season": len(names)})
    return xr.DataArray(sums, dims=("season", *(d for d in field.dims if d != "time")), name=field.name,
                        coords={**coords_without_time(field), "season": names})


def _month_positions(months: np.ndarray) -> list[tuple[int, np.ndarray]]:
    return [(int(m), np.flatnonzero(months == m)) for m in np.unique(months)]


def _month_value_sums(x: np.ndarray, months: np.ndarray, *, axis: int) -> np.ndarray:
    """Per calendar month of one time block of ``x``: the float64 sum of its non-NaN values,
    shaped ``(1, *x.shape)`` with the block's time axis replaced by two: ``1`` (this block) and
    ``12`` (the calendar months; 0 for a month the block does not hold). ``months`` holds the
    calendar month 0..11 of each step along ``axis``."""
    moved = np.moveaxis(x, axis, 0)
    out = np.zeros((1, 1, 12) + moved.shape[1:], dtype=np.float64)
    missing = np.isnan(moved)
    if missing.any():
        moved = np.where(missing, 0, moved)
    for month, pos in _month_positions(months):
        out[0, 0, month] = moved[pos].sum(axis=0, dtype=np.float64) if len(pos) > 1 else moved[pos[0]]
    return np.moveaxis(out, (1, 2), (axis + 1, axis + 2))


def _month_weight_sums(x: np.ndarray, months: np.ndarray, w: np.ndarray, *, axis: int) -> np.ndarray:
    """As :func:`_month_value_sums`, the sums of the per-step weights ``w`` over the non-NaN
    steps of each cell (``w`` = 1: the counts). Without NaN in the block every cell has the same
    sums: a read-only broadcast view of 12 numbers, which :func:`_add_partial_sums` keeps
    compact (a count and a time term of the field's size per chunk were most of the month sums'
    cost, for fields that have no NaN)."""
    moved = np.moveaxis(x, axis, 0)
    shape = (1, 1, 12) + moved.shape[1:]
    missing = np.isnan(moved)
    if not missing.any():
        per_month = np.zeros((1, 1, 12) + (1,) * (moved.ndim - 1))
        for month, pos in _month_positions(months):
            per_month[0, 0, month] = w[pos].sum()
        return np.moveaxis(np.broadcast_to(per_month, shape), (1, 2), (axis + 1, axis + 2))
    out = np.zeros(shape, dtype=np.float64)
    for month, pos in _month_positions(months):
        out[0, 0, month] = np.tensordot(w[pos], ~missing[pos], axes=(0, 0))
    return np.moveaxis(out, (1, 2), (axis + 1, axis + 2))


def coords_without_time(field: xr.DataArray) -> dict:
    """The coordinates of ``field`` that a reduction over ``time`` keeps."""
    return {n: c for n, c in field.coords.items() if "time" not in c.dims}


def sum_time_blocks(field: xr.DataArray, task, per_step: list[np.ndarray], new_axes: dict[str, int],
                     per_month: tuple[xr.DataArray, ...] = (), **kwargs) -> np.ndarray:
    """``task(block, *per_step slices of the block's steps, *per_month blocks, axis=, **kwargs)`` for
    every time block of ``field``, summed over the blocks (float64).

    ``task`` returns ``(lead, *block.shape)`` with the block's time axis of length 1 followed by
    the ``new_axes`` after the first (the first new axis is ``lead``). ``per_step`` arrays have
    time as their last axis; ``per_month`` arrays the dims of ``field`` with ``calendar_month``
    (all 12 in each block) in place of ``time``, chunked like ``field`` elsewhere. ``task`` is a
    module-level function, so dask's tokens, and with them the shared keys of equal reductions
    asked for by several groups, are deterministic. Not dask-backed: one call on the whole field.
    """
    axis = field.dims.index("time")
    data = field.data
    month_dims = tuple("calendar_month" if d == "time" else d for d in field.dims)
    monthly = [m.transpose(*month_dims).data for m in per_month]
    if not dask.is_dask_collection(data):
        return task(np.asarray(data), *per_step, *(np.asarray(m) for m in monthly), axis=axis,
                    **kwargs).sum(axis=axis + 1)
    chunks = data.chunks[axis]
    ind = tuple(f"i{k}" for k in range(data.ndim))
    (lead, lead_n), *extra = new_axes.items()
    args = []
    for values in per_step:
        step_ind = tuple(f"s{k}" for k in range(values.ndim - 1)) + (ind[axis],)
        args += [dsa.from_array(values, chunks=(*values.shape[:-1], chunks)), step_ind]
    for values in monthly:
        values = values if dask.is_dask_collection(values) else dsa.from_array(
            values, chunks=tuple(c if k != axis else (12,) for k, c in enumerate(data.chunks)))
        args += [values, (*ind[:axis], "m", *ind[axis + 1:])]
    out_ind = (lead, *ind[:axis], ind[axis], *(n for n, _ in extra), *ind[axis + 1:])
    meta = np.empty((0,) * len(out_ind), dtype=np.float64)
    per_block = dsa.blockwise(task, out_ind, data, ind, *args, new_axes=dict(new_axes),
                              adjust_chunks={ind[axis]: 1}, concatenate=True, dtype=np.float64,
                              meta=meta, axis=axis, **kwargs)
    return dsa.reduction(per_block, _partial_sum, _add_partial_sums, axis=axis + 1, dtype=np.float64,
                         combine=_add_partial_sums, concatenate=False, meta=meta.sum(axis=axis + 1))


def _partial_sum(block: np.ndarray, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """The tree's first step: a task's output is already its block's partial sum (the block axis
    has length 1), so it is passed on as it is (``x.sum`` copied every one of them)."""
    return block if keepdims else block.squeeze(axis)


def _add_partial_sums(blocks: list, axis: tuple[int, ...], keepdims: bool) -> np.ndarray:
    """Sum of one group of partial sums: one new array, the others added into it in place.

    Why not ``x.sum``: dask's tree concatenated each group of partial sums into one array
    (4 x the partial sum's size: 12 calendar months x 3 terms of float64 per chunk) before
    summing it into another; with float64 partial sums 6 x the float32 chunk, those copies
    were the largest item of md-diagnose's profile. Same additions in the same order as
    ``np.sum`` over a group of 2 or 3; for 4, numpy's pairwise order may differ in the last bit.
    """
    while isinstance(blocks[0], list):  # nested once per reduced axis: one here
        blocks = [b for group in blocks for b in group]
    shape = blocks[0].shape
    compact = [_compact(b) for b in blocks]
    total = compact[0] if len(compact) == 1 else np.add(compact[0], compact[1])
    for block in compact[2:]:
        if np.broadcast_shapes(total.shape, block.shape) == total.shape:
            total += block
        else:
            total = total + block
    if keepdims:  # partial: stays compact where every block was a broadcast view
        return total if total.shape == shape else np.broadcast_to(total, shape)
    return np.ascontiguousarray(np.broadcast_to(total, shape)).squeeze(axis)  # the result: writable


def _compact(block: np.ndarray) -> np.ndarray:
    """``block`` without its broadcast axes (stride 0, e.g. the counts of a chunk without NaN),
    kept as length 1 so that numpy broadcasting adds it to full blocks."""
    return block[tuple(slice(0, 1) if stride == 0 and n > 1 else slice(None)
                       for stride, n in zip(block.strides, block.shape))]


def _weighted_sums_block(x: np.ndarray, w: np.ndarray, *, axis: int) -> np.ndarray:
    """The count of the finite steps of one time block of ``x`` and the float64 sum of w x over
    them (``w`` one weight per step), shaped ``(2, *x.shape)`` with the time axis of length 1."""
    shape = [1] * x.ndim
    shape[axis] = len(w)
    out = np.empty((2, *(1 if k == axis else n for k, n in enumerate(x.shape))))
    x = x.astype(np.float64)
    finite = ~np.isnan(x)
    if finite.all():
        out[0] = len(w)
    else:
        out[0] = finite.sum(axis=axis, keepdims=True)
        x = np.where(finite, x, 0.0)
    out[1] = np.tensordot(w, np.moveaxis(x, axis, 0), axes=(0, 0)).reshape(out.shape[1:])
    return out


def weighted_time_mean(field: xr.DataArray, weights: np.ndarray | None = None) -> xr.DataArray:
    """sum_t w_t x(t) / n over the n steps where x is finite (float64; ``weights`` one per step
    of ``field``, all 1 if None): xarray's ``(x.astype(float64) * w).mean("time", skipna=True)``
    in one blockwise pass instead of a float64 copy of the field and dask's mean tree."""
    w = np.ones(field.sizes["time"]) if weights is None else np.asarray(weights, dtype=np.float64)
    sums = sum_time_blocks(field, _weighted_sums_block, [w], {"term": 2})
    dims = tuple(d for d in field.dims if d != "time")
    sums = xr.DataArray(sums, dims=("term", *dims), coords={**coords_without_time(field), "term": ["count", "sum"]})
    count = sums.sel(term="count", drop=True)
    return sums.sel(term="sum", drop=True) / count.where(count > 0)


def positions(keep: np.ndarray) -> slice | np.ndarray:
    """The positions where ``keep`` is True; a slice when they are consecutive (months usually
    are), so a dask field is selected by views instead of a fancy-indexed copy of every chunk."""
    pos = np.flatnonzero(keep)
    if pos.size and pos[-1] - pos[0] + 1 == pos.size:
        return slice(int(pos[0]), int(pos[-1]) + 1)
    return pos


def calendar_month_sums(field: xr.DataArray, t: xr.DataArray | None = None) -> xr.DataArray:
    """Sums per calendar month: dim ``term`` = ``sum`` (float64 sum of the non-NaN values of
    ``field``), ``count`` (how many), with ``t`` also ``t_sum`` (the sum of ``t`` over those
    months), then the dims of ``field`` with ``time`` replaced by ``calendar_month`` (0..11).

    Means follow as sum / count (0 / 0 = NaN for a cell without a finite value in that month).
    One blockwise task per time chunk, summed over the chunks: each chunk is read once for
    every term. Replaces xarray/flox's ``groupby(month).mean()``, whose generic map-reduce
    (numpy_groupies over offset labels) was 36 % of md-diagnose's task time at 1 deg; the
    values agree to the last bits of a float64 sum.
    """
    months = month_index(field["time"]) % 12
    new_axes = {"term": 1, "calendar_month": 12}
    parts = [sum_time_blocks(field, _month_value_sums, [months], new_axes),
             sum_time_blocks(field, _month_weight_sums, [months, np.ones(len(months))], new_axes)]
    if t is not None:
        parts.append(sum_time_blocks(field, _month_weight_sums, [months, np.asarray(t.values, dtype=np.float64)],
                                     new_axes))
    terms = ["sum", "count"] + ([] if t is None else ["t_sum"])
    sums = dsa.concatenate(parts) if dask.is_dask_collection(parts[0]) else np.concatenate(parts)
    dims = tuple("calendar_month" if d == "time" else d for d in field.dims)
    return xr.DataArray(sums, dims=("term", *dims), name=field.name,
                        coords={**coords_without_time(field), "term": terms, "calendar_month": np.arange(12)})


def calendar_month_means(sums: xr.DataArray, term: str = "sum") -> xr.DataArray:
    """``term`` / ``count`` of :func:`calendar_month_sums` (NaN where the count is 0)."""
    count = sums.sel(term="count", drop=True)
    return sums.sel(term=term, drop=True) / count.where(count > 0)


def monthly_climatology(field: xr.DataArray, period: Period | str | None = None) -> xr.DataArray:
    """Mean of each calendar month over ``period`` (whole field if None), dim ``month`` (1..12).

    Units of ``field``. Every calendar month must be present.
    """
    field = in_period(field, period)
    months = month_of_year(field)
    if np.unique(months.values).size != 12:
        raise ValueError(f"monthly climatology of {field.name!r} needs all 12 calendar months")
    # float64 partial sums (see time_mean), rounded back to the field's dtype: the anomalies stay float32
    # like the field (memory), and the rounding of a chunk-independent float64 mean is chunk-independent
    clim = calendar_month_means(calendar_month_sums(field)).astype(field.dtype)
    clim = clim.rename(calendar_month="month").assign_coords(month=np.arange(1, 13))
    clim.attrs = dict(field.attrs)
    return clim


def monthly_anomalies(field: xr.DataArray, climatology_period: Period | str | None = None) -> xr.DataArray:
    """Field minus its monthly climatology: x'(t) = x(t) - clim[month(t)] (units of ``field``).

    The climatology is taken over ``climatology_period`` (whole field if None); the
    anomalies cover the whole field. With a ``member`` dim each member gets its own.
    """
    clim = monthly_climatology(field, climatology_period)
    axis = field.dims.index("time")
    months = month_index(field["time"]) % 12  # clim's months are 1..12 in order: position = month - 1
    month_dims = tuple("month" if d == "time" else d for d in field.dims)
    clim_data = clim.transpose(*month_dims).data
    data = field.data
    if dask.is_dask_collection(data):
        # each chunk subtracts the climatology of its own months in its task (xarray's groupby
        # arithmetic first broadcast the climatology to the whole time axis: same values)
        ind = tuple(f"i{k}" for k in range(data.ndim))
        if not dask.is_dask_collection(clim_data):
            clim_data = dsa.from_array(clim_data, chunks=tuple(
                (12,) if k == axis else c for k, c in enumerate(data.chunks)))
        values = dsa.blockwise(_subtract_months, ind, data, ind,
                               dsa.from_array(months, chunks=(data.chunks[axis],)), (ind[axis],),
                               clim_data, (*ind[:axis], "m", *ind[axis + 1:]), concatenate=True,
                               dtype=data.dtype, meta=data._meta, axis=axis)
    else:
        values = _subtract_months(np.asarray(data), months, np.asarray(clim_data), axis=axis)
    anom = field.copy(data=values)
    anom.attrs = dict(field.attrs)
    anom.name = field.name
    return anom


def _subtract_months(x: np.ndarray, months: np.ndarray, clim: np.ndarray, *, axis: int) -> np.ndarray:
    """``x`` minus the climatology (12 calendar months along ``axis``) of each step's month."""
    return x - np.take(clim, months, axis=axis)


def _ensemble_mean(field: xr.DataArray, member_dim: str) -> xr.DataArray:
    return field.mean(member_dim, keep_attrs=True, skipna=False) if member_dim in field.dims else field


def bias_map(model: xr.DataArray, reference: xr.DataArray, period: Period | str | None = None,
             season: str = "ANN", member_dim: str = "member") -> xr.DataArray:
    """Time-mean bias of the ensemble mean: mean_m(time_mean(model)) - time_mean(reference).

    Same ``period`` and ``season`` for both (see module conventions); units of the field;
    dims (lat, lon) or (plev, lat, lon). Model and reference must share their grid.
    """
    m = _ensemble_mean(time_mean(model, period, season), member_dim)
    r = _ensemble_mean(time_mean(reference, period, season), member_dim)
    return bias_of_means(m, r, model.name, season, model.attrs.get("units", ""))


def bias_of_means(m: xr.DataArray, r: xr.DataArray, name: str | None, season: str, units: str) -> xr.DataArray:
    """``m - r`` of an ensemble-mean and a reference time mean on the same grid (exact alignment,
    else ValueError): the last step of :func:`bias_map`, for callers that hold both means already."""
    try:
        m, r = xr.align(m, r, join="exact")
    except ValueError as exc:
        raise ValueError(f"model and reference are not on the same grid: {exc}") from None
    bias = m - r
    bias.attrs = {"units": units, "long_name": f"time-mean bias ({season})"}
    bias.name = f"{name}_bias" if name else "bias"
    return bias


def bias_summary(bias: xr.DataArray) -> dict[str, xr.DataArray]:
    """Global numbers of a bias map: ``mean`` = area-weighted mean bias, ``rms`` =
    sqrt(area-weighted mean of bias^2) (uncentred), both in the field's units.

    Dims other than lat/lon (plev) are kept.
    """
    return {"mean": global_mean(bias), "rms": weighted_rms(bias)}


def zonal_mean_bias(model: xr.DataArray, reference: xr.DataArray, period: Period | str | None = None,
                    season: str = "ANN", member_dim: str = "member") -> xr.DataArray:
    """Zonal mean of :func:`bias_map` (plain mean over ``lon``: cells on a latitude circle have
    equal area), dims (plev, lat) for 3-D fields; units of the field."""
    out = bias_map(model, reference, period, season, member_dim).mean("lon", keep_attrs=True)
    out.attrs["long_name"] = f"zonal-mean bias ({season})"
    return out
