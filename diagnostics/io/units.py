"""Unit conversions from the units ERA5 and AI-MIP files carry to the contract units.

The contract units are those of :mod:`diagnostics.data.catalogue` (K, Pa, m, kg m-2 s-1,
fractions 0..1). Every conversion here is driven by the file's ``units`` attribute; the
only magnitude heuristics are the ones the AI-MIP protocol documents (geopotential
submitted as ``zg``), because a wrong-units file labelled correctly must reach the
validator's plausible-range check rather than be silently "fixed".
"""

from __future__ import annotations

import re

import numpy as np
import xarray as xr

from ..data.catalogue import G0, WATER_DENSITY, Variable
from ..data.errors import InputError

SECONDS_PER_DAY = 86400.0

_KELVIN = {"k", "kelvin", "degk", "deg_k"}
_CELSIUS = {"degc", "deg_c", "c", "celsius", "degrees_celsius", "degree_celsius", "°c"}
_PERCENT = {"%", "percent", "percentage"}
_FRACTION = {"1", "0-1", "(0-1)", "fraction", "", "none", "dimensionless"}
_GEOPOTENTIAL = {"m2s-2", "m**2s**-2", "m^2s^-2", "m2/s2", "m^2/s^2"}
_HPA = {"hpa", "mbar", "mb", "millibars", "millibar"}
_PA = {"pa", "pascal", "pascals"}
_RATE = {"kgm-2s-1", "kgm**-2s**-1", "kg/m2/s", "kgm^-2s^-1", "mms-1", "mm/s"}


def normalise_units(units: str | None) -> str:
    """Lower-case units without spaces, for comparison (``"m**2 s**-2"`` -> ``"m**2s**-2"``)."""
    return re.sub(r"\s+", "", str(units or "")).lower()


def _labelled(da: xr.DataArray, units: str) -> xr.DataArray:
    out = da.copy()
    out.attrs = {**da.attrs, "units": units}
    return out


def temperature_to_kelvin(da: xr.DataArray) -> xr.DataArray:
    """degC -> K (+273.15) when the units say Celsius; K is kept; values are never guessed."""
    u = normalise_units(da.attrs.get("units"))
    if u in _CELSIUS:
        return _labelled(da + 273.15, "K")
    return _labelled(da, "K") if u in _KELVIN or not u else da


def pressure_to_pa(da: xr.DataArray) -> xr.DataArray:
    """hPa -> Pa (x100) when the units say hPa."""
    u = normalise_units(da.attrs.get("units"))
    if u in _HPA:
        return _labelled(da * 100.0, "Pa")
    return _labelled(da, "Pa") if u in _PA or not u else da


def fraction_from_percent(da: xr.DataArray) -> xr.DataArray:
    """% -> fraction (/100) when the units say percent (CMIP ``siconc`` and ``sftlf`` are in %)."""
    u = normalise_units(da.attrs.get("units"))
    if u in _PERCENT:
        return _labelled(da / 100.0, "1")
    return _labelled(da, "1") if u in _FRACTION or u.startswith("(0") else da


def is_geopotential(da: xr.DataArray, sample: np.ndarray | None = None) -> bool:
    """True when a ``zg``/``z`` field holds geopotential (m2 s-2) rather than height (m).

    Decided by the units, else by magnitude: Z500 height is ~5.5e3 m while geopotential
    is ~5.4e4 m2 s-2, so a sample mean above 2e4 can only be geopotential.
    """
    u = normalise_units(da.attrs.get("units"))
    if u in _GEOPOTENTIAL:
        return True
    # even a field labelled "m" is checked: AI-MIP groups have submitted geopotential as zg
    if sample is None:
        return False
    finite = np.asarray(sample, dtype=float)
    finite = finite[np.isfinite(finite)]
    return bool(finite.size) and float(np.abs(finite).mean()) > 2.0e4


def geopotential_to_height(da: xr.DataArray) -> xr.DataArray:
    """Geopotential (m2 s-2) -> geopotential height (m): Z / g0, g0 = 9.80665 m s-2."""
    return _labelled(da / G0, "m")


def accumulation_to_rate(da: xr.DataArray, seconds: float) -> xr.DataArray:
    """Water-equivalent accumulation in metres over ``seconds`` -> flux kg m-2 s-1.

    rate = depth (m) * rho_w (1000 kg m-3) / seconds. ERA5 hourly/6-hourly totals use the
    accumulation window; CDS monthly-mean ``tp`` is metres per day (seconds = 86400).
    """
    return _labelled(da * (WATER_DENSITY / seconds), "kg m-2 s-1")


