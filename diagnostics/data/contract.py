"""The in-memory data contract: how a conforming dataset looks, and the validator.

A contract dataset is an ``xarray.Dataset`` whose
  * variables use catalogue store names (``tas``, ``ta``, ``zg500``, ``tos``, ...) with the
    catalogue's CF attributes and units;
  * dims are ordered as a subsequence of (member, time, plev, lat, lon);
  * ``lat`` ascends within [-90, 90], ``lon`` ascends within [0, 360);
  * ``plev`` is in Pa, surface first (100000 ... 5000), holding the catalogue levels;
  * ``time`` is monthly, consecutive, unique, with ``time_bnds`` (see :mod:`.timeaxis`).

:func:`problems` lists every violation; :func:`validate` raises one :class:`InputError`
naming the source and the first problems. :func:`conform` puts a dataset that is already
in contract units into canonical order with attributes.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import catalogue
from .errors import InputError
from .timeaxis import month_index

DIM_ORDER: tuple[str, ...] = ("member", "time", "plev", "lat", "lon")
PLEV_PA = np.array([h * 100.0 for h in catalogue.PLEV_HPA])

#: Variables that may hold NaN (SST over land is undefined).
NAN_ALLOWED = frozenset({"tos"})

#: Pressure-level fields that physical models mask below the ground (CMIP ``ta``/``ua``/``va``/
#: ``hus``/``zg`` at 1000/850/700 hPa over Antarctica, Greenland, Tibet): NaN there is missing
#: data, allowed on levels of :data:`BELOW_GROUND_MIN_PA` and more, on at most
#: :data:`BELOW_GROUND_MAX_FRACTION` of a level's cells. Scores use the cells both sides have.
BELOW_GROUND_MASKED = frozenset({"ta", "ua", "va", "hus", "zg500"})
#: The highest level (lowest pressure) where ground can be: 500 hPa (model orography < ~5.5 km).
BELOW_GROUND_MIN_PA = 50000.0
#: At 1000 hPa a model's mask covers the land above ~100 m and low-pressure oceans: ~40 %.
BELOW_GROUND_MAX_FRACTION = 0.6
#: Levels of fewer cells (regional extracts) are exempt from the fraction rule: over a small patch
#: the whole level can be under the ground (GFDL-CM4's 1000 hPa over the 2 x 2 North-Pole cells of
#: ESMValTool's sample data is masked in every cell in 1960-01, the surface pressure being below 1000 hPa).
BELOW_GROUND_MIN_CELLS = 16


#: The netCDF library's default fill of float variables (``NC_FILL_FLOAT``/``NC_FILL_DOUBLE``): cells
#: never written hold it; readers mask it where a file declares no fill (``io.files.mask_default_fill``).
NC_DEFAULT_FILL = 9.969209968386869e36


def plev_coord(levels_hpa: tuple[int, ...] | list[int] = catalogue.PLEV_HPA) -> xr.DataArray:
    """The CF ``plev`` coordinate (Pa) for the given levels in hPa."""
    return xr.DataArray(np.array(levels_hpa, dtype=float) * 100.0, dims="plev",
                        attrs={"units": "Pa", "standard_name": "air_pressure",
                               "long_name": "pressure", "axis": "Z", "positive": "down"})


def conform(ds: xr.Dataset) -> xr.Dataset:
    """Canonical dim order, CF attributes from the catalogue, float32 data.

    Does no unit conversion and no regridding: readers do those first.
    """
    out = ds.copy()
    for name in list(out.data_vars):
        if name == "time_bnds":
            continue
        da = out[name]
        order = [d for d in DIM_ORDER if d in da.dims] + [d for d in da.dims if d not in DIM_ORDER]
        da = da.transpose(*order)
        if da.dtype != np.float32 and np.issubdtype(da.dtype, np.floating):
            da = da.astype(np.float32)
        try:
            attrs = catalogue.cf_attrs(name)
        except KeyError:
            attrs = {}
        # Units the data already declare are kept, so the validator can catch a mismatch:
        # conform never relabels, it only fills what is missing.
        units = da.attrs.get("units")
        da.attrs = {**da.attrs, **attrs}
        if units is not None:
            da.attrs["units"] = units
        out[name] = da
    if "plev" in out.coords:
        out = out.assign_coords(plev=plev_coord([int(round(p / 100.0)) for p in out["plev"].values]))
    lat_attrs = {"units": "degrees_north", "standard_name": "latitude", "axis": "Y"}
    lon_attrs = {"units": "degrees_east", "standard_name": "longitude", "axis": "X"}
    if "lat" in out.coords:
        out["lat"].attrs.update(lat_attrs)
    if "lon" in out.coords:
        out["lon"].attrs.update(lon_attrs)
    out.attrs.setdefault("Conventions", "CF-1.8")
    return out


def _coord_problems(ds: xr.Dataset) -> list[str]:
    out: list[str] = []
    for c in ("lat", "lon"):
        if c not in ds.coords:
            out.append(f"missing coordinate {c!r} (found coordinates: {sorted(ds.coords)})")
    if "lat" in ds.coords:
        lat = np.asarray(ds["lat"].values, dtype=float)
        if lat.size > 1 and not np.all(np.diff(lat) > 0):
            out.append("latitude must ascend strictly from south to north (-90..90)")
        if lat.size and (lat.min() < -90 - 1e-6 or lat.max() > 90 + 1e-6):
            out.append(f"latitude outside [-90, 90]: {lat.min():.3f}..{lat.max():.3f}")
    if "lon" in ds.coords:
        lon = np.asarray(ds["lon"].values, dtype=float)
        if lon.size > 1 and not np.all(np.diff(lon) > 0):
            out.append("longitude must ascend strictly")
        if lon.size and (lon.min() < -1e-6 or lon.max() >= 360 - 1e-9):
            out.append(f"longitude outside [0, 360): {lon.min():.3f}..{lon.max():.3f}")
    if "plev" in ds.coords:
        plev = np.asarray(ds["plev"].values, dtype=float)
        units = ds["plev"].attrs.get("units", "Pa")
        if units != "Pa":
            out.append(f"plev must be in Pa, found units {units!r}")
        unknown = sorted(set(np.round(plev).astype(int)) - set(PLEV_PA.astype(int)))
        if unknown:
            out.append(f"plev holds levels outside the catalogue: {unknown} Pa "
                       f"(expected a subset of {PLEV_PA.astype(int).tolist()})")
        if plev.size > 1 and not np.all(np.diff(plev) < 0):
            out.append("plev must be ordered surface first (descending pressure)")
    return out


def _time_problems(ds: xr.Dataset) -> list[str]:
    if "time" not in ds.dims:
        return []
    out: list[str] = []
    idx = month_index(ds["time"])
    if idx.size > 1:
        d = np.diff(idx)
        if np.any(d == 0):
            dup = idx[1:][d == 0][0]
            out.append(f"duplicated month {dup // 12:04d}-{dup % 12 + 1:02d} in the time axis")
        if np.any(d < 0):
            out.append("time axis is not monotonic increasing")
        if np.any(d > 1):
            gap = idx[:-1][d > 1][0] + 1
            out.append(f"time axis has a gap: month {gap // 12:04d}-{gap % 12 + 1:02d} is missing")
    if "time_bnds" not in ds.variables:
        out.append("missing time bounds variable 'time_bnds'")
    return out


def _variable_problems(ds: xr.Dataset, check_values: bool) -> list[str]:
    out: list[str] = []
    for name, da in ds.data_vars.items():
        if name == "time_bnds":
            continue
        try:
            var = catalogue.variable(name)
        except KeyError:
            out.append(f"variable {name!r} is not in the catalogue")
            continue
        units = da.attrs.get("units")
        if units != var.units:
            out.append(f"variable {name!r} has units {units!r}, expected {var.units!r}")
        dims = list(da.dims)
        if [d for d in DIM_ORDER if d in dims] != dims:
            out.append(f"variable {name!r} has dims {tuple(dims)}, expected the order {DIM_ORDER}")
        if var.is_3d and "plev" not in dims:
            out.append(f"variable {name!r} is a pressure-level field but has no 'plev' dim")
        if not var.is_3d and "plev" in dims:
            out.append(f"variable {name!r} is a single-level field but has a 'plev' dim")
        if var.kind != "static" and "time" not in dims:
            out.append(f"variable {name!r} has no 'time' dim")
        if check_values:
            out.extend(_value_problems(name, da, var))
    return out


def _level_label(plev_pa: float | None) -> str:
    return "" if plev_pa is None else f" at {plev_pa / 100.0:g} hPa"


def month_value_problems(name: str, values: np.ndarray, var: catalogue.Variable,
                         plev_pa: np.ndarray | None = None, when: str = "", nan_note: str | None = None) -> list[str]:
    """Problems of one month of one member: ``values`` is (plev, lat, lon) or (lat, lon).

    * NaN/inf: never allowed, except NaN in :data:`NAN_ALLOWED` fields and below-ground NaN
      (see :func:`below_ground_allowed`) in :data:`BELOW_GROUND_MASKED` fields;
    * the mean of the finite cells inside ``var.valid_range`` (a wrong-units guard: 275 K read
      as degC is 1.2 "K");
    * ``var.nonnegative`` fields >= 0 (a tolerance of 1e-6 of the range's top).

    ``when`` (e.g. ``" in 1979-08"``) ends the cell counts so the message names the month;
    ``nan_note`` (where the missing cells may come from, e.g. the netCDF default fill of a file
    without ``_FillValue``) ends a NaN message.
    """
    values = np.asarray(values)
    finite = np.isfinite(values)
    out: list[str] = []
    nbad = int(values.size - np.count_nonzero(finite))
    if nbad and name not in NAN_ALLOWED:
        note = f"; {nan_note}" if nan_note else ""
        if name in BELOW_GROUND_MASKED and not np.isinf(values).any():
            out.extend(p + note for p in _below_ground_problems(name, finite, plev_pa, when))
        else:
            out.append(f"variable {name!r} holds NaN or inf where none may be "
                       f"({nbad} of {values.size} cells{when}){note}")
    count = int(values.size - nbad)
    if count:
        lo, hi = var.valid_range
        ok = np.where(finite, values, 0)
        mean = float(ok.sum(dtype=np.float64) / count)
        filled = int(np.count_nonzero(np.abs(np.where(finite, values, 0)) >= 0.5 * NC_DEFAULT_FILL))
        if filled:  # not units: cells never written, under a fill other than the declared one
            out.append(f"variable {name!r} holds the netCDF default fill {NC_DEFAULT_FILL:.4g} in {filled} of "
                       f"{values.size} cells{when} (cells never written, not declared as its _FillValue); "
                       "expected data or a declared fill")
        elif not lo <= mean <= hi:
            out.append(f"variable {name!r} has mean {mean:.4g} {var.units}{when}, outside the plausible "
                       f"range {lo:g}..{hi:g}: wrong units?")
        if var.nonnegative:
            low = float(np.where(finite, values, np.inf).min())
            if low < -1e-6 * max(1.0, abs(hi)):
                out.append(f"variable {name!r} is negative somewhere{when} (min {low:.4g}), "
                           "expected values >= 0")
    return out


def below_ground_allowed(plev_pa: float) -> bool:
    """Whether a level may hold below-ground (masked) cells: 500 hPa and below (higher pressure)."""
    return plev_pa >= BELOW_GROUND_MIN_PA - 1e-6


def _below_ground_problems(name: str, finite: np.ndarray, plev_pa: np.ndarray | None, when: str) -> list[str]:
    """NaN in a masked field: only on levels the ground can reach, and never most of a level."""
    if finite.ndim == 2:  # a single-level field such as zg500: its catalogue level
        levels = catalogue.variable(name).levels
        layers = [(levels[0] * 100.0 if len(levels) == 1 else None, finite)]
    else:
        pressures = [None] * finite.shape[0] if plev_pa is None else [float(p) for p in plev_pa]
        layers = list(zip(pressures, finite))
    for p, ok in layers:
        bad = int(ok.size - np.count_nonzero(ok))
        if not bad:
            continue
        if p is None or not below_ground_allowed(p):
            return [f"variable {name!r} holds NaN{_level_label(p)}, above any ground ({bad} of {ok.size} "
                    f"cells{when}); below-ground masking is allowed at {BELOW_GROUND_MIN_PA / 100:g} hPa "
                    "and below only"]
        if bad > BELOW_GROUND_MAX_FRACTION * ok.size and ok.size >= BELOW_GROUND_MIN_CELLS:
            return [f"variable {name!r} holds NaN in {bad} of {ok.size} cells{_level_label(p)}{when}: more "
                    f"than the {BELOW_GROUND_MAX_FRACTION:.0%} a below-ground mask can cover"]
    return []


def _first(da: xr.DataArray) -> tuple[xr.DataArray, str]:
    label = ""
    if "time" in da.dims:
        idx = int(month_index(da["time"][:1])[0])
        label = f" in {idx // 12:04d}-{idx % 12 + 1:02d}"
        da = da.isel(time=0)
    if "member" in da.dims:
        da = da.isel(member=0)
    return da, label


def _value_problems(name: str, da: xr.DataArray, var: catalogue.Variable) -> list[str]:
    """Value checks of the first month of the first member (a small read: ``md-describe``, early
    failure); every month is checked as it is computed by :func:`guard_values`."""
    sample, when = _first(da)
    plev = np.asarray(sample["plev"].values, dtype=float) if "plev" in sample.dims else None
    return month_value_problems(name, np.asarray(sample.values), var, plev, when,
                                da.attrs.get("missing_value_source"))


def first_month_missing(da: xr.DataArray) -> int:
    """NaN cells in the first month of the first member (a small read)."""
    sample, _ = _first(da)
    return int(np.isnan(np.asarray(sample.values, dtype=float)).sum())


def value_problems(name: str, da: xr.DataArray) -> list[str]:
    """The first month's value problems of one catalogue field (empty for unknown names)."""
    try:
        var = catalogue.variable(name)
    except KeyError:
        return []
    return _value_problems(name, da, var)


def _check_block(block: np.ndarray, *, variable: str, source: str, dims: tuple[str, ...], months: list[str] | None,
                 members: list[str] | None, plev_pa: np.ndarray | None, nan_note: str | None = None,
                 block_info=None) -> np.ndarray:
    """Raise InputError at the first bad month of ``block`` (dims ``dims``); return it unchanged.

    One vectorised pass finds the suspect months: the sum over each month's cells is
    finite only without NaN/inf, and gives the mean for the range check (plus the minimum for
    non-negative fields); only suspects (and fields that may hold NaN) get the detailed check
    of :func:`month_value_problems`, which writes the message.
    """
    name, var = variable, catalogue.variable(variable)
    loc = block_info[0]["array-location"] if block_info else [(0, n) for n in block.shape]
    lead = [d for d in dims if d in ("member", "time")]
    lead_axes = tuple(dims.index(d) for d in lead)
    other = tuple(i for i in range(block.ndim) if i not in lead_axes)
    size = int(np.prod([block.shape[i] for i in other]))
    if not size:
        return block
    sums = block.sum(axis=other)  # float32 pairwise sums: ~1e-6 relative, plenty for a range check
    with np.errstate(invalid="ignore"):
        mean = sums / size
        lo, hi = var.valid_range
        suspect = ~np.isfinite(sums) | (mean < lo) | (mean > hi)
        if var.nonnegative:
            suspect |= block.min(axis=other) < -1e-6 * max(1.0, abs(hi))
    if not suspect.any():
        return block
    front = lead_axes + ((dims.index("plev"),) if "plev" in dims else ())  # (lead..., plev, lat, lon)
    moved = np.moveaxis(block, front, tuple(range(len(front))))
    starts = {d: loc[dims.index(d)][0] for d in lead}
    plev = None
    if plev_pa is not None and "plev" in dims:
        lo_p, hi_p = loc[dims.index("plev")]
        plev = plev_pa[lo_p:hi_p]
    for index in zip(*np.nonzero(np.atleast_1d(suspect))) if lead else [()]:
        where = []
        for d, i in zip(lead, index):
            k = starts[d] + int(i)
            where.append(f"member {members[k]}" if d == "member" and members else
                         months[k] if d == "time" and months else f"{d} {k}")
        found = month_value_problems(name, moved[tuple(index)], var, plev,
                                     f" in {', '.join(where)}" if where else "", nan_note)
        if found:
            raise InputError("; ".join(found[:2]), source)
    return block


def guard_values(da: xr.DataArray, name: str, source: str) -> xr.DataArray:
    """``da`` with the value checks of :func:`month_value_problems` on every month and member.

    Lazy (dask) fields get a blockwise identity task that checks each block when it is
    computed, so the checks ride along the write or the scoring at the cost of one pass over
    data already in memory; the first bad month raises :class:`InputError` naming the month
    (and member) and ``source``. In-memory fields are checked at once. Fields outside the
    catalogue, or with dims beyond (member, time, plev, lat, lon), are returned unchanged.
    """
    try:
        catalogue.variable(name)
    except KeyError:
        return da
    if not set(da.dims) <= set(DIM_ORDER) or not {"lat", "lon"} <= set(da.dims):
        return da
    months = None
    if "time" in da.dims:
        months = [f"{i // 12:04d}-{i % 12 + 1:02d}" for i in month_index(da["time"])]
    members = None
    if "member_label" in da.coords and "member" in da.dims:
        members = [str(m) for m in da["member_label"].values]
    elif "member" in da.dims:
        members = [str(m) for m in da["member"].values]
    plev = np.asarray(da["plev"].values, dtype=float) if "plev" in da.dims else None
    kwargs = {"variable": name, "source": str(source), "dims": tuple(da.dims), "months": months,
              "members": members, "plev_pa": plev, "nan_note": da.attrs.get("missing_value_source")}
    if da.chunks is None:
        _check_block(np.asarray(da.values), **kwargs)
        return da
    data = da.chunk({"lat": -1, "lon": -1}).data  # whole fields: means are global, not per tile
    checked = data.map_blocks(_check_block, dtype=data.dtype, meta=data._meta, **kwargs)
    return da.copy(data=checked)


def problems(ds: xr.Dataset, check_values: bool = True) -> list[str]:
    """Every way ``ds`` breaks the contract, as readable sentences (empty when it conforms)."""
    return _coord_problems(ds) + _time_problems(ds) + _variable_problems(ds, check_values)


def validate(ds: xr.Dataset, source: str = "<dataset>", check_values: bool = True) -> xr.Dataset:
    """Raise :class:`InputError` naming ``source`` and what is wrong; return ``ds`` if it conforms."""
    found = problems(ds, check_values)
    if found:
        more = f" (and {len(found) - 2} more problems)" if len(found) > 2 else ""
        raise InputError("; ".join(found[:2]) + more, source)
    return ds


def require(ds: xr.Dataset, names: list[str] | tuple[str, ...], source: str = "<dataset>") -> None:
    """Raise :class:`InputError` if any of the store names is missing from ``ds``."""
    missing = [n for n in names if n not in ds.data_vars]
    if missing:
        raise InputError(f"missing variables {missing}; found {field_names(ds)}", source)


def field_names(ds: xr.Dataset) -> list[str]:
    """The data variables of ``ds`` a user would call variables: bounds (``time_bnds``,
    ``lat_bounds``, ...) left out, sorted, for messages."""
    return sorted(str(n) for n in ds.data_vars if not str(n).endswith(("_bnds", "_bounds")))
