"""Pattern statistics against closed forms and numpy's weighted covariance."""

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular
from diagnostics.metrics.pattern import amplitude_ratio, compare_maps, pattern_correlation, weighted_rms


def _maps(seed=0, res=5.625):
    grid = equiangular(res)
    rng = np.random.default_rng(seed)
    coords = grid.coords()
    a = xr.DataArray(rng.normal(size=grid.shape) + 3.0, dims=("lat", "lon"), coords=coords)
    b = xr.DataArray(0.5 * a.values + rng.normal(size=grid.shape), dims=("lat", "lon"), coords=coords)
    return a, b


def _zone_areas(lat):
    """Spherical-zone areas (closed form 2 pi R^2 (sin phi2 - sin phi1), R = 1) per row."""
    lat = np.asarray(lat, float)
    edges = np.concatenate([[-90.0], 0.5 * (lat[1:] + lat[:-1]), [90.0]])
    return np.diff(np.sin(np.deg2rad(edges))) * 2 * np.pi


def test_identical_scaled_and_negated_maps_closed_forms():
    a, _ = _maps()
    stats = compare_maps(a, a)
    assert float(stats["pattern_corr"]) == pytest.approx(1.0, abs=1e-12)
    assert float(stats["rms_diff"]) == pytest.approx(0.0, abs=1e-12)
    assert float(stats["amplitude_ratio"]) == pytest.approx(1.0, abs=1e-12)
    assert float(amplitude_ratio(2.5 * a, a)) == pytest.approx(2.5, rel=1e-12)
    assert float(pattern_correlation(2.5 * a, a)) == pytest.approx(1.0, abs=1e-12)
    assert float(pattern_correlation(-a, a)) == pytest.approx(-1.0, abs=1e-12)
    # centred: a uniform offset does not change the correlation
    assert float(pattern_correlation(a + 100.0, a)) == pytest.approx(1.0, abs=1e-12)
    # rms of k*a - a is |k - 1| rms(a)
    assert float(weighted_rms(3 * a, a)) == pytest.approx(2 * float(weighted_rms(a)), rel=1e-12)


def test_against_numpy_weighted_covariance():
    a, b = _maps(1)
    w = np.broadcast_to(_zone_areas(a["lat"])[:, None], a.shape)
    c = np.cov(a.values.ravel(), b.values.ravel(), aweights=w.ravel())
    expected_r = c[0, 1] / np.sqrt(c[0, 0] * c[1, 1])
    assert float(pattern_correlation(a, b)) == pytest.approx(expected_r, rel=1e-10)
    expected_rms = np.sqrt(np.sum(w * (a.values - b.values) ** 2) / w.sum())
    assert float(weighted_rms(a, b)) == pytest.approx(expected_rms, rel=1e-10)
    expected_ratio = np.sqrt(np.sum(w * a.values**2) / np.sum(w * b.values**2))
    assert float(amplitude_ratio(a, b)) == pytest.approx(expected_ratio, rel=1e-10)


def test_nan_cells_are_left_out_of_both_maps():
    a, b = _maps(2)
    b = b.where(b["lat"] < 30)  # "land" north of 30N in b only
    keep = np.isfinite(b.values)
    w = np.broadcast_to(_zone_areas(a["lat"])[:, None], a.shape)[keep]
    c = np.cov(a.values[keep], b.values[keep], aweights=w)
    assert float(pattern_correlation(a, b)) == pytest.approx(c[0, 1] / np.sqrt(c[0, 0] * c[1, 1]), rel=1e-10)
    assert float(amplitude_ratio(a, b)) == pytest.approx(
        np.sqrt(np.sum(w * a.values[keep] ** 2) / np.sum(w * b.values[keep] ** 2)), rel=1e-10)


def test_member_dim_kept_and_dask_lazy():
    a, b = _maps(3)
    ens = xr.concat([a, 2 * a, b], dim="member").chunk({"member": 1})
    ratio = amplitude_ratio(ens, a)
    assert isinstance(ratio.data, dsa.Array)
    np.testing.assert_allclose(ratio.values[:2], [1.0, 2.0], rtol=1e-12)
    np.testing.assert_allclose(pattern_correlation(ens, a).values[2], float(pattern_correlation(b, a)))


def test_different_grids_rejected():
    a, _ = _maps(4)
    b, _ = _maps(4, res=3.0)
    with pytest.raises(ValueError, match="same grid"):
        pattern_correlation(a, b)
