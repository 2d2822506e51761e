"""WeatherBench 2 ERA5 zarr (hourly or 6-hourly) -> monthly contract dataset, lazily.

WB2 stores use dims ``time, level, latitude, longitude`` and long names
(``2m_temperature``, ``geopotential`` in m2 s-2, ``total_precipitation_6hr`` in metres
per 6 h, ...). Monthly means are calendar-month means of the sub-daily samples
(``resample(time="1MS").mean()`` on dask arrays, never loaded whole); only months whose
every sample is present are kept, so a store that starts or ends mid-month does not give
a biased first or last month. Precipitation accumulations become rates before averaging:
depth (m) * 1000 / window (s), e.g. / 21600 for ``total_precipitation_6hr``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import xarray as xr

from ..data import catalogue
from ..data.errors import InputError
from ..data.timeaxis import Period, to_monthly_axis
from . import units as U
from .coords import standard_coords
from .files import open_zarr
from .levels import contract_level, contract_levels, huss_from_tdas

_PRECIP = re.compile(r"^total_precipitation(?:_(\d+)hr)?$")
def wb2_variable(name: str) -> catalogue.Variable | None:
    """Catalogue entry of a WB2 long name (any ``total_precipitation[_<N>hr]`` is ``pr``)."""
    if _PRECIP.match(name):
        return catalogue.VARIABLES["pr"]
    for v in catalogue.VARIABLES.values():
        if v.wb2 == name:
            return v
    return None


def is_wb2(ds: xr.Dataset) -> bool:
    """A WB2-like store: ``latitude``/``longitude`` dims and at least one known long name."""
    return {"latitude", "longitude"} <= set(ds.dims) and any(wb2_variable(str(n)) for n in ds.data_vars)


def sample_seconds(time: xr.DataArray) -> float:
    """Median spacing of the time axis in seconds."""
    t = np.asarray(time.values).astype("datetime64[s]").astype(np.int64)
    if t.size < 2:
        raise InputError("the store has fewer than two time steps; cannot form monthly means")
    return float(np.median(np.diff(t)))


def complete_months(time: xr.DataArray, step_s: float) -> pd.DatetimeIndex:
    """Month starts whose every ``step_s`` sample is present (count = days * 86400 / step)."""
    index = pd.DatetimeIndex(np.asarray(time.values))
    counts = pd.Series(1, index=index).resample("MS").count()
    expected = counts.index.days_in_month * (86400.0 / step_s)
    return counts.index[np.isclose(counts.values, expected)]


def _precip_window(name: str, step_s: float) -> float:
    m = _PRECIP.match(name)
    return float(m.group(1)) * 3600.0 if m and m.group(1) else step_s


def to_contract(name: str, da: xr.DataArray, step_s: float, source: str) -> tuple[str, xr.DataArray] | None:
    """One WB2 variable (standard coords, sub-daily) -> (store name, contract field, sub-daily)."""
    var = wb2_variable(name)
    if var is None:
        return None
    da = da.reset_coords(drop=True)
    if var.name == "zg":
        da = contract_level(da, 500, source, name)
    if var.name == "pr":
        da = U.accumulation_to_rate(da, _precip_window(name, step_s)) if \
            U.normalise_units(da.attrs.get("units")) in ("m", "") else U.precipitation_to_rate(da, None)
    else:
        da = U.era5_to_catalogue_units(var, da)
    if var.is_3d:
        da = contract_levels(da, var.levels, source, name)
    if var.kind == "static" and "time" in da.dims:
        da = da.isel(time=0, drop=True)
    return var.store_name, U.check_units(name, da, var.units, source)


def read_wb2(path: str, variables: list[str] | None = None, period: Period | None = None,
             derive_huss: bool = False) -> xr.Dataset:
    """Monthly means of a WB2 ERA5 zarr store, restricted to ``period`` and ``variables``."""
    raw = open_zarr(path)
    wanted = None if variables is None else {catalogue.variable(v).store_name for v in variables}
    if wanted is not None and derive_huss:
        wanted |= {"tdas", "ps"}
    names = [str(n) for n in raw.data_vars if wb2_variable(str(n)) is not None
             and (wanted is None or wb2_variable(str(n)).store_name in wanted)]
    precip = [n for n in names if _PRECIP.match(n)]
    if len(precip) > 1:  # several accumulation windows of the same field: keep the 6-hourly one
        keep = "total_precipitation_6hr" if "total_precipitation_6hr" in precip else precip[0]
        names = [n for n in names if n not in precip or n == keep]
    if not names:
        raise InputError("no WeatherBench 2 variable of the catalogue found (expected long names such "
                         "as 2m_temperature, geopotential)", path)
    raw = standard_coords(raw[names], path)
    if "time" not in raw.dims:  # only static fields asked for
        return xr.Dataset(dict(filter(None, (to_contract(n, raw[n], 0.0, path) for n in names))))
    if period is not None:
        lo = np.datetime64(f"{period.start}-01")
        hi = np.datetime64(f"{period.end + 1}-01")
        raw = raw.sel(time=slice(lo, hi - np.timedelta64(1, "s")))
    step = sample_seconds(raw["time"])
    fields: dict[str, xr.DataArray] = {}
    for name in names:
        converted = to_contract(name, raw[name], step, path)
        if converted is not None:
            fields[converted[0]] = converted[1]
    if derive_huss:
        missing = [n for n in ("tdas", "ps") if n not in fields]
        if missing:
            raise InputError("--derive-huss needs 2m_dewpoint_temperature and surface_pressure; "
                             f"missing {missing}", path)
        # at the native sampling, before averaging: the mean of q, not q of the mean dewpoint
        fields["huss"] = huss_from_tdas(fields["tdas"], fields["ps"])
    ds = xr.Dataset({n: f for n, f in fields.items() if "time" in f.dims})
    if step < 27 * 86400:
        months = complete_months(ds["time"], step)
        if months.size == 0:
            raise InputError("no complete calendar month in the store (or in the period asked for)", path)
        ds = ds.resample(time="1MS").mean().sel(time=months)
    ds = to_monthly_axis(ds, "proleptic_gregorian")
    for n, f in fields.items():
        if "time" not in f.dims:
            ds[n] = f
    for n in ds.data_vars:
        if n in fields:
            ds[n].attrs = dict(fields[n].attrs)
    return ds
