"""Spectra against closed forms and Parseval's identity.

Parseval reference: the exact interpolatory quadrature on the equiangular-with-poles
nodes (Clenshaw-Curtis), derived here from Chebyshev moments with numpy (independently of
torch-harmonics); tolerance 1e-12 relative. Against the project's cell-area weights
(``area_weights``, not exact for polynomials) the agreement is 2e-3 relative at 33 x 64.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch_harmonics
import xarray as xr

from diagnostics.data.grid import area_weights, equiangular
from diagnostics.metrics.spectra import (EARTH_RADIUS_M, band_ratio, sh_power_spectrum, spectral_slope,
                                         zonal_power_spectrum)

GRID = equiangular(5.625)  # 33 x 64, lmax = 17


def _field(values: np.ndarray, lead: tuple[str, ...] = ()) -> xr.DataArray:
    return xr.DataArray(values, dims=(*lead, "lat", "lon"), coords={"lat": GRID.lat, "lon": GRID.lon},
                        attrs={"units": "K"})


def _interpolatory_weights(lat_deg: np.ndarray) -> np.ndarray:
    """Weights w with sum_j w_j p(sin lat_j) = int_{-1}^{1} p(x) dx for polynomials of degree < n."""
    x = np.sin(np.deg2rad(lat_deg))
    n = x.size
    even = np.arange(0, n, 2)
    moments = np.zeros(n)
    moments[even] = 2.0 / (1.0 - even**2.0)  # int_{-1}^{1} T_k dx, zero for odd k
    return np.linalg.solve(np.polynomial.chebyshev.chebvander(x, n - 1).T, moments)


def _band_limited(rng: np.random.Generator, n: int) -> np.ndarray:
    """Random real fields with l < 17, synthesised by torch-harmonics' inverse SHT."""
    isht = torch_harmonics.InverseRealSHT(*GRID.shape, lmax=17, mmax=17, grid="equiangular", norm="ortho").double()
    c = rng.normal(size=(n, 17, 17)) + 1j * rng.normal(size=(n, 17, 17))
    c = np.tril(c)  # m <= l
    c[..., 0] = c[..., 0].real
    f = isht(torch.from_numpy(c)).numpy()
    return f[..., ::-1, :].copy()  # north-first -> contract order (lat ascending)


def test_parseval_against_exact_quadrature_and_area_weights():
    f = _field(_band_limited(np.random.default_rng(0), 3), lead=("time",))
    power = sh_power_spectrum(f)
    assert power.dims == ("time", "l") and power.sizes["l"] == 17
    w = _interpolatory_weights(GRID.lat)
    assert w.sum() == pytest.approx(2.0)
    mean_square = (f**2 * xr.DataArray(w, dims="lat")).sum(("lat", "lon")) / (2.0 * GRID.shape[1])
    np.testing.assert_allclose(power.sum("l").values, mean_square.values, rtol=1e-12)
    area = (f**2).weighted(area_weights(f["lat"])).mean(("lat", "lon"))
    np.testing.assert_allclose(power.sum("l").values, area.values, rtol=2e-3)


@pytest.mark.parametrize("expr, degree, mean_square", [
    (lambda lat, lon: 2.0 + 0 * lat * lon, 0, 4.0),                                   # constant
    (lambda lat, lon: np.sin(lat) + 0 * lon, 1, 1 / 3),                             # Y_10
    (lambda lat, lon: np.cos(lat) * np.cos(lon), 1, 1 / 3),                         # Y_11
    (lambda lat, lon: (3 * np.sin(lat) ** 2 - 1) + 0 * lon, 2, 4 / 5),              # P_2
    (lambda lat, lon: np.cos(lat) ** 3 * np.sin(3 * lon), 3, 8 / 35),               # Y_33
])
def test_single_degree_closed_forms(expr, degree, mean_square):
    lat, lon = np.meshgrid(np.deg2rad(GRID.lat), np.deg2rad(GRID.lon), indexing="ij")
    power = sh_power_spectrum(_field(expr(lat, lon)))
    expected = np.zeros(17)
    expected[degree] = mean_square
    np.testing.assert_allclose(power.values, expected, atol=1e-12)
    assert power.attrs["units"] == "(K)2"


