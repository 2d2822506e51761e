"""Regular latitude-longitude grids and the one area-weight function.

Contract: latitude ascending (-90..90, cell centres; "with poles" grids put the first
and last rows on the poles, as WeatherBench 2's 240 x 121), longitude 0..360 ascending.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

#: Named grids of the project: degrees -> (nlat, nlon), all equiangular with poles.
NAMED_GRIDS: dict[float, tuple[int, int]] = {0.25: (721, 1440), 1.0: (181, 360), 1.5: (121, 240),
                                             3.0: (61, 120), 5.625: (33, 64)}


@dataclass(frozen=True)
class Grid:
    """An equiangular latitude-longitude grid (``lat`` ascending, ``lon`` from 0)."""

    lat: np.ndarray
    lon: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)

    @property
    def resolution(self) -> float:
        """Longitude spacing in degrees."""
        return 360.0 / self.lon.size

    def coords(self) -> dict[str, xr.DataArray]:
        """CF coordinate variables for this grid."""
        return {
            "lat": xr.DataArray(self.lat, dims="lat", attrs={
                "units": "degrees_north", "standard_name": "latitude", "long_name": "latitude",
                "axis": "Y"}),
            "lon": xr.DataArray(self.lon, dims="lon", attrs={
                "units": "degrees_east", "standard_name": "longitude", "long_name": "longitude",
                "axis": "X"}),
        }

    def same_as(self, other: "Grid", tol: float = 1e-4) -> bool:
        return (self.shape == other.shape and np.allclose(self.lat, other.lat, atol=tol)
                and np.allclose(self.lon, other.lon, atol=tol))


def equiangular(resolution: float, poles: bool = True) -> Grid:
    """Equiangular grid of ``resolution`` degrees.

    With poles (default): nlat = 180/res + 1 rows from -90 to 90 (121 x 240 at 1.5).
    Without: nlat = 180/res rows at cell centres -90+res/2 .. 90-res/2.
    """
    nlon = int(round(360.0 / resolution))
    if abs(nlon * resolution - 360.0) > 1e-6:
        raise ValueError(f"resolution {resolution} does not divide 360 degrees")
    lon = np.arange(nlon) * (360.0 / nlon)
    if poles:
        lat = np.linspace(-90.0, 90.0, int(round(180.0 / resolution)) + 1)
    else:
        nlat = int(round(180.0 / resolution))
        lat = -90.0 + (np.arange(nlat) + 0.5) * (180.0 / nlat)
    return Grid(lat=lat, lon=lon)


def grid_of(ds: xr.Dataset | xr.DataArray) -> Grid:
    """The grid of a contract dataset (coordinates ``lat``, ``lon``)."""
    return Grid(lat=np.asarray(ds["lat"].values, dtype=float), lon=np.asarray(ds["lon"].values, dtype=float))


def coverage_problem(grid: Grid) -> str | None:
    """Why ``grid`` is not a global regular latitude-longitude grid, or None when it is.

    Global: longitudes evenly spaced (to 0.1 %) whose cells span 360 degrees, and first and last
    latitude rows within one row spacing of the poles (grids with pole rows, cell-centre grids
    such as +-87.5 at 5 degrees, Gaussian grids). A regional source fails this test.
    """
    lat, lon = grid.lat, grid.lon
    if lat.size < 2 or lon.size < 2:
        return f"grid {lat.size}x{lon.size} has fewer than 2 latitudes or longitudes"
    dlat = float(np.abs(np.diff(lat)).max())
    dlon = np.diff(lon)
    if not (np.allclose(dlon, dlon[0], rtol=1e-3) and abs(lon.size * dlon[0] - 360.0) < 1e-3 * 360.0):
        return (f"longitudes {lon.min():g}..{lon.max():g} ({lon.size} columns) do not go round the globe "
                "evenly")
    if lat.min() > -90.0 + dlat + 1e-6 or lat.max() < 90.0 - dlat - 1e-6:
        return f"latitudes {lat.min():g}..{lat.max():g} do not reach the poles (within one row spacing)"
    return None


def latitude_edges(lat: np.ndarray) -> np.ndarray:
    """Cell edges in degrees of ascending centres: midpoints between rows, the outer edges
    half a spacing beyond the end rows, clipped to +-90.

    On a grid with pole rows the first and last cells are half-cells ending at the pole;
    on a regional subset (e.g. 5S-5N) the outer edges stay inside the region.
    """
    lat = np.asarray(lat, dtype=float)
    if lat.size == 1:
        return np.array([-90.0, 90.0])
    mid = 0.5 * (lat[1:] + lat[:-1])
    first = lat[0] - 0.5 * (lat[1] - lat[0])
    last = lat[-1] + 0.5 * (lat[-1] - lat[-2])
    return np.clip(np.concatenate([[first], mid, [last]]), -90.0, 90.0)


def area_weights(lat: np.ndarray | xr.DataArray) -> xr.DataArray:
    """Relative cell area per latitude row, normalised to mean 1 (WeatherBench 2).

    w_j = sin(phi_{j+1/2}) - sin(phi_{j-1/2}), edges at midpoints between rows and +-90,
    then w / mean(w). Unlike cos(lat) this gives the pole rows their (small) true area.
    Returned with dim ``lat`` so it broadcasts against any contract field.
    """
    lat_values = np.asarray(lat, dtype=float)
    edges = np.deg2rad(latitude_edges(np.sort(lat_values)))
    w = np.diff(np.sin(edges))
    order = np.argsort(np.argsort(lat_values))  # back to the caller's order
    w = w[order]
    return xr.DataArray(w / w.mean(), dims="lat", coords={"lat": lat_values}, name="area_weight")


def global_mean(field: xr.DataArray, dims: tuple[str, ...] = ("lat", "lon"), skipna: bool = True) -> xr.DataArray:
    """Area-weighted mean over ``dims`` (NaN cells excluded from both sum and weights)."""
    w = area_weights(field["lat"])
    return field.weighted(w.fillna(0)).mean(dims, skipna=skipna)
