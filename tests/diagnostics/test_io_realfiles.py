"""Real files this project did not write, shipped by PyPI packages (issue 14); skipped cleanly when a
package is absent.

* ``esmvaltool-sample-data`` (test extra): real CMIP6 CMOR ``ta`` files of 47 models in their DRS
  tree (``CMIP6/CMIP/{institute}/{model}/historical/r1i1p1f1/Amon/ta/{gn|gr|gr1}/{version}``),
  reduced to a 2 x 2 (or 3) cell patch at the North Pole and 2 levels (1000, 925 hPa), all of their
  calendars (noleap, 360_day, julian, standard, proleptic_gregorian), ACCESS's float-noise levels
  (100000.00000001 Pa), bounds variables, and GFDL-CM4/ESM4's below-ground cells left at the
  netCDF default fill 9.97e36 without a ``_FillValue`` (the surface pressure drops below 1000 hPa).
  Read exactly; prepared kept regional and labelled; refused by md-diagnose in one line.
* ``eofs`` example data (seasonal means on a ``pressure`` axis) and xarray's ``example.grib``
  (a real GRIB 2 file from cfgrib's test data, 12-hourly): refused in one line, saying why.
  cfgrib's own ERA5 sample (``era5-levels-members.grib``) is in cfgrib's sdist only, not its wheel.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from diagnostics.cli import describe, prepare
from diagnostics.cli.diagnose import main as diagnose
from diagnostics.data.contract import NC_DEFAULT_FILL
from diagnostics.data.errors import InputError
from diagnostics.io.open import open_dataset


def _package_dir(name: str) -> Path | None:
    """The installed package's directory, without importing it (esmvaltool_sample_data imports iris)."""
    spec = importlib.util.find_spec(name)
    return None if spec is None or not spec.submodule_search_locations else Path(list(spec.submodule_search_locations)[0])


SAMPLE = _package_dir("esmvaltool_sample_data")
CMIP = SAMPLE / "data" / "timeseries" / "CMIP6" / "CMIP" if SAMPLE else None
needs_sample = pytest.mark.skipif(SAMPLE is None, reason="esmvaltool-sample-data is not installed "
                                                         "(pip install --no-deps esmvaltool-sample-data)")

#: A spread of layouts: float-noise plev, default fill without _FillValue, 360_day, julian in 7
#: files, no bounds (IPSL), a pole row at 90.0 with 3 rows, float32 latitudes (MRI).
MODELS = ["CSIRO-ARCCSS/ACCESS-CM2", "NOAA-GFDL/GFDL-CM4", "NIMS-KMA/KACE-1-0-G", "CCCR-IITM/IITM-ESM",
          "IPSL/IPSL-CM6A-LR", "NCAR/CESM2", "MRI/MRI-ESM2-0"]


