"""HEALPix submissions of the AI-MIP Phase-1 archive, regridded to a regular lat-lon grid.

Two layouts are in the archive (ai2cm/AIMIP ``aimip_data_utils.py``):

* ``healpix-cell`` (cBottle-1.3): one ``cell`` dim of 12 nside^2 pixels (nside 64 -> 49152)
  with ``lat``/``lon`` coordinates on it. The pixel of every cell is found from its own
  coordinates (``healpy.ang2pix``) and checked back against ``healpy.pix2ang``: the ordering
  (``nest``, ``ring`` or any permutation) is thus read from the file, not assumed, and an
  ordering attribute (``healpix_order`` on the variable, the dataset or a ``crs`` variable)
  that contradicts the coordinates is refused.
* ``healpix-faces`` (DLESyM): dims ``face, height, width`` = 12 x nside x nside, no lat/lon.
  The ordering is the official evaluation's (``add_latlon_to_dlesym``): the value at
  ``(face=f, height=h, width=w)`` belongs to the pixel ``xyf2pix(nside, x=nside-1-h,
  y=nside-1-w, face=f)`` (healpy's face numbering, 0-3 north, 4-7 equator, 8-11 south).
  Without coordinates it cannot be read from the file; :func:`face_orientation_roughness`
  checks it from the data: a real field is smooth across face edges only in the right
  orientation, so among the 8 orientations of the faces (the symmetries of a square) the
  assumed one must be (about) the smoothest, else :func:`to_latlon` refuses the file.

Regridding is first-order conservative (xESMF's ``conservative``, as the official evaluation
uses), with the weights computed here from healpy alone: the weight of pixel p in lat-lon
cell c is |c n p| / |c|, the area of their intersection over the cell's area. The
intersection areas are estimated by splitting every cell into k x k equal-area sub-cells
(equal steps in longitude and in sin(latitude)) and asking ``healpy.ang2pix`` which pixel
holds each sub-cell's centre: |c n p| ~ |c| n_cp / k^2, exact as k -> infinity. On a global
grid the estimate is then balanced (Newton's method on the Sinkhorn scaling) so that both
margins are the exact ones the true matrix has: every cell's weights sum to 1 (a constant stays
constant to round-off) and every pixel's intersections add up to its area 4 pi / (12 nside^2)
(the area-weighted global mean is conserved to round-off). Measured: a constant stays
constant to 1e-15, the global mean is conserved to 1e-10 relative; cos(lat) cos(lon) given at
nside-64 pixel centres comes out on the 5.625 deg grid within 6.6e-3 of the closed-form cell
means (2.9e-3 within +-80 deg, rms 6.2e-4): the error of a piecewise-constant source (about
0.3 x pixel size x gradient), not of the weights, which converge as k grows.

``method="bilinear-mean"`` is second order: each sub-cell takes healpy's bilinear interpolant
(``get_interp_weights``, 4 pixels) instead of its pixel's value, so a cell gets the mean of
a continuous reconstruction; balanced the same way, it keeps constants and the global mean to
round-off, its weights stay positive (no new extrema), and the same cos(lat) cos(lon) comes
out within 8.3e-4 (5.9e-5 within +-80 deg, rms 7.2e-5) at 5.625 deg, 1.7e-3 at 1 deg (1.5e-4
within +-80 deg). Use it where the field is smooth and the grids are alike in size; the
default stays ``conservative``, what the official evaluation computes.

The weights are a ``scipy.sparse`` matrix applied per block inside
``xarray.apply_ufunc(dask="parallelized")``: a 46-year 3-D field streams in bounded memory.
NaN-aware like :mod:`diagnostics.io.regrid`: a cell averages its valid pixels, a cell with
none stays NaN.
"""

from __future__ import annotations

import functools
from typing import Literal

import numpy as np
import scipy.sparse as sp
import xarray as xr

from ..data.errors import InputError
from ..data.grid import Grid, latitude_edges
from .regrid import longitude_edges

