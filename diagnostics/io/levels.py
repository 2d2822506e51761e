"""Pressure levels for AI-MIP: the 7 evaluation levels, geopotential as ``zg``, ``tdas`` -> ``huss``.

* :func:`to_levels` puts a field on the AI-MIP levels (1000, 850, 700, 500, 250, 100, 50 hPa,
  ``catalogue.PLEV_HPA``) from any source levels (the 19 CMIP6 ones, ERA5's 37, ACE2's 13).
  Source levels are matched with a tolerance (CMOR files hold 100000.00000001 Pa), and picked
  by position, never by float equality. A level the source lacks is interpolated linearly in
  log p (default; temperature and, hydrostatically, height are close to linear in log p, so
  it is the natural vertical coordinate) or in p (``coordinate="p"``, what the official
  evaluation's ``xarray.interp`` does), or taken from the nearest source level
  (``method="nearest"``, the official choice for zg and DLESyM's ta). Nothing is ever
  extrapolated: a requested level outside the source's range becomes NaN (as the official
  evaluation leaves it missing) and is named in the ``levels_not_available`` attribute, or
  is refused with ``outside="error"``. Below-ground NaN in a bracketing level stays NaN.
* :func:`zg_as_height` detects ``zg`` given as geopotential (m2 s-2; 6 of 8 Phase-1
  submissions) by magnitude against the standard atmosphere (global mean zg500 about 5500 m
  vs 54000 m2 s-2) whatever its units label says, divides by g0 = 9.80665 m s-2 and says so.
* :func:`huss_from_tdas` derives near-surface specific humidity from the 2 m dewpoint, by the
  official evaluation's Tetens formula (``formula="aimip"``) or by the project's Bolton form
  (``diagnostics.io.units.specific_humidity_from_dewpoint``, reused).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

from ..data.catalogue import G0, PLEV_HPA
from ..data.contract import plev_coord
from ..data.errors import InputError
from .coords import LEVEL_NAMES, level_values_pa
from .units import specific_humidity_from_dewpoint

Method = Literal["linear", "nearest"]
#: Levels within this many Pa (or this relative difference) are the same level.
LEVEL_ATOL_PA = 0.01
LEVEL_RTOL = 1e-6


def _level_dim(da: xr.DataArray, source: str) -> str:
    dim = next((d for d in LEVEL_NAMES if d in da.dims), None)
    if dim is None:
        raise InputError(f"{da.name or 'field'} has no pressure-level dim (expected one of "
                         f"{', '.join(LEVEL_NAMES)})", source)
    return dim


def match_level(have_pa: np.ndarray, want_pa: float) -> int | None:
    """Index of the source level equal to ``want_pa`` within the tolerance, or None."""
    close = np.isclose(have_pa, want_pa, rtol=LEVEL_RTOL, atol=LEVEL_ATOL_PA)
    return int(np.flatnonzero(close)[0]) if close.any() else None


#: The readers interpolate only between source levels at most this factor apart in pressure: the
#: widest step of the CMIP6 19 levels is 100 -> 70 hPa (1.43), 300 -> 200 hPa is 1.5; a wider gap
#: (850 -> 500 hPa: 1.7) would be a guess, so that level is left out instead.
READER_MAX_GAP = 1.5


def _one_level(da: xr.DataArray, dim: str, have: np.ndarray, want: float, method: Method,
               coordinate: str, max_gap: float | None = None) -> xr.DataArray | None:
    """The field at ``want`` Pa, or None when it lies outside the source's range (or, with
    ``max_gap``, between source levels more than that factor apart in pressure)."""
    exact = match_level(have, want)
    if exact is not None:
        return da.isel({dim: exact}, drop=True)
    if not have.min() < want < have.max():
        return None
    below = int(np.flatnonzero(have > want)[np.argmin(have[have > want])])  # nearest higher pressure
    above = int(np.flatnonzero(have < want)[np.argmax(have[have < want])])
    if max_gap is not None and have[below] / have[above] > max_gap * (1 + LEVEL_RTOL):
        return None
    f = np.log if coordinate == "logp" else (lambda x: x)
    w = float((f(want) - f(have[below])) / (f(have[above]) - f(have[below])))  # 0 at below, 1 at above
    if method == "nearest":
        return da.isel({dim: above if w > 0.5 else below}, drop=True)
    return (1.0 - w) * da.isel({dim: below}, drop=True) + w * da.isel({dim: above}, drop=True)


def _check_axis(have: np.ndarray, dim: str, name: str, source: str) -> None:
    """Pressures must be positive, finite and distinct (two levels within the tolerance are one)."""
    if not np.all(np.isfinite(have)) or np.any(have <= 0):
        raise InputError(f"{dim} of {name} holds non-positive or missing pressures", source)
    for i, p in enumerate(have):
        if match_level(np.delete(have, i), float(p)) is not None:
            raise InputError(f"variable {name!r} has duplicated pressure levels "
                             f"{sorted(np.round(have).astype(int).tolist())} Pa", source)


def to_levels(da: xr.DataArray, levels_hpa: tuple[int, ...] = PLEV_HPA, *, method: Method = "linear",
              coordinate: Literal["logp", "p"] = "logp", outside: Literal["nan", "error", "drop"] = "nan",
              source: str = "dataset", max_gap: float | None = None) -> xr.DataArray:
    """``da`` on ``levels_hpa`` as the contract ``plev`` (Pa, surface first), lazily.

    y(p) = (1 - w) x(p_b) + w x(p_a), w = (ln p - ln p_b) / (ln p_a - ln p_b) between the
    bracketing source levels p_b > p > p_a (``coordinate="p"``: the same in p); a level within
    ``LEVEL_ATOL_PA`` / ``LEVEL_RTOL`` of a source level is that level, unchanged.
    ``outside``: a level beyond the source's range is NaN (``"nan"``), refused (``"error"``) or
    left out (``"drop"``: the readers' choice, as the contract allows a subset of the levels;
    InputError when no level is left). ``max_gap``: a level between source levels more than this
    factor apart in pressure counts as not available too. ``vertical_interpolation`` names the
    interpolated levels (absent when every level was a source level).
    """
    if method not in ("linear", "nearest") or coordinate not in ("logp", "p") or \
            outside not in ("nan", "error", "drop"):
        raise ValueError(f"method {method!r} / coordinate {coordinate!r} / outside {outside!r}")
    dim = _level_dim(da, source)
    name = str(da.name or "field")
    have = level_values_pa(da[dim])
    _check_axis(have, dim, name, source)
    missing: list[int] = []
    interpolated: list[int] = []
    kept: list[int] = []
    pieces = []
    for hpa in levels_hpa:
        one = _one_level(da, dim, have, hpa * 100.0, method, coordinate, max_gap)
        if one is None:
            missing.append(hpa)
            if outside == "drop":
                continue
            one = xr.full_like(da.isel({dim: 0}, drop=True), np.nan, dtype=np.result_type(da.dtype, np.float32))
        elif match_level(have, hpa * 100.0) is None:
            interpolated.append(hpa)
        kept.append(hpa)
        pieces.append(one.drop_vars([c for c in one.coords if dim in da[c].dims], errors="ignore"))
    if missing and outside == "error":
        raise InputError(f"{name} has levels {have.max() / 100:g}..{have.min() / 100:g} hPa, "
                         f"cannot give {', '.join(map(str, missing))} hPa without extrapolating", source)
    if not pieces:
        raise InputError(f"variable {name!r} has levels {sorted(set(np.round(have / 100).astype(int).tolist()))} "
                         f"hPa, none of the expected {list(levels_hpa)} hPa (nor a level between two of them)",
                         source)
    out = xr.concat(pieces, dim="plev", coords="minimal", compat="override").assign_coords(plev=plev_coord(kept))
    out = out.transpose(*[d if d != dim else "plev" for d in da.dims])
    out.attrs = dict(da.attrs)
    if interpolated:
        out.attrs["vertical_interpolation"] = (
            f"{' '.join(map(str, interpolated))} hPa {'nearest source level' if method == 'nearest' else method}"
            f"{'' if method == 'nearest' else ' in log p' if coordinate == 'logp' else ' in p'} from "
            f"{have.size} source levels, never extrapolated")
    if missing:
        why = "outside the source levels" + ("" if max_gap is None else
                                             f" or between levels more than x{max_gap:g} apart")
        out.attrs["levels_not_available"] = " ".join(map(str, missing)) + (
            f" hPa ({why}: left out)" if outside == "drop" else f" hPa ({why}: NaN)")
    out.name = da.name
    return out


def contract_levels(da: xr.DataArray, levels_hpa: tuple[int, ...], source: str, name: str) -> xr.DataArray:
    """The readers' level selection: ``da`` (a ``plev`` axis in Pa) on the catalogue levels it
    covers, surface first, as contract ``plev``; a level the source lacks between two source
    levels at most :data:`READER_MAX_GAP` apart is interpolated linearly in log p, others
    (outside the range, or across a wider gap) are left out (:func:`to_levels`)."""
    return to_levels(da.rename(name) if da.name != name else da, levels_hpa, outside="drop", source=source,
                     max_gap=READER_MAX_GAP)


def contract_level(da: xr.DataArray, level_hpa: int, source: str, name: str) -> xr.DataArray:
    """The field on one pressure level (hPa), the level axis dropped; a field without a level
    axis is returned as it is (already on its level, e.g. a ``zg500`` file)."""
    if not any(d in da.dims for d in LEVEL_NAMES):
        return da
    have = level_values_pa(da[_level_dim(da, source)])
    inside = match_level(have, level_hpa * 100.0) is not None or have.min() < level_hpa * 100.0 < have.max()
    if not inside:
        raise InputError(f"variable {name!r} has no {level_hpa} hPa level (levels "
                         f"{sorted(set(np.round(have / 100).astype(int).tolist()))} hPa)", source)
    return contract_levels(da, (level_hpa,), source, name).isel(plev=0, drop=True)


# ----------------------------------------------------------------------------- geopotential

def standard_height(p_pa: np.ndarray | float) -> np.ndarray:
    """Geopotential height (m) of pressure p in the ICAO standard atmosphere (to 20 km).

    Troposphere: z = T0 / L (1 - (p / p0)^(R L / g0)), T0 = 288.15 K, L = 0.0065 K m-1,
    p0 = 101325 Pa, R = 287.053 J kg-1 K-1; above 11 km (22632 Pa) isothermal at 216.65 K:
    z = 11000 + R T / g0 ln(22632 / p). 500 hPa -> 5574 m, 50 hPa -> 20576 m.
    """
    p = np.asarray(p_pa, dtype=float)
    r, lapse, t0, p0 = 287.053, 0.0065, 288.15, 101325.0
    tropo = t0 / lapse * (1.0 - (p / p0) ** (r * lapse / G0))
    strato = 11000.0 + r * 216.65 / G0 * np.log(22632.0 / p)
    return np.where(p >= 22632.0, tropo, strato)


def _typical_value(da: xr.DataArray) -> float:
    """Area-weighted (cos-lat if on a lat-lon grid) mean of the first year, one number."""
    sample = da.isel(time=slice(0, 12)) if "time" in da.dims else da
    if "lat" in sample.dims:
        sample = sample.weighted(np.cos(np.deg2rad(sample["lat"])).clip(0.0)).mean("lat")
    return float(sample.mean(skipna=True).values)


def zg_as_height(da: xr.DataArray, level_hpa: float | None = None,
                 source: str = "dataset") -> xr.DataArray:
    """``zg`` in metres, converting geopotential (m2 s-2) by 1 / g0 when its magnitude says so.

    The first year's area-weighted mean at each level is compared with the standard
    atmosphere's height there: a ratio above sqrt(g0) ~ 3.1 means geopotential (the two
    regimes are a factor g0 = 9.81 apart), whatever the units attribute says; the decision
    and the original units go into ``attrs['note']``. ``level_hpa`` is needed when ``da`` has
    no level dim (a ``zg500`` field). Detection looks at the first year only: a layout
    property of the file, the same for all its months.
    """
    dim = next((d for d in LEVEL_NAMES if d in da.dims), None)
    if dim is not None:
        ratios = [_typical_value(da.isel({dim: i})) / float(standard_height(p))
                  for i, p in enumerate(level_values_pa(da[dim]))]
    elif level_hpa is not None:
        ratios = [_typical_value(da) / float(standard_height(level_hpa * 100.0))]
    else:
        raise InputError("zg without a level dim: its pressure level is needed to judge its magnitude", source)
    ratios = np.asarray(ratios)
    if not np.all(np.isfinite(ratios)) or np.any(ratios <= 0):
        raise InputError("zg has no positive finite values in its first year", source)
    geo = ratios > np.sqrt(G0)
    if geo.any() and not geo.all():
        raise InputError("zg looks like height on some levels and geopotential on others "
                         f"(mean / standard height: {', '.join(f'{r:.2g}' for r in ratios)})", source)
    units = da.attrs.get("units", "none")
    if not geo.all():
        out = da.copy()
        out.attrs["units"] = "m"
        return out
    out = da / G0
    out.attrs = dict(da.attrs)
    out.attrs["units"] = "m"
    out.attrs["note"] = (f"given as geopotential (units {units!r}, mean {ratios.mean():.1f} x the standard "
                         f"height): divided by g0 = {G0} m s-2")
    return out


# ----------------------------------------------------------------------------- humidity

#: The official evaluation's constants (ai2cm/AIMIP compute_huss_from_tdas, after ECMWF).
R_DRY, R_VAP = 287.0597, 461.5250
TETENS_A1, TETENS_A2, TETENS_A3, TETENS_A4 = 611.21, 273.16, 17.502, 32.19


def huss_from_tdas(tdas: xr.DataArray, ps: xr.DataArray,
                   formula: Literal["aimip", "bolton"] = "aimip") -> xr.DataArray:
    """Near-surface specific humidity (1) from 2 m dewpoint (K) and surface pressure (Pa).

    ``aimip``: e = 611.21 exp(17.502 (Td - 273.16) / (Td - 32.19)) Pa (Tetens, ECMWF's
    constants over water), q = eps e / (ps - (1 - eps) e), eps = Rd / Rv = 287.0597 / 461.5250.
    ``bolton``: the project's :func:`~diagnostics.io.units.specific_humidity_from_dewpoint`
    (611.2 exp(17.67 Tc / (Tc + 243.5)), eps = 0.622): 0.04 % above the official
    value at Td = 288 K, 1.3 % at 230 K (measured, ps = 1000 hPa).
    """
    if formula == "bolton":
        q = specific_humidity_from_dewpoint(tdas, ps)
    elif formula == "aimip":
        eps = R_DRY / R_VAP
        e = TETENS_A1 * np.exp(TETENS_A3 * (tdas - TETENS_A2) / (tdas - TETENS_A4))
        q = eps * e / (ps - (1.0 - eps) * e)
    else:
        raise ValueError(f"formula {formula!r}")
    q.attrs = {"units": "1", "standard_name": "specific_humidity", "long_name": "Near-Surface Specific Humidity",
               "comment": f"derived from tdas and ps ({formula} Tetens formula)"}
    q.name = "huss"
    return q
