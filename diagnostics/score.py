"""The metric groups of ``md-diagnose``: which metric functions run on which inputs, under which keys.

Every group adds *lazy* results (dask-backed xarray objects) to a :class:`Batch` with a
callback that files the computed value into :class:`~diagnostics.outputs.Results`. The
pipeline computes a batch with one ``dask.compute`` call, so every input chunk is read
once for all the metrics of the batch. Groups never compute anything themselves, except
:func:`modes_from_subsets` which runs the (eager, small) EOF analyses on data persisted by
an earlier batch.

Metric formulas live in :mod:`diagnostics.metrics`; this module only names the results
(keys ``<model>.<channel>.<metric>[.<period>][.<season>]``, docs/metrics-schema.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import dask
import numpy as np
import xarray as xr

from .data.grid import area_weights, global_mean
from .data.timeaxis import Period, period_of
from .metrics import climatology, crps, modes, nino34, rank_histogram, spectra, spread_skill, trends
from .metrics import variability, warming
from .metrics.pattern import weighted_rms
from .outputs import Results, metric_key

#: Spectral bands (total wavenumber l or zonal wavenumber k): large, synoptic, small scales.
BANDS: tuple[tuple[int, int | None], ...] = ((1, 10), (10, 30), (30, None))


@dataclass
class Batch:
    """Lazy results and what to do with each once computed."""

    items: list[tuple[Any, Callable[[Any], None]]] = field(default_factory=list)

    def add(self, lazy: Any, done: Callable[[Any], None]) -> None:
        self.items.append((lazy, done))

    def add_number(self, results: Results, key: str, lazy: Any) -> None:
        self.add(lazy, lambda v, key=key: results.add(key, v))

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


def _ensemble_mean(da: xr.DataArray) -> xr.DataArray:
    return da.mean("member", keep_attrs=True) if "member" in da.dims else da


# --------------------------------------------------------------------------- E1 climatology
def climatology_group(batch: Batch, res: Results, model: str, da: xr.DataArray, ref: xr.DataArray,
                      chs: list[Channel], periods: dict[str, Period], store_maps: bool) -> None:
    """Time-mean bias maps (annual and seasons) and their global mean / RMS, per period.

    Only the maps are lazy; their global numbers are taken from the computed maps (cheap),
    which keeps the dask graph to the reductions over time.
    """
    units = ref.attrs.get("units", "")
    for pname, period in periods.items():
        for season in climatology.SEASONS:
            try:
                bias = climatology.bias_map(da, ref, period, season)
            except ValueError as exc:  # e.g. no complete DJF season in a short period
                res.skip(f"{model}.{label_of(chs)}.bias.{pname}.{season}", str(exc))
                continue

            def done(b: xr.DataArray, ch: Channel, pname=pname, season=season) -> None:
                summary = climatology.bias_summary(b)
                res.add(metric_key(model, ch.label, "bias_mean", pname, season), summary["mean"])
                res.add(metric_key(model, ch.label, "bias_rms", pname, season), summary["rms"])
                if store_maps:
                    res.add_field(b, "bias", model, ch.label, period=pname, season=season, units=units,
                                  long_name=f"time-mean bias, {season}",
                                  description=f"{model} ensemble-mean minus reference time mean over the "
                                              f"{pname} period, {season}; positive = model too high")

            batch.add(bias, each_channel(chs, done))


def reference_climatology(batch: Batch, res: Results, ref: xr.DataArray, chs: list[Channel],
                          periods: dict[str, Period]) -> None:
    """The reference's own time means (the middle panel of model | reference | difference)."""
    for pname, period in periods.items():
        for season in climatology.SEASONS:
            try:
                mean = climatology.time_mean(ref, period, season)
            except ValueError:
                continue
            batch.add(mean, each_channel(chs, lambda v, ch, pname=pname, season=season: res.add_field(
                v, "climatology", "reference", ch.label, period=pname, season=season,
                long_name=f"reference time mean, {season}",
                description=f"reference time mean over the {pname} period, {season}")))