Layout = Literal["healpix-cell", "healpix-faces"]
#: ``conservative``: first order, cell mean of the piecewise-constant pixels (xESMF's
#: conservative); ``bilinear-mean``: cell mean of healpy's bilinear interpolant (second order).
Method = Literal["conservative", "bilinear-mean"]

#: Not ICON's ``ncells``: an unstructured non-HEALPix mesh must not be taken for one.
CELL_DIMS: tuple[str, ...] = ("cell", "cells", "pix", "pixel")
FACE_DIMS: tuple[str, str, str] = ("face", "height", "width")
_ORDER_ATTRS = ("healpix_order", "order", "ordering")
#: Coordinates may be stored in float32: centres must match to this fraction of a pixel.
_CENTRE_TOLERANCE = 0.01


def _healpy():
    try:
        import healpy
    except ImportError as exc:  # pragma: no cover - healpy is a dependency
        raise InputError("reading HEALPix needs the healpy package (pip install healpy)") from exc
    return healpy


def nside_of(npix: int, what: str = "cell", source: str | None = None) -> int:
    """nside from a pixel count 12 nside^2 (nside a power of 2), else :class:`InputError` (naming ``source``)."""
    nside = int(round(np.sqrt(npix / 12.0)))
    if nside < 1 or 12 * nside * nside != npix or nside & (nside - 1):
        raise InputError(f"{what} dim has {npix} cells, expected 12 nside^2 with nside a power of 2 "
                         f"(nside 64 -> 49152)", source)
    return nside


def faces_nside(ds: xr.Dataset | xr.DataArray, source: str = "dataset") -> int:
    """nside of a ``healpix-faces`` dataset: its dims must be face x height x width = 12 x nside x
    nside with nside a power of 2, else a one-line :class:`InputError` naming ``source``."""
    face, height, width = (ds.sizes[d] for d in FACE_DIMS)
    if face != 12 or height != width or width < 1 or width & (width - 1):
        raise InputError(f"face/height/width dims are {face} x {height} x {width}, expected 12 x nside x nside "
                         "with nside a power of 2 (DLESyM: 12 x 64 x 64)", source)
    return int(width)


def _cell_dim(ds: xr.Dataset | xr.DataArray) -> str | None:
    return next((d for d in CELL_DIMS if d in ds.dims), None)


def is_healpix(ds: xr.Dataset | xr.DataArray) -> Layout | None:
    """Which HEALPix layout ``ds`` is in (by its dims), or None for anything else.

    ``healpix-faces``: dims face, height, width; ``healpix-cell``: a ``cell``-like dim
    (also ``cells``/``pix``/``pixel``) and no lat/lon dims. Sizes are checked by
    :func:`to_latlon`, so a wrong cell count gets a message rather than "not HEALPix".
    """
    if all(d in ds.dims for d in FACE_DIMS):
        return "healpix-faces"
    if _cell_dim(ds) is not None and not ({"lat", "lon", "latitude", "longitude"} & set(ds.dims)):
        return "healpix-cell"
    return None


# ----------------------------------------------------------------------------- pixel indices

def dlesym_ring_index(nside: int) -> np.ndarray:
    """Ring pixel index of every DLESyM value, shape (face, height, width).

    ipix[f, h, w] = xyf2pix(nside, x=nside-1-h, y=nside-1-w, f): the official evaluation's
    mapping (it builds xyf2pix(x=w, y=h) on (face, height, width), relabels the axes as
    (face, width, height) and reverses both).
    """
    hp = _healpy()
    f, h, w = np.meshgrid(np.arange(12), np.arange(nside), np.arange(nside), indexing="ij")
    return hp.xyf2pix(nside, nside - 1 - h, nside - 1 - w, f, nest=False)


def _order_attribute(ds: xr.Dataset, var: str | None) -> str | None:
    holders = [ds.attrs] + ([ds[var].attrs] if var else []) + [ds[v].attrs for v in ("crs",) if v in ds]
    for attrs in holders:
        for key in _ORDER_ATTRS:
            value = str(attrs.get(key, "")).strip().lower()
            if value in ("nest", "nested", "ring"):
                return "nest" if value.startswith("nest") else "ring"
    return None


