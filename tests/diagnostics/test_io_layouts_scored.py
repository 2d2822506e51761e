"""Issue 14 layouts scored from their directories by md-diagnose, each with a planted bias recovered:

* the reference as ESMValTool native6 ERA5 files (``native6_ERA5_an_v1_Amon_{var}_2012-2015.nc``,
  bounds variables, Gregorian, ``zg`` on 19 levels);
* a GFDL-CM4-like physics model as a CMIP DRS tree (``Inst/CM4like/amip/r1i1p{N}f1/Amon/{var}/gr1/
  v20180701``): members told apart by the physics index, Julian calendar, 19 levels in Pa, bounds, and
  ``zg`` holding geopotential (m2 s-2) mislabelled ``m``;
* a cBottle-like HEALPix submission (``cell`` dim with lat/lon, nested order, members ``r1i1p{N}f1``),
  regridded conservatively (healpy pixel geometry) onto the reference grid.

Every member is reference + b + o_m with member offsets o_m summing to zero, so the ensemble-mean bias
is b everywhere (HEALPix: on a spatially uniform field, which conservative regridding keeps exactly).
"""

from __future__ import annotations

import json
import os
import shutil

import cftime
import healpy as hp
import numpy as np
import pytest
import xarray as xr

from diagnostics.cli.diagnose import main
from diagnostics.data.catalogue import G0
from diagnostics.data.grid import equiangular, latitude_edges
from diagnostics.data.timeaxis import Month
from diagnostics.io.levels import standard_height
from diagnostics.io.regrid import longitude_edges
from diagnostics.synth.climate import synthesize

START, END = Month(2012, 1), Month(2015, 12)
TRAIN, TEST = "2012-01:2013-12", "2014-01:2015-12"
PLEV19 = np.array([1000, 925, 850, 700, 600, 500, 400, 300, 250, 200, 150, 100, 70, 50, 30, 20, 10, 5, 1]) * 100.0
BIAS = {"tas": 0.7, "zg": -15.0}  # K, m
OFFSETS = (-0.2, 0.2)


