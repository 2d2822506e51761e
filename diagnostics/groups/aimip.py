"""The official AI-MIP scores beside ours, as ``ai2cm/AIMIP``'s evaluation computes them (cos-lat
weights, |lat| <= 87.5, each member scored, median / min / max over members; formulas in
:mod:`diagnostics.metrics.aimip` and docs/metrics.md, "AI-MIP E1-E5"):

* E1: RMS of the time-mean bias map (RMSB), on the analysis grid and on NeuralGCM's 2.8 deg grid;
* E2: least-squares trends of annual means per decade, global-mean series and trend-bias maps;
* E3: regression on the relative Nino-3.4 index, RMSE of the coefficient map against the reference's;
* E4: standard deviation of daily departures from the monthly mean (T850, Z500), where the
  submission's ``day`` files exist (:func:`daily_inputs` reads them beside the monthly ones);
* E5: perturbed minus control time means, in field units.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..align import overlap
from ..data.errors import InputError
from ..data.grid import Grid, grid_of
from ..data.timeaxis import Month, Period, month_index, period_of
from ..io.aimip import DAILY_VARIABLES, read_daily
from ..io.names import daily_files_beside
from ..io.regrid import regrid
from ..metrics import aimip
from ..metrics.nino34 import convention
from ..outputs import Results
from ..schema import REFERENCE, key
from .base import Batch, Context, Group, Subject, each_channel, label_of, register

#: NeuralGCM's grid spacing (deg): E1 is also scored there when the analysis grid is finer.
NEURALGCM_SPACING = 360.0 / 128
#: The channels E4 scores (the notebook's T850 and Z500).
DAILY_CHANNELS = ("ta850", "zg500")


def _member_label(value) -> str:
    return f"member{int(value)}"


@register
class AimipE1(Group):
    """E1 per period the ensemble is scored on (train, test): ``aimip_rmsb`` per member and
    ``aimip_rmsb_median`` / ``_min`` / ``_max`` over members, ``aimip_global_bias_median``."""

    name = "aimip_e1"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("aimip_rmsb", "aimip_rmsb_median", "aimip_rmsb_min", "aimip_rmsb_max", "aimip_global_bias_median",
               "aimip_rmsb_2p8deg", "aimip_rmsb_2p8deg_median", "aimip_rmsb_2p8deg_min", "aimip_rmsb_2p8deg_max")

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        periods = {n: p for n, p in subject.periods.items() if n in ("train", "test")}
        if not periods:
            return
        config = aimip.AimipEvaluation(periods=periods)
        e1 = aimip.e1_time_mean_bias(subject.da, ctx.ref, config)
        lazy = e1[["rmsb", "rmsb_median", "rmsb_min", "rmsb_max", "global_bias"]]
        self._on_neuralgcm_grid(batch, res, ctx, subject, config)

        def done(v: xr.Dataset, ch) -> None:
            for pname in v["period"].values:
                p = v.sel(period=pname)
                for stat in ("median", "min", "max"):
                    res.add(key(subject.name, ch.label, f"aimip_rmsb_{stat}", period=str(pname)), p[f"rmsb_{stat}"])
                res.add(key(subject.name, ch.label, "aimip_global_bias_median", period=str(pname)),
                        p["global_bias"].median("member") if "member" in p["global_bias"].dims else p["global_bias"])
                if "member" in p["rmsb"].dims:
                    for m in p["member"].values:
                        res.add(key(subject.name, ch.label, "aimip_rmsb", period=str(pname),
                                    member=_member_label(m)), p["rmsb"].sel(member=m))

        batch.add(lazy, each_channel(ctx.channels, done))

    def _on_neuralgcm_grid(self, batch: Batch, res: Results, ctx: Context, subject: Subject,
                           config: aimip.AimipEvaluation) -> None:
        """E1 with both time means regridded conservatively onto NeuralGCM's 2.8 deg grid
        (``..._2p8deg`` of the notebooks), when the analysis grid is finer than it."""
        if grid_of(ctx.ref).resolution >= NEURALGCM_SPACING - 1e-6:
            res.skip("*.aimip_rmsb_2p8deg",
                     f"the analysis grid ({grid_of(ctx.ref).resolution:g} deg) is not finer than NeuralGCM's "
                     "2.8 deg grid; the 2.8 deg RMSB would equal the native one")
            return
        e1 = aimip.e1_time_mean_bias(subject.da, ctx.ref, config, grid=aimip.neuralgcm_grid())

        def done(v: xr.Dataset, ch) -> None:
            for pname in v["period"].values:
                p = v.sel(period=pname)
                for stat in ("median", "min", "max"):
                    res.add(key(subject.name, ch.label, f"aimip_rmsb_2p8deg_{stat}", period=str(pname)),
                            p[f"rmsb_{stat}"])
                for m in (p["member"].values if "member" in p["rmsb"].dims else []):
                    res.add(key(subject.name, ch.label, "aimip_rmsb_2p8deg", period=str(pname),
                                member=_member_label(m)), p["rmsb"].sel(member=m))

        batch.add(e1[["rmsb", "rmsb_median", "rmsb_min", "rmsb_max"]], each_channel(ctx.channels, done))


def _whole_years(period: Period) -> Period | None:
    """The calendar years (Jan..Dec) inside ``period``; None when fewer than two (no trend)."""
    start = period.start if period.start.month == 1 else Month(period.start.year + 1, 1)
    end = period.end if period.end.month == 12 else Month(period.end.year - 1, 12)
    return Period(start, end) if end.year - start.year + 1 >= 2 else None


@register
class AimipE2(Group):
    """E2 per period (train, test; the whole calendar years inside it): the least-squares trend of
    annual means against year / 10 of each member's cos-lat global mean (``aimip_global_trend``) and
    its median / min / max, the reference's, the error of the median, and the RMS of each member's
    trend-bias map (``aimip_trend_bias_rms``); fields: the member-mean trend-bias map and the
    annual global-mean series."""

    name = "aimip_e2"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("aimip_global_trend", "aimip_global_trend_median", "aimip_global_trend_min",
               "aimip_global_trend_max", "aimip_global_trend_error_median", "aimip_trend_bias_rms",
               "aimip_trend_bias_rms_median", "aimip_trend_bias_rms_min", "aimip_trend_bias_rms_max")
    fields = ("aimip_trend_bias", "aimip_global_mean_series")

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        periods = {n: _whole_years(p) for n, p in subject.periods.items() if n in ("train", "test")}
        for n in [n for n, p in periods.items() if p is None]:
            res.skip(f"{subject.name}.{label_of(ctx.channels)}.aimip_e2.{n}",
                     f"the {n} period {subject.periods[n]} holds fewer than two whole calendar years")
            del periods[n]
        if not periods:
            return
        e2 = aimip.e2_trends(subject.da, ctx.ref, aimip.AimipEvaluation(periods=periods))
        mean_bias = e2["trend_bias"].mean("member") if "member" in e2["trend_bias"].dims else e2["trend_bias"]
        lazy = xr.Dataset({**{k: e2[k] for k in ("global_trend", "reference_global_trend", "trend_bias_rms",
                                                   "global_mean_series", "reference_global_mean_series")},
                           **{f"{k}_{s}": e2[f"{k}_{s}"] for k in ("global_trend", "trend_bias_rms")
                              for s in ("median", "min", "max")},
                           "trend_bias_map": mean_bias})
        units = e2["global_trend"].attrs.get("units", "")

        def done(v: xr.Dataset, ch) -> None:
            for pname in v["period"].values:
                p, per = v.sel(period=pname), str(pname)
                years = ~p["global_mean_series"].isnull().all([d for d in p["global_mean_series"].dims
                                                               if d != "year"])
                for k in ("global_trend", "trend_bias_rms"):
                    for stat in ("median", "min", "max"):
                        res.add(key(subject.name, ch.label, f"aimip_{k}_{stat}", period=per), p[f"{k}_{stat}"])
                    for m in (p["member"].values if "member" in p[k].dims else []):
                        res.add(key(subject.name, ch.label, f"aimip_{k}", period=per, member=_member_label(m)),
                                p[k].sel(member=m))
                res.add(key(subject.name, ch.label, "aimip_global_trend_error_median", period=per),
                        p["global_trend_median"] - p["reference_global_trend"])
                if subject.first:
                    res.add(key(REFERENCE, ch.label, "aimip_global_trend", period=per), p["reference_global_trend"])
                    res.add_field(p["reference_global_mean_series"].isel(year=np.flatnonzero(years.values)),
                                  "aimip_global_mean_series", REFERENCE, ch.label, period=per,
                                  description="cos-lat global mean (|lat| <= 87.5) of the annual means (AI-MIP E2)")
                res.add_field(p["global_mean_series"].isel(year=np.flatnonzero(years.values)),
                              "aimip_global_mean_series", subject.name, ch.label, period=per,
                              description="cos-lat global mean (|lat| <= 87.5) of each member's annual means "
                                          "(AI-MIP E2)")
                res.add_field(p["trend_bias_map"], "aimip_trend_bias", subject.name, ch.label, period=per,
                              units=units, long_name="trend bias (model - reference)",
                              description="member mean of the trend-bias maps, trends of annual means per "
                                          "decade (AI-MIP E2)")

        batch.add(lazy, each_channel(ctx.channels, done))


@register
class AimipE3(Group):
    """E3 per period (train, test, all = 1979-01..2024-12 within the window): each member's regression map on the relative, 3-month
    smoothed Nino-3.4 index and the cos-lat RMSE of its difference from the reference's map
    (``aimip_enso_rmse``), median / min / max over members; field: the member-mean map of the
    whole window (``all``) and the reference's."""

    name = "aimip_e3"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("aimip_enso_rmse", "aimip_enso_rmse_median", "aimip_enso_rmse_min", "aimip_enso_rmse_max")
    fields = ("aimip_enso_coefficient",)

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return super().applies(ctx, subject) and ctx.var not in ("tos", "siconc", "sftlf")

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        what = f"{subject.name}.{label_of(ctx.channels)}.aimip_e3"
        if ctx.index is None:
            res.skip(what, "no Nino-3.4 index (see the nino34 line)")
            return
        if ctx.index.attrs.get("convention", convention(True)) != convention(True):
            res.skip(what, "E3 regresses on the relative Nino-3.4 index; this run uses the absolute one "
                           "(--nino34-index relative)")
            return
        periods = {n: p for n, p in subject.periods.items() if n in ("train", "test")}
        # "all" is the official 1979-01..2024-12 (the spin-up months 1978-10..12 left out) within the window
        periods["all"] = overlap(aimip.ENSO_PERIOD, ctx.window) or ctx.window
        e3 = aimip.e3_enso(subject.da, ctx.ref, ctx.index, aimip.AimipEvaluation(enso_periods=periods))
        coef = e3["coefficient"].mean("member") if "member" in e3["coefficient"].dims else e3["coefficient"]
        lazy = xr.Dataset({"coefficient_rmse": e3["coefficient_rmse"], "coefficient_map": coef,
                           "reference_map": e3["reference_coefficient"],
                           **{f"coefficient_rmse_{s}": e3[f"coefficient_rmse_{s}"] for s in ("median", "min", "max")}})
        units = e3["coefficient"].attrs.get("units", "")

        def done(v: xr.Dataset, ch) -> None:
            for pname in v["period"].values:
                p, per = v.sel(period=pname), str(pname)
                for stat in ("median", "min", "max"):
                    res.add(key(subject.name, ch.label, f"aimip_enso_rmse_{stat}", period=per),
                            p[f"coefficient_rmse_{stat}"])
                for m in (p["member"].values if "member" in p["coefficient_rmse"].dims else []):
                    res.add(key(subject.name, ch.label, "aimip_enso_rmse", period=per, member=_member_label(m)),
                            p["coefficient_rmse"].sel(member=m))
                if per != "all":  # maps of the whole window only: the train/test numbers are in metrics.json
                    continue
                desc = f"regression on the {convention(True)} (AI-MIP E3: raw field, population moments)"
                res.add_field(p["coefficient_map"], "aimip_enso_coefficient", subject.name, ch.label, period=per,
                              units=units, description=f"member mean of the maps; {desc}")
                if subject.first:
                    res.add_field(p["reference_map"], "aimip_enso_coefficient", REFERENCE, ch.label, period=per,
                                  units=units, description=desc)

        batch.add(lazy, each_channel(ctx.channels, done))