def cell_ring_index(ds: xr.Dataset, source: str = "dataset") -> tuple[np.ndarray, str]:
    """Ring pixel index of each cell of a ``healpix-cell`` dataset, and the ordering found.

    With lat/lon coordinates on the cell dim: pixels from ``ang2pix``, which must form a
    permutation of all 12 nside^2 pixels whose ``pix2ang`` centres match the coordinates
    (to 1 % of a pixel); the ordering is ``nest`` or ``ring`` when the cells are in that
    order, else ``permuted``. Without coordinates an ordering attribute is required.
    """
    hp = _healpy()
    dim = _cell_dim(ds)
    nside = nside_of(ds.sizes[dim], dim, source)
    npix = 12 * nside * nside
    var = next((v for v in ds.data_vars if dim in ds[v].dims), None)
    declared = _order_attribute(ds, var)
    lat_name = next((n for n in ("lat", "latitude") if n in ds.variables and ds[n].dims == (dim,)), None)
    lon_name = next((n for n in ("lon", "longitude") if n in ds.variables and ds[n].dims == (dim,)), None)
    if lat_name is None or lon_name is None:
        if declared is None:
            raise InputError(f"HEALPix {dim} dim without lat/lon coordinates on it and without a "
                             "healpix_order attribute (nest or ring): cannot place the cells", source)
        cells = np.arange(npix)
        return (hp.nest2ring(nside, cells) if declared == "nest" else cells), declared
    lat = np.asarray(ds[lat_name].values, dtype=np.float64)
    lon = np.asarray(ds[lon_name].values, dtype=np.float64) % 360.0
    if not (np.all(np.isfinite(lat)) and np.all(np.abs(lat) <= 90.0)):
        raise InputError(f"{lat_name} on the {dim} dim is not finite within -90..90", source)
    ring = hp.ang2pix(nside, lon, lat, lonlat=True, nest=False)
    clon, clat = hp.pix2ang(nside, ring, lonlat=True, nest=False)
    dlon = np.abs((lon - clon + 180.0) % 360.0 - 180.0) * np.cos(np.deg2rad(lat))
    miss = np.hypot(dlon, lat - clat).max()
    if miss > _CENTRE_TOLERANCE * np.rad2deg(hp.nside2resol(nside)):
        raise InputError(f"{lat_name}/{lon_name} are not the pixel centres of HEALPix nside {nside} "
                         f"(off by up to {miss:.3g} deg)", source)
    if np.unique(ring).size != npix:
        raise InputError(f"{lat_name}/{lon_name} name {np.unique(ring).size} distinct HEALPix nside "
                         f"{nside} pixels, expected all {npix}", source)
    cells = np.arange(npix)
    order = ("ring" if np.array_equal(ring, cells) else
             "nest" if np.array_equal(hp.ring2nest(nside, ring), cells) else "permuted")
    if declared is not None and order != declared:
        raise InputError(f"the file says healpix_order={declared} but its {lat_name}/{lon_name} "
                         f"coordinates are in {order} order", source)
    return ring, order


# ----------------------------------------------------------------------------- orientation check

def _orientations(nside: int) -> dict[str, np.ndarray]:
    """The 8 orientations (square symmetries) of the faces, as ring indices (face, h, w)."""
    base = dlesym_ring_index(nside)
    out: dict[str, np.ndarray] = {}
    for k in range(4):
        rot = np.rot90(base, k, axes=(1, 2))
        out[f"rot{90 * k}"] = rot
        out[f"rot{90 * k}+transpose"] = np.swapaxes(rot, 1, 2)
    return out


