"""``md-diagnose``'s metrics: open -> align -> score (streamed with dask) -> write.

The report is rendered by the command layer (:mod:`reports.cli_diagnose`), never from here:
``diagnostics`` imports neither ``reports`` nor ``emulator``. The metric groups are the
classes of :mod:`diagnostics.groups`; :func:`plan_variable` picks the ones that apply to each
variable and subject, :func:`score_variable` runs them stage by stage.

Memory stays bounded because nothing is loaded whole: inputs are opened lazily and re-chunked
(:func:`_chunked`: whole years, all members, one level of a large 3-D variable per chunk).
Each variable is scored in a few ``dask.compute`` calls (:class:`~diagnostics.groups.Batch`):
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
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import dask
import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from . import align, cache, groups, physics
from .data import catalogue
from .data.errors import InputError, ensure_output_dir
from .data.grid import grid_of
from .data.provenance import digest, file_identity, versions as package_versions
from .data.timeaxis import Period, period_of, select_period
from .io.files import expand_paths
from .io.open import describe_grid, open_dataset
from .metrics import baselines, nino34
from .metrics.modes import select_domain
from .outputs import (OUTPUT_NAMES, PARTIAL_DIR, PREVIOUS_DIR, SPREAD_SKILL_NOTE, CorruptPartial, Results, load_partial,
                      retire_previous, save_partial, write_outputs)
from .schema import NOISE_FLOOR, REFERENCE, key

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
    physics: list[str] = field(default_factory=list)  # --physics NAME=DIR: E5 only (diagnostics.physics)
    variables: list[str] | None = None
    scheduler: str | None = None
    noise_floor: str | None = None  # other realisations of the reference's climate (--noise-floor)
    nino34: str = "relative"  # relative (AI-MIP) or absolute (CVDP / PMP) Nino-3.4 index (--nino34-index)
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
    #: daily (``day`` table) fields by subject name ("reference" too) and store name, for E4
    daily: dict[str, dict[str, xr.DataArray]] = field(default_factory=dict)


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


@dataclass(frozen=True)
class Specs:
    """The command's input specs, each parsed once: (name or None, path) of the ensembles and
    (model or None, scenario, path) of the warming runs."""

    reference: str
    ensembles: list[tuple[str | None, str]]
    scenarios: list[tuple[str | None, str, str]]

    @classmethod
    def parse(cls, cfg: Config) -> "Specs":
        """Parse every spec and check that each path exists (a typo fails in a second)."""
        phys = physics.physics_names(cfg.physics)
        try:
            own, phys_runs = physics.split_scenarios(cfg.scenarios, phys)
            scenarios = [align.parse_scenario(s) for s in own]
        except ValueError as exc:
            raise InputError(str(exc), "--scenario") from None
        ensembles = [align.parse_named(e) for e in cfg.ensembles]
        physics.check_names(phys, ensembles)
        if any(name == NOISE_FLOOR for name, _ in ensembles):
            raise InputError(f"the name {NOISE_FLOOR!r} is kept for --noise-floor; give the ensemble another",
                             "--ensemble")
        if cfg.noise_floor is not None:
            ensembles.append((NOISE_FLOOR, cfg.noise_floor))
        specs = cls(cfg.reference, ensembles, scenarios)
        phys_paths = list(phys.values()) + [p for _, _, p in phys_runs]
        for path in ([specs.reference] + [p for _, p in specs.ensembles] + [p for _, _, p in specs.scenarios]
                     + phys_paths):
            expand_paths(path)
        return specs


@dataclass
class Opened:
    """The inputs as opened, before alignment (grids, levels and months may still differ)."""

    reference: xr.Dataset
    ensembles: dict[str, xr.Dataset]
    scenarios: dict[str, dict[str, xr.Dataset]]
    paths: dict
    source: str  # the reference as given (named in errors about all inputs)

    def all(self) -> list[xr.Dataset]:
        return [self.reference, *self.ensembles.values(), *(d for s in self.scenarios.values() for d in s.values())]

    def map(self, fn) -> None:
        """Apply ``fn(ds)`` to every dataset."""
        self.reference = fn(self.reference)
        self.ensembles = {n: fn(d) for n, d in self.ensembles.items()}
        self.scenarios = {m: {k: fn(d) for k, d in s.items()} for m, s in self.scenarios.items()}


#: What the Nino-3.4 index may be computed from (:func:`nino_index`), opened beside the scored variables.
NINO34_INPUTS = ("tos", "ts", "sftlf")


def _open(spec: str, only: list[str] | None = None) -> tuple[xr.Dataset, list[str]]:
    """Open one input; ``only`` (store names): keep just those of its variables (see
    :func:`opened_variables`), so unscored fields are neither value-checked nor read."""
    files = expand_paths(spec)
    return open_dataset(files, only=only), files


def opened_variables(cfg: Config) -> list[str] | None:
    """The store variables md-diagnose opens: the ``--variables`` asked for and the Nino-3.4
    inputs; None (every variable) when no ``--variables`` was given."""
    wanted = _requested(cfg.variables)
    return None if wanted is None else [*wanted, *(v for v in NINO34_INPUTS if v not in wanted)]


def open_inputs(specs: Specs, cfg: Config, res: Results) -> Opened:
    """Open the reference (its first member), the ensembles and their scenario runs; an unreadable
    ensemble or scenario is skipped with its reason unless it is the only ensemble."""
    only = opened_variables(cfg)
    reference, ref_files = _open(specs.reference, only)
    if "member" in reference.dims and reference.sizes["member"] > 1:
        _say(f"reference has {reference.sizes['member']} members; using the first as the reference")
    reference = align.first_member(reference)
    align.check_global(grid_of(reference), specs.reference)
    opened = Opened(reference, {}, {}, {"reference": ref_files, "ensembles": {}, "scenarios": {}}, specs.reference)
    for given, path in specs.ensembles:
        try:
            ds, files = _open(path, only)
            name = _model_name(given, ds, path, set(opened.ensembles))
            align.check_global(grid_of(ds), path)
        except InputError as exc:
            if len(specs.ensembles) == 1:
                raise
            res.skip(f"ensemble {given or path}", str(exc))
            continue
        ds = align.with_member(ds)
        if name == NOISE_FLOOR:
            ds = without_reference_copies(ds, reference, path)
        if cfg.members_max is not None and ds.sizes["member"] > cfg.members_max:
            ds = ds.isel(member=slice(0, cfg.members_max))
        opened.ensembles[name] = ds
        opened.paths["ensembles"][name] = files
    if not opened.ensembles:
        raise InputError("no ensemble could be read", specs.ensembles[0][1])
    for model, scen, path in specs.scenarios:
        model = model or next(iter(opened.ensembles))
        if model not in opened.ensembles:
            res.skip(f"{model}.{scen}", f"scenario names model {model!r}, which is not among the ensembles "
                                        f"({', '.join(opened.ensembles)})")
            continue
        try:
            ds, files = _open(path, only)
            align.check_global(grid_of(ds), path)
        except InputError as exc:
            res.skip(f"{model}.{scen}", str(exc))
            continue
        opened.scenarios.setdefault(model, {})[scen] = align.with_member(ds)
        opened.paths["scenarios"].setdefault(model, {})[scen] = files
    return opened


def without_reference_copies(ds: xr.Dataset, reference: xr.Dataset, path: str) -> xr.Dataset:
    """The members of a noise-floor ensemble that are not the reference itself.

    ``md-synth --members N`` writes the reference as member 0; scored against itself it would
    lower the floor to zero. A member is a copy when its first-listed common variable equals the
    reference exactly over the first 12 common months (independent weather never does).
    """
    common = [v for v in ds.data_vars if v in reference.data_vars and "time" in ds[v].dims]
    months = sorted(set(ds["time"].values) & set(reference["time"].values))[:12] if common else []
    if not months:
        raise InputError("shares no variable and month with the reference: not realisations of its climate",
                         path)
    var = common[0]
    ref = reference[var].sel(time=months)
    same = [int(m) for m in ds["member"].values
            if ref.shape == ds[var].sel(member=m, time=months).shape
            and bool((ds[var].sel(member=m, time=months) == ref).all())]
    keep = [m for m in ds["member"].values if int(m) not in same]
    if len(keep) < 2:
        raise InputError(f"has {len(keep)} member(s) besides the reference; a noise floor needs 2 or more "
                         "(e.g. md-synth --members 6)", path)
    if same:
        _say(f"noise floor: left out member(s) {', '.join(map(str, same))} of {path}: equal to the reference")
    return ds.sel(member=keep)


def onto_common_grid(opened: Opened) -> str:
    """Regrid everything onto the coarsest grid (conservative coarsening only); returns its description."""
    target = align.common_grid([grid_of(d) for d in opened.all()])
    notes = []
    if not grid_of(opened.reference).same_as(target):
        notes.append(f"reference {describe_grid(opened.reference)}")
    notes += [f"{n} {describe_grid(d)}" for n, d in opened.ensembles.items() if not grid_of(d).same_as(target)]
    opened.map(lambda d: align.on_grid(d, target))
    grid_note = describe_grid(opened.reference)
    if notes:
        _say(f"regridded conservatively onto {grid_note}: " + "; ".join(notes))
    return grid_note


def onto_common_levels(opened: Opened) -> None:
    """Score 3-D variables on the pressure levels every input holds."""
    plev = align.common_plev(opened.all())
    if plev is None:
        return
    reference = opened.reference
    if plev.size == 0:
        raise InputError("the inputs share no pressure level (reference "
                         f"{(reference['plev'].values / 100).astype(int).tolist()} hPa)", opened.source)
    if "plev" in reference.dims and plev.size < reference.sizes["plev"]:
        _say(f"scoring pressure levels {(plev / 100).astype(int).tolist()} hPa: the levels every input holds")
    opened.map(lambda d: d.sel(plev=plev) if "plev" in d.dims else d)


def onto_common_months(opened: Opened, res: Results) -> Period:
    """The months every ensemble and the reference hold, matched by month index; the ensembles and
    scenarios relabelled with the reference's time axis and chunked. Returns the window."""
    ref_period = period_of(opened.reference)
    window: Period | None = ref_period
    for name in list(opened.ensembles):
        ens_period = period_of(opened.ensembles[name])
        common = align.overlap(ens_period, ref_period)
        if common is None:
            msg = f"no month in common with the reference (ensemble {ens_period}, reference {ref_period})"
            if len(opened.ensembles) == 1:
                raise InputError(msg, opened.paths["ensembles"][name][0])
            res.skip(f"ensemble {name}", msg)
            del opened.ensembles[name]
            continue
        if common != ens_period:
            _say(f"the reference ({ref_period}) does not cover all of {name} ({ens_period}); scoring {common}")
        window = align.overlap(window, common) if window else None
    if window is None or not opened.ensembles:
        raise InputError("the ensembles and the reference share no month", opened.source)
    axis = select_period(opened.reference, window)
    members = max(d.sizes["member"] for d in opened.ensembles.values())
    opened.reference = _chunked(axis, members)
    for name in opened.ensembles:
        opened.ensembles[name] = _chunked(align.on_time_axis(opened.ensembles[name], axis, name), members)
    for model, runs in opened.scenarios.items():
        for scen in list(runs):
            sp = align.overlap(period_of(runs[scen]), window)
            if sp is None:
                res.skip(f"{model}.{scen}", f"scenario shares no month with the historical window {window}")
                del runs[scen]
                continue
            runs[scen] = _chunked(align.on_time_axis(runs[scen], select_period(opened.reference, sp),
                                                     f"{model} {scen}"), members)
    return window


