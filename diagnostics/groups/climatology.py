"""AI-MIP E1: time-mean bias maps (annual and seasons), their global mean / RMS, the model's and the
reference's own time means, and zonal-mean bias sections of 3-D variables, per period."""

from __future__ import annotations

import xarray as xr

from ..metrics import climatology, coverage
from ..outputs import Results
from ..schema import REFERENCE, key
from .base import Batch, Channel, Context, Group, Subject, each_channel, ensemble_mean, label_of, register


def reference_mean(ctx: Context, period, season: str) -> xr.DataArray:
    """The reference's time mean over ``period`` and ``season`` (lazy), built once per variable for
    the reference's map and every subject's bias."""
    return ctx.once(("time_mean", str(period), season), lambda: climatology.time_mean(ctx.ref, period, season))


@register
class ReferenceClimatology(Group):
    """The reference's own time means (the middle panel of model | reference | difference)."""

    name = "climatology"
    stage = "single_pass"
    applies_to = frozenset({"reference"})
    fields = ("climatology",)

    def units(self, ctx: Context, subject: Subject) -> int:
        return 0

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        for pname, period in ctx.periods.items():
            for season in climatology.SEASONS:
                try:
                    mean = reference_mean(ctx, period, season)
                except ValueError:
                    continue
                batch.add(mean, each_channel(ctx.channels, lambda v, ch, pname=pname, season=season: res.add_field(
                    v, "climatology", REFERENCE, ch.label, period=pname, season=season,
                    long_name=f"reference time mean, {season}",
                    description=f"reference time mean over the {pname} period, {season}")))


@register
class Bias(Group):
    """Time-mean bias maps (annual and seasons) and their area-weighted global mean / RMS, per period;
    for ensembles also the bias map and the model's own ensemble-mean time mean.

    Only the maps are lazy; their global numbers are taken from the computed maps (cheap),
    which keeps the dask graph to the reductions over time.
    """

    name = "bias"
    stage = "single_pass"
    applies_to = frozenset({"ensemble", "baseline"})
    metrics = ("bias_mean", "bias_rms")
    fields = ("bias", "climatology")

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        model, da, units = subject.name, subject.da, ctx.ref.attrs.get("units", "")
        for pname, period in subject.periods.items():
            for season in climatology.SEASONS:
                try:  # the model's time mean is built once for the bias and its own map, the
                    # reference's once per variable: bias = the same ops as climatology.bias_map
                    mean = ensemble_mean(climatology.time_mean(da, period, season))
                    bias = climatology.bias_of_means(mean, reference_mean(ctx, period, season), da.name, season,
                                                     da.attrs.get("units", ""))
                except ValueError as exc:  # e.g. no complete DJF season in a short period
                    res.skip(f"{model}.{label_of(ctx.channels)}.bias.{pname}.{season}", str(exc))
                    continue

                def done(b: xr.DataArray, ch: Channel, pname=pname, season=season) -> None:
                    summary = climatology.bias_summary(b)
                    res.add(key(model, ch.label, "bias_mean", period=pname, season=season), summary["mean"])
                    res.add(key(model, ch.label, "bias_rms", period=pname, season=season), summary["rms"])
                    if subject.store_maps:
                        res.add_field(b, "bias", model, ch.label, period=pname, season=season, units=units,
                                      long_name=f"time-mean bias, {season}",
                                      description=f"{model} ensemble-mean minus reference time mean over the "
                                                  f"{pname} period, {season}; positive = model too high"
                                                  f"{coverage.masked_note(b, ch.variable)}")

                batch.add(bias, each_channel(ctx.channels, done))
                if subject.store_maps:
                    batch.add(mean, each_channel(ctx.channels, lambda v, ch, pname=pname, season=season:
                                                 res.add_field(
                        v, "climatology", model, ch.label, period=pname, season=season, units=units,
                        long_name=f"{model} time mean, {season}",
                        description=f"{model} ensemble-mean time mean over the {pname} period, {season}")))


@register
class ZonalBias(Group):
    """Zonal-mean (plev, lat) annual bias sections of a 3-D variable, per period."""

    name = "zonal_bias"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    fields = ("zonal_bias",)

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return super().applies(ctx, subject) and ctx.is_3d

    def units(self, ctx: Context, subject: Subject) -> int:
        return 0

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        for pname, period in ctx.periods.items():
            zb = climatology.zonal_mean_bias(subject.da, ctx.ref, period, "ANN")
            batch.add_field(res, zb, "zonal_bias", subject.name, ctx.var, period=pname, season="ANN",
                            description=f"zonal-mean time-mean bias of {ctx.var} (model minus reference) over "
                                        f"the {pname} period, pressure against latitude")
