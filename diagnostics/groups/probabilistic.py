"""Probabilistic skill: CRPS (standard, fair), ensemble-mean RMSE, spread, spread-skill and the
rank histogram, per period, of every ensemble and baseline against the reference."""

from __future__ import annotations

import xarray as xr

from ..data.grid import global_mean
from ..metrics import climatology, crps, rank_histogram, spread_skill
from ..outputs import Results
from ..schema import key
from .base import Batch, Channel, Context, Group, Subject, each_channel, register


@register
class Probabilistic(Group):
    """Scores are area-weighted means over (time, lat, lon) of the monthly fields against the
    reference month by month (the CRPS as the global mean of its time-mean map). Spread, fair
    CRPS and the rank histogram need two members or more (skipped with the reason otherwise)."""

    name = "probabilistic"
    stage = "single_pass"
    applies_to = frozenset({"ensemble", "baseline"})
    metrics = ("crps", "ensmean_rmse", "crps_fair", "spread", "spread_skill", "spread_skill_corrected")
    fields = ("crps_map", "rank_histogram")

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        model, da, ref = subject.name, subject.da, ctx.ref
        m = da.sizes.get("member", 1)
        units = ref.attrs.get("units", "")
        for pname, period in subject.periods.items():
            f = climatology.in_period(da, period)
            o = climatology.in_period(ref, period)
            # one sort of the members gives the standard and fair CRPS and the rank (one task per chunk)
            scores = crps.ensemble_scores(f, o)
            lazy = {"crps": scores["crps"].mean("time"),
                    "ensemble_mean_rmse": spread_skill.ensemble_mean_rmse(f, o)}
            if m >= 2:
                lazy["crps_fair"] = scores["crps_fair"].mean("time")
                lazy.update(spread_skill.spread_skill(f, o).drop_vars("ensemble_mean_rmse").data_vars)
                # per-month histograms summed afterwards: keeps the time chunks (a histogram over
                # (time, lat, lon) at once would merge the whole period into one chunk)
                lazy["rank_histogram"] = rank_histogram.histogram_of_ranks(scores["rank"], m + 1,
                                                                           dims=("lat", "lon")).sum("time")
            else:
                res.skip(f"{model}.*.crps_fair/spread/spread_skill/rank_histogram",
                         f"{model} has a single member: ensemble spread is undefined")

            def done(v: xr.Dataset, ch: Channel, pname=pname) -> None:
                res.add(key(model, ch.label, "crps", period=pname), global_mean(v["crps"]))
                res.add(key(model, ch.label, "ensmean_rmse", period=pname), v["ensemble_mean_rmse"])
                if subject.store_maps:
                    res.add_field(v["crps"], "crps_map", model, ch.label, period=pname, units=units,
                                  long_name="time-mean CRPS",
                                  description=f"time-mean standard ensemble CRPS of {model} against the "
                                              f"reference, {pname} period; lower is better")
                if "crps_fair" not in v:
                    return
                res.add(key(model, ch.label, "crps_fair", period=pname), global_mean(v["crps_fair"]))
                res.add(key(model, ch.label, "spread", period=pname), v["ensemble_spread"])
                res.add(key(model, ch.label, "spread_skill", period=pname), v["spread_skill"])
                res.add(key(model, ch.label, "spread_skill_corrected", period=pname), v["spread_skill_corrected"])
                res.add_field(v["rank_histogram"], "rank_histogram", model, ch.label, period=pname, units="1",
                              long_name="rank histogram",
                              description=f"counts of the reference's rank among the {m} members of {model} "
                                          f"({pname} period); flat = reliable, U-shaped = under-dispersive")

            batch.add(xr.Dataset(lazy), each_channel(ctx.channels, done))
