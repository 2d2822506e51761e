"""Map panels with coastlines (cartopy), drawn offline from the shipped Natural Earth files.

cartopy downloads Natural Earth shapefiles on first use, which fails offline and must
never happen in a report. :func:`configure_cartopy` points cartopy at the 110m coastline
shipped in ``diagnostics/data/natural_earth`` (cartopy's directory layout) before any map
is drawn; any other cartopy download would go to a private cache directory.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display, no GUI toolkit

import cartopy  # noqa: E402
import cartopy.crs as ccrs  # noqa: E402
import cartopy.feature  # noqa: E402
import cartopy.mpl.path as cpath  # noqa: E402
import matplotlib.path as mpath  # noqa: E402
from matplotlib.patches import PathPatch  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

import diagnostics  # noqa: E402

COASTLINE = Path("shapefiles/natural_earth/physical/ne_110m_coastline.shp")
PLATE = ccrs.PlateCarree()
SEAM_EPS = 1e-4  # degrees
#: projected coastlines, one compound path per projection (proj4 string), built once per process
_COASTLINES: dict[str, mpath.Path] = {}


def natural_earth_root() -> Path:
    """Root of the Natural Earth files shipped with ``diagnostics`` (cartopy layout)."""
    return Path(diagnostics.__file__).resolve().parent / "data" / "natural_earth"


def configure_cartopy() -> Path:
    """Make cartopy read coastlines from the shipped files and never write to ~ or download.

    Returns the Natural Earth root. Idempotent; called in every process that draws a map.
    """
    root = natural_earth_root()
    if not (root / COASTLINE).exists():
        raise FileNotFoundError(f"{root / COASTLINE}: shipped Natural Earth coastline missing; "
                                "reinstall the package")
    cartopy.config["pre_existing_data_dir"] = str(root)
    cache = Path(os.environ.get("XDG_CACHE_HOME", tempfile.gettempdir())) / "md-reports-cartopy"
    cache.mkdir(parents=True, exist_ok=True)
    cartopy.config["data_dir"] = str(cache)
    return root


def cell_edges(centres: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """Edges half-way between centres, extended by half a spacing at both ends, clipped to [lo, hi]."""
    c = np.asarray(centres, dtype=float)
    if c.size == 1:
        edges = np.array([c[0] - 0.5, c[0] + 0.5])
    else:
        mid = 0.5 * (c[1:] + c[:-1])
        edges = np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])
    if lo is not None or hi is not None:
        edges = np.clip(edges, lo, hi)
    return edges


def finite_extent(da: xr.DataArray) -> tuple[float, float, float, float]:
    """(lon0, lon1, lat0, lat1) covering the finite cells; lon0 in [-180, 180), lon1 > lon0.

    Longitudes wrap: the extent starts after the largest gap in covered longitudes, so a
    North-Atlantic box 270E..40E gives (-90, 40).
    """
    ok = np.isfinite(da.transpose("lat", "lon").values)
    lats = da["lat"].values[ok.any(axis=1)]
    lons = np.sort(np.mod(da["lon"].values[ok.any(axis=0)], 360.0))
    if lats.size == 0 or lons.size == 0:
        return (-180.0, 180.0, -90.0, 90.0)
    dlon = float(np.median(np.diff(np.sort(np.mod(da["lon"].values, 360.0))))) if da.sizes["lon"] > 1 else 1.0
    dlat = float(np.abs(np.median(np.diff(da["lat"].values)))) if da.sizes["lat"] > 1 else 1.0
    gaps = np.diff(np.concatenate([lons, [lons[0] + 360.0]]))
    i = int(np.argmax(gaps))
    if gaps[i] <= 1.5 * dlon:  # no gap: full circle
        lon0, lon1 = -180.0, 180.0
    else:
        lon0 = lons[(i + 1) % lons.size]
        lon1 = lons[i] if lons[i] >= lon0 else lons[i] + 360.0
        if lon0 >= 180.0:
            lon0, lon1 = lon0 - 360.0, lon1 - 360.0
        lon0, lon1 = lon0 - dlon / 2, lon1 + dlon / 2
    lat0 = max(-90.0, float(lats.min()) - dlat / 2)
    lat1 = min(90.0, float(lats.max()) + dlat / 2)
    return (float(lon0), float(lon1), lat0, lat1)


def choose_projection(extent: tuple[float, float, float, float], central_longitude: float = 0.0) -> ccrs.Projection:
    """Robinson for global fields, polar stereographic for caps reaching a pole, else Lambert conformal."""
    lon0, lon1, lat0, lat1 = extent
    global_lon = lon1 - lon0 >= 350.0
    if global_lon and lat0 <= -60.0 and lat1 >= 60.0:
        return ccrs.Robinson(central_longitude=central_longitude)
    if global_lon and lat1 >= 85.0 and lat0 >= -5.0:
        return ccrs.NorthPolarStereo()
    if global_lon and lat0 <= -85.0 and lat1 <= 5.0:
        return ccrs.SouthPolarStereo()
    if global_lon:
        return ccrs.PlateCarree(central_longitude=central_longitude)
    mid_lat = 0.5 * (lat0 + lat1)
    if abs(mid_lat) < 15.0:
        return ccrs.PlateCarree(central_longitude=0.5 * (lon0 + lon1))
    return ccrs.LambertConformal(central_longitude=0.5 * (lon0 + lon1), central_latitude=mid_lat,
                                 standard_parallels=(lat0 + (lat1 - lat0) / 4, lat1 - (lat1 - lat0) / 4))


def setup_axes(ax, extent: tuple[float, float, float, float]) -> None:
    """Extent, coastlines and (for polar caps) a round boundary on a GeoAxes."""
    lon0, lon1, lat0, lat1 = extent
    proj = ax.projection
    if isinstance(proj, (ccrs.NorthPolarStereo, ccrs.SouthPolarStereo)):
        ax.set_extent([-180, 180, lat0, lat1] if lat1 >= 85 else [-180, 180, lat0, lat1], crs=PLATE)
        theta = np.linspace(0, 2 * np.pi, 100)
        circle = mpath.Path(np.vstack([np.sin(theta), np.cos(theta)]).T * 0.5 + 0.5)
        ax.set_boundary(circle, transform=ax.transAxes)
    elif isinstance(proj, ccrs.Robinson):
        ax.set_global()
    else:
        ax.set_extent([lon0, lon1, lat0, lat1], crs=PLATE)
    add_coastlines(ax)


def coastline_path(proj: ccrs.Projection) -> mpath.Path:
    """The Natural Earth 110m coastline projected to ``proj``, as one compound path (map units).

    Cached per projection: ``ax.coastlines()`` would redo the extent query, the intersection
    test of all 134 coastline geometries and draw them as separate paths on every panel
    (about 8 ms a panel, a fifth of a one-panel map); projecting is cartopy's own
    ``project_geometry``, so the lines are the ones ``ax.coastlines()`` draws.
    """
    key = proj.proj4_init
    if key not in _COASTLINES:
        feature = cartopy.feature.COASTLINE.with_scale("110m")
        paths = [cpath.shapely_to_path(proj.project_geometry(g, feature.crs)) for g in feature.geometries()]
        _COASTLINES[key] = mpath.Path.make_compound_path(*[p for p in paths if len(p.vertices)])
    return _COASTLINES[key]


def add_coastlines(ax) -> PathPatch:
    """Coastlines on a GeoAxes, styled as ``ax.coastlines(linewidth=0.5, color="0.15")`` (zorder 1.5:
    above the field, below text), clipped to the map outline."""
    patch = PathPatch(coastline_path(ax.projection), facecolor="none", edgecolor="0.15", linewidth=0.5,
                      zorder=1.5, transform=ax.transData)
    ax.add_artist(patch)  # add_artist: clipped to the map outline, no change to the data limits
    return patch


def projected_aspect(proj: ccrs.Projection, extent: tuple[float, float, float, float]) -> float:
    """Height / width of the map area of ``extent`` in ``proj`` (1 for round polar caps)."""
    if isinstance(proj, (ccrs.NorthPolarStereo, ccrs.SouthPolarStereo)):
        return 1.0
    if isinstance(proj, ccrs.Robinson):
        (x0, x1), (y0, y1) = proj.x_limits, proj.y_limits
        return (y1 - y0) / (x1 - x0)
    lon0, lon1, lat0, lat1 = extent
    lo = np.linspace(lon0, lon1, 60)
    la = np.linspace(lat0, lat1, 30)
    border_lon = np.concatenate([lo, np.full(la.size, lon1), lo[::-1], np.full(la.size, lon0)])
    border_lat = np.concatenate([np.full(lo.size, lat0), la, np.full(lo.size, lat1), la[::-1]])
    xy = proj.transform_points(PLATE, border_lon, border_lat)
    ok = np.isfinite(xy[:, 0]) & np.isfinite(xy[:, 1])
    width = np.ptp(xy[ok, 0]) if ok.any() else 1.0
    return float(np.ptp(xy[ok, 1]) / width) if ok.any() and width > 0 else 0.5


def draw_field(ax, da: xr.DataArray, cmap, norm):
    """pcolormesh of a (lat, lon) field on cell edges, in geographic coordinates.

    Longitudes are rolled into [c - 180, c + 180) for the map's central longitude c, and
    the cell cut by the map's edge is split in two halves (one at each side). No quad then
    crosses the map boundary, which spares cartopy its slow per-cell wrapping fallback
    (about 0.4 s per panel).
    """
    da = da.transpose("lat", "lon")
    c = float(ax.projection.proj4_params.get("lon_0", 0.0))
    west = c - 180.0
    lon = np.mod(da["lon"].values - west, 360.0) + west
    order = np.argsort(lon, kind="stable")
    lon, values = lon[order], np.ma.masked_invalid(da.values[:, order])
    edges = cell_edges(lon)
    if da.sizes["lon"] > 1 and edges[-1] - edges[0] >= 359.0:  # global: close the seam at the map edge
        # a hair inside the seam: exactly c +- 180 may project to the opposite side of the map
        lo, hi = west + SEAM_EPS, west + 360.0 - SEAM_EPS
        edges = np.clip(edges, lo, hi)
        if edges[0] > lo:
            edges = np.concatenate([[lo], edges])
            values = np.ma.concatenate([values[:, -1:], values], axis=1)
        if edges[-1] < hi:
            edges = np.concatenate([edges, [hi]])
            values = np.ma.concatenate([values, values[:, :1]], axis=1)
    lat_e = cell_edges(da["lat"].values, -90.0, 90.0)
    return ax.pcolormesh(edges, lat_e, values, cmap=cmap, norm=norm, transform=PLATE, shading="flat")