def precipitation_to_rate(da: xr.DataArray, accumulation_seconds: float | None) -> xr.DataArray:
    """Any precipitation field -> kg m-2 s-1.

    Units ``m`` are an accumulation over ``accumulation_seconds``; rate units
    (``kg m-2 s-1``, ``mm s-1``) are kept; ``mm/day`` is divided by 86400.
    """
    u = normalise_units(da.attrs.get("units"))
    if u in _RATE:
        return _labelled(da, "kg m-2 s-1")
    if u in {"mm/day", "mmday-1", "mmd-1", "kgm-2day-1"}:
        return _labelled(da / SECONDS_PER_DAY, "kg m-2 s-1")
    if u in {"m", "metres", "meters", "mofwaterequivalent"}:
        if accumulation_seconds is None:
            raise ValueError("precipitation in metres needs the accumulation period")
        return accumulation_to_rate(da, accumulation_seconds)
    return da


def saturation_vapour_pressure(temperature_k: xr.DataArray) -> xr.DataArray:
    """Bolton (1980) saturation vapour pressure over water, Pa.

    e_s = 611.2 * exp(17.67 * T_c / (T_c + 243.5)), T_c in degC (accurate to 0.1 % for
    -30..35 degC). Evaluated at the dewpoint it gives the actual vapour pressure.
    """
    tc = temperature_k - 273.15
    return 611.2 * np.exp(17.67 * tc / (tc + 243.5))


def specific_humidity_from_dewpoint(dewpoint_k: xr.DataArray, pressure_pa: xr.DataArray) -> xr.DataArray:
    """Near-surface specific humidity (kg kg-1) from 2 m dewpoint (K) and surface pressure (Pa).

    e = e_s(T_d) (Bolton/Tetens form above); q = eps * e / (p - (1 - eps) * e), eps = 0.622
    (ratio of the gas constants of dry air and water vapour). Applied to monthly means it is
    the humidity of the mean dewpoint, a slight underestimate of the mean humidity
    because e_s is convex.
    """
    eps = 0.622
    e = saturation_vapour_pressure(dewpoint_k)
    q = eps * e / (pressure_pa - (1.0 - eps) * e)
    q.attrs = {"units": "1"}
    return q


#: Spellings of each contract unit found in ERA5 (GRIB-derived) and CMIP files, normalised.
_EQUIVALENT: dict[str, set[str]] = {
    "K": _KELVIN,
    "Pa": _PA,
    "m s-1": {"ms-1", "ms**-1", "m/s", "ms^-1"},
    "1": {"1", "kgkg-1", "kgkg**-1", "kg/kg", "(0-1)", "0-1", "fraction", "dimensionless", "~"},
    "kg m-2 s-1": _RATE,
    "m": {"m", "gpm", "metre", "meter", "metres", "meters"},
}


def check_units(name: str, da: xr.DataArray, expected: str, source: str) -> xr.DataArray:
    """Relabel ``da`` with the contract units ``expected`` if its units are a spelling of them.

    A field without units is accepted (the validator's plausible-range check still runs);
    any other units are an InputError naming the variable, its units and the expected ones.
    """
    u = normalise_units(da.attrs.get("units"))
    if u and u not in _EQUIVALENT.get(expected, {normalise_units(expected)}):
        raise InputError(f"variable {name!r} has units {da.attrs.get('units')!r}, which this reader "
                         f"cannot convert to {expected!r}", source)
    return _labelled(da, expected)


def era5_to_catalogue_units(var: Variable, da: xr.DataArray) -> xr.DataArray:
    """Convert an ERA5 field (WB2 or CDS) other than precipitation to the catalogue's units.

    Geopotential (m2 s-2) -> height (m) for ``zg`` and ``orog``; temperatures to K; pressures
    to Pa; fractions from percent. Precipitation depends on the source's accumulation window,
    so each reader converts it itself.
    """
    if var.name in ("zg", "orog"):
        return geopotential_to_height(da)
    if var.units == "K":
        return temperature_to_kelvin(da)
    if var.units == "Pa":
        return pressure_to_pa(da)
    if var.units == "1" and var.name != "hus":
        return fraction_from_percent(da)
    return da