def test_lat_order_extra_dims_and_dask():
    f = _field(_band_limited(np.random.default_rng(1), 6).reshape(2, 3, *GRID.shape), lead=("member", "time"))
    power = sh_power_spectrum(f)
    assert power.dims == ("member", "time", "l")
    flipped = sh_power_spectrum(f.isel(lat=slice(None, None, -1)))
    np.testing.assert_allclose(flipped.values, power.values, rtol=1e-12)
    lazy = sh_power_spectrum(f.chunk(time=1))
    assert lazy.chunks is not None
    np.testing.assert_allclose(lazy.compute().values, power.values, rtol=1e-12)


def test_rejects_grid_without_poles():
    g = equiangular(5.625, poles=False)
    f = xr.DataArray(np.zeros(g.shape), dims=("lat", "lon"), coords={"lat": g.lat, "lon": g.lon})
    with pytest.raises(ValueError, match="pole"):
        sh_power_spectrum(f)


def test_zonal_single_wavenumber_closed_form():
    """f = B + A cos(k0 lon): S[0] = C B^2, S[k0] = 2 C (A/2)^2 = C A^2 / 2, C = 2 pi R cos(lat)."""
    a, b, k0 = 3.0, 1.5, 5
    lon = np.deg2rad(GRID.lon)
    f = _field(np.broadcast_to(b + a * np.cos(k0 * lon + 0.3), GRID.shape).copy())
    s = zonal_power_spectrum(f)
    assert s.dims == ("lat", "k") and s.sizes["k"] == 33
    c = 2 * np.pi * EARTH_RADIUS_M * np.cos(np.deg2rad(GRID.lat))
    expected = np.zeros((GRID.shape[0], 33))
    expected[:, 0] = c * b**2
    expected[:, k0] = c * a**2 / 2
    np.testing.assert_allclose(s.values, expected, atol=1e-9 * c.max() * a**2)
    assert s["wavelength"].sel(k=k0).values == pytest.approx(c / k0)
    assert s.attrs["units"] == "(K)2 m"


def test_zonal_parseval_without_nyquist():
    """sum_k S[k] = C * mean_lon f^2 for a field without power at the Nyquist wavenumber."""
    rng = np.random.default_rng(2)
    spec = np.fft.rfft(rng.normal(size=(4, *GRID.shape)), axis=-1)
    spec[..., -1] = 0.0
    f = _field(np.fft.irfft(spec, n=GRID.shape[1], axis=-1), lead=("time",))
    s = zonal_power_spectrum(f)
    c = 2 * np.pi * EARTH_RADIUS_M * np.cos(np.deg2rad(f["lat"]))
    np.testing.assert_allclose(s.sum("k").values, (c * (f**2).mean("lon")).transpose("time", "lat").values,
                               rtol=1e-12, atol=1e-6)
    lazy = zonal_power_spectrum(f.chunk(time=2))
    assert lazy.chunks is not None
    np.testing.assert_allclose(lazy.compute().values, s.values)


def test_band_ratio():
    n = 40
    reference = xr.DataArray(np.linspace(1.0, 2.0, n), dims="l", coords={"l": np.arange(n)})
    scale = np.where((np.arange(n) >= 10) & (np.arange(n) < 30), 0.5, 1.0)
    scale[0] = 100.0  # l = 0 belongs to no default band
    ratios = band_ratio(reference * scale, reference)
    assert set(ratios) == {"1-10", "10-30", "30+"}
    assert float(ratios["1-10"]) == pytest.approx(1.0)
    assert float(ratios["10-30"]) == pytest.approx(0.5)
    assert float(ratios["30+"]) == pytest.approx(1.0)
    # by hand with unequal weights inside a band
    model = reference.copy(data=np.arange(n, dtype=float))
    ratio = band_ratio(model, reference, bands=((2, 5),))["2-5"]
    assert float(ratio) == pytest.approx((2 + 3 + 4) / float(reference[2:5].sum()))


def test_spectral_slope_recovers_power_law():
    l = np.arange(0, 60)
    with np.errstate(divide="ignore"):
        spectrum = xr.DataArray(np.stack([5.0 * l**-3.0, 2.0 * l**-5.0 / 3.0]), dims=("time", "l"),
                                coords={"l": l})
    slope = spectral_slope(spectrum, (5, 40))
    np.testing.assert_allclose(slope.values, [-3.0, -5.0], rtol=1e-12)
    k_spec = spectrum.rename(l="k")
    np.testing.assert_allclose(spectral_slope(k_spec, (5, 40)).values, [-3.0, -5.0], rtol=1e-12)