def clip_periods(cfg: Config, window: Period, res: Results) -> align.Window:
    """The train and test periods inside the window (None where they share no month)."""
    train, test = align.clip_period(cfg.train, window), align.clip_period(cfg.test, window)
    for pname, wanted, got in (("train", cfg.train, train), ("test", cfg.test, test)):
        if got is None:
            res.skip(f"{pname} period", f"the inputs' common months {window} do not reach the {pname} "
                                        f"period {wanted}")
        elif got != wanted:
            _say(f"{pname} period {wanted} clipped to {got} (the months all inputs hold)")
    return align.Window(window, train, test)


def scored_variables(cfg: Config, opened: Opened, res: Results) -> list[str]:
    """The state variables the reference and at least one ensemble hold (of those asked for)."""
    wanted = _requested(cfg.variables)
    reference, ensembles = opened.reference, opened.ensembles
    variables = []
    for v in (v for v in catalogue.store_names("state") if wanted is None or v in wanted):
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
    for g in groups.eager_groups():
        if g.channel not in variables and (wanted is None or g.channel in wanted):
            res.skip(g.name, f"{g.channel} is not in both the reference and an ensemble")
    if not variables:
        ens_vars = sorted({str(v) for d in ensembles.values() for v in d.data_vars} - {"time_bnds"})
        raise InputError(f"the ensembles ({', '.join(ens_vars) or 'none'}) and the reference "
                         f"({', '.join(sorted(map(str, reference.data_vars)))}) share no scored variable",
                         cfg.reference)
    return variables


