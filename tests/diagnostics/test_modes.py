"""EOF modes against the eofs example data (documented variance fractions, eofs' own
solution), the NAO/annular sign rules, and closed forms for the model-vs-reference numbers."""

import numpy as np
import pytest
import xarray as xr
from eofs.examples import example_data_path
from eofs.standard import Eof as StandardEof

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.metrics.modes import compare_modes, leading_eofs, nao, nh_eof1, select_domain
from diagnostics.metrics.pattern import pattern_correlation, weighted_rms

DECODE = xr.coders.CFDatetimeCoder(use_cftime=True)


def _example(name, var):
    ds = xr.open_dataset(example_data_path(name), decode_times=DECODE)
    da = ds[var].rename(latitude="lat", longitude="lon").load()
    return da.isel(pressure=0, drop=True) if "pressure" in da.dims else da


def _hgt():
    z = _example("hgt_djf.nc", "z")
    z.attrs["units"] = "m"
    return z


def test_hgt_djf_variance_fractions_match_eofs_documentation():
    z = _hgt()
    anom = z - z.mean("time")
    # the documented numbers come from sqrt(cos lat) weights; check eofs itself reproduces them
    coslat_w = np.sqrt(np.cos(np.deg2rad(z["lat"].values)).clip(0))[:, None]
    documented = StandardEof(anom.values, weights=coslat_w).varianceFraction(3)
    np.testing.assert_allclose(documented, [0.4069, 0.1802, 0.1047], atol=5e-5)
    # ours uses sqrt(cell area): the pole row gets its small true area instead of 0
    ours = leading_eofs(anom, 3)
    np.testing.assert_allclose(ours["variance_fraction"].values, [0.4069, 0.1802, 0.1047], atol=3e-4)
    assert np.allclose(ours["pc"].std("time", ddof=1).values, 1.0)


def test_sst_ndjfm_enso_variance_fraction():
    sst = _example("sst_ndjfm_anom.nc", "sst")
    assert float(leading_eofs(sst, 1)["variance_fraction"][0]) == pytest.approx(0.4899, abs=1e-4)


def _monthly_from_djf(z, seed=0):
    """Monthly series whose DJF means are the example's DJF means (other months are noise
    that must not leak in), on a 0..360 longitude axis so the NAO box wraps through 0."""
    years = np.array([t.year for t in z["time"].values])
    axis = monthly_axis(Month(int(years[0]) - 1, 12), Month(int(years[-1]), 2))
    rng = np.random.default_rng(seed)
    values = rng.normal(scale=500.0, size=(axis.sizes["time"], *z.shape[1:]))
    for k, y in enumerate(years):
        start = (y - years[0]) * 12  # index of Dec (y - 1)
        values[start:start + 3] = z.values[k]
    lon = z["lon"].values % 360.0
    out = xr.DataArray(values, dims=("time", "lat", "lon"),
                       coords={"time": axis["time"], "lat": z["lat"].values, "lon": lon},
                       name="zg500", attrs={"units": "m"})
    return out.sortby("lon")


def test_nao_sign_rule_and_wrapped_domain_against_eofs():
    z = _hgt()
    monthly = _monthly_from_djf(z)
    assert monthly["lon"].values[0] == 0.0  # the domain is split on the 0..360 axis
    result = nao(monthly)
    pattern = result["pattern"].isel(mode=0)
    assert pattern["lon"].values[0] == -80.0 and pattern["lon"].values[-1] == 40.0
    # eofs on the same 20-80N box (its own lon order -80..40)
    sub = z.sel(lat=slice(20, 80))
    anom = sub - sub.mean("time")
    solver = StandardEof(anom.values, weights=np.sqrt(np.cos(np.deg2rad(sub["lat"].values)))[:, None])
    eofs_pattern = xr.DataArray(solver.eofsAsCovariance(neofs=1)[0], dims=("lat", "lon"),
                                coords={"lat": sub["lat"], "lon": sub["lon"]})
    # eofs returns EOF1 with the negative-NAO sign (high over Iceland); ours is flipped
    assert float(eofs_pattern.sel(lat=slice(60, 80)).mean()) > 0
    assert float(pattern.sel(lat=slice(60, 80)).mean()) < 0
    assert float(pattern_correlation(pattern, eofs_pattern.assign_coords(lat=pattern["lat"]))) < -0.9999
    assert float(result["variance_fraction"][0]) == pytest.approx(solver.varianceFraction(1)[0], abs=1e-3)
    # pattern = regression on the standardised PC (pcscaling=1), in metres
    np.testing.assert_allclose(np.abs(pattern.values), np.abs(eofs_pattern.values), rtol=0.02, atol=0.5)
    assert result["pattern"].attrs["units"] == "m"


def test_members_pooled_and_per_member():
    z = _hgt()
    monthly = _monthly_from_djf(z)
    single = nao(monthly)
    ens = xr.concat([monthly, monthly], dim="member")
    per_member = nao(ens)
    assert per_member["variance_fraction"].dims == ("member", "mode")
    np.testing.assert_allclose(per_member["variance_fraction"].values[:, 0], float(single["variance_fraction"][0]))
    pooled = nao(ens, pooled=True)
    assert pooled["pc"].dims == ("member", "time", "mode")
    # two identical members: the pooled analysis has the same pattern and fraction
    assert float(pooled["variance_fraction"][0]) == pytest.approx(float(single["variance_fraction"][0]), rel=1e-9)
    np.testing.assert_allclose(pooled["pattern"].values, single["pattern"].values, rtol=1e-6, atol=1e-6)


