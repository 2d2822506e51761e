"""The contract validator on a good dataset and on each kind of broken one; conform; require."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.contract import DIM_ORDER, conform, plev_coord, problems, require, validate
from diagnostics.data.errors import InputError
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis

GRID = equiangular(45.0)


def good(months: int = 3) -> xr.Dataset:
    rng = np.random.default_rng(0)
    axis = monthly_axis(Month(1999, 11), Month(1999, 11) + (months - 1), "360_day")
    ds = xr.Dataset(coords={**GRID.coords(), "time": axis["time"], "plev": plev_coord()})
    ds["time_bnds"] = axis["time_bnds"]
    ds["tas"] = (("time", "lat", "lon"), 280 + rng.standard_normal((months,) + GRID.shape), {"units": "K"})
    ds["ta"] = (("time", "plev", "lat", "lon"), 250 + rng.standard_normal((months, 7) + GRID.shape),
                {"units": "K"})
    ds["pr"] = (("time", "lat", "lon"), rng.uniform(0, 1e-4, (months,) + GRID.shape), {"units": "kg m-2 s-1"})
    ds["tos"] = (("time", "lat", "lon"), np.where(rng.uniform(size=(months,) + GRID.shape) < 0.3, np.nan, 290.0),
                 {"units": "K"})
    ds["sftlf"] = (("lat", "lon"), rng.uniform(0, 1, GRID.shape), {"units": "1"})
    return conform(ds)


def test_good_dataset_conforms():
    ds = good()
    assert problems(ds) == []
    assert validate(ds, "good.nc") is ds
    assert ds["tas"].dtype == np.float32 and ds["tas"].attrs["standard_name"] == "air_temperature"


def _broken(kind: str) -> xr.Dataset:
    ds = good()
    if kind == "lat-descending":
        return ds.isel(lat=slice(None, None, -1))
    if kind == "lon-negative":
        return ds.assign_coords(lon=ds["lon"] - 180.0)
    if kind == "plev-hpa":
        return ds.assign_coords(plev=xr.DataArray(ds["plev"].values / 100, dims="plev", attrs={"units": "hPa"}))
    if kind == "plev-order":
        return ds.isel(plev=slice(None, None, -1))
    if kind == "duplicate":
        return ds.isel(time=[0, 1, 1, 2])
    if kind == "gap":
        return ds.isel(time=[0, 2])
    if kind == "backwards":
        return ds.isel(time=[0, 2, 1])
    if kind == "no-bounds":
        return ds.drop_vars("time_bnds")
    if kind == "unknown-variable":
        return ds.assign(foo=ds["tas"])
    if kind == "units":
        ds["tas"].attrs["units"] = "degC"
        return ds
    if kind == "dim-order":
        ds["tas"] = ds["tas"].transpose("lat", "time", "lon")
        return ds
    if kind == "nan":
        ds["tas"][0, 1, 1] = np.nan
        return ds
    if kind == "range":
        ds["ta"] = ds["ta"] - 273.15
        return ds
    if kind == "negative":
        ds["pr"][0] = -1e-3
        return ds
    if kind == "2d-with-plev":
        ds["tas"] = ds["tas"].expand_dims(plev=ds["plev"][:1], axis=1)
        return ds
    raise ValueError(kind)


@pytest.mark.parametrize("kind, message", [
    ("lat-descending", "latitude must ascend"),
    ("lon-negative", "longitude outside [0, 360)"),
    ("plev-hpa", "plev must be in Pa"),
    ("plev-order", "plev must be ordered surface first"),
    ("duplicate", "duplicated month 1999-12"),
    ("gap", "month 1999-12 is missing"),
    ("backwards", "not monotonic increasing"),
    ("no-bounds", "missing time bounds"),
    ("unknown-variable", "variable 'foo' is not in the catalogue"),
    ("units", "variable 'tas' has units 'degC', expected 'K'"),
    ("dim-order", "variable 'tas' has dims ('lat', 'time', 'lon')"),
    ("nan", "variable 'tas' holds NaN or inf where none may be (1 of 40 cells"),
    ("range", "variable 'ta' has mean"),
    ("negative", "variable 'pr' is negative somewhere"),
    ("2d-with-plev", "variable 'tas' is a single-level field but has a 'plev' dim"),
])
def test_each_problem_is_reported(kind, message):
    found = problems(_broken(kind))
    assert any(message in p for p in found), found
    with pytest.raises(InputError) as err:
        validate(_broken(kind), "broken.nc")
    assert str(err.value).startswith("broken.nc: ") and "\n" not in str(err.value)


def test_nan_allowed_in_sst_only():
    ds = good()
    assert np.isnan(ds["tos"].values).any() and problems(ds) == []


def test_validate_summarises_many_problems():
    ds = _broken("lat-descending").drop_vars("time_bnds")
    ds["tas"].attrs["units"] = "C"
    with pytest.raises(InputError, match=r"\(and \d+ more problems\)"):
        validate(ds, "x.nc")


def test_conform_orders_dims_and_sets_attrs():
    ds = good()
    raw = xr.Dataset({"ta": ds["ta"].transpose("lon", "plev", "time", "lat").astype(np.float64)})
    out = conform(raw)
    assert out["ta"].dims == ("time", "plev", "lat", "lon")
    assert tuple(d for d in DIM_ORDER if d in out["ta"].dims) == out["ta"].dims
    assert out["ta"].dtype == np.float32 and out["ta"].attrs["units"] == "K"
    assert out["plev"].attrs["units"] == "Pa" and out.attrs["Conventions"] == "CF-1.8"


def test_require_names_the_missing():
    with pytest.raises(InputError, match=r"d\.zarr: missing variables \['hus'\]"):
        require(good(), ["tas", "hus"], "d.zarr")
    require(good(), ["tas", "ta"], "d.zarr")


def test_guard_checks_levels_whatever_the_dim_order():
    """A reader's piece before conform may hold plev after lat/lon: the level a NaN is on
    must still be the right one (below-ground allowed at 1000 hPa, refused at 250 hPa)."""
    import dask.array as dsa

    from diagnostics.data.contract import guard_values

    ds = good()
    ta = ds["ta"].transpose("time", "lat", "lon", "plev").copy(deep=True)
    ta[:, 0, :, 0] = np.nan  # 1000 hPa, one latitude row: a below-ground mask
    lazy = ta.copy(data=dsa.from_array(ta.values, chunks=(1, -1, -1, -1)))
    guard_values(lazy, "ta", "x.nc").compute()
    ta[:, 0, :, 4] = np.nan  # 250 hPa: no ground there
    lazy = ta.copy(data=dsa.from_array(ta.values, chunks=(1, -1, -1, -1)))
    with pytest.raises(InputError, match=r"x\.nc: variable 'ta' holds NaN at 250 hPa, above any ground"):
        guard_values(lazy, "ta", "x.nc").compute()
