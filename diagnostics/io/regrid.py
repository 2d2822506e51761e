"""Regridding between regular latitude-longitude grids: area-conservative and bilinear.

Conservative regridding is written here rather than taken from xESMF because xESMF needs
the ESMF binary (conda only, not pip-installable on these machines). On regular lat-lon
grids it is separable, so no general mesh library is needed: the overlap area of source
cell (i, j) and target cell (I, J) on the sphere is

    A[I, i] * B[J, j],   A = overlap of [sin(lat edges)] intervals,
                         B = overlap of longitude intervals (radians, periodic),

and the target value is the valid-area-weighted mean

    y[I, J] = sum_ij A[I,i] B[J,j] m_ij x_ij / sum_ij A[I,i] B[J,j] m_ij,

with m the finite mask (NaN-aware: SST over land stays NaN where a target cell is all
land, and coastal cells average only their ocean part). With full coverage and no NaN the
area-weighted global mean is conserved exactly. Both matrix products run per time step
inside ``xr.apply_ufunc(dask="parallelized")`` so fields stay lazy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from ..data.errors import InputError
from ..data.grid import Grid, coverage_problem, grid_of, latitude_edges

Method = Literal["auto", "conservative", "bilinear"]


def longitude_edges(lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(west, east) edges in degrees of ascending longitude centres on a periodic circle."""
    lon = np.asarray(lon, dtype=float)
    if lon.size == 1:
        return np.array([lon[0] - 180.0]), np.array([lon[0] + 180.0])
    gaps = np.diff(np.concatenate([lon, [lon[0] + 360.0]]))  # gap to the next centre, wrapping
    east = lon + 0.5 * gaps
    west = lon - 0.5 * np.roll(gaps, 1)
    return west, east