def load_inputs(cfg: Config, res: Results, specs: Specs | None = None) -> Inputs:
    """Open, regrid and time-align every input; InputError when nothing can be compared."""
    opened = open_inputs(specs or Specs.parse(cfg), cfg, res)
    grid_note = onto_common_grid(opened)
    onto_common_levels(opened)
    window = clip_periods(cfg, onto_common_months(opened, res), res)
    variables = scored_variables(cfg, opened, res)
    daily = groups.aimip.daily_inputs(opened.paths, grid_of(opened.reference), variables, res)
    return Inputs(opened.reference, opened.ensembles, opened.scenarios, window, opened.paths, grid_note, variables,
                  daily)


# --------------------------------------------------------------------------- Nino-3.4
def nino_index(inputs: Inputs, res: Results, clim_period: Period,
               cfg_nino34: str = "relative") -> tuple[xr.DataArray | None, str]:
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
        # the 20S-20N band (it holds the Nino-3.4 box) read once into memory: the index is then
        # small numpy work, where lazily its groupby climatologies built graphs over every chunk
        band = select_domain(tos, nino34.TROPICS_LAT).compute()
        index = nino34.nino34_index(band, relative=cfg_nino34 == "relative", climatology_period=clim_period)
    except ValueError as exc:
        res.skip("nino34", str(exc))
        return None, ""
    index.attrs["convention"] = nino34.convention(cfg_nino34 == "relative")
    res.add(key(REFERENCE, "nino34", "index_std", period="all"), index.std("time", ddof=1))
    res.add_field(index, "nino34_index", REFERENCE, "nino34", period="all", units="K",
                  description=f"{nino34.convention(cfg_nino34 == 'relative')} from the {source}")
    return index, source


