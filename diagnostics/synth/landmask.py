"""Land area fraction of a grid from the Natural Earth 110m land polygons shipped in the package.

sftlf(cell) = fraction of an n x n lattice of sub-samples inside the cell (equally spaced in
longitude and in sin(latitude), so every sub-sample stands for the same area) that fall inside
a land polygon. Polygons are read with pyshp and tested with shapely 2's vectorised
``contains_xy``; no network and nothing outside the package is read.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import shapefile
import shapely
from shapely.geometry import shape

from ..data.grid import Grid, latitude_edges

#: Root of the shipped Natural Earth data, in cartopy's ``pre_existing_data_dir`` layout.
NATURAL_EARTH_DIR = Path(__file__).resolve().parent.parent / "data" / "natural_earth"
LAND_SHAPEFILE = NATURAL_EARTH_DIR / "shapefiles" / "natural_earth" / "physical" / "ne_110m_land.shp"


@functools.lru_cache(maxsize=1)
def land_geometry() -> shapely.Geometry:
    """Union of the Natural Earth 110m land polygons (lon -180..180, lat -90..90), prepared."""
    reader = shapefile.Reader(str(LAND_SHAPEFILE))
    try:
        geoms = [shape(s.__geo_interface__) for s in reader.shapes()]
    finally:
        reader.close()
    land = shapely.union_all(geoms)
    shapely.prepare(land)
    return land


def _longitude_edges(lon: np.ndarray) -> np.ndarray:
    """Cell edges of an ascending, evenly spaced, periodic longitude axis."""
    d = 360.0 / lon.size
    return np.concatenate([lon - d / 2, [lon[-1] + d / 2]])


def land_fraction(grid: Grid, subsamples: int | None = None) -> np.ndarray:
    """Land area fraction (0..1) of every cell, shape (nlat, nlon).

    ``subsamples`` per cell side defaults to about 0.5 degree spacing (at least 4), which
    resolves the 110m polygons (their vertices are ~1 degree apart).
    """
    n = subsamples or max(4, int(np.ceil(grid.resolution / 0.5)))
    frac = (np.arange(n) + 0.5) / n
    s_edges = np.sin(np.deg2rad(latitude_edges(grid.lat)))  # equal-area steps in sin(lat)
    s = s_edges[:-1, None] + np.diff(s_edges)[:, None] * frac[None, :]  # (nlat, n)
    lat_sub = np.rad2deg(np.arcsin(np.clip(s, -1.0, 1.0)))
    lon_edges = _longitude_edges(grid.lon)
    lon_sub = lon_edges[:-1, None] + np.diff(lon_edges)[:, None] * frac[None, :]  # (nlon, n)
    lon_sub = (lon_sub + 180.0) % 360.0 - 180.0  # Natural Earth uses -180..180
    y = np.broadcast_to(lat_sub[:, :, None, None], (grid.lat.size, n, grid.lon.size, n))
    x = np.broadcast_to(lon_sub[None, None, :, :], y.shape)
    inside = shapely.contains_xy(land_geometry(), x.ravel(), y.ravel()).reshape(y.shape)
    return inside.mean(axis=(1, 3))