def zonal_group(batch: Batch, res: Results, model: str, da: xr.DataArray, ref: xr.DataArray, var: str,
                periods: dict[str, Period]) -> None:
    """Zonal-mean (plev, lat) annual bias sections of a 3-D variable, per period."""
    for pname, period in periods.items():
        zb = climatology.zonal_mean_bias(da, ref, period, "ANN")
        batch.add_field(res, zb, "zonal_bias", model, var, period=pname, season="ANN",
                        description=f"zonal-mean time-mean bias of {var} (model minus reference) over the "
                                    f"{pname} period, pressure against latitude")


# --------------------------------------------------------------------------- E2 trends
def trends_group(batch: Batch, res: Results, model: str, da: xr.DataArray, ref: xr.DataArray, chs: list[Channel],
                 period: Period, store_maps: bool) -> None:
    """Least-squares trends per decade over the whole evaluation window and their difference.

    Lazy: the member trend maps and the reference trend map; from them (as
    :func:`diagnostics.metrics.trends.trend_difference` does): the ensemble-mean trend map,
    its area-weighted global mean, the global difference and the RMS of the map difference.
    """
    lazy = xr.Dataset({"model": trends.linear_trend(da, period), "reference": trends.linear_trend(ref, period)})

    def done(t: xr.Dataset, ch: Channel) -> None:
        m, r = _ensemble_mean(t["model"]), t["reference"]
        res.add(metric_key(model, ch.label, "trend_global", "all"), global_mean(m))
        res.add(metric_key(model, ch.label, "trend_global_diff", "all"), global_mean(m) - global_mean(r))
        res.add(metric_key(model, ch.label, "trend_map_rms_diff", "all"), weighted_rms(m, r))
        if store_maps:
            res.add_field(m, "trend", model, ch.label, period="all", units=t["model"].attrs.get("units", ""),
                          long_name="linear trend", description=f"{model} ensemble-mean linear trend per decade")

    batch.add(lazy, each_channel(chs, done))
    if store_maps:
        series = global_mean(da)
        series.attrs = {"units": ref.attrs.get("units", ""), "long_name": "area-weighted global mean"}
        batch.add(series, each_channel(chs, lambda v, ch: res.add_field(
            v, "global_mean_series", model, ch.label, period="all",
            description=f"area-weighted global-mean monthly series of each {model} member")))


def reference_trends(batch: Batch, res: Results, ref: xr.DataArray, chs: list[Channel], period: Period) -> None:
    """The reference's trend map, global-mean trend and global-mean series."""
    series = global_mean(ref)
    series.attrs = {"units": ref.attrs.get("units", ""), "long_name": "area-weighted global mean"}
    lazy = xr.Dataset({"trend": trends.linear_trend(ref, period), "series": series})

    def done(v: xr.Dataset, ch: Channel) -> None:
        res.add(metric_key("reference", ch.label, "trend_global", "all"), global_mean(v["trend"]))
        res.add_field(v["trend"], "trend", "reference", ch.label, period="all",
                      units=v["trend"].attrs.get("units", ""), long_name="linear trend",
                      description="reference linear trend per decade")
        res.add_field(v["series"], "global_mean_series", "reference", ch.label, period="all",
                      units=ref.attrs.get("units", ""), long_name="area-weighted global mean",
                      description="area-weighted global-mean monthly series of the reference")

    batch.add(lazy, each_channel(chs, done))