# --------------------------------------------------------------------------- scoring
def _channels(ds: xr.Dataset, var: str) -> list[groups.Channel]:
    v = catalogue.variable(var)
    if not v.is_3d:
        return [groups.Channel(var, var)]
    levels = [int(round(p / 100.0)) for p in ds[var]["plev"].values]
    return [groups.Channel(catalogue.channel_label(v.name, lev), var, lev * 100.0) for lev in levels]


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


def _compute(batch: groups.Batch, res: Results, what: str, debug: bool = False) -> None:
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


@dataclass
class Plan:
    """What one variable's scoring runs: its context, its subjects (the reference first), and the
    (group, subject) pairs of each stage that apply."""

    ctx: groups.Context
    subjects: list[groups.Subject]
    tasks: dict[str, list[tuple[groups.Group, groups.Subject]]]
    eager: list[groups.EagerGroup]

    def units(self) -> int:
        """Units of work for the progress bar (what each group declares)."""
        n = sum(g.units(self.ctx, s) for tasks in self.tasks.values() for g, s in tasks)
        ens = [s for s in self.subjects if s.kind == "ensemble"]
        return n + sum(g.units(self.ctx, s) for g in self.eager for s in ens)


def plan_variable(var: str, inputs: Inputs, cfg: Config, index: xr.DataArray | None,
                  clim_period: Period | None, res: Results) -> Plan:
    """The subjects of one variable (reference, ensembles, baselines) and the groups that apply."""
    ref = inputs.reference[var]
    w = inputs.window
    ctx = groups.Context(var=var, is_3d=catalogue.variable(var).is_3d, ref=ref,
                         channels=_channels(inputs.reference, var), periods=w.periods(), window=w.all,
                         clim_period=clim_period, index=index, spectra=cfg.spectra,
                         ref_daily=inputs.daily.get("reference", {}).get(var),
                         conditioned=frozenset(n for n, d in inputs.ensembles.items() if d.attrs.get("conditioning")),
                         spectra_period=("test", w.test) if w.test is not None else ("all", w.all))
    first = next(n for n, d in inputs.ensembles.items() if var in d.data_vars)
    subjects = [groups.Subject("reference", "reference", ref, ctx.periods)]
    for n, d in inputs.ensembles.items():
        if var in d.data_vars:
            runs = inputs.scenarios.get(n, {})
            subjects.append(groups.Subject(n, "ensemble", d[var], ctx.periods, first=n == first, scenarios={
                scen: sds[var] if var in sds.data_vars else None for scen, sds in runs.items()},
                daily=inputs.daily.get(n, {}).get(var)))
    if cfg.baselines and w.train is not None and w.test is not None:
        n_members = max(2, max(s.da.sizes["member"] for s in subjects if s.kind == "ensemble"))
        try:
            # one-month-ahead forecasts built from the reference (in-sample on the train period):
            # scored on the held-out test period only, as baselines.py advises
            for n, da in _baseline_fields(ref, w.train, w.test, n_members, cfg.seed).items():
                subjects.append(groups.Subject(n, "baseline", da, {"test": w.test}))
        except ValueError as exc:
            res.skip(f"baselines.{var}", str(exc))
    tasks = {stage: [(g, s) for s in subjects for g in groups.of_stage(stage) if g.applies(ctx, s)]
             for stage in ("single_pass", "two_pass")}
    eager = [g for g in groups.eager_groups() if g.applies_to_variable(var)]
    return Plan(ctx, subjects, tasks, eager)


