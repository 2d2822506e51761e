"""Opening netCDF never loads ecCodes: with cfgrib installed, xarray's engine guessing imports it, and
its bundled libraries then crash the interpreter at exit once the report's pyproj is loaded
(md-diagnose wrote everything, then died with 'double free or corruption', exit 134)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import xarray as xr


def test_netcdf_is_opened_with_a_named_engine_and_no_grib_library(tmp_path):
    path = tmp_path / "a.nc"
    xr.Dataset({"tas": (("time",), np.arange(3.0), {"units": "K"})}).to_netcdf(path)
    code = ("import sys; from diagnostics.io.files import open_netcdf; open_netcdf(sys.argv[1]).load(); "
            "from reports import metricsdir; "
            "assert 'eccodes' not in sys.modules and 'cfgrib' not in sys.modules, 'ecCodes was loaded'")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
