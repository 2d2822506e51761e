"""``md-diagnose`` orchestration: open -> align -> score (streamed with dask) -> write -> report.

Memory stays bounded because nothing is loaded whole: inputs are opened lazily and re-chunked
(:func:`_chunked`: whole years, all members, one level of a large 3-D variable per chunk).
Each variable is scored in a few ``dask.compute`` calls (:class:`~diagnostics.score.Batch`):
stage 1 computes every single-pass metric of every model at once (bias maps, CRPS,
spread-skill, rank histograms, spectra, warming, and the 0-90N subsets the EOF analyses
need), so each input chunk is read once for all of them; stage 2 computes, per ensemble
(and per level for large variables), the two-pass statistics — least-squares trends and the
anomaly statistics (variability, Niño-3.4 regressions), which need the time means or the
monthly climatology before the rest, so dask holds that field until the first pass ends.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import importlib
import importlib.metadata
import json
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import dask
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from . import align, score
from .data import catalogue
from .data.errors import InputError
from .data.grid import grid_of
from .data.timeaxis import Period, period_of, select_period
from .io.files import expand_paths
from .io.open import describe_grid, open_dataset
from .metrics import baselines, nino34
from .outputs import (PARTIAL_DIR, SPREAD_SKILL_NOTE, Results, load_partial, metric_key, save_partial,
                      write_outputs)

#: Months per dask chunk along time: one year, the unit AI-MIP stores and our writer use.
TIME_CHUNK = 12
#: Target bytes of one chunk (float32, all members): a year of 5 members of a 2-D field at 1.5 degrees.
CHUNK_BYTES = 8 * 2**20
#: Largest ensemble variable whose two-pass statistics (trends, anomalies) are computed in one
#: graph (all levels); above it, one level at a time (that graph holds the field in memory).
STAGE2_BYTES = 128 * 2**20
DEFAULT_TRAIN = "1979-01:2014-12"
DEFAULT_TEST = "2015-01:2024-12"
BASELINES = ("baseline-climatology", "baseline-persistence", "baseline-ar1")


@dataclass
class Config:
    """Everything ``md-diagnose`` was asked to do (see :mod:`diagnostics.cli.diagnose`)."""

    ensembles: list[str]
    reference: str
    out: Path
    train: Period = field(default_factory=lambda: Period.parse(DEFAULT_TRAIN))
    test: Period = field(default_factory=lambda: Period.parse(DEFAULT_TEST))
    scenarios: list[str] = field(default_factory=list)
    variables: list[str] | None = None
    scheduler: str | None = None
    report: tuple[str, ...] = ("html",)
    members_max: int | None = None
    baselines: bool = True
    spectra: bool = True
    command: str = ""
    progress: bool = True
    seed: int = 0
    debug: bool = False  # --debug: a failing scoring batch re-raises instead of being skipped


@dataclass
class Inputs:
    """Aligned inputs: one grid, one monthly axis (the reference's labels)."""

    reference: xr.Dataset
    ensembles: dict[str, xr.Dataset]
    scenarios: dict[str, dict[str, xr.Dataset]]
    window: align.Window
    paths: dict
    grid_note: str
    variables: list[str]


# --------------------------------------------------------------------------- scheduler
@contextlib.contextmanager
def scheduler(spec: str | None) -> Iterator[str]:
    """Dask scheduler for the run: threads (default), a LocalCluster (``local`` or ``local:N``
    workers), or a running dask.distributed scheduler at ``ADDRESS``."""
    if not spec:
        with dask.config.set(scheduler="threads"):
            yield "threads"
        return
    from dask.distributed import Client, LocalCluster

    if spec == "local" or spec.startswith("local:"):
        n = int(spec.split(":", 1)[1]) if ":" in spec else 2
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield f"LocalCluster({n} workers) at {client.scheduler.address}"
        return
    try:
        client = Client(spec, timeout="10s")
    except (OSError, TimeoutError, ValueError) as exc:
        raise InputError(f"cannot connect to a dask scheduler ({type(exc).__name__}: {exc})", spec) from None
    with client:
        yield f"dask.distributed scheduler at {spec}"


# --------------------------------------------------------------------------- inputs
def _say(text: str) -> None:
    print(f"md-diagnose: {text}", file=sys.stderr)


def time_chunk(da: xr.DataArray, members: int, per_level: bool = False) -> int:
    """Months per chunk for one variable: whole years, about :data:`CHUNK_BYTES` for ``members``
    members (of one level when ``per_level``).

    Small inputs become one chunk (dask's per-task overhead would dominate), large ones
    stream a year or a few at a time. Depends only on the per-member field size and the
    largest member count, so ensembles, reference and baselines of one variable share chunks.
    """
    skip = ("time", "member", "plev") if per_level else ("time", "member")
    per_month = da.dtype.itemsize * int(np.prod([n for d, n in da.sizes.items() if d not in skip]))
    months = max(TIME_CHUNK, (CHUNK_BYTES // max(per_month * members, 1)) // TIME_CHUNK * TIME_CHUNK)
    return int(min(months, da.sizes["time"]))


def _chunked(ds: xr.Dataset, members: int) -> xr.Dataset:
    """Time chunks of :func:`time_chunk`, all members together (CRPS and ranks need them), and
    for large 3-D variables one pressure level per chunk (the metric kernels make float64
    temporaries several times a chunk's size)."""
    out = ds.copy()
    for name, da in ds.data_vars.items():
        if "time" not in da.dims or name == "time_bnds":
            continue
        chunks = {"time": time_chunk(da, members), "member": -1, "plev": -1}
        if "plev" in da.dims and chunks["time"] < da.sizes["time"]:
            chunks.update(time=time_chunk(da, members, per_level=True), plev=1)
        out[name] = da.chunk({d: c for d, c in chunks.items() if d in da.dims})
    return out


def _requested(variables: list[str] | None) -> list[str] | None:
    if variables is None:
        return None
    out = []
    for v in variables:
        for part in v.split(","):
            if not part:
                continue
            try:
                out.append(catalogue.variable(part).store_name)
            except KeyError:
                raise InputError(f"unknown variable {part!r}; known: "
                                 f"{', '.join(catalogue.store_names('state'))}", "--variables") from None
    return out


def _model_name(given: str | None, ds: xr.Dataset, path: str, taken: set[str]) -> str:
    name = given or ds.attrs.get("source_id") or Path(path.rstrip("/")).name or "model"
    name = align.safe_model_name(str(name))
    base, i = name, 2
    while name in taken or name in ("reference", *BASELINES):
        name, i = f"{base}-{i}", i + 1
    return name


def _open(spec: str, what: str) -> tuple[xr.Dataset, list[str]]:
    files = expand_paths(spec)
    ds = open_dataset(files)
    return ds, files


def load_inputs(cfg: Config, res: Results) -> Inputs:
    """Open, regrid and time-align every input; InputError when nothing can be compared."""
    # existence first, so a typo fails in a second, before anything is opened
    for spec in [cfg.reference] + [align.parse_named(e)[1] for e in cfg.ensembles] + \
            [align.parse_scenario(s)[2] for s in cfg.scenarios]:
        expand_paths(spec)
    reference, ref_files = _open(cfg.reference, "reference")
    if "member" in reference.dims and reference.sizes["member"] > 1:
        _say(f"reference has {reference.sizes['member']} members; using the first as the reference")
    reference = align.first_member(reference)
    align.check_global(grid_of(reference), cfg.reference)

    ensembles: dict[str, xr.Dataset] = {}
    paths: dict = {"reference": ref_files, "ensembles": {}, "scenarios": {}}
    for spec in cfg.ensembles:
        given, path = align.parse_named(spec)
        try:
            ds, files = _open(path, "ensemble")
            name = _model_name(given, ds, path, set(ensembles))
            align.check_global(grid_of(ds), path)
        except InputError as exc:
            if len(cfg.ensembles) == 1:
                raise
            res.skip(f"ensemble {given or path}", str(exc))
            continue
        ds = align.with_member(ds)
        if cfg.members_max is not None and ds.sizes["member"] > cfg.members_max:
            ds = ds.isel(member=slice(0, cfg.members_max))
        ensembles[name] = ds
        paths["ensembles"][name] = files
    if not ensembles:
        raise InputError("no ensemble could be read", cfg.ensembles[0])

    scenarios: dict[str, dict[str, xr.Dataset]] = {}
    for spec in cfg.scenarios:
        model, scen, path = align.parse_scenario(spec)
        model = model or next(iter(ensembles))
        if model not in ensembles:
            res.skip(f"{model}.{scen}", f"scenario names model {model!r}, which is not among the ensembles "
                                        f"({', '.join(ensembles)})")
            continue
        try:
            ds, files = _open(path, "scenario")
            align.check_global(grid_of(ds), path)
        except InputError as exc:
            res.skip(f"{model}.{scen}", str(exc))
            continue
        scenarios.setdefault(model, {})[scen] = align.with_member(ds)
        paths["scenarios"].setdefault(model, {})[scen] = files

    # ---- grids: everything onto the coarsest grid (conservative coarsening only)
    grids = [grid_of(reference)] + [grid_of(d) for d in ensembles.values()] + \
            [grid_of(d) for s in scenarios.values() for d in s.values()]
    target = align.common_grid(grids)
    notes = []
    if not grid_of(reference).same_as(target):
        notes.append(f"reference {describe_grid(reference)}")
    reference = align.on_grid(reference, target)
    for name in list(ensembles):
        if not grid_of(ensembles[name]).same_as(target):
            notes.append(f"{name} {describe_grid(ensembles[name])}")
        ensembles[name] = align.on_grid(ensembles[name], target)
    for model in scenarios:
        for scen in scenarios[model]:
            scenarios[model][scen] = align.on_grid(scenarios[model][scen], target)
    grid_note = describe_grid(reference)
    if notes:
        _say(f"regridded conservatively onto {grid_note}: " + "; ".join(notes))

    # ---- pressure levels: score 3-D variables on the levels every input holds
    everything = [reference, *ensembles.values(), *(d for s in scenarios.values() for d in s.values())]
    plev = align.common_plev(everything)
    if plev is not None:
        if plev.size == 0:
            raise InputError("the inputs share no pressure level (reference "
                             f"{(reference['plev'].values / 100).astype(int).tolist()} hPa)", cfg.reference)
        if "plev" in reference.dims and plev.size < reference.sizes["plev"]:
            _say(f"scoring pressure levels {(plev / 100).astype(int).tolist()} hPa: the levels every input holds")
        reference = reference.sel(plev=plev) if "plev" in reference.dims else reference
        ensembles = {n: d.sel(plev=plev) if "plev" in d.dims else d for n, d in ensembles.items()}
        scenarios = {m: {k: d.sel(plev=plev) if "plev" in d.dims else d for k, d in s.items()}
                     for m, s in scenarios.items()}

    # ---- time: the months every ensemble and the reference hold, matched by month index
    ref_period = period_of(reference)
    window: Period | None = ref_period
    for name in list(ensembles):
        ens_period = period_of(ensembles[name])
        common = align.overlap(ens_period, ref_period)
        if common is None:
            msg = (f"no month in common with the reference (ensemble {ens_period}, "
                   f"reference {ref_period})")
            if len(ensembles) == 1:
                raise InputError(msg, paths["ensembles"][name][0])
            res.skip(f"ensemble {name}", msg)
            del ensembles[name]
            continue
        if common != ens_period:
            _say(f"the reference ({ref_period}) does not cover all of {name} ({ens_period}); "
                 f"scoring {common}")
        window = align.overlap(window, common) if window else None
    if window is None or not ensembles:
        raise InputError("the ensembles and the reference share no month", cfg.reference)
    axis = select_period(reference, window)
    members = max(d.sizes["member"] for d in ensembles.values())
    reference = _chunked(axis, members)
    for name in ensembles:
        ensembles[name] = _chunked(align.on_time_axis(ensembles[name], axis, name), members)
    for model in scenarios:
        hist_period = window
        for scen in list(scenarios[model]):
            sp = align.overlap(period_of(scenarios[model][scen]), hist_period)
            if sp is None:
                res.skip(f"{model}.{scen}", f"scenario shares no month with the historical window {window}")
                del scenarios[model][scen]
                continue
            scenarios[model][scen] = _chunked(align.on_time_axis(
                scenarios[model][scen], select_period(reference, sp), f"{model} {scen}"), members)

    train = align.clip_period(cfg.train, window)
    test = align.clip_period(cfg.test, window)
    for pname, wanted, got in (("train", cfg.train, train), ("test", cfg.test, test)):
        if got is None:
            res.skip(f"{pname} period", f"the inputs' common months {window} do not reach the {pname} "
                                        f"period {wanted}")
        elif got != wanted:
            _say(f"{pname} period {wanted} clipped to {got} (the months all inputs hold)")

    # ---- variables: scored state variables every input needs
    wanted = _requested(cfg.variables)
    state = [v for v in catalogue.store_names("state") if wanted is None or v in wanted]
    variables = []
    for v in state:
        in_ref = v in reference.data_vars
        holders = [n for n, d in ensembles.items() if v in d.data_vars]
        if in_ref and holders:
            variables.append(v)
            for n in ensembles:
                if n not in holders and wanted is not None:
                    res.skip(f"{n}.{v}", f"{v} not in ensemble {n}")
        elif wanted is not None:
            where = "the reference" if not in_ref else "any ensemble"
            res.skip(f"*.{v}", f"{v} not in {where}")
    for mode, (label, _) in score.MODE_SOURCES.items():
        if label not in variables and (wanted is None or label in wanted):
            res.skip(mode, f"{label} is not in both the reference and an ensemble")
    if not variables:
        ens_vars = sorted({str(v) for d in ensembles.values() for v in d.data_vars} - {"time_bnds"})
        raise InputError(f"the ensembles ({', '.join(ens_vars) or 'none'}) and the reference "
                         f"({', '.join(sorted(map(str, reference.data_vars)))}) share no scored variable",
                         cfg.reference)
    return Inputs(reference, ensembles, scenarios, align.Window(window, train, test), paths, grid_note, variables)


# --------------------------------------------------------------------------- Nino-3.4
def nino_index(inputs: Inputs, res: Results, clim_period: Period) -> tuple[xr.DataArray | None, str]:
    """The Niño-3.4 index (K) from the ensembles' forcing tos, else the reference tos, else the
    reference ts over ocean (land masked with sftlf where given)."""
    source, tos = "", None
    for name, ds in inputs.ensembles.items():
        if "tos" in ds.data_vars:
            tos = ds["tos"]
            source, tos = f"forcing tos of {name}", tos.isel(member=0, drop=True) if "member" in tos.dims else tos
            break
    if tos is None and "tos" in inputs.reference.data_vars:
        source, tos = "reference tos", inputs.reference["tos"]
    if tos is None and "ts" in inputs.reference.data_vars:
        tos = inputs.reference["ts"]
        if "sftlf" in inputs.reference.data_vars:
            tos = tos.where(inputs.reference["sftlf"] < 0.5)
            source = "reference ts over ocean (sftlf < 0.5)"
        else:
            source = "reference ts (no land mask given; the Nino-3.4 box is all ocean)"
    if tos is None:
        res.skip("nino34", "no tos in the ensembles or the reference and no ts in the reference")
        return None, ""
    try:
        index = nino34.nino34_index(tos, climatology_period=clim_period).compute()
    except ValueError as exc:
        res.skip("nino34", str(exc))
        return None, ""
    res.add(metric_key("reference", "nino34", "index_std", "all"), index.std("time", ddof=1))
    res.add_field(index, "nino34_index", "reference", "nino34", period="all", units="K",
                  description=f"relative Nino-3.4 index (3-month running mean) from the {source}")
    return index, source


# --------------------------------------------------------------------------- scoring
def _channels(ds: xr.Dataset, var: str) -> list[score.Channel]:
    v = catalogue.variable(var)
    if not v.is_3d:
        return [score.Channel(var, var)]
    levels = [int(round(p / 100.0)) for p in ds[var]["plev"].values]
    return [score.Channel(catalogue.channel_label(v.name, lev), var, lev * 100.0) for lev in levels]


def _baseline_fields(ref: xr.DataArray, train: Period, test: Period, n_members: int,
                    seed: int) -> dict[str, xr.DataArray]:
    """The three baselines as ensembles over the test months (the only months they are scored on)."""
    like = select_period(ref, test)
    return {
        "baseline-climatology": baselines.climatology_ensemble(
            ref, train, like=like, n_members=min(n_members, train.end.year - train.start.year + 1)),
        "baseline-persistence": baselines.persistence(ref, like=like),
        "baseline-ar1": baselines.ar1_ensemble(ref, train, n_members=n_members, seed=seed, like=like),
    }


def _guard(res: Results, what: str, fn, *args, **kwargs) -> bool:
    """Run one group builder; a metric that cannot apply to these inputs is skipped with its reason."""
    try:
        fn(*args, **kwargs)
        return True
    except (ValueError, KeyError, IndexError) as exc:
        res.skip(what, f"{type(exc).__name__}: {exc}".split("\n")[0])
        return False


def _compute(batch: score.Batch, res: Results, what: str, debug: bool = False) -> None:
    """Compute one batch; an unexpected failure inside it (a bug, or data a metric cannot take)
    skips that batch's metrics with the reason instead of ending the whole run. ``debug``
    (``--debug``) re-raises it with its traceback."""
    try:
        batch.compute()
    except (KeyboardInterrupt, MemoryError, InputError):
        raise
    except Exception as exc:  # noqa: BLE001 - reported per batch, the run goes on
        if debug:
            raise
        reason = f"scoring failed ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        res.skip(what, reason)
        _say(f"{what}: {reason}; the other metrics are scored (--debug shows the traceback)")


def score_variable(var: str, inputs: Inputs, res: Results, cfg: Config, index: xr.DataArray | None,
                   clim_period: Period | None, bar: tqdm) -> None:
    """Every metric group of one variable: stage 1 (single pass), EOFs, stage 2 (trends, anomalies)."""
    ref = inputs.reference[var]
    periods = inputs.window.periods()
    window = inputs.window.all
    models: dict[str, xr.DataArray] = {n: d[var] for n, d in inputs.ensembles.items() if var in d.data_vars}
    kinds = {n: "ensemble" for n in models}
    baseline_periods = {"test": inputs.window.test} if inputs.window.test is not None else {}
    if cfg.baselines and inputs.window.train is not None and baseline_periods:
        n_members = max(2, max(d.sizes["member"] for d in models.values()))
        try:
            for n, da in _baseline_fields(ref, inputs.window.train, inputs.window.test, n_members,
                                          cfg.seed).items():
                models[n], kinds[n] = da, "baseline"
        except ValueError as exc:
            res.skip(f"baselines.{var}", str(exc))
    channels = _channels(inputs.reference, var)
    spectra_period = ("test", inputs.window.test) if inputs.window.test is not None else ("all", window)

    # ---- stage 1: single-pass metrics of every model, one dask.compute
    # graphs are built per variable (plev kept) and filed per channel: with 7 levels this is
    # 7x less graph construction, which dominates small runs
    batch, units = score.Batch(), 0
    chs, lab, nch = channels, score.label_of(channels), len(channels)
    _guard(res, f"reference.{lab}.climatology", score.reference_climatology, batch, res, ref, chs, periods)
    for n, da in models.items():
        is_ens = kinds[n] == "ensemble"
        # baselines are one-month-ahead forecasts built from the reference (in-sample on the
        # train period): scored on the held-out test period only, as baselines.py advises
        own = periods if is_ens else baseline_periods
        _guard(res, f"{n}.{lab}.bias", score.climatology_group, batch, res, n, da, ref, chs, own, is_ens)
        _guard(res, f"{n}.{lab}.probabilistic", score.probabilistic_group, batch, res, n, da, ref, chs,
               own, is_ens)
        units += 2 * nch
        if not is_ens:
            continue
        if cfg.spectra:
            first = n == next(iter(inputs.ensembles))
            _guard(res, f"{n}.{lab}.spectra", score.spectra_group, batch, res, n, da, ref, chs,
                   *spectra_period, first)
            units += nch
        for scen, sds in inputs.scenarios.get(n, {}).items():
            if var not in sds.data_vars:
                res.skip(f"{n}.{lab}.warming.{scen}", f"{var} not in the {scen} run of {n}")
                continue
            _guard(res, f"{n}.{lab}.warming.{scen}", score.warming_group, batch, res, n, sds[var], da, chs, scen)
            units += nch
    if catalogue.variable(var).is_3d:
        for n, da in models.items():
            if kinds[n] == "ensemble":
                _guard(res, f"{n}.{var}.zonal_bias", score.zonal_group, batch, res, n, da, ref, var, periods)
    mode_names = [m for m, (label, _) in score.MODE_SOURCES.items() if label == var]
    subsets: dict[str, xr.DataArray] = {}
    if mode_names:
        for n in ["reference"] + [n for n in models if kinds[n] == "ensemble"]:
            batch.add(score.northern_subset(ref if n == "reference" else models[n]),
                      lambda v, n=n: subsets.__setitem__(n, v))
    _compute(batch, res, f"*.{lab}", cfg.debug)
    bar.update(units)

    # ---- EOF modes on the persisted 0-90N subsets (small, eager)
    for mode in mode_names:
        if "reference" not in subsets:
            continue
        ens = {n: v for n, v in subsets.items() if n != "reference"}
        _guard(res, f"*.{mode}", score.modes_from_subsets, res, mode, ens, subsets["reference"])
        bar.update(len(ens))

    # ---- stage 2: two-pass statistics, per model: anomalies need the monthly climatology and
    # least-squares trends the time means before the products, so dask holds the field until
    # the first pass completes; hence per model and, for large variables, per level
    if clim_period is None:
        res.skip(f"*.{var}.variability/nino34", "no train period inside the inputs' common months for the "
                                                 "monthly climatology of the anomalies")
        return
    for i, (n, da) in enumerate((n, d) for n, d in models.items() if kinds[n] == "ensemble"):
        groups = [chs] if da.nbytes <= STAGE2_BYTES else [[c] for c in chs]
        for group in groups:
            sel = (lambda x: x) if group is chs else group[0].of
            glab = score.label_of(group)
            batch = score.Batch()
            if i == 0:
                _guard(res, f"reference.{glab}.trend", score.reference_trends, batch, res, sel(ref), group, window)
            _guard(res, f"{n}.{glab}.trend", score.trends_group, batch, res, n, sel(da), sel(ref), group,
                   window, True)
            _guard(res, f"{n}.{glab}.variability", score.variability_group, batch, res, n, sel(da), sel(ref),
                   group, clim_period, True, i == 0)
            if index is not None:
                _guard(res, f"{n}.{glab}.nino34", score.nino_group, batch, res, n, sel(da), sel(ref), group,
                       index, clim_period, i == 0)
            _compute(batch, res, f"{n}.{glab}.trend/variability/nino34", cfg.debug)
            bar.update(len(group) * (2 + int(index is not None)))


def count_units(inputs: Inputs, cfg: Config, has_index: bool, variables: list[str] | None = None) -> int:
    """Work units (metric group x channel x model) for the progress bar."""
    total = 0
    for var in inputs.variables if variables is None else variables:
        nch = len(_channels(inputs.reference, var))
        ens = [n for n, d in inputs.ensembles.items() if var in d.data_vars]
        nb = len(BASELINES) if cfg.baselines and inputs.window.train and inputs.window.test else 0
        scen = sum(len(inputs.scenarios.get(n, {})) for n in ens)
        per_ens = 4 + int(cfg.spectra) + scen + int(has_index)
        per_base = 2
        total += nch * (len(ens) * per_ens + nb * per_base)
        total += len(ens) * len([m for m, (label, _) in score.MODE_SOURCES.items() if label == var])
    return total


# --------------------------------------------------------------------------- provenance and run
def versions() -> dict[str, str]:
    out = {}
    for dist, mod in (("monthly-diffusion", "diagnostics"), ("xarray", "xarray"), ("numpy", "numpy"),
                      ("dask", "dask"), ("distributed", "distributed"), ("eofs", "eofs"),
                      ("torch-harmonics", "torch_harmonics"), ("netCDF4", "netCDF4"), ("zarr", "zarr")):
        try:
            out[mod] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    out["python"] = sys.version.split()[0]
    return out


def provenance(cfg: Config, inputs: Inputs, scheduler_name: str, nino_source: str) -> dict:
    w = inputs.window
    return {
        "command": cfg.command,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "versions": versions(),
        "inputs": inputs.paths,
        "periods": {"train": str(w.train) if w.train else None, "test": str(w.test) if w.test else None,
                    "all": str(w.all)},
        "periods_requested": {"train": str(cfg.train), "test": str(cfg.test)},
        "members": {n: int(d.sizes["member"]) for n, d in inputs.ensembles.items()},
        "grid": inputs.grid_note,
        "calendar": str(inputs.reference["time"].values[0].calendar)
        if inputs.reference.sizes["time"] and hasattr(inputs.reference["time"].values[0], "calendar") else "",
        "nino34_index_source": nino_source,
        "scheduler": scheduler_name,
        "spread_skill_correction": SPREAD_SKILL_NOTE,
    }


def fingerprint(cfg: Config, inputs: Inputs) -> str:
    """Identity of a run for resuming: inputs (paths, sizes, times), periods and options."""
    files = sorted(set(_flat_paths(inputs.paths)))
    stats = []
    for f in files:
        try:
            st = os.stat(f)
            stats.append((f, st.st_size, int(st.st_mtime)))
        except OSError:
            stats.append((f, 0, 0))
    doc = {"files": stats, "window": str(inputs.window), "variables": inputs.variables,
           "members_max": cfg.members_max, "baselines": cfg.baselines, "spectra": cfg.spectra,
           "seed": cfg.seed, "ensembles": cfg.ensembles, "scenarios": cfg.scenarios}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _flat_paths(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [p for v in obj.values() for p in _flat_paths(v)]
    return [p for v in obj for p in _flat_paths(v)]


def render(out: Path, formats: tuple[str, ...]) -> bool:
    """Render the report with :mod:`reports.render` when it is installed; False on failure."""
    try:
        render_mod = importlib.import_module("reports.render")
    except ImportError:
        _say("reports package not available; metrics written without a report (md-report renders later)")
        return True
    try:
        paths = render_mod.render_report(out, formats=formats)
    except Exception as exc:  # noqa: BLE001 — any renderer failure leaves the metrics usable
        _say(f"report rendering failed ({type(exc).__name__}: {exc}); metrics.json and metrics.nc are written")
        return False
    for fmt, p in (paths or {}).items():
        _say(f"report ({fmt}): {p}")
    return True


def run(cfg: Config) -> int:
    """The whole command; returns the exit code (2 when nothing useful could be computed)."""
    res = Results()
    inputs = load_inputs(cfg, res)
    clim_period = inputs.window.train or inputs.window.all
    if inputs.window.train is None:
        _say(f"no train period in the common months: anomalies use the climatology of {inputs.window.all}")
    with scheduler(cfg.scheduler) as sched_name:
        index, nino_source = nino_index(inputs, res, clim_period)
        total = count_units(inputs, cfg, index is not None)
        key = fingerprint(cfg, inputs)
        with tqdm(total=total, desc="md-diagnose", unit="unit", disable=not cfg.progress,
                  file=sys.stderr) as bar:
            for var in inputs.variables:
                bar.set_postfix_str(var)
                done = load_partial(cfg.out, key, var)
                if done is not None:  # finished before an interruption: reuse
                    res.update(done)
                    bar.update(count_units(inputs, cfg, index is not None, [var]))
                    continue
                var_res = Results()
                score_variable(var, inputs, var_res, cfg, index, clim_period, bar)
                save_partial(cfg.out, key, var, var_res)
                res.update(var_res)
    if not res.metrics:
        raise InputError("no metric could be computed from these inputs (see the skipped lines above)",
                         cfg.reference)
    channels = []
    for var in inputs.variables:
        channels += [c.label for c in _channels(inputs.reference, var)]
    models = list(inputs.ensembles) + ([b for b in BASELINES if any(k.startswith(b + ".") for k in res.metrics)])
    js, nc = write_outputs(cfg.out, res, provenance(cfg, inputs, sched_name, nino_source), models, channels)
    shutil.rmtree(Path(cfg.out) / PARTIAL_DIR, ignore_errors=True)
    _say(f"wrote {js} ({len(res.metrics)} numbers, {len(res.skipped)} skipped) and {nc} "
         f"({len(res.fields)} fields)")
    if cfg.report:
        return 0 if render(cfg.out, cfg.report) else 1
    return 0