def test_compare_modes_closed_forms():
    monthly = _monthly_from_djf(_hgt())
    ref = nao(monthly)
    doubled = nao(2.0 * (monthly - 5000.0) + 5000.0)
    stats = compare_modes(doubled, ref)
    assert float(stats["pattern_corr"]) == pytest.approx(1.0, abs=1e-9)
    assert float(stats["pc_std_ratio"]) == pytest.approx(2.0, rel=1e-9)
    assert float(stats["variance_fraction_model"]) == pytest.approx(float(stats["variance_fraction_ref"]), rel=1e-9)
    assert float(stats["rms"]) == pytest.approx(float(weighted_rms(ref["pattern"].isel(mode=0))), rel=1e-9)


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_nh_eof1_recovers_planted_annular_mode_with_fixed_sign(sign):
    grid = equiangular(5.625)
    rng = np.random.default_rng(7)
    axis = monthly_axis(Month(1980, 1), Month(2009, 12))
    nt = axis.sizes["time"]
    lat = grid.lat[:, None] * np.ones(grid.lon.size)
    mode = -120.0 * np.exp(-(((lat - 90) / 25) ** 2)) + 60.0 * np.exp(-(((lat - 45) / 12) ** 2))
    pc = rng.normal(size=nt)
    values = 5500.0 + sign * pc[:, None, None] * mode[None] + 5.0 * rng.normal(size=(nt, *grid.shape))
    field = xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": axis["time"], **grid.coords()},
                         name="zg500", attrs={"units": "m"})
    result = nh_eof1(field)
    pattern = result["pattern"].isel(mode=0)
    assert float(pattern.sel(lat=slice(60, 90)).mean()) < 0  # low over the pole in the positive phase
    planted = select_domain(xr.DataArray(mode, dims=("lat", "lon"), coords=grid.coords()), (0.0, 90.0))
    assert float(pattern_correlation(pattern, planted)) > 0.99
    djf_pc = [pc[(np.arange(nt) >= 12 * k - 1) & (np.arange(nt) < 12 * k + 2)].mean() for k in range(1, 30)]
    assert np.corrcoef(result["pc"].isel(mode=0).values, sign * np.array(djf_pc))[0, 1] > 0.99
    assert float(result["variance_fraction"][0]) > 0.5


def test_select_domain_same_box_in_either_longitude_convention():
    grid = equiangular(5.625)
    rng = np.random.default_rng(8)
    east = xr.DataArray(rng.normal(size=grid.shape), dims=("lat", "lon"), coords=grid.coords())
    west = east.assign_coords(lon=((east["lon"] + 180.0) % 360.0) - 180.0).sortby("lon")  # -180..180
    a = select_domain(east, (20.0, 80.0), (-90.0, 40.0))
    b = select_domain(west, (20.0, 80.0), (270.0, 40.0))
    assert a["lon"].values[0] == -90.0 and a["lon"].values[-1] <= 40.0
    assert np.all(np.diff(a["lon"].values) > 0)
    np.testing.assert_array_equal(a["lon"].values, b["lon"].values)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.sizes["lat"] == int(np.sum((grid.lat >= 20) & (grid.lat <= 80)))


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_nao_sign_is_fixed_by_the_dipole_not_by_a_domain_wide_offset(sign):
    """An NAO whose pattern carries a large in-phase offset over the whole domain: the mean over
    the Iceland band alone is positive, yet the pattern is the positive NAO (low near Iceland
    relative to the Azores). The dipole rule keeps its sign; a one-band rule flipped it."""
    grid = equiangular(5.625)
    rng = np.random.default_rng(3)
    axis = monthly_axis(Month(1979, 12), Month(2019, 2))
    nt = axis.sizes["time"]
    lat, lon = grid.lat[:, None] * np.ones(grid.lon.size), np.ones(grid.lat.size)[:, None] * grid.lon
    dlon = (lon + 30.0 + 180.0) % 360.0 - 180.0  # distance in longitude from 30W
    dipole = -8.0 * np.exp(-(((lat - 65) / 8) ** 2 + (dlon / 30) ** 2)) \
        + 8.0 * np.exp(-(((lat - 38) / 8) ** 2 + (dlon / 30) ** 2))
    mode = dipole + 6.0  # the offset: positive over all of 60-80N
    pc = rng.normal(size=nt)
    values = 1.0e5 + sign * pc[:, None, None] * mode[None] + 0.3 * rng.normal(size=(nt, *grid.shape))
    field = xr.DataArray(values, dims=("time", "lat", "lon"), coords={"time": axis["time"], **grid.coords()},
                         name="psl", attrs={"units": "Pa"})
    pattern = nao(field)["pattern"].isel(mode=0)
    assert float(pattern.sel(lat=slice(60, 80)).mean()) > 0  # the one-band rule would have flipped it
    planted = select_domain(xr.DataArray(dipole, dims=("lat", "lon"), coords=grid.coords()), (20.0, 80.0),
                            (-90.0, 40.0))
    assert float(pattern_correlation(pattern, planted)) > 0.9
