"""Regridding: conservation, constants, analytic cell averages, NaN-awareness, laziness."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular, global_mean, latitude_edges
from diagnostics.io.regrid import (choose_method, latitude_overlap, longitude_edges, longitude_overlap,
                                   regrid, regrid_bilinear, regrid_conservative)


def _field(grid, values, time: int | None = None) -> xr.DataArray:
    dims = ("lat", "lon") if time is None else ("time", "lat", "lon")
    return xr.DataArray(values, dims=dims, coords=grid.coords())


@pytest.mark.parametrize("src_res", [0.25, 1.5])
def test_conservative_keeps_the_global_mean(src_res):
    src, tgt = equiangular(src_res), equiangular(5.625)
    rng = np.random.default_rng(0)
    x = _field(src, rng.gamma(2.0, 1.0, (2,) + src.shape), time=2)
    y = regrid_conservative(x.chunk({"time": 1}), tgt).compute()
    assert y.shape == (2, 33, 64)
    np.testing.assert_allclose(global_mean(y).values, global_mean(x).values, rtol=1e-6)


def test_overlap_matrices_partition_the_sphere():
    src, tgt = equiangular(1.5), equiangular(5.625)
    a = latitude_overlap(src.lat, tgt.lat)
    b = longitude_overlap(src.lon, tgt.lon)
    # every source cell is shared out completely: its sin-latitude width and its longitude width
    np.testing.assert_allclose(a.sum(axis=0), np.diff(np.sin(np.deg2rad(latitude_edges(src.lat)))), atol=1e-12)
    np.testing.assert_allclose(b.sum(axis=0), np.deg2rad(1.5), atol=1e-12)
    np.testing.assert_allclose(a.sum(), 2.0, atol=1e-12)  # sin(90) - sin(-90)
    np.testing.assert_allclose(b.sum(), 2 * np.pi, atol=1e-12)


def test_longitude_edges_wrap_around_zero():
    west, east = longitude_edges(np.array([0.0, 90.0, 180.0, 270.0]))
    np.testing.assert_allclose(west, [-45, 45, 135, 225])
    np.testing.assert_allclose(east, [45, 135, 225, 315])


def test_constant_field_stays_constant():
    src, tgt = equiangular(1.5), equiangular(5.625)
    y = regrid_conservative(_field(src, np.full(src.shape, 287.5)), tgt).values
    np.testing.assert_allclose(y, 287.5, rtol=1e-12)


def test_smooth_field_matches_the_analytic_cell_average():
    """f = sin(lat) cos(lon): its exact mean over a cell [p1,p2]x[l1,l2] on the sphere is
    (sin p1 + sin p2)/2 * (sin l2 - sin l1)/(l2 - l1)."""
    src, tgt = equiangular(0.25), equiangular(5.625)
    lat, lon = np.deg2rad(src.lat)[:, None], np.deg2rad(src.lon)[None, :]
    y = regrid_conservative(_field(src, np.sin(lat) * np.cos(lon)), tgt).values
    p = np.sin(np.deg2rad(latitude_edges(tgt.lat)))
    w, e = (np.deg2rad(v) for v in longitude_edges(tgt.lon))
    exact = (0.5 * (p[:-1] + p[1:]))[:, None] * ((np.sin(e) - np.sin(w)) / (e - w))[None, :]
    # the source is point values on a 0.25 degree grid, so agreement is to O(h^2)
    np.testing.assert_allclose(y, exact, atol=1e-5)  # measured 2.2e-6


def test_nan_aware_sst_over_land():
    src, tgt = equiangular(1.5), equiangular(5.625)
    x = np.full(src.shape, 290.0)
    x[:, :30] = np.nan  # land: source cells 0..43.5E (edges -0.75..44.25E)
    x[:, 30:34] = 280.0  # coast: 45..49.5E (edges 44.25..50.25E)
    x[:, 100] = 300.0  # one warm column inside target column 27 (149.06..154.69E)
    y = regrid_conservative(_field(src, x), tgt).values
    assert np.isnan(y[:, 1:8]).all()  # target columns 1..7 (2.8..42.2E) are all land: NaN
    np.testing.assert_allclose(y[:, 0], 290.0)  # -2.8..2.8E: only its ocean part counts
    np.testing.assert_allclose(y[:, 8], 280.0)  # 42.2..47.8E: land part ignored, not diluted
    # column 27 covers sources 99.375..103.125 x 1.5 deg partially: hand-computed area mean
    b = longitude_overlap(src.lon, tgt.lon)[27]
    expected = (b * np.where(np.isfinite(x[10]), x[10], 0.0)).sum() / b.sum()
    np.testing.assert_allclose(y[10, 27], expected, rtol=1e-12)
    assert 290.0 < y[10, 27] < 300.0


def test_regrid_is_lazy_and_keeps_time_chunks():
    src, tgt = equiangular(1.5), equiangular(5.625)
    x = _field(src, np.ones((4,) + src.shape, np.float32), time=4).chunk({"time": 1})
    y = regrid(xr.Dataset({"tas": x}), tgt)
    assert y["tas"].chunks == ((1, 1, 1, 1), (33,), (64,))
    assert y["tas"].dtype == np.float32
    assert "conservative" in y.attrs["regrid"]


def test_bilinear_when_refining_is_periodic():
    src, tgt = equiangular(5.625), equiangular(3.0)
    assert choose_method(src, tgt) == "bilinear"
    lon = np.deg2rad(src.lon)
    x = _field(src, np.broadcast_to(np.cos(lon), src.shape).copy())
    y = regrid_bilinear(x, tgt)
    assert y.shape == tgt.shape
    # between the last source column (354.375E) and 360: linear between cos(354.375) and cos(0)
    j = int(np.argmin(np.abs(tgt.lon - 357.0)))
    frac = (tgt.lon[j] - 354.375) / 5.625
    expected = (1 - frac) * np.cos(np.deg2rad(354.375)) + frac * 1.0
    np.testing.assert_allclose(y.values[10, j], expected, rtol=1e-12)
    np.testing.assert_allclose(y.values[:, 0], 1.0)  # lon 0 coincides with a source column


def test_same_grid_is_identity():
    g = equiangular(5.625)
    ds = xr.Dataset({"tas": _field(g, np.zeros(g.shape))})
    assert regrid(ds, g) is ds
