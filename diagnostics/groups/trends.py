"""Our E2: least-squares trends per decade of the monthly values over the whole evaluation window (one
intercept per calendar month, so the seasonal cycle does not leak into the slope:
:func:`diagnostics.metrics.trends.linear_trend`), of each ensemble and of the reference, and the
reference's and ensembles' global-mean monthly series. The official E2 (trends of annual means,
per member, train and test) is :class:`diagnostics.groups.aimip.AimipE2`."""

from __future__ import annotations

import xarray as xr

from ..data.grid import global_mean
from ..metrics import trends
from ..metrics.pattern import weighted_rms
from ..outputs import Results
from ..schema import REFERENCE, key
from .base import Batch, Context, Group, Subject, each_channel, ensemble_mean, register


@register
class ReferenceTrend(Group):
    """The reference's trend map, global-mean trend and global-mean series (computed once, with the
    first ensemble's two-pass batch)."""

    name = "reference_trend"
    stage = "two_pass"
    applies_to = frozenset({"reference"})
    metrics = ("trend_global",)
    fields = ("trend", "global_mean_series")

    def units(self, ctx: Context, subject: Subject) -> int:
        return 0

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        ref = ctx.ref
        series = global_mean(trends.own_read(ref, "series"))
        series.attrs = {"units": ref.attrs.get("units", ""), "long_name": "area-weighted global mean"}
        lazy = xr.Dataset({"trend": trends.linear_trend(ref, ctx.window), "series": series})

        def done(v: xr.Dataset, ch) -> None:
            res.add(key(REFERENCE, ch.label, "trend_global", period="all"), global_mean(v["trend"]))
            res.add_field(v["trend"], "trend", REFERENCE, ch.label, period="all",
                          units=v["trend"].attrs.get("units", ""), long_name="linear trend",
                          description="reference linear trend per decade")
            res.add_field(v["series"], "global_mean_series", REFERENCE, ch.label, period="all",
                          units=ref.attrs.get("units", ""), long_name="area-weighted global mean",
                          description="area-weighted global-mean monthly series of the reference")

        batch.add(lazy, each_channel(ctx.channels, done))


@register
class Trend(Group):
    """Lazy: the member trend maps and the reference trend map; from them (as
    :func:`diagnostics.metrics.trends.trend_difference` does): the ensemble-mean trend map, its
    area-weighted global mean, the global difference and the RMS of the map difference."""

    name = "trend"
    stage = "two_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("trend_global", "trend_global_diff", "trend_map_rms_diff")
    fields = ("trend", "global_mean_series")

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        model, da, ref = subject.name, subject.da, ctx.ref
        lazy = xr.Dataset({"model": trends.linear_trend(da, ctx.window),
                           "reference": trends.linear_trend(ref, ctx.window)})

        def done(t: xr.Dataset, ch) -> None:
            m, r = ensemble_mean(t["model"]), t["reference"]
            res.add(key(model, ch.label, "trend_global", period="all"), global_mean(m))
            # over the cells both sides have (a below-ground mask leaves them out of both)
            res.add(key(model, ch.label, "trend_global_diff", period="all"), global_mean(m - r))
            res.add(key(model, ch.label, "trend_map_rms_diff", period="all"), weighted_rms(m, r))
            if subject.store_maps:
                res.add_field(m, "trend", model, ch.label, period="all", units=t["model"].attrs.get("units", ""),
                              long_name="linear trend", description=f"{model} ensemble-mean linear trend per decade")

        batch.add(lazy, each_channel(ctx.channels, done))
        if subject.store_maps:
            series = global_mean(trends.own_read(da, "series"))
            series.attrs = {"units": ref.attrs.get("units", ""), "long_name": "area-weighted global mean"}
            batch.add(series, each_channel(ctx.channels, lambda v, ch: res.add_field(
                v, "global_mean_series", model, ch.label, period="all",
                description=f"area-weighted global-mean monthly series of each {model} member")))