# --------------------------------------------------------------------------- probabilistic
def probabilistic_group(batch: Batch, res: Results, model: str, da: xr.DataArray, ref: xr.DataArray,
                        chs: list[Channel], periods: dict[str, Period], store_maps: bool) -> None:
    """CRPS (standard, fair), ensemble-mean RMSE, spread, spread-skill, rank histogram, per period.

    Scores are area-weighted means over (time, lat, lon) of the monthly fields against the
    reference month by month (the CRPS as the global mean of its time-mean map).
    """
    m = da.sizes.get("member", 1)
    units = ref.attrs.get("units", "")
    for pname, period in periods.items():
        f = climatology.in_period(da, period)
        o = climatology.in_period(ref, period)
        lazy = {"crps": crps.crps_ensemble(f, o, fair=False).mean("time"),
                "ensemble_mean_rmse": spread_skill.ensemble_mean_rmse(f, o)}
        if m >= 2:
            lazy["crps_fair"] = crps.crps_ensemble(f, o, fair=True).mean("time")
            lazy.update(spread_skill.spread_skill(f, o).drop_vars("ensemble_mean_rmse").data_vars)
            # per-month histograms summed afterwards: keeps the time chunks (a histogram over
            # (time, lat, lon) at once would merge the whole period into one chunk)
            lazy["rank_histogram"] = rank_histogram.rank_histogram(f, o, dims=("lat", "lon")).sum("time")
        else:
            res.skip(f"{model}.*.crps_fair/spread/spread_skill/rank_histogram",
                     f"{model} has a single member: ensemble spread is undefined")

        def done(v: xr.Dataset, ch: Channel, pname=pname) -> None:
            res.add(metric_key(model, ch.label, "crps", pname), global_mean(v["crps"]))
            res.add(metric_key(model, ch.label, "ensmean_rmse", pname), v["ensemble_mean_rmse"])
            if store_maps:
                res.add_field(v["crps"], "crps_map", model, ch.label, period=pname, units=units,
                              long_name="time-mean CRPS",
                              description=f"time-mean standard ensemble CRPS of {model} against the reference, "
                                          f"{pname} period; lower is better")
            if "crps_fair" not in v:
                return
            res.add(metric_key(model, ch.label, "crps_fair", pname), global_mean(v["crps_fair"]))
            res.add(metric_key(model, ch.label, "spread", pname), v["ensemble_spread"])
            res.add(metric_key(model, ch.label, "spread_skill", pname), v["spread_skill"])
            res.add(metric_key(model, ch.label, "spread_skill_corrected", pname), v["spread_skill_corrected"])
            res.add_field(v["rank_histogram"], "rank_histogram", model, ch.label, period=pname, units="1",
                          long_name="rank histogram",
                          description=f"counts of the reference's rank among the {m} members of {model} "
                                      f"({pname} period); flat = reliable, U-shaped = under-dispersive")

        batch.add(xr.Dataset(lazy), each_channel(chs, done))


# --------------------------------------------------------------------------- spectra
def _lat_mean(da: xr.DataArray) -> xr.DataArray:
    return da.weighted(area_weights(da["lat"])).mean("lat")


def spectra_group(batch: Batch, res: Results, model: str, da: xr.DataArray, ref: xr.DataArray, chs: list[Channel],
                  pname: str, period: Period, with_reference: bool) -> None:
    """Time- and member-mean SH and zonal power spectra and their band ratios to the reference."""
    f = climatology.in_period(da, period)
    o = climatology.in_period(ref, period)
    over = [d for d in ("member", "time") if d in f.dims]
    lazy = xr.Dataset({
        "sh_m": spectra.sh_power_spectrum(f).mean(over), "sh_r": spectra.sh_power_spectrum(o).mean("time"),
        "zo_m": _lat_mean(spectra.zonal_power_spectrum(f).mean(over)).drop_vars("wavelength", errors="ignore"),
        "zo_r": _lat_mean(spectra.zonal_power_spectrum(o).mean("time")).drop_vars("wavelength", errors="ignore"),
    })

    def done(v: xr.Dataset, ch: Channel) -> None:
        for name, ratios in (("sh_band_ratio", spectra.band_ratio(v["sh_m"], v["sh_r"], BANDS)),
                             ("zonal_band_ratio", spectra.band_ratio(v["zo_m"], v["zo_r"], BANDS))):
            for band, value in ratios.items():
                res.add(metric_key(model, ch.label, name, pname, band), value)
        sq = f"({ref.attrs.get('units', '')})2"
        res.add_field(v["sh_m"], "sh_spectrum", model, ch.label, period=pname, units=sq,
                      long_name="spherical-harmonic power per total wavenumber",
                      description=f"spherical-harmonic power per total wavenumber l of {model}, "
                                  f"mean over months and members ({pname} period)")
        res.add_field(v["zo_m"], "zonal_spectrum", model, ch.label, period=pname, units=f"{sq} m",
                      long_name="zonal power spectrum",
                      description=f"zonal power spectrum of {model}, area-weighted mean over "
                                  f"latitudes, months and members ({pname} period)")
        if with_reference:
            res.add_field(v["sh_r"], "sh_spectrum", "reference", ch.label, period=pname, units=sq,
                          long_name="spherical-harmonic power per total wavenumber",
                          description=f"spherical-harmonic power of the reference ({pname} period)")
            res.add_field(v["zo_r"], "zonal_spectrum", "reference", ch.label, period=pname, units=f"{sq} m",
                          long_name="zonal power spectrum",
                          description=f"zonal power spectrum of the reference ({pname} period)")

    batch.add(lazy, each_channel(chs, done))


