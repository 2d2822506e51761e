"""What a metric group is, what it scores, and the registry ``md-diagnose`` loops over.

A :class:`Group` is a small class: its ``name`` (used in skip lines), its ``stage``, the kinds of
:class:`Subject` it ``applies_to``, the ``metrics`` (metrics.json key names) and ``fields``
(metrics.nc ``diagnostic`` attributes) it writes, and its units of work. ``build`` adds *lazy*
results (dask-backed xarray objects) with a callback that files each computed value into
:class:`~diagnostics.outputs.Results`; the pipeline computes each stage's batch with one
``dask.compute``, so every input chunk is read once for all the groups of that stage.

Stages (WeatherBench 2's evaluation loops over its metrics the same way):

- ``single_pass``: reductions over time in one pass (bias maps, CRPS, spectra, warming);
- ``two_pass``: statistics that need a time mean or the monthly climatology before the rest
  (trends, anomaly statistics), computed per ensemble and, for large variables, per level;
- ``eof``: eager EOF analyses on the small 0-90N subsets the single-pass batch persisted.

Adding a metric: a group class in its module of :mod:`diagnostics.groups`, decorated with
:func:`register`, its test and its entry in docs/metrics.md. Nothing else.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Literal

import dask
import xarray as xr

from ..data.timeaxis import Period
from ..outputs import Results

Stage = Literal["single_pass", "two_pass", "eof"]
Kind = Literal["reference", "ensemble", "baseline"]
STAGES: tuple[Stage, ...] = ("single_pass", "eof", "two_pass")


@dataclass
class Batch:
    """Lazy results and what to do with each once computed."""

    items: list[tuple[Any, Callable[[Any], None]]] = field(default_factory=list)

    def add(self, lazy: Any, done: Callable[[Any], None]) -> None:
        self.items.append((lazy, done))

    def add_field(self, results: Results, lazy: xr.DataArray, *args, **kwargs) -> None:
        self.add(lazy, lambda v, a=args, k=kwargs: results.add_field(v, *a, **k))

    def compute(self, **dask_kwargs) -> None:
        """One ``dask.compute`` for every item (shared input chunks read once), then the callbacks.

        Datasets are passed as their DataArrays: ``dask.compute`` of an ``xr.Dataset`` whose
        0-d variables depend on each other (``spread_skill`` = spread / RMSE) fails in
        dask 2026.8 with "Missing dependency" after graph optimisation; DataArrays do not.
        """
        if not self.items:
            return
        flat: list[xr.DataArray] = []
        for lazy, _ in self.items:
            flat.extend(lazy.data_vars.values() if isinstance(lazy, xr.Dataset) else [lazy])
        with warnings.catch_warnings():
            # 0/0 in ratios of empty or constant cells (NaN by design, reported as null)
            warnings.simplefilter("ignore", RuntimeWarning)
            values = iter(dask.compute(*flat, **dask_kwargs))
        for lazy, done in self.items:
            if isinstance(lazy, xr.Dataset):
                done(xr.Dataset({name: next(values) for name in lazy.data_vars}, attrs=lazy.attrs))
            else:
                done(next(values))
        self.items.clear()


@dataclass(frozen=True)
class Channel:
    """One scored channel: its label (``ta850``), variable (``ta``) and level in Pa (or None)."""

    label: str
    variable: str
    plev_pa: float | None = None

    def of(self, da: xr.DataArray) -> xr.DataArray:
        """This channel of a variable's field."""
        if self.plev_pa is None or "plev" not in da.dims:  # already this level's field
            return da
        return da.sel(plev=self.plev_pa, drop=True)


def label_of(chs: list[Channel]) -> str:
    """Label of a channel group in messages: the channel, or the variable of several levels."""
    return chs[0].label if len(chs) == 1 else chs[0].variable


def each_channel(chs: list[Channel], done: Callable[[Any, Channel], None]) -> Callable[[Any], None]:
    """A callback that files a computed result of a whole variable (``plev`` kept) per channel.

    Groups build one graph per variable, not per level: the metric functions keep ``plev``,
    and building graphs (not computing them) dominates small runs.
    """
    def run(value: Any) -> None:
        for ch in chs:
            done(ch.of(value), ch)
    return run


def ensemble_mean(da: xr.DataArray) -> xr.DataArray:
    """Mean over members, NaN where any member misses the cell (the masking rule of
    :func:`diagnostics.metrics.climatology.bias_map`: a mask that differs between members
    must not bias the mean towards the members that have the cell)."""
    return da.mean("member", keep_attrs=True, skipna=False) if "member" in da.dims else da