# ----------------------------------------------------------------------------- E4 (daily files)

def _daily_months(daily: xr.DataArray, min_days: int = 28) -> set[int]:
    """Month indices with at least ``min_days`` days in ``daily`` (whole months, any calendar)."""
    values, counts = np.unique(month_index(daily["time"]), return_counts=True)
    return {int(v) for v, c in zip(values, counts) if c >= min_days}


def daily_period(months: set[int], official: Period = aimip.DAILY_PERIOD) -> Period | None:
    """The official E4 period (1979) when every month of it is in ``months``, else the longest run
    of consecutive months there (the earliest of equals); None when ``months`` is empty."""
    if all(m in months for m in range(official.start.index, official.end.index + 1)):
        return official
    best: tuple[int, int] | None = None
    for m in sorted(months):
        if m - 1 in months:
            continue
        end = m
        while end + 1 in months:
            end += 1
        if best is None or end - m > best[1] - best[0]:
            best = (m, end)
    return None if best is None else Period(Month.from_index(best[0]), Month.from_index(best[1]))


def daily_inputs(paths: dict, grid: Grid, variables: list[str], res: Results) -> dict[str, dict[str, xr.DataArray]]:
    """The daily fields E4 needs, by subject ("reference" and each ensemble) and store name.

    Read from the ``day`` files beside each input's monthly files (:func:`.names.daily_files_beside`)
    and regridded conservatively onto the analysis ``grid``. An input without them, or whose
    daily files cannot be read, is said in one skip line; never fatal.
    """
    wanted = tuple(v for v in DAILY_VARIABLES if v in variables)
    if not wanted:
        return {}
    out: dict[str, dict[str, xr.DataArray]] = {}
    sources = {REFERENCE: paths.get("reference", []), **paths.get("ensembles", {})}
    for name, files in sources.items():
        found = daily_files_beside([f for f in files if str(f).endswith(".nc")])
        if not found.files:
            why = ("no day-table files beside its monthly files: E4 is scored without the reference side"
                   if name == REFERENCE else "no day-table files beside its monthly files (E4 needs daily "
                                             "ta850 / zg500)")
            res.skip(f"{name}.aimip_e4", why)
            continue
        try:
            fields = read_daily(found.files, wanted)
            if fields and name == REFERENCE:  # one realisation, like the monthly reference (its first member)
                fields = {v: da.isel(member=0, drop=True) if "member" in da.dims else da for v, da in fields.items()}
            # the monthly fields' regrid (same method choice and checks), so departures subtract like from like
            # (one variable at a time: their days may differ, a joint Dataset would pad them with NaN)
            regridded = {v: regrid(da.to_dataset(name=v), grid, source=name)[v] for v, da in fields.items()}
        except (InputError, ValueError, KeyError, OSError) as exc:  # a bad day file costs E4 only
            res.skip(f"{name}.aimip_e4", f"daily files not read: {str(exc).splitlines()[0] if str(exc) else exc!r}")
            continue
        if not fields:
            res.skip(f"{name}.aimip_e4", f"its day-table files ({found.summary}) hold no {' or '.join(wanted)}")
            continue
        out[name] = {v: regridded[v] for v in fields}
    return out


