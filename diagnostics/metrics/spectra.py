"""Power spectra: spherical-harmonic (total wavenumber l) and zonal (wavenumber k).

Spherical harmonics (torch-harmonics ``RealSHT``, ``norm="ortho"``, grid "equiangular"
= Clenshaw-Curtis nodes including the poles, the project's grids): with Y_lm orthonormal
on the unit sphere (integral of |Y_lm|^2 dOmega = 1), f = sum c_lm Y_lm and

    P(l) = (1 / 4 pi) [ |c_l0|^2 + 2 sum_{m>0} |c_lm|^2 ]        units: field units^2

(m > 0 counted twice for the -m terms of a real field). By Parseval sum_l P(l) is the
area mean of f^2 on the sphere, so P(l) is the share of the mean square at scale l (P(0)
is the squared global mean). torch-harmonics 0.9.3 truncates an equiangular grid at
lmax = mmax = (nlat+1)//2 by default (17 for 33 x 64, 61 for 121 x 240); power above that
is not represented.

Zonal spectra follow WeatherBench 2 (``ZonalEnergySpectrum``): along each latitude circle
of circumference C = 2 pi R cos(lat), R = 6367.5 km, F_k = rfft(f, norm="forward") and

    S[0] = C |F_0|^2,   S[k > 0] = 2 C |F_k|^2                   units: field units^2 m

so sum_k S[k] = C * mean over longitudes of f^2 (like WeatherBench 2, the Nyquist
wavenumber of an even nlon is also doubled, so Parseval holds for fields without power
there).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch_harmonics
import xarray as xr

#: Earth radius used by WeatherBench 2 for zonal spectra (mean of polar and equatorial), m.
EARTH_RADIUS_M = 1000 * (6357 + 6378) / 2


@lru_cache(maxsize=8)
def _sht(nlat: int, nlon: int, lmax: int | None) -> torch_harmonics.RealSHT:
    # explicit default: torch-harmonics >= 0.9 warns when it has to pick (nlat+1)//2 itself
    lmax = lmax or (nlat + 1) // 2
    return torch_harmonics.RealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid="equiangular",
                                   norm="ortho").double()


def _check_equiangular_with_poles(lat: np.ndarray, lon: np.ndarray) -> None:
    step = np.diff(lat)
    if lat.size < 3 or not np.allclose(np.abs(lat[[0, -1]]), 90.0) or not np.allclose(step, step[0]):
        raise ValueError("sh_power_spectrum needs an equiangular latitude axis with pole rows "
                         f"(-90..90 or 90..-90), got {lat.size} rows {lat[:2]}..{lat[-1:]}")
    if not np.allclose(np.diff(lon), 360.0 / lon.size):
        raise ValueError(f"sh_power_spectrum needs {lon.size} equally spaced longitudes over 360 degrees")


def _sh_power_core(values: np.ndarray, lmax: int | None, flip: bool) -> np.ndarray:
    """(..., lat, lon) -> (..., l); torch-harmonics wants colatitude, i.e. north first."""
    x = torch.from_numpy(np.ascontiguousarray(values[..., ::-1, :] if flip else values, dtype=np.float64))
    coeffs = _sht(x.shape[-2], x.shape[-1], lmax)(x)  # (..., l, m)
    power = coeffs.real**2 + coeffs.imag**2
    power[..., 1:] *= 2.0
    return (power.sum(dim=-1) / (4.0 * np.pi)).numpy()


def sh_power_spectrum(field: xr.DataArray, lmax: int | None = None) -> xr.DataArray:
    """Spherical-harmonic power per total wavenumber l (dim ``l``), field units^2.

    P(l) = (|c_l0|^2 + 2 sum_{m>0} |c_lm|^2) / (4 pi) with orthonormal c_lm, so that
    sum_l P(l) = area mean of field^2 (Parseval). Needs complete ``lat`` (equiangular with
    poles, either order) and ``lon`` axes and no NaN (a NaN anywhere gives NaN everywhere
    in that map: fill land for ``tos`` first). Leading dims (time, member, ...) are kept;
    lazy on dask (lat/lon merged into one chunk).
    """
    lat = np.asarray(field["lat"].values, dtype=float)
    _check_equiangular_with_poles(lat, np.asarray(field["lon"].values, dtype=float))
    flip = lat[0] < lat[-1]
    n_l = _sht(lat.size, field.sizes["lon"], lmax).lmax
    if field.chunks is not None:
        field = field.chunk({"lat": -1, "lon": -1})
    out = xr.apply_ufunc(
        _sh_power_core, field, input_core_dims=[["lat", "lon"]], output_core_dims=[["l"]],
        kwargs={"lmax": lmax, "flip": flip}, dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"l": n_l}})
    out = out.assign_coords(l=np.arange(n_l))
    units = field.attrs.get("units")
    out.attrs = {"long_name": "spherical-harmonic power per total wavenumber",
                 "units": f"({units})2" if units else ""}
    return out.rename("sh_power")


def _zonal_power_core(values: np.ndarray) -> np.ndarray:
    f_k = np.fft.rfft(values, axis=-1, norm="forward")
    power = f_k.real**2 + f_k.imag**2
    power[..., 1:] *= 2.0
    return power


def zonal_power_spectrum(field: xr.DataArray, radius: float = EARTH_RADIUS_M) -> xr.DataArray:
    """Zonal power per wavenumber k along each latitude circle (dim ``k``), field units^2 m.

    WeatherBench 2: S[k] = w_k C |F_k|^2 with F = rfft(f, norm="forward") over ``lon``,
    w_0 = 1, w_k = 2 for k > 0, C = 2 pi R cos(lat). Coordinate ``wavelength`` = C / k (m).
    Average over latitudes, time or members outside if wanted.
    """
    lon = np.asarray(field["lon"].values, dtype=float)
    if not np.allclose(np.diff(lon), 360.0 / lon.size):
        raise ValueError(f"zonal_power_spectrum needs {lon.size} equally spaced longitudes over 360 degrees")
    n_k = lon.size // 2 + 1
    if field.chunks is not None:
        field = field.chunk({"lon": -1})
    power = xr.apply_ufunc(
        _zonal_power_core, field, input_core_dims=[["lon"]], output_core_dims=[["k"]],
        dask="parallelized", output_dtypes=[np.float64],
        dask_gufunc_kwargs={"output_sizes": {"k": n_k}})
    circumference = 2 * np.pi * radius * np.cos(np.deg2rad(field["lat"]))
    k = xr.DataArray(np.arange(n_k), dims="k")
    with np.errstate(divide="ignore"):
        wavelength = circumference / k
    out = (power * circumference).assign_coords(k=k, wavelength=wavelength.assign_attrs(units="m"))
    units = field.attrs.get("units")
    out.attrs = {"long_name": "zonal power spectrum (WeatherBench 2)",
                 "units": f"({units})2 m" if units else "m"}
    return out.rename("zonal_power")


def _wavenumber_dim(spectrum: xr.DataArray, dim: str | None) -> str:
    if dim is not None:
        return dim
    found = [d for d in ("l", "k") if d in spectrum.dims]
    if len(found) != 1:
        raise ValueError(f"cannot tell the wavenumber dim of a spectrum with dims {spectrum.dims}; pass dim=")
    return found[0]


def _band(spectrum: xr.DataArray, dim: str, low: int, high: int | None) -> xr.DataArray:
    n = spectrum[dim]
    keep = (n >= low) if high is None else (n >= low) & (n < high)
    return spectrum.where(keep).sum(dim, min_count=1)


def band_ratio(model_spectrum: xr.DataArray, reference_spectrum: xr.DataArray,
               bands: Sequence[tuple[int, int | None]] = ((1, 10), (10, 30), (30, None)),
               dim: str | None = None) -> dict[str, xr.DataArray]:
    """Ratio of summed model power to summed reference power in each band (dimensionless).

    A band ``(low, high)`` holds wavenumbers low <= n < high (``high=None``: to the end).
    Keys are ``"low-high"`` or ``"low+"``; 1 means the model has the reference's power at
    those scales, < 1 too smooth, > 1 too noisy. Leading dims are kept.
    """
    dim = _wavenumber_dim(model_spectrum, dim)
    out = {}
    for low, high in bands:
        key = f"{low}+" if high is None else f"{low}-{high}"
        out[key] = _band(model_spectrum, dim, low, high) / _band(reference_spectrum, dim, low, high)
    return out


def spectral_slope(spectrum: xr.DataArray, wavenumbers: tuple[int, int], dim: str | None = None) -> xr.DataArray:
    """Least-squares slope b of log P = a + b log n over low <= n <= high (dimensionless).

    For P ~ n^-3 the slope is -3. Wavenumbers with non-positive power are left out.
    """
    dim = _wavenumber_dim(spectrum, dim)
    low, high = wavenumbers
    n = spectrum[dim]
    sel = spectrum.where((n >= low) & (n <= high) & (spectrum > 0) & (n > 0))
    y = np.log(sel)
    x = np.log(n.where(y.notnull()))
    x_anom = x - x.mean(dim)
    return ((x_anom * (y - y.mean(dim))).sum(dim) / (x_anom**2).sum(dim)).rename("spectral_slope")