# --------------------------------------------------------------------------- E4 variability
def variability_group(batch: Batch, res: Results, model: str, da: xr.DataArray, ref: xr.DataArray,
                      chs: list[Channel], clim_period: Period, store_maps: bool, with_reference: bool) -> None:
    """Std and lag-1 autocorrelation of monthly anomalies (whole window) vs the reference."""
    vr = variability.variability_ratio(da, ref, climatology_period=clim_period).drop_vars("std_model_members")
    units = ref.attrs.get("units", "")

    def done(v: xr.Dataset, ch: Channel) -> None:
        res.add(metric_key(model, ch.label, "std_ratio", "all"), v["std_ratio_global"])
        res.add(metric_key(model, ch.label, "lag1_ratio", "all"), v["lag1_ratio_global"])
        res.add(metric_key(model, ch.label, "std_global", "all"), global_mean(v["std_model"]))
        res.add(metric_key(model, ch.label, "lag1_global", "all"), global_mean(v["lag1_model"]))
        res.add(metric_key(model, ch.label, "lag1_diff", "all"), global_mean(v["lag1_difference"]))
        if store_maps:
            res.add_field(v["std_model"], "std_anomaly", model, ch.label, period="all", units=units,
                          long_name="std of monthly anomalies",
                          description=f"std of monthly anomalies of {model} (root of the member-mean variance)")
        if with_reference:
            res.add(metric_key("reference", ch.label, "std_global", "all"), global_mean(v["std_reference"]))
            res.add(metric_key("reference", ch.label, "lag1_global", "all"), global_mean(v["lag1_reference"]))
            res.add_field(v["std_reference"], "std_anomaly", "reference", ch.label, period="all", units=units,
                          long_name="std of monthly anomalies",
                          description="std of monthly anomalies of the reference")

    batch.add(vr, each_channel(chs, done))


# --------------------------------------------------------------------------- E3 Nino-3.4
def nino_group(batch: Batch, res: Results, model: str, da: xr.DataArray, ref: xr.DataArray, chs: list[Channel],
               index: xr.DataArray, clim_period: Period, with_reference: bool) -> None:
    """Regression maps on the Niño-3.4 index (per K), pooled over members, vs the reference's."""
    lazy = xr.Dataset({"model": nino34.regression_map(da, index, clim_period, dims=("member", "time")),
                       "reference": nino34.regression_map(ref, index, clim_period)})

    def done(v: xr.Dataset, ch: Channel) -> None:
        for name, value in nino34.compare_patterns(v["model"], v["reference"]).items():
            res.add(metric_key(model, ch.label, f"nino34_{name}", "all"), value)
        res.add_field(v["model"], "nino34_regression", model, ch.label, period="all",
                      units=da.attrs.get("units", "") + " K-1", long_name="regression on the Nino-3.4 index",
                      description=f"regression of {model} monthly anomalies on the Nino-3.4 index "
                                  "(members pooled), per K of the index")
        if with_reference:
            res.add_field(v["reference"], "nino34_regression", "reference", ch.label, period="all",
                          units=ref.attrs.get("units", "") + " K-1", long_name="regression on the Nino-3.4 index",
                          description="regression of reference monthly anomalies on the Nino-3.4 index, per K")

    batch.add(lazy, each_channel(chs, done))


