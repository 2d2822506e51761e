"""Unit conversions and the dewpoint -> specific humidity formula, against published values."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.errors import InputError
from diagnostics.io import units as U
from diagnostics.io.coords import standard_coords


def _da(values, units):
    return xr.DataArray(np.asarray(values, dtype=float), attrs={"units": units})


def test_saturation_vapour_pressure_matches_goff_gratch_table():
    # Goff-Gratch over water (Smithsonian Meteorological Tables): 10, 20, 30 degC in Pa
    table = {10.0: 1228.1, 20.0: 2338.8, 30.0: 4246.9}
    for tc, es in table.items():
        got = float(U.saturation_vapour_pressure(xr.DataArray(tc + 273.15)))
        assert abs(got - es) / es < 2e-3, (tc, got, es)


def test_specific_humidity_equals_mixing_ratio_route():
    td = xr.DataArray(np.array([250.0, 280.0, 300.0]))
    p = xr.DataArray(np.array([7.0e4, 1.0e5, 1.01e5]))
    e = U.saturation_vapour_pressure(td).values
    w = 0.622 * e / (p.values - e)  # mixing ratio, then q = w / (1 + w)
    np.testing.assert_allclose(U.specific_humidity_from_dewpoint(td, p).values, w / (1 + w), rtol=1e-12)


def test_temperature_pressure_fraction_precipitation():
    assert float(U.temperature_to_kelvin(_da(15.0, "degC"))) == pytest.approx(288.15)
    assert U.temperature_to_kelvin(_da(288.0, "K")).attrs["units"] == "K"
    assert float(U.pressure_to_pa(_da(1013.25, "hPa"))) == pytest.approx(101325.0)
    assert float(U.fraction_from_percent(_da(42.0, "%"))) == pytest.approx(0.42)
    assert float(U.precipitation_to_rate(_da(0.0864, "m"), 86400.0)) == pytest.approx(1.0e-3)  # 86.4 mm/day
    assert float(U.precipitation_to_rate(_da(2e-5, "kg m**-2 s**-1"), None)) == pytest.approx(2e-5)
    assert float(U.precipitation_to_rate(_da(8.64, "mm/day"), None)) == pytest.approx(1e-4)


def test_geopotential_detection():
    assert U.is_geopotential(_da(0, "m**2 s**-2"))
    assert U.is_geopotential(_da(0, "m"), sample=np.full(4, 5.4e4))  # labelled m, holds geopotential
    assert not U.is_geopotential(_da(0, "m"), sample=np.full(4, 5.5e3))
    assert float(U.geopotential_to_height(_da(9.80665 * 5500, "m2 s-2"))) == pytest.approx(5500.0)


def test_unconvertible_units_are_an_error():
    with pytest.raises(InputError, match=r"f\.nc: variable 'ta' has units 'degF'"):
        U.check_units("ta", _da(0, "degF"), "K", "f.nc")
    assert U.check_units("hus", _da(0, "kg kg**-1"), "1", "f.nc").attrs["units"] == "1"


def test_standard_coords_flip_wrap_and_levels():
    ds = xr.Dataset({"x": (("level", "latitude", "longitude"), np.arange(2 * 3 * 4.0).reshape(2, 3, 4))},
                    coords={"level": ("level", [500, 850], {"units": "hPa"}), "latitude": [45.0, 0.0, -45.0],
                            "longitude": [-180.0, -90.0, 0.0, 90.0]})
    out = standard_coords(ds, "f.nc")
    np.testing.assert_array_equal(out["lat"], [-45, 0, 45])
    np.testing.assert_array_equal(out["lon"], [0, 90, 180, 270])
    np.testing.assert_array_equal(out["plev"], [85000, 50000])
    # value at (850 hPa, 45N, 90W=270E) keeps its place
    assert out["x"].sel(plev=85000, lat=45, lon=270).item() == ds["x"].sel(level=850, latitude=45,
                                                                           longitude=-90).item()