def latitude_overlap(src_lat: np.ndarray, tgt_lat: np.ndarray) -> np.ndarray:
    """A[I, i]: overlap of target row I and source row i in sin(latitude) (area / 2 pi R^2)."""
    s = np.sin(np.deg2rad(latitude_edges(src_lat)))
    t = np.sin(np.deg2rad(latitude_edges(tgt_lat)))
    lo = np.maximum(t[:-1, None], s[None, :-1])
    hi = np.minimum(t[1:, None], s[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def longitude_overlap(src_lon: np.ndarray, tgt_lon: np.ndarray) -> np.ndarray:
    """B[J, j]: overlap in radians of target column J and source column j, with periodic wrap."""
    sw, se = longitude_edges(src_lon)
    tw, te = longitude_edges(tgt_lon)
    total = np.zeros((tw.size, sw.size))
    for shift in (-360.0, 0.0, 360.0):
        lo = np.maximum(tw[:, None], sw[None, :] + shift)
        hi = np.minimum(te[:, None], se[None, :] + shift)
        total += np.clip(hi - lo, 0.0, None)
    return np.deg2rad(total)


def _conservative_block(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Apply the separable overlap weights to the last two axes of ``x`` (..., lat, lon)."""
    valid = np.isfinite(x)
    filled = np.where(valid, x, 0.0).astype(np.float64)
    num = a @ filled @ b.T
    if valid.all():
        den = np.broadcast_to(a.sum(axis=1)[:, None] * b.sum(axis=1)[None, :], num.shape)
    else:
        den = a @ valid.astype(np.float64) @ b.T
    cell = a.sum(axis=1)[:, None] * b.sum(axis=1)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(den > 1e-9 * np.maximum(cell, 1e-300), num / den, np.nan)
    return out.astype(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64)


def _spatial_single_chunk(da: xr.DataArray) -> xr.DataArray:
    if da.chunks is not None:
        return da.chunk({"lat": -1, "lon": -1})
    return da


def regrid_conservative(da: xr.DataArray, target: Grid) -> xr.DataArray:
    """Area-conservative, NaN-aware regridding of ``da`` (dims ..., lat, lon) onto ``target``."""
    src = grid_of(da)
    a = latitude_overlap(src.lat, target.lat)
    b = longitude_overlap(src.lon, target.lon)
    out = xr.apply_ufunc(
        _conservative_block, _spatial_single_chunk(da),
        input_core_dims=[["lat", "lon"]], output_core_dims=[["lat", "lon"]],
        exclude_dims={"lat", "lon"}, kwargs={"a": a, "b": b}, dask="parallelized",
        output_dtypes=[da.dtype if np.issubdtype(da.dtype, np.floating) else np.float64],
        dask_gufunc_kwargs={"output_sizes": {"lat": target.lat.size, "lon": target.lon.size}},
        keep_attrs=True,
    )
    return out.assign_coords(target.coords())


def regrid_bilinear(da: xr.DataArray, target: Grid) -> xr.DataArray:
    """Bilinear interpolation onto ``target``, periodic in longitude.

    Target rows beyond the source's latitude range (poles of a grid without pole rows)
    take the nearest source row rather than an extrapolation.
    """
    da = _spatial_single_chunk(da)
    lon = da["lon"].values
    padded = xr.concat([da.isel(lon=[-1]).assign_coords(lon=[lon[-1] - 360.0]), da,
                        da.isel(lon=[0]).assign_coords(lon=[lon[0] + 360.0])], dim="lon")
    lat_src = da["lat"].values
    lat_q = np.clip(target.lat, lat_src.min(), lat_src.max())
    out = padded.interp(lat=xr.DataArray(lat_q, dims="lat"), lon=xr.DataArray(target.lon, dims="lon"),
                        method="linear")
    out = out.drop_vars(["lat", "lon"], errors="ignore")
    out.attrs = da.attrs
    return out.assign_coords(target.coords())


def choose_method(source: Grid, target: Grid) -> Literal["conservative", "bilinear"]:
    """Conservative when coarsening (or keeping) the longitude spacing, bilinear when refining."""
    return "conservative" if target.resolution >= source.resolution - 1e-9 else "bilinear"


#: The most a source may be refined (target spacing / source spacing, either axis): 2.8 -> 1
#: degree (NeuralGCM onto the AI-MIP grid) is 2.8; a 2x2 grid "refined" to 5.625 degrees is 32.
MAX_REFINEMENT = 4.0
#: The fewest rows and columns a source grid needs to be regridded at all.
MIN_SHAPE = (3, 4)


def check_regriddable(src: Grid, target: Grid, source: str) -> None:
    """InputError unless ``src`` is a global grid fine enough to regrid onto ``target``.

    Regridding a regional patch would pad it to the globe (periodic longitudes, clipped
    latitudes) and a very coarse grid would be invented detail: both are refused.
    """
    problem = coverage_problem(src)
    if problem is not None:
        raise InputError(f"a global grid is needed to regrid to {target.resolution:g} degrees: {problem} "
                         "(a regional source is not supported; give a global one, or --grid native)", source)
    dlat = 180.0 / max(src.shape[0] - 1, 1)
    factor = max(src.resolution / target.resolution, dlat / (180.0 / max(target.shape[0] - 1, 1)))
    if src.shape[0] < MIN_SHAPE[0] or src.shape[1] < MIN_SHAPE[1] or factor > MAX_REFINEMENT:
        raise InputError(f"grid {src.shape[0]}x{src.shape[1]} is too coarse to regrid to {target.resolution:g} "
                         f"degrees ({target.shape[0]}x{target.shape[1]}, {factor:.3g} times finer; at most "
                         f"{MAX_REFINEMENT:g} times and {MIN_SHAPE[0]}x{MIN_SHAPE[1]} points)", source)


def regrid(ds: xr.Dataset, target: Grid, method: Method = "auto", source: str | None = None) -> xr.Dataset:
    """Regrid every (lat, lon) variable of a contract dataset onto ``target``.

    Returns ``ds`` unchanged when it is already on ``target``. ``auto`` picks conservative
    when coarsening and bilinear when refining. The method is recorded in ``attrs["regrid"]``.
    Non-global or too coarse sources are refused (:func:`check_regriddable`, naming ``source``).
    """
    src = grid_of(ds)
    if src.same_as(target):
        return ds
    check_regriddable(src, target, source or str(ds.attrs.get("source", "<dataset>")))
    chosen = choose_method(src, target) if method == "auto" else method
    fn = regrid_conservative if chosen == "conservative" else regrid_bilinear
    out = xr.Dataset(attrs=dict(ds.attrs))
    for name, var in ds.data_vars.items():
        out[name] = fn(var, target) if {"lat", "lon"} <= set(var.dims) else var
    for name, coord in ds.coords.items():
        if name not in out.coords and not {"lat", "lon"} & set(coord.dims):
            out = out.assign_coords({name: coord})
    out.attrs["regrid"] = (f"{chosen} from {src.shape[0]}x{src.shape[1]} to "
                           f"{target.shape[0]}x{target.shape[1]}")
    return out