@register
class AimipE4(Group):
    """E4 (T850, Z500) where daily files exist: each member's std (ddof 0) of daily departures from
    its own monthly mean over the official 1979 (else the longest run of whole daily months the
    inputs share), cos-lat global mean ``aimip_daily_std_global`` and median / min / max; with
    the reference's daily files also ``aimip_daily_std_error_rms`` (RMS of the std-error map)."""

    name = "aimip_e4"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("aimip_daily_std_global", "aimip_daily_std_global_median", "aimip_daily_std_global_min",
               "aimip_daily_std_global_max", "aimip_daily_std_error_rms", "aimip_daily_std_error_rms_median",
               "aimip_daily_std_error_rms_min", "aimip_daily_std_error_rms_max")
    fields = ("aimip_daily_std",)

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return (super().applies(ctx, subject) and subject.daily is not None
                and any(c.label in DAILY_CHANNELS for c in ctx.channels))

    def units(self, ctx: Context, subject: Subject) -> int:
        return sum(c.label in DAILY_CHANNELS for c in ctx.channels)

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        for ch in (c for c in ctx.channels if c.label in DAILY_CHANNELS):
            self._channel(batch, res, ctx, subject, ch)

    def _channel(self, batch: Batch, res: Results, ctx: Context, subject: Subject, ch) -> None:
        what = f"{subject.name}.{ch.label}.aimip_e4"
        daily, monthly = ch.of(subject.daily), ch.of(subject.da)
        members = [m for m in daily["member"].values if m in set(monthly["member"].values)]
        if not members:
            res.skip(what, "the daily files' members are none of the monthly files' members")
            return
        daily, monthly = daily.sel(member=members), monthly.sel(member=members)
        ref_daily = None if ctx.ref_daily is None else ch.of(ctx.ref_daily)
        months = _daily_months(daily) & set(month_index(monthly["time"]).tolist())
        if ref_daily is not None:
            months &= _daily_months(ref_daily)
        period = daily_period(months)
        if period is None:
            res.skip(what, "the daily files share no whole month with the monthly window"
                     + (" and the reference's daily files" if ref_daily is not None else ""))
            return
        if period != aimip.DAILY_PERIOD:
            res.skip(f"{what}.official_period", f"the daily files do not cover {aimip.DAILY_PERIOD}; "
                                                f"E4 is scored over {period}")
        std = aimip.latitude_band(aimip.daily_departure_std(daily, monthly, period))
        glob = aimip.coslat_mean(std)
        lazy = {"std": std, "global": glob, **{f"global_{s}": v for s, v in aimip.member_summary(glob).items()}}
        if ref_daily is not None:
            ref_std = aimip.latitude_band(aimip.daily_departure_std(ref_daily, ch.of(ctx.ref), period))
            std_al, ref_al = xr.align(std, ref_std, join="exact")
            err = aimip.coslat_rms(std_al - ref_al)
            lazy.update(error=err, ref_global=aimip.coslat_mean(ref_std),
                        **{f"error_{s}": v for s, v in aimip.member_summary(err).items()})
        units = subject.daily.attrs.get("units", "")

        def done(v: xr.Dataset) -> None:
            for name, metric in (("global", "aimip_daily_std_global"), ("error", "aimip_daily_std_error_rms")):
                if name not in v:
                    continue
                for stat in ("median", "min", "max"):
                    res.add(key(subject.name, ch.label, f"{metric}_{stat}"), v[f"{name}_{stat}"])
                for m in v["member"].values:
                    res.add(key(subject.name, ch.label, metric, member=_member_label(m)), v[name].sel(member=m))
            if "ref_global" in v and subject.first:
                res.add(key(REFERENCE, ch.label, "aimip_daily_std_global"), v["ref_global"])
            res.add_field(v["std"].mean("member"), "aimip_daily_std", subject.name, ch.label, units=units,
                          long_name="std of daily departures from the monthly mean",
                          description=f"member mean, population std over the days of {period} (AI-MIP E4)")

        batch.add(xr.Dataset(lazy), done)


