"""Streaming AI-MIP writer (diagnostics.io.stream_writer): grouping, slots, fill, final names, readers."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.errors import InputError
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.io.open import open_dataset
from diagnostics.io.stream_writer import AimipStreamWriter, StreamField, ZarrStreamWriter, stream_fields

GRID = equiangular(45.0)  # 5 x 8
CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)


def test_channels_group_into_output_variables():
    fields = stream_fields([("tas", None), ("ta", 500), ("ta", 850), ("zg500", None), ("ua", 250)], ("tos",))
    assert fields == [StreamField("tas"), StreamField("ta", (850, 500)), StreamField("zg500", (500,)),
                      StreamField("ua", (250,)), StreamField("tos")]
    assert [f.cmip_name for f in fields] == ["tas", "ta", "zg", "ua", "tos"]


def _writer(tmp_path, cls=AimipStreamWriter, fields=None):
    fields = fields or [StreamField("tas"), StreamField("zg500", (500,)), StreamField("tos")]
    return cls(tmp_path, fields, [1, 2], "MD-1p5", "aimip-p2k", Month(1978, 10), Month(1979, 1),
               GRID.lat, GRID.lon, "noleap")


def test_months_stream_into_temporary_files_then_final_names(tmp_path):
    w = _writer(tmp_path)
    w.create()
    w.open()
    rng = np.random.default_rng(0)
    tas = 280 + rng.standard_normal((4, 2) + GRID.shape).astype(np.float32)
    tos = tas.copy()
    tos[:, :, 0, :] = np.nan  # "land"
    for t in (2, 0, 1):  # any order: each month has its own slot
        for m in (1, 2):
            w.write(t, m, "tas", tas[t, m - 1])
            w.write(t, m, "zg500", 5500 + tas[t, m - 1])
            w.write(t, m, "tos", tos[t, m - 1])
    w.sync()
    assert not list(tmp_path.glob("*.nc")) and len(list(tmp_path.glob(".*.partial"))) == 6
    w.fill_from(3)  # the last month never came: stored as missing
    files = w.finalise()
    assert sorted(p.name for p in files) == sorted(
        f"{v}_Amon_MD-1p5_aimip-p2k_r{m}i1p1f1_gn_197810-197901.nc" for v in ("tas", "zg", "tos") for m in (1, 2))
    ds = xr.open_dataset(tmp_path / "tas_Amon_MD-1p5_aimip-p2k_r2i1p1f1_gn_197810-197901.nc", decode_times=CFTIME)
    np.testing.assert_array_equal(ds["tas"].values[:3], tas[:3, 1])
    assert np.isnan(ds["tas"].values[3]).all() and ds["tas"].dtype == np.float32
    assert ds["time"].values[0].calendar == "noleap" and ds.attrs["experiment_id"] == "aimip-p2k"
    both = open_dataset(str(tmp_path), check=False)
    assert both.sizes["member"] == 2
    np.testing.assert_array_equal(both["tos"].sel(member=1).values[:3], tos[:3, 0])  # NaN over land survives
    np.testing.assert_array_equal(both["zg500"].sel(member=2).values[:3], 5500 + tas[:3, 1])


def test_zarr_needs_one_set_of_levels(tmp_path):
    w = _writer(tmp_path, ZarrStreamWriter, [StreamField("ta", (850,)), StreamField("ua", (250,))])
    with pytest.raises(InputError, match="use --format netcdf"):
        w.create()


def test_resume_needs_the_temporary_files(tmp_path):
    w = _writer(tmp_path)
    with pytest.raises(InputError, match="missing; cannot resume"):
        w.open()


_KILLED_WRITER = """
import os, sys
import numpy as np
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.io.stream_writer import AimipStreamWriter, StreamField
grid = equiangular(45.0)
w = AimipStreamWriter(sys.argv[1], [StreamField("tas"), StreamField("tos")], [1, 2], "MD-1p5", "aimip",
                      Month(2000, 1), Month(2000, 3), grid.lat, grid.lon)
if sys.argv[2] == "new":
    w.create()
w.open()
for t in range(3):
    for m in (1, 2):
        w.write(t, m, "tas", np.full(grid.shape, 280.0 + t + m, np.float32))
        w.write(t, m, "tos", np.full(grid.shape, 290.0 - t, np.float32))
w.sync()
if sys.argv[3] == "kill":
    os._exit(0)  # killed with every file open: HDF5's "open for write" flag stays set
w.finalise()
"""


def test_files_of_a_killed_writer_are_closed_completely_before_the_rename(tmp_path):
    """Issue 16: a run killed while finalising left HDF5's "open for write" flag (superblock
    byte 11) in the files it had not closed, and the resumed run renamed them so: bytes differed
    from an uninterrupted run and some readers refuse such files. Finalising now closes every
    temporary file completely first: byte-identical files."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]

    def writer(out, *mode):
        subprocess.run([sys.executable, "-c", _KILLED_WRITER, str(out), *mode], cwd=root, check=True,
                       env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})

    writer(tmp_path / "straight", "new", "finish")
    writer(tmp_path / "killed", "new", "kill")
    partial = sorted((tmp_path / "killed").glob(".*.partial"))
    assert len(partial) == 4 and all(p.read_bytes()[11] == 1 for p in partial)  # the flag is set
    files = _writer_for(tmp_path / "killed").finalise()  # what a resume in state "finalising" does
    assert len(files) == 4
    for f in files:
        assert f.read_bytes()[11] == 0
        assert f.read_bytes() == (tmp_path / "straight" / f.name).read_bytes(), f.name


def _writer_for(out):
    return AimipStreamWriter(out, [StreamField("tas"), StreamField("tos")], [1, 2], "MD-1p5", "aimip",
                             Month(2000, 1), Month(2000, 3), GRID.lat, GRID.lon)