def face_orientation_roughness(values: np.ndarray) -> dict[str, float]:
    """Mean squared difference to the 8 HEALPix neighbours of a (face, height, width) field,
    for each of the 8 orientations of the faces; ``rot0`` is the orientation assumed.

    Inside a face every orientation has the same neighbours; across the face edges only the
    right one joins matching values, so it is the smoothest for any real field. (A zonally
    symmetric field cannot tell ``rot0`` from some transposes: those tie.)
    """
    hp = _healpy()
    values = np.asarray(values, dtype=np.float64)
    nside = values.shape[-1]
    neighbours = hp.get_all_neighbours(nside, np.arange(12 * nside * nside))  # (8, npix), -1 = none
    out = {}
    for name, ipix in _orientations(nside).items():
        ring = np.empty(12 * nside * nside)
        ring[ipix.ravel()] = values.ravel()
        ok = neighbours >= 0
        diff = np.where(ok, ring[None, :] - ring[np.where(ok, neighbours, 0)], 0.0)
        out[name] = float(np.nanmean(diff[ok] ** 2))
    return out


def check_face_orientation(values: np.ndarray, source: str = "dataset", margin: float = 0.9) -> None:
    """Refuse a (face, height, width) field for which another orientation is clearly smoother
    (roughness below ``margin`` x that of the assumed one): the faces are not laid out as
    DLESyM's are. A field too uniform to tell (all equal) passes."""
    rough = face_orientation_roughness(values)
    assumed = rough.pop("rot0")
    best = min(rough, key=rough.get)
    if rough[best] < margin * assumed:
        raise InputError(f"face/height/width field is smoother with the faces turned ({best}: "
                         f"roughness {rough[best]:.3g} vs {assumed:.3g} as DLESyM lays them out): "
                         "not DLESyM's face/pixel ordering", source)


# ----------------------------------------------------------------------------- weights

def _is_global(grid: Grid) -> bool:
    edges = latitude_edges(grid.lat)
    return bool(edges[0] <= -90.0 + 1e-9 and edges[-1] >= 90.0 - 1e-9 and abs(grid.resolution * grid.lon.size - 360.0) < 1e-6)


def default_subsamples(nside: int, grid: Grid) -> int:
    """k so that the k x k sub-cells are about 1/8 of a pixel across (at least 8)."""
    hp = _healpy()
    return int(max(8, np.ceil(8.0 * grid.resolution / np.rad2deg(hp.nside2resol(nside)))))


def _balance(m: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray, tol: float = 1e-11,
             max_iter: int = 8) -> sp.csr_matrix:
    """Scale m (estimated intersection areas) to m_cp exp(u_c + v_p) with row sums ``rows``
    and column sums ``cols``: Newton's method on the Sinkhorn scaling (plain iterative
    proportional fitting converges far too slowly on a sparse, mesh-like matrix).

    Each step solves the sparse system [[diag R, M], [M^T, diag C]] (du, dv) = -(R - rows,
    C - cols) by Jacobi-preconditioned conjugate gradients (the system is a positive
    semi-definite graph Laplacian whose one null vector, u + a, v - a, the right side is
    orthogonal to on a global grid); it ends on an exact row scaling, so that every row sums
    to its area to round-off.
    """
    from scipy.sparse.linalg import cg

    m = m.tocsr(copy=True)
    nr, nc = m.shape
    for _ in range(max_iter):
        r = np.asarray(m.sum(axis=1)).ravel()
        c = np.asarray(m.sum(axis=0)).ravel()
        if max(np.abs(r - rows).max() / rows.max(), np.abs(c - cols).max() / cols.max()) <= tol:
            break
        jac = sp.bmat([[sp.diags(r), m], [m.T, sp.diags(c)]], format="csr")
        jacobi = sp.diags(1.0 / np.concatenate([r, c]))
        step, _ = cg(jac, -np.concatenate([r - rows, c - cols]), rtol=1e-8, maxiter=1000, M=jacobi)
        du, dv = step[:nr], step[nr:]
        shift = 0.5 * (du.mean() - dv.mean())  # drop the null-space part CG may pick up
        du, dv = du - shift, dv + shift
        m = (sp.diags(np.exp(du)) @ m @ sp.diags(np.exp(dv))).tocsr()
    r = np.asarray(m.sum(axis=1)).ravel()
    return (sp.diags(rows / r) @ m).tocsr()


