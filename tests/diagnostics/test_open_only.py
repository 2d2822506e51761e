"""``open_dataset(only=...)``: md-diagnose opens what it scores (and the Nino-3.4 inputs), so an
unscored field is neither read nor value-checked; the first-month checks of what is opened still
refuse a bad month (read in one compute for all variables)."""

from __future__ import annotations

import numpy as np
import pytest

from diagnostics.data.errors import InputError
from diagnostics.io.open import open_dataset
from diagnostics.io.writer import write_zarr
from diagnostics.pipeline import NINO34_INPUTS, Config, opened_variables

from .test_io_open import contract


def _with_bad_ta(tmp_path):
    ds = contract()
    ds["ta"][0, 0, 0, 0] = np.nan  # NaN at 1000 hPa in the first month is allowed (below ground) ...
    ds["ta"][0, 3] = 1.0e4  # ... but 10000 K at 500 hPa in the first month is not
    write_zarr(ds, tmp_path / "c.zarr")
    return str(tmp_path / "c.zarr")


def test_only_keeps_the_named_variables_and_skips_checks_of_the_rest(tmp_path):
    path = _with_bad_ta(tmp_path)
    with pytest.raises(InputError, match="ta"):  # everything opened: the bad ta is refused at once
        open_dataset(path)
    ds = open_dataset(path, only=["tas", "tos", "ts"])  # absent tos/ts are no error
    assert list(ds.data_vars) == ["tas", "time_bnds"]
    np.testing.assert_array_equal(ds["tas"].values, contract()["tas"].values)


def test_first_month_checks_of_the_opened_variables_still_refuse(tmp_path):
    path = _with_bad_ta(tmp_path)
    with pytest.raises(InputError, match="2001-01"):  # the month is named
        open_dataset(path, only=["ta"])


def test_md_diagnose_opens_the_asked_variables_and_the_nino_inputs(tmp_path):
    cfg = Config(ensembles=["x"], reference="r", out=tmp_path, variables=["zg", "tas,pr"])
    assert opened_variables(cfg) == ["zg500", "tas", "pr", *NINO34_INPUTS]
    assert opened_variables(Config(ensembles=["x"], reference="r", out=tmp_path)) is None
