"""Pressure levels for AI-MIP: planted linear-in-log-p profiles, no extrapolation, float-noise
levels, geopotential detection, and tdas -> huss against the official formula."""

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.catalogue import G0, PLEV_HPA
from diagnostics.data.errors import InputError
from diagnostics.io import levels as L

CMIP6_19 = np.array([1000, 925, 850, 700, 600, 500, 400, 300, 250, 200, 150, 100, 70, 50, 30, 20, 10, 5, 1],
                    dtype=float) * 100.0


def _field(plev_pa, profile, units="Pa", nt=3):
    lat = np.linspace(-60, 60, 5)
    base = np.cos(np.deg2rad(lat))[None, None, :, None]
    values = profile(np.asarray(plev_pa))[None, :, None, None] * (1 + 0.1 * base) + np.arange(nt)[:, None, None, None]
    values = np.broadcast_to(values, (nt, len(plev_pa), lat.size, 4)).copy()
    return xr.DataArray(values, dims=("time", "plev", "lat", "lon"),
                        coords={"plev": ("plev", np.asarray(plev_pa), {"units": units}), "lat": lat,
                                "lon": np.arange(4) * 90.0}, name="ta", attrs={"units": "K"})


def test_linear_in_log_p_profile_recovered_exactly():
    # source lacks 850, 250 and 50 hPa: they must come out of the log-p interpolation exactly
    src = np.array([1000, 925, 700, 600, 500, 300, 200, 100, 70, 30, 10], dtype=float) * 100.0
    profile = lambda p: 200.0 + 15.0 * np.log(p)  # noqa: E731
    out = L.to_levels(_field(src, profile).chunk({"time": 1}))
    truth = _field(np.array(PLEV_HPA, dtype=float) * 100.0, profile)
    np.testing.assert_allclose(out.values, truth.values, rtol=1e-13)
    assert out["plev"].values.tolist() == [h * 100.0 for h in PLEV_HPA]
    assert out.dims == ("time", "plev", "lat", "lon") and "levels_not_available" not in out.attrs
    # linear in p is not exact for this profile (what the official xarray.interp would give)
    in_p = L.to_levels(_field(src, profile), coordinate="p")
    assert np.abs(in_p.sel(plev=85000.0).values - truth.sel(plev=85000.0).values).max() > 1e-3


def test_nearest_picks_the_closer_source_level():
    src = np.array([1000, 900, 700, 500, 260, 100, 50], dtype=float) * 100.0
    out = L.to_levels(_field(src, lambda p: p / 100.0), method="nearest")
    assert out.isel(time=0, lat=2, lon=0).values.tolist() == pytest.approx(
        [v * 1.1 for v in [1000, 900, 700, 500, 260, 100, 50]])


def test_no_extrapolation_nan_or_refused():
    src = np.array([1000, 850, 700, 500, 250], dtype=float) * 100.0  # tops out at 250 hPa
    out = L.to_levels(_field(src, lambda p: np.log(p)))
    assert np.isnan(out.sel(plev=[10000.0, 5000.0]).values).all()
    assert np.isfinite(out.sel(plev=[100000.0, 25000.0]).values).all()
    assert out.attrs["levels_not_available"].startswith("100 50 hPa")
    with pytest.raises(InputError, match="without extrapolating"):
        L.to_levels(_field(src, lambda p: np.log(p)), outside="error", source="ta.nc")


def test_float_noise_and_hpa_levels_matched_not_interpolated():
    noisy = CMIP6_19 * (1 + 1e-13) + np.where(CMIP6_19 == 100000.0, 1e-8, 0.0)  # ACCESS-CM2's 100000.00000001
    profile = lambda p: np.sqrt(p)  # noqa: E731  (not linear in log p: an interpolation would show)
    out = L.to_levels(_field(noisy, profile))
    truth = _field(np.array(PLEV_HPA, dtype=float) * 100.0, profile)
    np.testing.assert_allclose(out.values, truth.values, rtol=1e-12)
    hpa = L.to_levels(_field(CMIP6_19 / 100.0, profile, units="hPa").assign_coords(
        plev=("plev", CMIP6_19 / 100.0, {"units": "hPa"})))
    assert hpa["plev"].values.tolist() == out["plev"].values.tolist()
    # below-ground NaN at the lowest level stays NaN (never filled from above)
    masked = _field(CMIP6_19, profile)
    masked[:, 0, 0, 0] = np.nan
    assert np.isnan(L.to_levels(masked).isel(plev=0, lat=0, lon=0)).all()


def test_standard_height():
    assert L.standard_height(50000.0) == pytest.approx(5574, abs=2)
    assert L.standard_height(101325.0) == pytest.approx(0, abs=1e-9)


def _zg(values_m, plev_hpa, units):
    lat = np.array([-45.0, 0.0, 45.0])
    data = np.broadcast_to(np.asarray(values_m, float)[None, :, None, None], (2, len(plev_hpa), 3, 2))
    return xr.DataArray(data.copy(), dims=("time", "plev", "lat", "lon"), name="zg", attrs={"units": units},
                        coords={"plev": ("plev", np.array(plev_hpa, float) * 100, {"units": "Pa"}), "lat": lat})


def test_geopotential_detected_by_magnitude_and_converted():
    heights = [110.0, 1460.0, 3010.0, 5570.0, 10360.0, 16180.0, 20580.0]
    for units in ("m2 s-2", "m"):  # mislabelled as m too
        out = L.zg_as_height(_zg(np.array(heights) * G0, PLEV_HPA, units))
        np.testing.assert_allclose(out.values[0, :, 0, 0], heights, rtol=1e-12)
        assert out.attrs["units"] == "m" and "9.80665" in out.attrs["note"]
    kept = L.zg_as_height(_zg(heights, PLEV_HPA, "m"))
    np.testing.assert_array_equal(kept.values[0, :, 0, 0], heights)
    assert "note" not in kept.attrs
    z500 = _zg([5570.0 * G0], [500], "m").isel(plev=0, drop=True)
    assert L.zg_as_height(z500, level_hpa=500).values[0, 0, 0] == pytest.approx(5570.0)
    with pytest.raises(InputError, match="level is needed"):
        L.zg_as_height(z500)
    with pytest.raises(InputError, match="some levels"):
        L.zg_as_height(_zg([110.0 * G0, 1460.0], [1000, 850], "m"))


def test_huss_from_tdas_matches_the_official_formula():
    td = xr.DataArray(np.array([250.0, 273.15, 290.0, 300.0]))
    ps = xr.DataArray(np.array([70000.0, 100000.0, 101325.0, 95000.0]))
    # independent transcription of ai2cm/AIMIP compute_huss_from_tdas
    e = 611.21 * np.exp(17.502 * (td.values - 273.16) / (td.values - 32.19))
    q = (287.0597 / 461.5250) * e / (ps.values - (1 - 287.0597 / 461.5250) * e)
    out = L.huss_from_tdas(td, ps)
    np.testing.assert_allclose(out.values, q, rtol=1e-12)
    assert out.attrs["units"] == "1" and out.name == "huss"
    bolton = L.huss_from_tdas(td, ps, formula="bolton").values
    assert np.abs(bolton / q - 1).max() < 5e-3  # the project's form is within 0.5 % of the official one