def score_variable(var: str, plan: Plan, res: Results, cfg: Config, bar: tqdm) -> None:
    """Every metric group of one variable: stage 1 (single pass), EOFs, stage 2 (two passes)."""
    ctx, lab = plan.ctx, groups.label_of(plan.ctx.channels)

    # ---- stage 1: single-pass metrics of every subject, one dask.compute; graphs are built per
    # variable (plev kept) and filed per channel: with 7 levels this is 7x less graph construction
    batch, units = groups.Batch(), 0
    for g, subj in plan.tasks["single_pass"]:
        if _guard(res, f"{subj.name}.{lab}.{g.name}", g.build, batch, res, ctx, subj):
            units += g.units(ctx, subj)
    ensembles = [s for s in plan.subjects if s.kind == "ensemble"]
    subsets: dict[str, xr.DataArray] = {}
    if plan.eager:  # the 0-90N subsets the EOF analyses need, persisted by the same pass
        for subj in [plan.subjects[0], *ensembles]:
            batch.add(groups.northern_subset(subj.da), lambda v, n=subj.name: subsets.__setitem__(n, v))
    _compute(batch, res, f"*.{lab}", cfg.debug)
    bar.update(units)

    # ---- EOF modes on the persisted 0-90N subsets (small, eager)
    for g in plan.eager:
        if "reference" not in subsets:
            continue
        ens = {n: v for n, v in subsets.items() if n != "reference"}
        _guard(res, f"*.{g.name}", g.run_subsets, res, ens, subsets["reference"])
        bar.update(sum(g.units(ctx, s) for s in ensembles))

    # ---- stage 2: two-pass statistics, per ensemble: anomalies need the monthly climatology and
    # least-squares trends the time means before the products, so dask holds the field until the
    # first pass completes; hence per ensemble and, for large variables, per level. Groups of the
    # reference ride along with the first ensemble's batches.
    if clim_period_missing(ctx, res):
        return
    by_subject: dict[str, list[groups.Group]] = {}
    for g, subj in plan.tasks["two_pass"]:
        by_subject.setdefault(subj.name, []).append(g)
    reference = plan.subjects[0]
    for i, subj in enumerate(s for s in ensembles if s.name in by_subject):
        large = subj.da.nbytes > STAGE2_BYTES
        levels = [[c] for c in ctx.channels] if large else [ctx.channels]
        for chs in levels:
            sel = (lambda x: x) if chs is ctx.channels else chs[0].of
            sub_ctx = ctx.on(chs, sel)
            glab = groups.label_of(chs)
            runs = [(g, reference.on(sel)) for g in (by_subject.get("reference", []) if i == 0 else [])]
            runs += [(g, subj.on(sel)) for g in by_subject[subj.name]]
            # all groups in one batch: they share the monthly climatology and the anomaly chunks
            # (equal reductions have equal keys), so the field is read once and held once until
            # the climatology is known. Apart (until session 12) each re-read it, because xr.corr
            # and the regression's means then held their own anomalies as well (~4x the float32
            # field together at 1 deg); their one-pass kernels hold nothing. Measured at 1 deg,
            # 5 members x 555 months of tas: 93 -> 77 CPU-s, peak RSS 2.7 -> 3.2 GiB.
            batch, units = groups.Batch(), 0
            for g, s in runs:
                if _guard(res, f"{s.name}.{glab}.{g.name}", g.build, batch, res, sub_ctx, s):
                    units += g.units(sub_ctx, s)
            _compute(batch, res, f"{subj.name}.{glab}.{'/'.join(g.name for g, _ in runs)}", cfg.debug)
            bar.update(units)


