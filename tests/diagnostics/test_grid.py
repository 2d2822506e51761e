"""Grids and the one area-weight function (checked against closed forms)."""

import numpy as np
import pytest
import xarray as xr

from diagnostics.data import grid


@pytest.mark.parametrize("res,shape", [(1.5, (121, 240)), (3.0, (61, 120)), (5.625, (33, 64))])
def test_named_grids_with_poles(res, shape):
    g = grid.equiangular(res)
    assert g.shape == shape == grid.NAMED_GRIDS[res]
    assert g.lat[0] == -90 and g.lat[-1] == 90 and g.lon[0] == 0 and g.lon[-1] < 360


def test_area_weights_are_exact_cell_areas():
    g = grid.equiangular(1.5)
    w = grid.area_weights(g.lat).values
    assert w.mean() == pytest.approx(1.0)
    # Closed form: half-cell at the pole, sin(edge) differences elsewhere.
    d = np.deg2rad(0.75)
    pole = 1 - np.sin(np.pi / 2 - d)
    equator = 2 * np.sin(d)
    assert w[0] / w[60] == pytest.approx(pole / equator, rel=1e-12)
    assert w[0] > 0  # unlike cos(lat)
    # Fraction of sphere area between 30S and 30N is 1/2 (cells centred within).
    g2 = grid.equiangular(1.0, poles=False)
    w2 = grid.area_weights(g2.lat)
    band = (np.abs(g2.lat) < 30)
    assert float(w2[band].sum() / w2.sum()) == pytest.approx(0.5, abs=1e-12)


def test_area_weights_on_a_regional_subset_keep_edges_inside():
    g = grid.equiangular(1.5)
    lat = g.lat[(g.lat >= -6) & (g.lat <= 6)]
    w = grid.area_weights(lat).values
    assert np.ptp(w) < 0.01  # near-equal near the equator, not a pole-sized first cell


def test_area_weights_keep_caller_order():
    lat = np.array([60.0, 0.0, -60.0])
    w = grid.area_weights(lat).values
    assert w[1] > w[0] and w[0] == pytest.approx(w[2])


def test_global_mean_of_cos_lat_closed_form():
    g = grid.equiangular(0.25)
    field = xr.DataArray(np.cos(np.deg2rad(g.lat))[:, None] * np.ones(g.lon.size),
                         dims=("lat", "lon"), coords=g.coords())
    # mean of cos(phi) over the sphere = pi / 4
    assert float(grid.global_mean(field)) == pytest.approx(np.pi / 4, rel=1e-5)


def test_bad_resolution_rejected():
    with pytest.raises(ValueError, match="divide 360"):
        grid.equiangular(7.0)


def test_coverage_problem_tells_global_from_regional():
    from diagnostics.data.grid import Grid, coverage_problem, equiangular

    for res in (0.25, 1.5, 5.625, 45.0):
        assert coverage_problem(equiangular(res)) is None
        assert coverage_problem(equiangular(res, poles=False)) is None
    gauss_like = Grid(lat=np.linspace(-88.9, 88.9, 160), lon=np.arange(320) * 1.125)
    assert coverage_problem(gauss_like) is None
    assert "do not reach the poles" in coverage_problem(Grid(lat=np.linspace(-30, 30, 41), lon=np.arange(240) * 1.5))
    assert "do not go round" in coverage_problem(Grid(lat=np.linspace(-90, 90, 121), lon=np.arange(120) * 1.5))
    assert "do not go round" in coverage_problem(Grid(lat=np.array([80.0, 85.0]), lon=np.array([0.0, 5.0])))
