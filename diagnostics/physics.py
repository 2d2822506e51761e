"""A physics model's E5 beside the emulators: ``--physics NAME=DIR`` with ``--scenario NAME:p4k=DIR``.

The AI-MIP paper sets each emulator's E5 (perturbed minus control time means) beside GFDL-CM4's
``amip-p4K`` response. A physics model's ``amip`` run is not an emulator's ``aimip`` run: CMIP6
``amip`` ends in 2014-12, so scoring it as one more ``--ensemble`` would clip every model's common
window (and lose the 2015-2024 test period). A ``--physics`` model is therefore scored for E5 only,
over the months its control and warm runs share (the official E5 over 1978-10..2024-12 where the
runs reach that far), by the same kernel as the ensembles' E5
(:func:`diagnostics.metrics.aimip.e5_response`, cos-lat mean over |lat| <= 87.5, member median /
min / max), and filed under the same keys ``NAME.<channel>.aimip_response_global_{median,min,max}.<scenario>``.

Its files are read like any submission (CMIP DRS trees, CMOR files with bounds, 19 levels in Pa,
Julian / 365-day calendars, geopotential detected) and put on the analysis grid as any submission
(:func:`diagnostics.align.on_grid`: conservative coarsening, bilinear refining up to 4x); a grid
that cannot be put on it is kept, said in the skipped lines (E5 is a global mean). Only the
channels of :func:`e5_channels` among the variables the run scores are computed.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from . import align
from .data.errors import InputError
from .data.grid import Grid, grid_of
from .data.timeaxis import Period, period_of
from .io.files import expand_paths
from .io.open import open_dataset
from .metrics import aimip
from .outputs import Results
from .schema import NOISE_FLOOR, REFERENCE, key


def e5_channels() -> tuple[tuple[str, str, float | None], ...]:
    """(channel label, store variable, level Pa or None) of the official E5:
    :data:`~diagnostics.metrics.aimip.RESPONSE_VARIABLES`, ``ta`` at the E5 levels (850, 500 hPa),
    ``zg`` at 500 hPa (the store's ``zg500``)."""
    out: list[tuple[str, str, float | None]] = []
    for var in aimip.RESPONSE_VARIABLES:
        if var == "ta":
            out += [(f"ta{int(round(p / 100.0))}", "ta", p) for p in aimip.RESPONSE_PLEVS_PA]
        elif var == "zg":
            out.append(("zg500", "zg500", None))
        else:
            out.append((var, var, None))
    return tuple(out)


def physics_names(specs: list[str]) -> dict[str, str]:
    """``--physics NAME=DIR`` specs -> {NAME: DIR}; a spec without a name is refused in one line."""
    out: dict[str, str] = {}
    for spec in specs:
        name, path = align.parse_named(spec)
        if name is None:
            raise InputError(f"expected NAME=PATH (e.g. GFDL-CM4=cmip6/.../amip), got {spec!r}", "--physics")
        if name in out:
            raise InputError(f"physics model {name!r} given twice", "--physics")
        out[name] = path
    return out


def check_names(physics: dict[str, str], ensembles: list[tuple[str | None, str]]) -> None:
    """A physics model may not share a name with an ensemble: their keys would mix."""
    clash = sorted(set(physics) & ({name for name, _ in ensembles if name} | {REFERENCE, NOISE_FLOOR}))
    if clash:
        raise InputError(f"{', '.join(clash)} named both as --ensemble and --physics (or kept for the reference / "
                         "noise floor); give the physics model another name", "--physics")


def split_scenarios(scenarios: list[str], physics: dict[str, str]) -> tuple[list[str], list[tuple[str, str, str]]]:
    """The ``--scenario`` specs of the ensembles, and (model, scenario, path) of the physics models'."""
    main, phys = [], []
    for spec in scenarios:
        try:
            model, scen, path = align.parse_scenario(spec)
        except ValueError:
            main.append(spec)  # refused with its message by the ensembles' parser
            continue
        if model in physics:
            phys.append((model, scen, path))
        else:
            main.append(spec)
    return main, phys


def _open(path: str) -> xr.Dataset:
    """One run of a physics model, only the variables E5 reads (others are neither read nor checked)."""
    wanted = sorted({var for _, var, _ in e5_channels()})
    return align.with_member(open_dataset(expand_paths(path), only=wanted))


def _onto(ds: xr.Dataset, grid: Grid) -> tuple[xr.Dataset, bool]:
    """``ds`` on ``grid`` when it can be regridded onto it (True), else unchanged (False)."""
    if grid_of(ds).same_as(grid):
        return ds, True
    try:
        return align.on_grid(ds, grid), True
    except (InputError, ValueError):
        return ds, False


def _field(ds: xr.Dataset, var: str, plev: float | None) -> xr.DataArray | None:
    if var not in ds.data_vars:
        return None
    da = ds[var]
    if plev is not None:
        if "plev" not in da.dims or not np.any(np.abs(da["plev"].values - plev) < 1.0):
            return None
        da = da.sel(plev=plev, method="nearest").drop_vars("plev")
    return da


def score_e5(physics: dict[str, str], runs: list[tuple[str, str, str]], grid: Grid, variables: list[str],
             res: Results) -> dict[str, dict[str, str]]:
    """E5 of every physics model's warm runs against its control, into ``res``; returns the paths read
    ({model: {"control": DIR, scenario: DIR}}, for the provenance). A model or run that cannot be read
    or shares no month is skipped with its reason, never fatal (the ensembles' scores stand)."""
    paths: dict[str, dict[str, str]] = {}
    for model, control_path in physics.items():
        mine = [(s, p) for m, s, p in runs if m == model]
        if not mine:
            res.skip(f"{model}.aimip_e5", f"physics model {model} has no --scenario {model}:p4k=DIR (E5 needs one)")
            continue
        try:
            control = _open(control_path)
        except InputError as exc:
            res.skip(f"{model}.aimip_e5", str(exc))
            continue
        control, on_common = _onto(control, grid)
        if not on_common:
            res.skip(f"{model}.regrid", f"{model}'s grid {grid_of(control).shape} cannot be put on the analysis "
                                        "grid: its E5 (a global mean) is taken on its own grid")
        paths[model] = {"control": control_path}
        for scen, path in mine:
            try:
                warm, _ = _onto(_open(path), grid_of(control))
            except InputError as exc:
                res.skip(f"{model}.{scen}", str(exc))
                continue
            span = align.overlap(period_of(control), period_of(warm))
            if span is None:
                res.skip(f"{model}.{scen}", f"shares no month with {model}'s control run")
                continue
            paths[model][scen] = path
            _score_run(model, scen, control, warm, span, variables, res)
    return paths


def _score_run(model: str, scen: str, control: xr.Dataset, warm: xr.Dataset, span: Period,
               variables: list[str], res: Results) -> None:
    config = aimip.AimipEvaluation(response_period=span)
    for label, var, plev in e5_channels():
        if var not in variables:
            continue
        c, w = _field(control, var, plev), _field(warm, var, plev)
        if c is None or w is None:
            res.skip(f"{model}.{label}.aimip_e5.{scen}", f"{label} not in both runs of {model}")
            continue
        try:  # a bad month is raised lazily, by the compute: a skip line too, never fatal
            e5 = aimip.e5_response(w, c, config)
            done = xr.Dataset({s: e5[f"global_response_{s}"] for s in ("median", "min", "max")}).compute()
        except (ValueError, InputError) as exc:
            res.skip(f"{model}.{label}.aimip_e5.{scen}", str(exc))
            continue
        for stat in ("median", "min", "max"):
            res.add(key(model, label, f"aimip_response_global_{stat}", scenario=scen), done[stat])
