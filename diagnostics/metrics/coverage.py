"""The area a comparison is scored over, when cells are missing (below-ground masks).

Physical models mask ``ta``/``ua``/``va``/``hus``/``zg`` under the surface (1000/850/700 hPa over
Antarctica, Greenland, Tibet, and where the surface pressure drops below the level); the readers
keep those cells as NaN (:data:`diagnostics.data.contract.BELOW_GROUND_MASKED`) and every metric
scores the cells both sides have, area weights renormalised. :func:`scored_fraction` says how
much of the globe that is, so a number scored over 80 % of the area is not read as global.
"""

from __future__ import annotations

import xarray as xr

from ..data.contract import BELOW_GROUND_MASKED
from ..data.grid import area_weights
from ..data.timeaxis import Period
from .climatology import in_period

SPATIAL_DIMS: tuple[str, ...] = ("lat", "lon")


def complete_cells(field: xr.DataArray, period: Period | str | None = None,
                   over: tuple[str, ...] = ("member", "time")) -> xr.DataArray:
    """True at the cells where ``field`` has data in every month of ``period`` (and every member)."""
    field = in_period(field, period)
    return field.notnull().all([d for d in over if d in field.dims])


def scored_fraction(model: xr.DataArray, reference: xr.DataArray, period: Period | str | None = None,
                    dims: tuple[str, ...] = SPATIAL_DIMS) -> xr.DataArray:
    """Area fraction (dimensionless, 0..1) of the cells complete on both sides over ``period``.

    f = sum_ij w_j v_ij / sum_ij w_j, v_ij = 1 where every month (and member) of the model and
    every month of the reference hold data at cell (j, i), else 0; w_j the relative cell area
    (:func:`diagnostics.data.grid.area_weights`). This is the area the time-mean statistics
    (bias, RMS) cover; pointwise monthly scores (CRPS, RMSE) use each month's joint cells, a
    superset. Other dims (``plev``) are kept. Lazy for dask inputs.
    """
    valid = complete_cells(model, period) & complete_cells(reference, period)
    w = area_weights(valid["lat"]) * xr.ones_like(valid["lon"], dtype=float)
    return (w * valid).sum(dims) / w.sum(dims)


def finite_fraction(field: xr.DataArray, dims: tuple[str, ...] = SPATIAL_DIMS) -> xr.DataArray:
    """Area fraction (0..1) of the cells where a map holds data: sum w [finite] / sum w."""
    w = area_weights(field["lat"]) * xr.ones_like(field["lon"], dtype=float)
    return (w * field.notnull()).sum(dims) / w.sum(dims)


def masked_note(field: xr.DataArray, variable: str) -> str:
    """``"; scored over 94.1 % of the area: below-ground cells masked"`` for a map of a masked
    variable (:data:`~diagnostics.data.contract.BELOW_GROUND_MASKED`) that misses cells, else ``""``
    (a description suffix for metrics.nc fields)."""
    if variable not in BELOW_GROUND_MASKED:
        return ""
    fraction = float(finite_fraction(field))
    return f"; scored over {100 * fraction:.1f} % of the area: below-ground cells masked" if fraction < 1 else ""