@register
class AimipE5(Group):
    """E5 of each scenario run over the months it shares with the historical run (the official
    period is 1978-10..2024-12; a shorter run uses its own): ``aimip_response_global_median`` /
    ``_min`` / ``_max`` over members, in field units (not per K: that is ``warming_per_K_global``)."""

    name = "aimip_e5"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("aimip_response_global_median", "aimip_response_global_min", "aimip_response_global_max")

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return super().applies(ctx, subject) and bool(subject.scenarios)

    def units(self, ctx: Context, subject: Subject) -> int:
        return len(ctx.channels) * len(subject.scenarios)

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        for scen, sda in subject.scenarios.items():
            if sda is None:
                res.skip(f"{subject.name}.{label_of(ctx.channels)}.aimip_e5.{scen}",
                         f"{ctx.var} not in the {scen} run of {subject.name}")
                continue
            span: Period = period_of(sda)
            config = aimip.AimipEvaluation(response_period=span)
            e5 = aimip.e5_response(sda, subject.da.sel(time=sda["time"]), config)
            lazy = e5[[f"global_response_{s}" for s in ("median", "min", "max")]]

            def done(v: xr.Dataset, ch, scen=scen) -> None:
                for stat in ("median", "min", "max"):
                    res.add(key(subject.name, ch.label, f"aimip_response_global_{stat}", scenario=scen),
                            v[f"global_response_{stat}"])

            batch.add(lazy, each_channel(ctx.channels, done))