def clim_period_missing(ctx: groups.Context, res: Results) -> bool:
    """True (and the two-pass groups skipped with the reason) when there is no climatology period."""
    if ctx.clim_period is not None:
        return False
    res.skip(f"*.{ctx.var}.variability/nino34", "no train period inside the inputs' common months for the "
                                                 "monthly climatology of the anomalies")
    return True


# --------------------------------------------------------------------------- provenance and run
def versions() -> dict[str, str]:
    """Versions of the packages md-diagnose's numbers depend on (``provenance.versions``)."""
    return package_versions(("monthly-diffusion", "xarray", "numpy", "dask", "distributed", "eofs", "numba",
                                "netCDF4", "zarr"))


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
        "nino34_index_convention": cfg.nino34,
        "scheduler": scheduler_name,
        "spread_skill_correction": SPREAD_SKILL_NOTE,
    }


def fingerprint(cfg: Config, inputs: Inputs) -> str:
    """Identity of a run for resuming: inputs (paths, sizes, modification times; zarr stores file by file), periods and options."""
    doc = {"files": file_identity(set(_flat_paths(inputs.paths))), "window": str(inputs.window), "variables": inputs.variables,
           "members_max": cfg.members_max, "baselines": cfg.baselines, "spectra": cfg.spectra,
           "seed": cfg.seed, "ensembles": cfg.ensembles, "scenarios": cfg.scenarios,
           "noise_floor": cfg.noise_floor, "nino34": cfg.nino34}
    return digest(doc)