@functools.lru_cache(maxsize=8)
def _ring_weights(nside: int, lat: tuple[float, ...], lon: tuple[float, ...], k: int,
                  method: Method = "conservative") -> sp.csr_matrix:
    hp = _healpy()
    grid = Grid(lat=np.asarray(lat), lon=np.asarray(lon))
    npix = 12 * nside * nside
    s_edges = np.sin(np.deg2rad(latitude_edges(grid.lat)))
    west, east = longitude_edges(grid.lon)
    frac = (np.arange(k) + 0.5) / k
    nlat, nlon = grid.shape
    sub_lon = (west[:, None] + (east - west)[:, None] * frac[None, :]).ravel()  # (nlon*k,)
    col_of_lon = np.repeat(np.arange(nlon), k)
    blocks = []
    for i in range(nlat):  # one latitude row at a time: memory O(nlon k^2)
        s = s_edges[i] + (s_edges[i + 1] - s_edges[i]) * frac
        sub_lat = np.rad2deg(np.arcsin(np.clip(s, -1.0, 1.0)))
        la, lo = np.meshgrid(sub_lat, sub_lon, indexing="ij")  # (k, nlon*k)
        cell = i * nlon + np.broadcast_to(col_of_lon, la.shape).ravel()
        if method == "conservative":
            pix = hp.ang2pix(nside, lo.ravel() % 360.0, la.ravel(), lonlat=True, nest=False)
            share = np.ones(pix.size)
        else:  # healpy's bilinear interpolant at each sub-cell centre: 4 pixels each
            pix, share = hp.get_interp_weights(nside, lo.ravel() % 360.0, la.ravel(), lonlat=True)
            cell = np.broadcast_to(cell, pix.shape)
        key, inverse = np.unique(cell.astype(np.int64).ravel() * npix + pix.ravel(), return_inverse=True)
        count = np.bincount(inverse.ravel(), weights=share.ravel(), minlength=key.size)
        blocks.append((key // npix, key % npix, count))
    r = np.concatenate([b[0] for b in blocks])
    p = np.concatenate([b[1] for b in blocks])
    n = np.concatenate([b[2] for b in blocks]).astype(np.float64)
    area = (np.diff(s_edges)[:, None] * np.deg2rad(east - west)[None, :]).ravel()  # steradians
    m = sp.csr_matrix((n / k ** 2 * area[r], (r, p)), shape=(nlat * nlon, npix))
    if _is_global(grid):
        m = _balance(m, area, np.full(npix, 4.0 * np.pi / npix))
    return (sp.diags(1.0 / area) @ m).tocsr()


def latlon_weights(nside: int, grid: Grid, k: int | None = None,
                   method: Method = "conservative") -> sp.csr_matrix:
    """W (nlat*nlon, 12 nside^2), ring-ordered columns: y = W x, x on pixels, y row-major on grid.

    W[c, p] = |c n p| / |c| estimated with k x k equal-area sub-cells per cell, balanced on
    a global grid so that sum_p W[c, p] = 1 and sum_c |c| W[c, p] = 4 pi / (12 nside^2).
    """
    k = default_subsamples(nside, grid) if k is None else int(k)
    if method not in ("conservative", "bilinear-mean"):
        raise ValueError(f"method {method!r}")
    return _ring_weights(nside, tuple(map(float, grid.lat)), tuple(map(float, grid.lon)), k, method)


# ----------------------------------------------------------------------------- application

def _apply_block(x: np.ndarray, w: sp.csr_matrix, ncore: int, shape: tuple[int, int]) -> np.ndarray:
    """(..., *core) -> (..., nlat, nlon) by the sparse weights, NaN-aware."""
    lead = x.shape[: x.ndim - ncore]
    flat = x.reshape(-1, w.shape[1]).astype(np.float64)
    valid = np.isfinite(flat)
    if valid.all():
        out = (w @ flat.T).T
    else:
        num = (w @ np.where(valid, flat, 0.0).T).T
        den = (w @ valid.astype(np.float64).T).T
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(den > 1e-9, num / den, np.nan)
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    return out.reshape(*lead, *shape).astype(dtype)


def _regrid_var(da: xr.DataArray, core: list[str], w: sp.csr_matrix, grid: Grid) -> xr.DataArray:
    if da.chunks is not None:
        da = da.chunk({d: -1 for d in core})
    out = xr.apply_ufunc(
        _apply_block, da, input_core_dims=[core], output_core_dims=[["lat", "lon"]],
        dask="parallelized", output_dtypes=[da.dtype if np.issubdtype(da.dtype, np.floating) else np.float64],
        dask_gufunc_kwargs={"output_sizes": {"lat": grid.shape[0], "lon": grid.shape[1]}},
        kwargs={"w": w, "ncore": len(core), "shape": grid.shape}, keep_attrs=True)
    return out


def to_latlon(ds: xr.Dataset, grid: Grid, *, method: Method = "conservative", k: int | None = None,
              source: str = "dataset", check_orientation: bool = True) -> xr.Dataset:
    """Regrid every HEALPix variable of ``ds`` to ``grid`` (conservative, lazy).

    Variables without the HEALPix dims (``time_bnds``, scalars) are kept; the cells'
    ``lat``/``lon``/``crs`` variables are replaced by the grid's CF coordinates. Variable and
    dataset attributes are kept; ``regrid_method`` and ``healpix_source`` say what was done.
    ``check_orientation`` (DLESyM) runs :func:`check_face_orientation` on the first 2-D slice
    of the first variable: a layout check (one slice suffices), not a validity check.
    """
    layout = is_healpix(ds)
    if layout is None:
        raise InputError("not a HEALPix dataset: expected a cell dim (cBottle) or face/height/width "
                         "dims (DLESyM)", source)
    if layout == "healpix-faces":
        nside = faces_nside(ds, source)
        core = list(FACE_DIMS)
        ring = dlesym_ring_index(nside).ravel()
        order = "DLESyM faces: (f, h, w) -> xyf2pix(x=nside-1-h, y=nside-1-w, f)"
        variables = [v for v in ds.data_vars if set(core) <= set(ds[v].dims)]
        if check_orientation and variables:
            first = ds[variables[0]].transpose(..., *core)
            check_face_orientation(np.asarray(first.isel({d: 0 for d in first.dims[:-3]}).values), source)
    else:
        dim = _cell_dim(ds)
        core = [dim]
        ring, order = cell_ring_index(ds, source)
        nside = nside_of(ds.sizes[dim], dim, source)
        variables = [v for v in ds.data_vars if dim in ds[v].dims and v not in ("lat", "lon", "latitude", "longitude")]
    if not variables:
        raise InputError(f"no data variable on the HEALPix dims {core}", source)
    w = latlon_weights(nside, grid, k, method)[:, ring]  # columns in the file's cell order
    out = ds.drop_dims(core).drop_vars([v for v in ("crs",) if v in ds.variables])
    for name in variables:
        da = ds[name].transpose(..., *core)
        out[name] = _regrid_var(da.drop_vars([c for c in da.coords if set(ds[c].dims) & set(core)]),
                                core, w, grid)
    out = out.assign_coords(grid.coords())
    out.attrs = dict(ds.attrs)
    how = ("conservative: weight of HEALPix pixel p in lat-lon cell c = |c n p| / |c|" if method == "conservative"
           else "bilinear-mean: cell mean of healpy's bilinear interpolant")
    out.attrs["regrid_method"] = (f"{how}, "
                                  f"k x k = {default_subsamples(nside, grid) if k is None else k}^2 equal-area "
                                  "sub-cells per cell, balanced to the exact margins (healpy)")
    out.attrs["healpix_source"] = f"{layout}, nside {nside}, {order} ordering"
    return out
