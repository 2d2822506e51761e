"""E1 on NeuralGCM's 2.8 deg grid: how much the choice of its cell edges moves the RMSB.

The official evaluation regrids time means conservatively (xESMF) onto NeuralGCM's grid, 64
Gaussian latitudes x 128 longitudes. Our :func:`diagnostics.metrics.aimip.neuralgcm_grid` takes
cell edges at the midpoints between rows (:func:`diagnostics.data.grid.latitude_edges`); the
Gaussian grid's own cells have edges where sin(edge) is the running sum of the Gauss-Legendre
weights (the quadrature's areas). This script regrids 1 deg bias maps both ways with a
separable conservative remap written here (sin-latitude x longitude overlaps), checks that the
midpoint version reproduces the project's regridder, and prints the RMSB (cos-lat, |lat| <= 87.5)
on the native 1 deg grid and on the 2.8 deg grid with either edge set.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_aimip_2p8deg.py
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from diagnostics.data.grid import equiangular, latitude_edges
from diagnostics.io.regrid import regrid_conservative
from diagnostics.metrics.aimip import coslat_rms, latitude_band, neuralgcm_grid


def overlap_1d(src_edges: np.ndarray, tgt_edges: np.ndarray) -> np.ndarray:
    """M[I, i] = length of [t_I, t_I+1] intersected with [s_i, s_i+1] (same units as the edges)."""
    lo = np.maximum(tgt_edges[:-1, None], src_edges[None, :-1])
    hi = np.minimum(tgt_edges[1:, None], src_edges[None, 1:])
    return np.clip(hi - lo, 0.0, None)


def lon_overlap(src_lon: np.ndarray, tgt_lon: np.ndarray) -> np.ndarray:
    ds, dt = 360.0 / src_lon.size, 360.0 / tgt_lon.size
    s = np.concatenate([src_lon - ds / 2, [src_lon[-1] + ds / 2]])
    t = np.concatenate([tgt_lon - dt / 2, [tgt_lon[-1] + dt / 2]])
    return sum(overlap_1d(s + shift, t) for shift in (-360.0, 0.0, 360.0))


def remap(field: np.ndarray, src_lat_edges: np.ndarray, src_lon: np.ndarray, tgt_lat_edges: np.ndarray,
          tgt_lon: np.ndarray) -> np.ndarray:
    """Area-weighted average of the source cells each target cell overlaps (first-order conservative)."""
    a = overlap_1d(np.sin(np.deg2rad(src_lat_edges)), np.sin(np.deg2rad(tgt_lat_edges)))
    b = lon_overlap(src_lon, tgt_lon)
    return (a @ field @ b.T) / (a.sum(1)[:, None] * b.sum(1)[None, :])


def gaussian_edges(n: int) -> np.ndarray:
    _, w = np.polynomial.legendre.leggauss(n)
    return np.rad2deg(np.arcsin(np.clip(-1.0 + np.concatenate([[0.0], np.cumsum(w)]), -1.0, 1.0)))


def rmsb(field: np.ndarray, lat: np.ndarray, lon: np.ndarray) -> float:
    da = xr.DataArray(field, dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    return float(coslat_rms(latitude_band(da)))


def main() -> None:
    src, tgt = equiangular(1.0), neuralgcm_grid()
    lat, lon = np.deg2rad(src.lat)[:, None], np.deg2rad(src.lon)[None, :]
    rng = np.random.default_rng(0)
    cases = {
        "large-scale (2 sin 2phi cos 3lambda)": 2.0 * np.sin(2 * lat) * np.cos(3 * lon) + 0 * lon,
        "white noise (1 K per 1 deg cell)": rng.normal(size=src.shape),
        "polar cap (10 K poleward of 80 deg, 1 K elsewhere)": np.where(np.abs(lat) > np.deg2rad(80), 10.0, 1.0)
        + 0 * lon,
    }
    src_edges = latitude_edges(src.lat)
    print(f"{'bias map':52s} {'1 deg':>9s} {'2.8 mid':>9s} {'2.8 gauss':>9s} {'rel diff':>9s}")
    for name, field in cases.items():
        ours = regrid_conservative(xr.DataArray(field, dims=("lat", "lon"), coords=src.coords()), tgt).values
        mid = remap(field, src_edges, src.lon, latitude_edges(tgt.lat), tgt.lon)
        assert np.allclose(ours, mid, rtol=1e-10, atol=1e-12), "project regridder != independent remap"
        gauss = remap(field, src_edges, src.lon, gaussian_edges(tgt.lat.size), tgt.lon)
        native = rmsb(field, src.lat, src.lon)
        r_mid, r_gauss = rmsb(mid, tgt.lat, tgt.lon), rmsb(gauss, tgt.lat, tgt.lon)
        print(f"{name:52s} {native:9.4f} {r_mid:9.4f} {r_gauss:9.4f} {r_mid / r_gauss - 1:9.2e}")


if __name__ == "__main__":
    main()