def _flat_paths(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [p for v in obj.values() for p in _flat_paths(v)]
    return [p for v in obj for p in _flat_paths(v)]


def _resumed(out: Path, fp: str, var: str) -> Results | None:
    """The finished results of ``var`` an interrupted run left, or None; a corrupt one is said
    in one line and recomputed."""
    try:
        return load_partial(out, fp, var)
    except CorruptPartial as exc:
        _say(f"the saved partial results of {var} cannot be read ({exc}); recomputing {var}")
        return None


#: glibc's mallopt parameters M_TRIM_THRESHOLD (-1) and M_MMAP_THRESHOLD (-3), and the value
#: md-diagnose sets both to: blocks of at least 4 MiB (dask's larger chunks and per-chunk partial
#: maps) are mmapped, so handed back to the system when freed, and the heaps are trimmed. 4 MiB,
#: not 128 KiB: measured side by side at 1 deg (docs/diagnose.md), 128 KiB held 0.5 GiB less
#: but cost 52 % more CPU (every small chunk a fresh, kernel-zeroed mmap).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD, MALLOC_THRESHOLD_BYTES = -1, -3, 4 * 2**20


def return_freed_chunks() -> bool:
    """Fix glibc's mmap and trim thresholds at :data:`MALLOC_THRESHOLD_BYTES` (False off glibc).

    By default glibc raises its mmap threshold to the size of each mmapped block freed (up to
    32 MiB), so after the first chunks a threaded dask run allocates its chunks from the
    per-thread heaps, which keep the freed memory: at 1 deg md-diagnose held 3.7 GiB after its
    first pass with under 1 GiB in use. Fixed thresholds keep the RSS at what is in use
    (``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` do the same); values unchanged.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MALLOC_THRESHOLD_BYTES)
                    and libc.mallopt(_M_TRIM_THRESHOLD, MALLOC_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def run(cfg: Config, also_stale: tuple[str, ...] = ()) -> int:
    """Score and write metrics.json / metrics.nc; returns the exit code. InputError (exit 2) when
    nothing useful could be computed. The command layer (``md-diagnose``) renders the report.

    Once the inputs are known to align, the previous run's final files (and ``also_stale``,
    paths under ``cfg.out`` the command writes after this, e.g. the report) are moved aside,
    so a run killed half-way never leaves a finished-looking directory.
    """
    specs = Specs.parse(cfg)  # a typo fails before anything is created or opened
    return_freed_chunks()
    out = ensure_output_dir(cfg.out, "--out")
    said: set[str] = set()

    def say_once(text: str) -> None:  # the same skip line of every variable is said once
        if text not in said:
            said.add(text)
            _say(text)

    res = Results(say=say_once)
    inputs = load_inputs(cfg, res, specs)
    moved = retire_previous(out, OUTPUT_NAMES + tuple(also_stale))
    if moved:
        _say(f"moved the previous run's {', '.join(moved)} aside to {out / PREVIOUS_DIR}/ (a new run is under way)")
    clim_period = inputs.window.train or inputs.window.all
    if inputs.window.train is None:
        _say(f"no train period in the common months: anomalies use the climatology of {inputs.window.all}")
    with scheduler(cfg.scheduler) as sched_name:
        index, nino_source = nino_index(inputs, res, clim_period, cfg.nino34)
        var_results = {var: Results(say=say_once) for var in inputs.variables}
        plans = {var: plan_variable(var, inputs, cfg, index, clim_period, var_results[var])
                 for var in inputs.variables}
        fp = fingerprint(cfg, inputs)
        models_cache = cache.ModelCache.open(out, cfg, inputs, index)  # per-model results of earlier runs
        for plan in plans.values():
            models_cache.prune(plan)
        with tqdm(total=sum(p.units() for p in plans.values()), desc="md-diagnose", unit="unit",
                  disable=None if cfg.progress else True, file=sys.stderr) as bar:
            for var, plan in plans.items():
                bar.set_postfix_str(var)
                done = _resumed(out, fp, var)
                if done is not None:  # finished before an interruption: reuse
                    res.update(done)
                    bar.update(plan.units())
                    continue
                var_res = var_results[var]  # holds what planning skipped (e.g. baselines)
                score_variable(var, plan, var_res, cfg, bar)
                save_partial(out, fp, var, var_res)
                res.update(var_res)
        models_cache.save(res)  # store what was scored, add what was cached
        if cfg.physics:  # physics models: E5 only, over their own months
            phys = physics.physics_names(cfg.physics)
            inputs.paths["physics"] = physics.score_e5(phys, physics.split_scenarios(cfg.scenarios, phys)[1],
                                                       grid_of(inputs.reference), inputs.variables, res)
    if not res.metrics:
        raise InputError("no metric could be computed from these inputs (see the skipped lines above)",
                         cfg.reference)
    channels = [c.label for plan in plans.values() for c in plan.ctx.channels]
    models = list(inputs.ensembles) + [b for b in BASELINES if any(k.startswith(b + ".") for k in res.metrics)]
    js, nc = write_outputs(out, res, provenance(cfg, inputs, sched_name, nino_source), models, channels)
    shutil.rmtree(out / PARTIAL_DIR, ignore_errors=True)
    _say(f"wrote {js} ({len(res.metrics)} numbers, {len(res.skipped)} skipped) and {nc} "
         f"({len(res.fields)} fields)")
    return 0
