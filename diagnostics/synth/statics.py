"""Static fields of the synthetic climate: land fraction, orography and its sub-grid statistics.

sftlf comes from the Natural Earth land polygons (:mod:`.landmask`). Orography is synthetic
(no elevation data ships with the package): Gaussian massifs at the real locations of the
major ranges (Tibet, Andes, Rockies, East Africa, Iran, Greenland, Antarctica) plus a 300 m
continental base, multiplied by sftlf so the ocean stays at 0 m. sdor and slor are simple
monotone functions of orography, positive over land.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.grid import Grid
from .landmask import land_fraction

#: (lat, lon, peak m, lat half-width deg, lon half-width deg) of the synthetic massifs.
MASSIFS: tuple[tuple[float, float, float, float, float], ...] = (
    (33.0, 88.0, 4800.0, 6.0, 12.0),    # Tibetan plateau / Himalaya
    (-20.0, 292.0, 3800.0, 14.0, 3.5),  # Andes
    (42.0, 250.0, 2200.0, 11.0, 7.0),   # Rockies
    (5.0, 38.0, 1600.0, 8.0, 5.0),      # East African highlands
    (32.0, 55.0, 1300.0, 5.0, 10.0),    # Iranian plateau
    (72.0, 318.0, 2600.0, 7.0, 12.0),   # Greenland ice sheet
)


def gauss(lat: np.ndarray, lon: np.ndarray, lat0: float, lon0: float, sy: float, sx: float) -> np.ndarray:
    """exp(-dlat^2 / 2 sy^2 - dlon^2 / 2 sx^2), longitude difference wrapped to [-180, 180)."""
    dlon = (lon - lon0 + 180.0) % 360.0 - 180.0
    return np.exp(-0.5 * ((lat - lat0) / sy) ** 2 - 0.5 * (dlon / sx) ** 2)


@dataclass(frozen=True)
class Statics:
    """2-D coordinates and static fields of a grid (all arrays (nlat, nlon))."""

    grid: Grid
    lat: np.ndarray
    lon: np.ndarray
    sftlf: np.ndarray
    orog: np.ndarray
    sdor: np.ndarray
    slor: np.ndarray

    @property
    def ocean(self) -> np.ndarray:
        """Cells where SST is defined (land fraction below one half)."""
        return self.sftlf < 0.5


def orography(lat: np.ndarray, lon: np.ndarray, sftlf: np.ndarray) -> np.ndarray:
    """Surface altitude (m): 300 m continental base + massifs + Antarctic dome, times sftlf."""
    h = 300.0 + sum(peak * gauss(lat, lon, la, lo, sy, sx) for la, lo, peak, sy, sx in MASSIFS)
    h = h + 2700.0 * np.clip((-lat - 65.0) / 20.0, 0.0, 1.0) ** 0.5
    return h * sftlf


def make_statics(grid: Grid) -> Statics:
    """All static fields of the synthetic climate on ``grid``."""
    lat, lon = np.meshgrid(grid.lat, grid.lon, indexing="ij")
    sftlf = land_fraction(grid)
    orog = orography(lat, lon, sftlf)
    sdor = 0.15 * orog + 20.0 * sftlf
    slor = np.clip(0.004 + orog / 1.0e5, 0.0, 0.1) * sftlf
    return Statics(grid, lat, lon, sftlf, orog, sdor, slor)
