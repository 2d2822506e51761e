"""Resumable staging: an interrupted computation restarts at the first unfinished block."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.io import staging


def lazy_dataset(months: int = 5) -> xr.Dataset:
    g = equiangular(45.0)
    axis = monthly_axis(Month(2000, 1), Month(2000, 1) + (months - 1), "360_day")
    rng = np.random.default_rng(0)
    ds = xr.Dataset(coords={**g.coords(), "time": axis["time"]})
    ds["time_bnds"] = axis["time_bnds"]
    ds["tas"] = (("time", "lat", "lon"), (280 + rng.standard_normal((months,) + g.shape)).astype(np.float32),
                 {"units": "K"})
    ds["sftlf"] = (("lat", "lon"), rng.uniform(0, 1, g.shape).astype(np.float32), {"units": "1"})
    return ds.chunk({"time": 1})


def test_interrupted_staging_resumes(tmp_path, monkeypatch):
    ds = lazy_dataset()
    path = tmp_path / ".staging-abc.zarr"
    regions: list[slice] = []
    original = xr.Dataset.to_zarr

    def flaky(self, *args, **kwargs):
        if "region" in kwargs:
            if len(regions) == 1 and not getattr(flaky, "tripped", False):
                flaky.tripped = True
                raise KeyboardInterrupt  # the user presses Ctrl-C during the second block
            regions.append(kwargs["region"]["time"])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(xr.Dataset, "to_zarr", flaky)
    with pytest.raises(KeyboardInterrupt):
        staging.stage(ds, path, key="abc", block=2)
    assert regions == [slice(0, 2)]
    out = staging.stage(ds, path, key="abc", block=2)
    assert regions == [slice(0, 2), slice(2, 4), slice(4, 5)]  # block 0 was not recomputed
    np.testing.assert_array_equal(out["tas"].values, ds["tas"].values)
    np.testing.assert_array_equal(out["sftlf"].values, ds["sftlf"].values)
    assert [t.month for t in out["time"].values] == [1, 2, 3, 4, 5]
    assert out["time"].values[0].calendar == "360_day"
    # a different computation (key) starts afresh
    regions.clear()
    staging.stage(ds, path, key="other", block=2)
    assert len(regions) == 3
