"""Area-weighted comparison of two maps: pattern correlation, RMS difference, amplitude ratio.

The one place these statistics live; every climate metric that compares a model map
with a reference map (bias maps, trend maps, ENSO regression maps, EOF patterns) uses
them. Weights are relative cell areas from :func:`diagnostics.data.grid.area_weights`;
cells where either map is NaN (e.g. land in an SST map) are left out of both.
"""

from __future__ import annotations

import xarray as xr

from ..data.grid import area_weights

SPATIAL_DIMS: tuple[str, ...] = ("lat", "lon")


def _joint(a: xr.DataArray, b: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray, xr.DataArray]:
    """Both maps masked to the cells where both are finite, and the area weights there.

    The maps must share their grid exactly: xarray would otherwise silently intersect
    coordinates (e.g. float32 vs float64 latitudes) and score an empty map.
    """
    try:
        a, b = xr.align(a, b, join="exact")
    except ValueError as exc:
        raise ValueError(f"maps are not on the same grid: {exc}") from None
    valid = a.notnull() & b.notnull()
    w = area_weights(a["lat"]).where(valid, 0.0)
    return a.where(valid), b.where(valid), w


def pattern_correlation(a: xr.DataArray, b: xr.DataArray,
                        dims: tuple[str, ...] = SPATIAL_DIMS) -> xr.DataArray:
    """Centred, area-weighted pattern correlation of two maps (dimensionless, -1..1).

    r = sum w (a - <a>)(b - <b>) / sqrt(sum w (a - <a>)^2 * sum w (b - <b>)^2),
    with <.> the area-weighted mean over ``dims`` and w the relative cell area, over the
    cells where both maps are finite. Dims not in ``dims`` (member, plev) are kept.
    """
    a, b, w = _joint(a, b)
    wsum = w.sum(dims)
    da = a - (a * w).sum(dims) / wsum
    db = b - (b * w).sum(dims) / wsum
    cov = (w * da * db).sum(dims)
    return cov / ((w * da**2).sum(dims) * (w * db**2).sum(dims)) ** 0.5


def weighted_rms(a: xr.DataArray, b: xr.DataArray | None = None,
                 dims: tuple[str, ...] = SPATIAL_DIMS) -> xr.DataArray:
    """Area-weighted root-mean-square of ``a - b`` (or of ``a`` alone), units of the maps.

    rms = sqrt(sum w (a - b)^2 / sum w), uncentred, over cells where both are finite.
    """
    if b is None:
        b = xr.zeros_like(a)
    a, b, w = _joint(a, b)
    return ((w * (a - b) ** 2).sum(dims) / w.sum(dims)) ** 0.5


def amplitude_ratio(a: xr.DataArray, b: xr.DataArray,
                    dims: tuple[str, ...] = SPATIAL_DIMS) -> xr.DataArray:
    """Ratio of the area-weighted RMS of map ``a`` to that of map ``b`` (dimensionless).

    ratio = weighted_rms(a) / weighted_rms(b) over the cells where both are finite;
    1 for equal amplitude, k for ``a = k * b`` (k > 0). Uncentred, so a uniform offset
    counts as amplitude (use anomaly or regression maps, whose amplitude is the signal).
    """
    a, b, _ = _joint(a, b)
    return weighted_rms(a, dims=dims) / weighted_rms(b, dims=dims)


def compare_maps(model: xr.DataArray, reference: xr.DataArray,
                 dims: tuple[str, ...] = SPATIAL_DIMS) -> dict[str, xr.DataArray]:
    """Model-vs-reference map statistics: ``pattern_corr``, ``rms_diff``, ``amplitude_ratio``.

    Any extra dim of ``model`` (e.g. ``member``) is kept, giving per-member values.
    """
    return {"pattern_corr": pattern_correlation(model, reference, dims),
            "rms_diff": weighted_rms(model, reference, dims),
            "amplitude_ratio": amplitude_ratio(model, reference, dims)}