@dataclass(frozen=True)
class Subject:
    """What one group run scores: the reference, an ensemble or a baseline, on one variable.

    ``periods`` are the named periods it is scored on (baselines: the test period only);
    ``first`` marks the first ensemble, whose groups also write the reference's side
    (reference spectra, std and regression maps) once. ``scenarios`` are its warming runs.
    """

    name: str
    kind: Kind
    da: xr.DataArray
    periods: dict[str, Period]
    first: bool = False
    scenarios: dict[str, xr.DataArray | None] = field(default_factory=dict)
    #: the subject's daily (``day`` table) field of this variable, when its files hold one (E4)
    daily: xr.DataArray | None = None

    @property
    def store_maps(self) -> bool:
        """Maps are written for ensembles (baselines get their numbers only)."""
        return self.kind == "ensemble"

    def on(self, sel: Callable[[xr.DataArray], xr.DataArray]) -> "Subject":
        """The same subject with ``sel`` applied to its field (one level of a 3-D variable)."""
        return Subject(self.name, self.kind, sel(self.da), self.periods, self.first, self.scenarios, self.daily)


@dataclass(frozen=True)
class Context:
    """One variable's shared inputs: the reference field, its channels and the evaluation periods.

    ``window`` is the whole common window, ``clim_period`` the climatology of anomalies (the
    train period, else the window), ``spectra_period`` (name, period) the test period (else
    the window), ``index`` the Niño-3.4 index in K (None when it could not be computed).
    """

    var: str
    is_3d: bool
    ref: xr.DataArray
    channels: list[Channel]
    periods: dict[str, Period]
    window: Period
    clim_period: Period | None
    spectra_period: tuple[str, Period]
    index: xr.DataArray | None = None
    spectra: bool = True
    #: the reference's daily field of this variable, when its files hold one (E4)
    ref_daily: xr.DataArray | None = None
    #: the ensembles generated around a conditioning run or guided (their files' ``conditioning``
    #: attribute, written by emulator-run --around / --guide)
    conditioned: frozenset[str] = frozenset()
    #: lazy results several groups or subjects share (the reference's time means), built once
    #: per variable: building xarray/dask graphs, not computing them, dominates small runs
    shared: dict = field(default_factory=dict, compare=False, repr=False)

    def once(self, key: tuple, build: Callable[[], Any]) -> Any:
        """``build()`` the first time ``key`` is asked for, the same lazy object afterwards (a
        ``build`` that raises caches nothing)."""
        if key not in self.shared:
            self.shared[key] = build()
        return self.shared[key]

    def on(self, chs: list[Channel], sel: Callable[[xr.DataArray], xr.DataArray]) -> "Context":
        """The context of a subset of the channels (``sel`` picks their level)."""
        return Context(self.var, self.is_3d, sel(self.ref), chs, self.periods, self.window, self.clim_period,
                       self.spectra_period, self.index, self.spectra, self.ref_daily)


class Group(ABC):
    """One metric group (see the module docstring)."""

    name: ClassVar[str]
    stage: ClassVar[Stage]
    applies_to: ClassVar[frozenset[Kind]]
    #: metrics.json metric names (the third key part) this group writes
    metrics: ClassVar[tuple[str, ...]] = ()
    #: metrics.nc ``diagnostic`` attributes this group writes
    fields: ClassVar[tuple[str, ...]] = ()

    def applies(self, ctx: Context, subject: Subject) -> bool:
        """Whether this group scores ``subject`` on ``ctx``'s variable (beyond its kind)."""
        return subject.kind in self.applies_to

    def units(self, ctx: Context, subject: Subject) -> int:
        """Units of work for the progress bar: one per channel."""
        return len(ctx.channels)

    @abstractmethod
    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        """Add this group's lazy results for ``subject`` to ``batch``."""


class EagerGroup(Group, ABC):
    """A group of the ``eof`` stage: eager analyses of the 0-90N subsets of its channel."""

    stage: ClassVar[Stage] = "eof"
    channel: ClassVar[str]

    def applies_to_variable(self, var: str) -> bool:
        return self.channel == var

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:  # pragma: no cover
        raise TypeError(f"{self.name} runs eagerly on subsets (run_subsets)")

    @abstractmethod
    def run_subsets(self, res: Results, models: dict[str, xr.DataArray], ref: xr.DataArray) -> None:
        """Score ``models`` (numpy-backed 0-90N subsets) against ``ref``'s subset."""


#: The groups by name, in the order md-diagnose runs them (the order they were registered).
REGISTRY: dict[str, Group] = {}


def register(cls: type[Group]) -> type[Group]:
    """Class decorator: put one instance of a group into :data:`REGISTRY` under its name."""
    if cls.name in REGISTRY:
        raise ValueError(f"metric group {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def of_stage(stage: Stage) -> list[Group]:
    """The registered groups of one stage, in registry order."""
    return [g for g in REGISTRY.values() if g.stage == stage]