def _times(n: int, calendar: str) -> tuple[np.ndarray, np.ndarray]:
    t = np.array([cftime.datetime(2012 + k // 12, k % 12 + 1, 16, calendar=calendar) for k in range(n)])
    b = np.array([[cftime.datetime(2012 + k // 12, k % 12 + 1, 1, calendar=calendar),
                   cftime.datetime(2012 + (k + 1) // 12, (k + 1) % 12 + 1, 1, calendar=calendar)] for k in range(n)])
    return t, b


def _cmor(path, var, data, units, lat, lon, calendar, plev=None):
    """One CMOR-like file: bounds for time/lat/lon, the declared fill, plev in Pa."""
    time, bnds = _times(data.shape[0], calendar)
    dims = ("time", "lat", "lon") if plev is None else ("time", "plev", "lat", "lon")
    step = 180.0 / (lat.size - 1)
    ds = xr.Dataset({var: (dims, data.astype(np.float32), {"units": units}), "time_bnds": (("time", "bnds"), bnds),
                     "lat_bnds": (("lat", "bnds"), np.stack([lat - step / 2, lat + step / 2], 1).clip(-90, 90)),
                     "lon_bnds": (("lon", "bnds"), np.stack([lon - 180 / lon.size, lon + 180 / lon.size], 1))},
                    coords={"time": ("time", time, {"bounds": "time_bnds"}), "lat": lat, "lon": lon})
    if plev is not None:
        ds = ds.assign_coords(plev=("plev", plev, {"units": "Pa", "positive": "down"}))
    path.parent.mkdir(parents=True, exist_ok=True)
    enc = {v: {"units": "days since 1850-01-01", "calendar": calendar} for v in ("time", "time_bnds")}
    ds.to_netcdf(path, encoding={**enc, var: {"_FillValue": np.float32(1e20)}})


def _zg19(zg500: np.ndarray) -> np.ndarray:
    """zg on the 19 levels: the standard atmosphere's heights, the given field at 500 hPa."""
    out = np.broadcast_to(standard_height(PLEV19)[None, :, None, None],
                          (zg500.shape[0], PLEV19.size) + zg500.shape[1:]).copy()
    out[:, 5] = zg500
    return out


def _metrics(out) -> dict:
    return json.loads((out / "metrics.json").read_text())["metrics"]


def _diagnose(tmp_path, ensemble: str, reference, variables) -> dict:
    out = tmp_path / "scores"
    assert main(["--ensemble", ensemble, "--reference", str(reference), "--out", str(out),
                 "--train-period", TRAIN, "--test-period", TEST, "--variables", *variables,
                 "--report", "none", "--no-progress", "--no-baselines", "--no-spectra"]) == 0
    return _metrics(out)


def test_native6_reference_and_a_cm4_like_drs_tree(tmp_path):
    ref, _ = synthesize(equiangular(11.25), START, END, seed=7, members=1)
    lat, lon = ref["lat"].values, ref["lon"].values
    tas, zg = ref["tas"].values, ref["zg500"].values
    era5 = tmp_path / "ERA5"
    _cmor(era5 / "native6_ERA5_an_v1_Amon_tas_2012-2015.nc", "tas", tas, "K", lat, lon, "gregorian")
    _cmor(era5 / "native6_ERA5_an_v1_Amon_zg_2012-2015.nc", "zg", _zg19(zg), "m", lat, lon, "gregorian", PLEV19)
    exp = tmp_path / "CMIP6" / "NOAA-GFDL" / "CM4like" / "amip"
    for n, off in enumerate(OFFSETS, start=1):
        member = f"r1i1p{n}f1"
        d = exp / member / "Amon"
        _cmor(d / "tas" / "gr1" / "v20180701" / f"tas_Amon_CM4like_amip_{member}_gr1_201201-201512.nc", "tas",
              tas + BIAS["tas"] + off, "K", lat, lon, "julian")
        # geopotential (m2 s-2) labelled "m": detected by magnitude against the standard atmosphere
        _cmor(d / "zg" / "gr1" / "v20180701" / f"zg_Amon_CM4like_amip_{member}_gr1_201201-201512.nc", "zg",
              _zg19(zg + BIAS["zg"] + 10 * off) * G0, "m", lat, lon, "julian", PLEV19)
    m = _diagnose(tmp_path, f"CM4={exp}", era5, ["tas", "zg"])
    for period in ("train", "test"):
        for season in ("ANN", "DJF", "JJA"):
            assert m[f"CM4.tas.bias_mean.{period}.{season}"] == pytest.approx(BIAS["tas"], abs=2e-5)
            assert m[f"CM4.tas.bias_rms.{period}.{season}"] == pytest.approx(BIAS["tas"], abs=2e-5)
            # float32 geopotential at 5.5e4 m2 s-2 carries 4e-4 m of rounding per value
            assert m[f"CM4.zg500.bias_mean.{period}.{season}"] == pytest.approx(BIAS["zg"], abs=2e-3)
        assert m[f"CM4.tas.spread.{period}"] == pytest.approx(np.std(OFFSETS, ddof=1), abs=2e-5)
    assert m["CM4.tas.trend_global_diff.all"] == pytest.approx(0.0, abs=1e-5)


def test_healpix_members_r1i1p_n_f1_regridded_and_scored(tmp_path):
    grid = equiangular(5.625)  # nside 8's named target grid (33 x 64)
    months = 48
    cycle = 280.0 + 5.0 * np.sin(2 * np.pi * np.arange(months) / 12.0)  # uniform in space
    lat, lon = grid.lat, grid.lon
    era5 = tmp_path / "ERA5"
    _cmor(era5 / "native6_ERA5_an_v1_Amon_tas_2012-2015.nc", "tas",
          cycle[:, None, None] + np.zeros((months, lat.size, lon.size)), "K", lat, lon, "standard")
    nside = 8
    npix = 12 * nside * nside
    plon, plat = hp.pix2ang(nside, hp.nest2ring(nside, np.arange(npix)), lonlat=True)  # nested order
    d = tmp_path / "cBottle"
    d.mkdir()
    time, bnds = _times(months, "standard")
    for n, off in enumerate(OFFSETS, start=1):
        values = (cycle[:, None] + BIAS["tas"] + off + np.zeros((months, npix))).astype(np.float32)
        xr.Dataset({"tas": (("time", "cell"), values, {"units": "K"}), "time_bnds": (("time", "bnds"), bnds)},
                   coords={"time": ("time", time, {"bounds": "time_bnds"}),
                           "lat": ("cell", plat, {"units": "degrees_north"}),
                           "lon": ("cell", (plon + 180.0) % 360.0 - 180.0, {"units": "degrees_east"})}).to_netcdf(
            d / f"tas_Amon_cBottle-1-3_aimip_r1i1p{n}f1_gn_201201-201512.nc",
            encoding={v: {"units": "days since 1850-01-01", "calendar": "standard"} for v in ("time", "time_bnds")})
    m = _diagnose(tmp_path, f"cBottle={d}", era5, ["tas"])
    # every cell holds the same float32 value, so its rounding (spacing 3e-5 K at 280 K) does not
    # average out over the grid as it does for the lat-lon layouts: 1e-4 K
    for period in ("train", "test"):
        for season in ("ANN", "DJF", "SON"):
            assert m[f"cBottle.tas.bias_mean.{period}.{season}"] == pytest.approx(BIAS["tas"], abs=1e-4)
            assert m[f"cBottle.tas.bias_rms.{period}.{season}"] == pytest.approx(BIAS["tas"], abs=1e-4)
        assert m[f"cBottle.tas.crps.{period}"] == pytest.approx(
            np.mean(np.abs(BIAS["tas"] + np.array(OFFSETS))) - 0.4 / 4, abs=1e-4)  # 1/(2M^2) sum|o_i - o_j|
        assert m[f"cBottle.tas.spread.{period}"] == pytest.approx(np.std(OFFSETS, ddof=1), abs=1e-4)


# ----------------------------------------------------------------------------- DLESyM faces

def _official_dlesym_latlon(nside: int) -> tuple[np.ndarray, np.ndarray]:
    """(lat, lon) of every (face, height, width) value, transcribed from ai2cm/AIMIP
    ``add_latlon_to_dlesym``: xyf2pix(x=width, y=height, face) on the broadcast dims, pix2ang, both
    in-face axes reversed and the result labelled (face, width, height); returned (face, height, width)."""
    f, y, x = np.meshgrid(np.arange(12), np.arange(nside), np.arange(nside), indexing="ij")
    lon, lat = hp.pix2ang(nside, hp.xyf2pix(nside, x, y, f, nest=False), lonlat=True, nest=False)
    lon, lat = lon[:, ::-1, ::-1], lat[:, ::-1, ::-1]  # dims (face, width, height)
    return np.swapaxes(lat, 1, 2), np.swapaxes(lon, 1, 2)


def _pattern(lat, lon) -> np.ndarray:
    """10 K x (cos(lat) cos(lon) + sin(lat)): zonally asymmetric and north-south asymmetric, so a wrong
    face layout puts a wrong value (errors of several K) in most cells."""
    phi, lam = np.deg2rad(lat), np.deg2rad(lon)
    return 10.0 * (np.cos(phi) * np.cos(lam) + np.sin(phi))


def _pattern_cell_means(grid) -> np.ndarray:
    """Exact area-weighted cell means of :func:`_pattern` (area element cos(lat) dlat dlon):
    mean cos(lat) = diff(phi/2 + sin(2 phi)/4) / diff(sin phi), mean sin(lat) = (sin phi1 + sin phi2)/2."""
    s = np.deg2rad(latitude_edges(grid.lat))
    w, e = (np.deg2rad(v) for v in longitude_edges(grid.lon))
    area = np.diff(np.sin(s))
    cos_mean = np.diff(s / 2 + np.sin(2 * s) / 4) / area
    sin_mean = (np.sin(s[1:]) + np.sin(s[:-1])) / 2
    return 10.0 * (cos_mean[:, None] * ((np.sin(e) - np.sin(w)) / (e - w))[None, :] + sin_mean[:, None])


def _write_dlesym(root, member: str, values: np.ndarray, calendar: str = "standard") -> None:
    """A DLESyM-like DRS file: ``tas`` on (time, face, height, width) with integer face/height/width
    coordinates and no lat/lon (as the Phase-1 submission)."""
    months, _, n, _ = values.shape
    time, bnds = _times(months, calendar)
    d = root / member / "Amon" / "tas" / "gn" / "v20250601"
    d.mkdir(parents=True, exist_ok=True)
    xr.Dataset({"tas": (("time", "face", "height", "width"), values.astype(np.float32), {"units": "K"}),
                "time_bnds": (("time", "bnds"), bnds)},
               coords={"time": ("time", time, {"bounds": "time_bnds"}), "face": np.arange(values.shape[1]),
                       "height": np.arange(n), "width": np.arange(values.shape[3])}).to_netcdf(
        d / f"tas_Amon_DLESyM_aimip_{member}_gn_201201-201512.nc",
        encoding={v: {"units": "days since 1850-01-01", "calendar": calendar} for v in ("time", "time_bnds")})


def test_dlesym_faces_from_a_known_field_regridded_and_scored(tmp_path):
    """A DLESyM-like submission (face/height/width, nside 16, no lat/lon) made from a known lat-lon field
    at the pixel centres the official evaluation assigns; the reference is the field's exact cell means
    on the 5.625 degree grid (nside 16's target). The planted bias comes back to the regridding error of
    a piecewise-constant source: measured bias mean 0.7 K to 8e-7 K (conservative weights keep the
    global mean), bias RMS 0.7 K + 7.5e-4 K (a 0.032 K area-weighted RMS regridding error). The faces
    turned by 90 or 180 degrees or transposed give RMS errors of 3.1-7.4 K (measured with the orientation
    check off; with it on, they are refused)."""
    from diagnostics.io.healpix import dlesym_ring_index

    nside, months = 16, 48
    grid = equiangular(5.625)
    cycle = 280.0 + 5.0 * np.sin(2 * np.pi * np.arange(months) / 12.0)
    lat, lon = _official_dlesym_latlon(nside)
    # the reader's own index agrees with the official transcription (pixel centres)
    ring = dlesym_ring_index(nside)
    rlon, rlat = hp.pix2ang(nside, ring, lonlat=True)
    np.testing.assert_allclose(rlat, lat, atol=1e-12)
    era5 = tmp_path / "ERA5"
    ref = cycle[:, None, None] + _pattern_cell_means(grid)[None]
    _cmor(era5 / "native6_ERA5_an_v1_Amon_tas_2012-2015.nc", "tas", ref, "K", grid.lat, grid.lon, "standard")
    exp = tmp_path / "UW" / "DLESyM" / "aimip"
    for n, off in enumerate(OFFSETS, start=1):
        _write_dlesym(exp, f"r{n}i1p1f1", cycle[:, None, None, None] + _pattern(lat, lon)[None] + BIAS["tas"] + off)
    m = _diagnose(tmp_path, f"DLESyM={exp}", era5, ["tas"])
    for period in ("train", "test"):
        for season in ("ANN", "DJF", "JJA"):
            assert m[f"DLESyM.tas.bias_mean.{period}.{season}"] == pytest.approx(BIAS["tas"], abs=5e-6)
            # sqrt(b^2 + e^2) with e the regridding error: above b, by at most 1.5e-3 K (e <= 0.046 K)
            assert BIAS["tas"] < m[f"DLESyM.tas.bias_rms.{period}.{season}"] < BIAS["tas"] + 1.5e-3
        assert m[f"DLESyM.tas.spread.{period}"] == pytest.approx(np.std(OFFSETS, ddof=1), abs=1e-4)


def test_dlesym_inconsistent_face_dims_refused_in_one_line(tmp_path, capsys):
    """face/height/width not 12 x nside x nside: exit 2, one line naming the file and what was expected."""
    grid = equiangular(5.625)
    era5 = tmp_path / "ERA5"
    _cmor(era5 / "native6_ERA5_an_v1_Amon_tas_2012-2015.nc", "tas", 280.0 + np.zeros((48, 33, 64)), "K",
          grid.lat, grid.lon, "standard")
    exp = tmp_path / "DLESyM" / "aimip"
    _write_dlesym(exp, "r1i1p1f1", 280.0 + np.zeros((48, 12, 16, 8)))  # height 16, width 8
    code = main(["--ensemble", f"DLESyM={exp}", "--reference", str(era5), "--out", str(tmp_path / "s"),
                 "--variables", "tas", "--report", "none", "--no-progress", "--no-baselines", "--no-spectra"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "Traceback" not in err[0]
    assert "tas_Amon_DLESyM_aimip_r1i1p1f1_gn_201201-201512.nc" in err[0] and "12 x nside x nside" in err[0]


# ----------------------------------------------------------------------------- E5 beside a physics model

#: Planted +4K responses, per channel: a global value c and a shape c x (1 + 0.5 cos 2 lat) on the map.
RESPONSE = {"tas": 4.5, "ts": 4.0, "pr": 2.0e-6, "huss": 1.5e-3, "ta850": 4.8, "ta500": 6.5, "zg500": 95.0}
#: Member offsets of the response (fraction of c): median 0, min / max -+0.05 c.
RESPONSE_OFFSETS = (-0.05, 0.05)
UNITS = {"tas": "K", "ts": "K", "pr": "kg m-2 s-1", "huss": "1", "ta": "K", "zg": "m"}


def _ta19(ta7: np.ndarray, plev7: np.ndarray) -> np.ndarray:
    """ta on the 19 CMIP levels: each level takes the nearest of the 7 given ones (exact at those 7)."""
    nearest = [int(np.argmin(np.abs(plev7 - p))) for p in PLEV19]
    return ta7[:, nearest]


def _response_shape(lat: np.ndarray) -> np.ndarray:
    return 1.0 + 0.5 * np.cos(np.deg2rad(2 * lat))[:, None]


def _expected_global(c: float, lat: np.ndarray, nlon: int) -> float:
    """The official E5 global mean of c x shape, computed here: cos(lat) weights at the grid points,
    |lat| <= 87.5 (ai2cm/AIMIP LATITUDE_LIMITS)."""
    keep = np.abs(lat) <= 87.5
    w = np.cos(np.deg2rad(lat[keep]))
    return float(np.sum(w * c * _response_shape(lat)[keep, 0]) / np.sum(w))


def _write_run(root, model: str, exp: str, fields: dict, lat, lon, calendar: str, members: int, grid: str,
               months: int) -> None:
    """A CMIP DRS tree ``root/{member}/Amon/{var}/{grid}/v20180701/`` of CMOR-like files, the first
    ``months`` months from 2012-01."""
    end = f"{2012 + (months - 1) // 12}{(months - 1) % 12 + 1:02d}"
    for n in range(1, members + 1):
        member = f"r{n}i1p1f1"
        for var, data in fields[n].items():
            plev = PLEV19 if data.ndim == 4 else None
            _cmor(root / member / "Amon" / var / grid / "v20180701" /
                  f"{var}_Amon_{model}_{exp}_{member}_{grid}_201201-{end}.nc", var, data[:months], UNITS[var],
                  lat, lon, calendar, plev)


def _runs(ref, scale: dict, members: int) -> tuple[dict, dict]:
    """Control and +4K fields per member: control = reference + 0.1 K-like bias; +4K = control +
    (scale x RESPONSE) x shape x (1 + member offset)."""
    lat = ref["lat"].values
    shape = _response_shape(lat)[None]
    plev7 = ref["plev"].values
    ctrl, warm = {}, {}
    for n in range(1, members + 1):
        off = 1.0 + RESPONSE_OFFSETS[n - 1]
        c = {v: ref[v].values + 0.1 * ref[v].values.std() for v in ("tas", "ts", "pr", "huss")}
        c["ta"] = ref["ta"].values + 0.1
        c["zg"] = ref["zg500"].values + 5.0
        w = {v: c[v] + scale[v] * RESPONSE[v] * off * shape for v in ("tas", "ts", "pr", "huss")}
        ta7 = c["ta"].copy()
        for ch in ("ta850", "ta500"):
            k = int(np.flatnonzero(plev7 == int(ch[2:]) * 100.0)[0])
            ta7[:, k] += scale[ch] * RESPONSE[ch] * off * shape[0]
        wzg = c["zg"] + scale["zg500"] * RESPONSE["zg500"] * off * shape
        ctrl[n] = {**{v: c[v] for v in ("tas", "ts", "pr", "huss")}, "ta": _ta19(c["ta"], plev7), "zg": _zg19(c["zg"])}
        warm[n] = {**{v: w[v] for v in ("tas", "ts", "pr", "huss")}, "ta": _ta19(ta7, plev7), "zg": _zg19(wzg)}
    return ctrl, warm


def test_e5_of_a_physics_model_beside_an_emulator(tmp_path):
    """GFDL-CM4-like ``amip`` / ``amip-p4K`` CMOR trees (Julian calendar, 19 levels in Pa, bounds) given
    with ``--physics``, and an emulator's ``aimip`` / ``aimip-p4k`` tree, scored by one md-diagnose
    command: both E5 responses come back as planted (independent cos-lat mean of the planted map), the
    physics runs' shorter span (one year, as CMIP6 amip ends in 2014 before the 2015-2024 test period)
    does not clip the emulator's test period, and the comparison section shows the responses side by
    side (bars = metrics.json numbers)."""
    from reports import comparison, labels, metricsdir, sections

    # 9 x 16, two years: the time goes per channel (12 here)
    ref, _ = synthesize(equiangular(22.5), START, Month(2013, 12), seed=7, members=1)
    ref["huss"] = (ref["tas"] * 0 + 0.01 * np.cos(np.deg2rad(ref["lat"]))).astype(np.float32)
    lat, lon = ref["lat"].values, ref["lon"].values
    era5 = tmp_path / "ERA5"
    for var in ("tas", "ts", "pr", "huss"):
        _cmor(era5 / f"native6_ERA5_an_v1_Amon_{var}_2012-2013.nc", var, ref[var].values, UNITS[var], lat, lon,
              "gregorian")
    _cmor(era5 / "native6_ERA5_an_v1_Amon_ta_2012-2013.nc", "ta", _ta19(ref["ta"].values, ref["plev"].values), "K",
          lat, lon, "gregorian", PLEV19)
    _cmor(era5 / "native6_ERA5_an_v1_Amon_zg_2012-2013.nc", "zg", _zg19(ref["zg500"].values), "m", lat, lon,
          "gregorian", PLEV19)
    scales = {"GFDL-CM4": {ch: 1.0 for ch in RESPONSE}, "EMU": {ch: 0.8 for ch in RESPONSE}}
    cmip = tmp_path / "CMIP6" / "CFMIP" / "NOAA-GFDL" / "GFDL-CM4"
    emu = tmp_path / "aimip" / "Lab" / "EMU"
    for model, root, (control, warm), cal, grid, months in (
            ("GFDL-CM4", cmip, ("amip", "amip-p4K"), "julian", "gr1", 12),
            ("EMU", emu, ("aimip", "aimip-p4k"), "standard", "gn", 24)):
        ctrl, hot = _runs(ref, scales[model], members=2)
        _write_run(root / control, model, control, ctrl, lat, lon, cal, 2, grid, months)
        _write_run(root / warm, model, warm, hot, lat, lon, cal, 2, grid, months)
    out = tmp_path / "scores"
    assert main(["--physics", f"GFDL-CM4={cmip / 'amip'}", "--scenario", f"GFDL-CM4:p4k={cmip / 'amip-p4K'}",
                 "--ensemble", f"EMU={emu / 'aimip'}", "--scenario", f"EMU:p4k={emu / 'aimip-p4k'}",
                 "--reference", str(era5), "--out", str(out), "--train-period", "2012-01:2012-12",
                 "--test-period", "2013-01:2013-12", "--variables", "tas", "ts", "pr", "huss", "ta", "zg", "--report", "none", "--no-progress",
                 "--no-baselines", "--no-spectra"]) == 0
    m = _metrics(out)
    if os.environ.get("MD_KEEP_E5_TEST"):  # to look at the figures: copy the metrics out
        shutil.copytree(out, os.environ["MD_KEEP_E5_TEST"], dirs_exist_ok=True)
    for model, scale in scales.items():
        for ch, c in RESPONSE.items():
            want = _expected_global(scale[ch] * c, lat, lon.size)
            got = {s: m[f"{model}.{ch}.aimip_response_global_{s}.p4k"] for s in ("median", "min", "max")}
            rel = 2e-5 if ch != "zg500" else 2e-4  # float32 files; zg from 5.5 km heights
            assert got["median"] == pytest.approx(want, rel=rel), (model, ch)
            assert got["min"] == pytest.approx(want * (1 + RESPONSE_OFFSETS[0]), rel=rel), (model, ch)
            assert got["max"] == pytest.approx(want * (1 + RESPONSE_OFFSETS[1]), rel=rel), (model, ch)
    assert m["EMU.tas.bias_mean.test.ANN"] == pytest.approx(0.1 * float(ref["tas"].std()), rel=1e-4)  # window kept
    assert not any(k.startswith("GFDL-CM4.") and "aimip_response" not in k for k in m)  # E5 only
    md = metricsdir.load(out)
    assert md.ensembles == ["EMU"] and comparison.physics_models(md) == ["GFDL-CM4"]
    fig = sections.comparison_response(md, "p4k")
    assert fig is not None
    panels = {p.title.split(" (")[0]: p.data for row in fig.spec.panels for p in row}
    assert list(panels) == [labels.channel(ch) for ch in comparison.e5_channels()]
    for ch in comparison.e5_channels():
        da = panels[labels.channel(ch)]
        assert list(da["model"].values) == ["GFDL-CM4", "EMU"]
        factor = float(da.sel(model="GFDL-CM4", stat="median")) / m[f"GFDL-CM4.{ch}.aimip_response_global_median.p4k"]
        for model in scales:
            for s in ("median", "min", "max"):
                assert float(da.sel(model=model, stat=s)) == pytest.approx(
                    factor * m[f"{model}.{ch}.aimip_response_global_{s}.p4k"], rel=1e-6)
    assert "compare-aimip-response-global-p4k" in [f.spec.name for f in sections.comparison(md).figures]
    # the scenario table: E5 in the field's units, only the per-K response per K
    rows = [label for t in sections.warming(md).items if isinstance(t, sections.Table) for label, _ in t.rows]
    e5_tas = [r for r in rows if r.startswith("GFDL-CM4 — Surface air temperature: perturbed minus control")]
    assert e5_tas and all(r.endswith("(K)") for r in e5_tas), e5_tas
    assert any(r.startswith("EMU — Surface air temperature: warming per K") and r.endswith("(K K-1)") for r in rows)