# --------------------------------------------------------------------------- E5 warming
def warming_group(batch: Batch, res: Results, model: str, scenario_da: xr.DataArray, hist_da: xr.DataArray,
                  chs: list[Channel], scenario: str) -> None:
    """Response per K of SST warming (scenario minus historical over the scenario's months, which
    the historical window holds: the pipeline aligned the scenario to it)."""
    response = warming.warming_response(scenario_da, hist_da, scenario, period=period_of(scenario_da))

    def done(v: xr.DataArray, ch: Channel) -> None:
        res.add(metric_key(model, ch.label, "warming_per_K_global", scenario), global_mean(v))
        res.add_field(v, "warming_response", model, ch.label, scenario=scenario, units=response.attrs["units"],
                      long_name="response per K of SST warming",
                      description=f"{model} time-mean response to {scenario} per K of SST warming "
                                  "(ensemble-mean scenario minus historical, divided by the SST change)")

    batch.add(response, each_channel(chs, done))


# --------------------------------------------------------------------------- modes (NAO, NH EOF1)
MODE_SOURCES: dict[str, tuple[str, str]] = {
    # mode name -> (channel label, function)
    "nao_z500": ("zg500", "nao"), "nao_psl": ("psl", "nao"), "nh_z500_eof1": ("zg500", "nh_eof1"),
}


def northern_subset(da: xr.DataArray) -> xr.DataArray:
    """The 0-90N rows (all modes live there): the small piece the eager EOF analyses need."""
    return da.isel(lat=np.flatnonzero(da["lat"].values >= 0.0))


def _run_mode(fn: str, da: xr.DataArray, pooled: bool = False) -> xr.Dataset:
    if fn == "nao":
        return modes.nao(da, pooled=pooled)
    return modes.nh_eof1(da, pooled=pooled)


def _pc_by_year(pc: xr.DataArray, years: np.ndarray) -> xr.DataArray:
    out = pc.isel(mode=0, drop=True)
    out = out.drop_vars([c for c in out.coords if c not in out.dims and c != "member"], errors="ignore")
    return out.assign_coords(time=years).rename(time="year")


def modes_from_subsets(res: Results, mode: str, models: dict[str, xr.DataArray], ref: xr.DataArray) -> None:
    """NAO / NH Z500 EOF1 of each model (per member and members pooled) compared with the reference.

    ``models`` and ``ref`` are numpy-backed 0-90N monthly subsets. Keys:
    ``<model>.<mode>.<stat>`` for the pooled ensemble and ``.<stat>.member<N>`` per member.
    """
    _, fn = MODE_SOURCES[mode]
    r = _run_mode(fn, ref)
    years = _season_years(ref)
    units = ref.attrs.get("units", "")
    res.add(metric_key("reference", mode, "variance_fraction"), r["variance_fraction"].isel(mode=0))
    res.add_field(r["pattern"].isel(mode=0, drop=True), "eof_pattern", "reference", mode, season="DJF",
                  units=units, description=f"reference {mode}: regression of DJF-mean anomalies on the "
                                           "standardised leading PC (sign: low near the pole/Iceland positive)")
    res.add_field(_pc_by_year(r["pc"], years), "eof_pc", "reference", mode, season="DJF", units="1",
                  description=f"standardised leading PC of the reference {mode} by DJF season year")
    for model, da in models.items():
        pooled = _run_mode(fn, da, pooled=True)
        for stat, value in modes.compare_modes(pooled, r).items():
            res.add(metric_key(model, mode, stat), value)
        res.add_field(pooled["pattern"].isel(mode=0, drop=True), "eof_pattern", model, mode, season="DJF",
                      units=units, description=f"{model} {mode} from the members' DJF anomalies pooled")
        res.add_field(_pc_by_year(pooled["pc"], years), "eof_pc", model, mode, season="DJF", units="1",
                      description=f"standardised leading PC of {model} {mode} per member, by DJF season year")
        if da.sizes.get("member", 1) > 1:
            per = _run_mode(fn, da, pooled=False)
            stats = modes.compare_modes(per, r)
            for i, member in enumerate(da["member"].values):
                for stat, value in stats.items():
                    v = value.isel(member=i) if "member" in value.dims else value
                    res.add(metric_key(model, mode, stat, f"member{int(member)}"), v)


def _season_years(da: xr.DataArray) -> np.ndarray:
    return np.asarray(climatology.seasonal_mean(da.isel(lat=[0], lon=[0]), "DJF")["year"].values)
