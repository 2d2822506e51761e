"""The variable catalogue: the 37 reference channels, ERA5 name mapping, transforms."""

import numpy as np
import pytest

from diagnostics.data import catalogue, transforms


def test_reference_state_has_37_channels_in_published_order():
    ch = catalogue.channels()
    assert len(ch) == 37
    assert [c for c, _ in ch[:8]] == ["ps", "ts", "tas", "tdas", "uas", "vas", "pr", "psl"]
    assert ch[8:15] == [("ta", lev) for lev in (1000, 850, 700, 500, 250, 100, 50)]
    assert ch[-1] == ("zg500", None)


def test_lookup_by_store_name_alias_and_era5_names():
    assert catalogue.variable("zg500").name == "zg"
    assert catalogue.variable("sst").name == "tos"
    assert catalogue.from_era5_name("2m_temperature").name == "tas"
    assert catalogue.from_era5_name("t2m").name == "tas"
    assert catalogue.from_era5_name("total_precipitation_6hr").name == "pr"
    assert catalogue.from_era5_name("sea_ice_cover").name == "siconc"
    assert catalogue.from_era5_name("not_a_variable") is None
    with pytest.raises(KeyError, match="unknown variable"):
        catalogue.variable("nope")


def test_transforms_follow_the_catalogue():
    assert {n for n, v in catalogue.VARIABLES.items() if v.transform == "sqrt"} == {"hus", "huss", "pr"}
    assert {n for n, v in catalogue.VARIABLES.items() if v.transform == "logit"} == {"siconc"}


@pytest.mark.parametrize("kind", ["none", "sqrt", "logit"])
def test_transform_round_trip_numpy_and_torch(kind):
    torch = pytest.importorskip("torch")
    x = np.linspace(0.01, 0.99, 50)
    y = transforms.forward(x, kind)
    np.testing.assert_allclose(transforms.inverse(y, kind), x, rtol=1e-12)
    yt = transforms.forward(torch.tensor(x), kind)
    np.testing.assert_allclose(yt.numpy(), y, rtol=1e-12)


def test_logit_clamps_to_eps_and_sqrt_clips_negatives():
    assert transforms.forward(np.array([0.0]), "logit")[0] == pytest.approx(np.log(1e-3 / (1 - 1e-3)))
    assert transforms.forward(np.array([-1e-9]), "sqrt")[0] == 0.0


def test_cf_attrs_complete_for_every_variable():
    for name in catalogue.store_names():
        attrs = catalogue.cf_attrs(name)
        assert attrs["units"] and attrs["long_name"]


def test_conform_keeps_declared_units_so_validation_catches_them():
    import xarray as xr

    from diagnostics.data import contract, grid
    from diagnostics.data.timeaxis import Month, monthly_axis

    g = grid.equiangular(5.625)
    ax = monthly_axis(Month(2000, 1), Month(2000, 2))
    ds = xr.Dataset({"tas": (("time", "lat", "lon"), np.full((2, *g.shape), 15.0),
                             {"units": "degC"})}, coords={**g.coords(), **ax.coords})
    ds["time_bnds"] = ax["time_bnds"]
    conformed = contract.conform(ds)
    assert conformed["tas"].attrs["units"] == "degC"
    assert any("units 'degC', expected 'K'" in p for p in contract.problems(conformed))
    del ds["tas"].attrs["units"]
    assert contract.conform(ds)["tas"].attrs["units"] == "K"