def _raw_1000hpa(experiment: Path) -> tuple[np.ndarray, list[str], str]:
    """The files' 1000 hPa values read by xarray alone (declared fills masked), the default fill
    masked here too; latitude ascending as the contract has it; their calendar."""
    files = sorted(experiment.glob("*/Amon/ta/*/*/*.nc"))
    parts = []
    for f in files:
        with xr.open_dataset(f, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
            parts.append(ds["ta"].isel(plev=0).sortby("lat").load())
    raw = xr.concat(parts, "time").sortby("time")
    values = raw.values.astype(float)
    values[np.abs(values) >= 0.5 * NC_DEFAULT_FILL] = np.nan
    return values, [str(f) for f in files], raw["time"].values[0].calendar


@needs_sample
@pytest.mark.parametrize("model", MODELS)
def test_cmor_files_of_real_models_are_read_exactly(model):
    experiment = CMIP / model / "historical"
    ds = open_dataset(str(experiment))
    raw, files, calendar = _raw_1000hpa(experiment)
    ta = ds["ta"].values
    assert ds["plev"].values.tolist() == [100000.0]  # 925 hPa is not a catalogue level; 850 would be extrapolation
    assert ta.shape == (raw.shape[0], 1) + raw.shape[1:]
    np.testing.assert_array_equal(np.isnan(ta[:, 0]), np.isnan(raw))
    np.testing.assert_allclose(ta[:, 0], raw, rtol=0, atol=0, equal_nan=True)
    assert ds["time"].values[0].calendar == {"365_day": "noleap", "gregorian": "standard"}.get(calendar, calendar)
    assert ds.attrs["source_id"] == model.split("/")[1] and ds.attrs["experiment_id"] == "historical"


@needs_sample
def test_gfdl_cm4_below_ground_cells_are_the_undeclared_default_fill():
    """The issue's "wrong units?" case, in a real file: no _FillValue, 9.97e36 where CM4's 1000 hPa is
    under the ground, read as missing (all four cells in some months: the whole patch is below ground)."""
    (path,) = (CMIP / "NOAA-GFDL" / "GFDL-CM4" / "historical").glob("*/Amon/ta/*/*/*.nc")
    with xr.open_dataset(path, mask_and_scale=False, decode_times=False) as raw:
        assert "_FillValue" not in raw["ta"].encoding and "missing_value" not in raw["ta"].attrs
        filled = int((raw["ta"].isel(plev=0).values >= 0.5 * NC_DEFAULT_FILL).sum())
    assert filled == 48
    ds = open_dataset(str(path))
    assert int(np.isnan(ds["ta"].values).sum()) == filled
    assert np.nanmax(ds["ta"].values) < 300.0


@needs_sample
def test_describe_prepare_and_diagnose_on_a_real_drs_tree(tmp_path, capsys):
    experiment = CMIP / "NOAA-GFDL" / "GFDL-CM4" / "historical"
    assert describe.main([str(experiment)]) == 0
    out = capsys.readouterr().out
    assert "model      GFDL-CM4, experiment historical" in out and "calendar noleap" in out
    assert "NOT GLOBAL" in out and "conforms to the contract" in out
    # kept on its native (regional) grid and labelled, or refused when a global grid is asked for
    assert prepare.main(["--source", str(experiment), "--out", str(tmp_path / "cm4"), "--grid", "native"]) == 0
    said = capsys.readouterr()
    assert "left out: 1 day" in said.err and "NOT GLOBAL" in said.out + said.err
    assert prepare.main(["--source", str(experiment), "--out", str(tmp_path / "cm4-1p5"), "--grid", "1.5"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    # a 2 x 2 patch is never scored as if it were the globe: one line, exit 2
    code = diagnose(["--ensemble", f"ESM4={CMIP / 'NOAA-GFDL' / 'GFDL-ESM4' / 'historical'}",
                     "--reference", str(tmp_path / "cm4"), "--out", str(tmp_path / "scores"),
                     "--train-period", "1979-01:2004-12", "--test-period", "2005-01:2014-12",
                     "--report", "none", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "too small" in err and "Traceback" not in err


EOFS = _package_dir("eofs")


@pytest.mark.skipif(EOFS is None, reason="eofs is not installed")
@pytest.mark.parametrize("name, what", [("hgt_djf.nc", "65 values one year apart"),
                                        ("sst_ndjfm_anom.nc", "50 values one year apart")])
def test_eofs_examples_are_refused_as_not_monthly(name, what):
    with pytest.raises(InputError, match=rf"time axis has a gap: .*\({what}: seasonal or annual means, not monthly\)"):
        open_dataset(str(EOFS / "examples" / "example_data" / name))


XARRAY_GRIB = Path(xr.__file__).parent / "tests" / "data" / "example.grib"


@pytest.mark.skipif(not XARRAY_GRIB.is_file() or importlib.util.find_spec("cfgrib") is None,
                    reason="xarray's example.grib or cfgrib is absent")
def test_a_real_12_hourly_grib_file_is_refused_as_not_monthly():
    with pytest.raises(InputError, match=r"duplicated month 2017-01 .*the file is not monthly"):
        open_dataset(str(XARRAY_GRIB))
