"""AI-MIP E4: std and lag-1 autocorrelation of monthly anomalies (whole window) against the reference."""

from __future__ import annotations

import xarray as xr

from ..data.grid import global_mean
from ..metrics import variability
from ..outputs import Results
from ..schema import REFERENCE, key
from .base import Batch, Context, Group, Subject, each_channel, register


@register
class Variability(Group):
    """Anomalies from the monthly climatology of ``clim_period``; the first ensemble also writes the
    reference's std and lag-1 numbers and its std map."""

    name = "variability"
    stage = "two_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("std_ratio", "lag1_ratio", "std_global", "lag1_global", "lag1_diff")
    fields = ("std_anomaly",)

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        model, ref = subject.name, ctx.ref
        vr = variability.variability_ratio(subject.da, ref, climatology_period=ctx.clim_period) \
            .drop_vars("std_model_members")
        units = ref.attrs.get("units", "")

        def done(v: xr.Dataset, ch) -> None:
            res.add(key(model, ch.label, "std_ratio", period="all"), v["std_ratio_global"])
            res.add(key(model, ch.label, "lag1_ratio", period="all"), v["lag1_ratio_global"])
            res.add(key(model, ch.label, "std_global", period="all"), global_mean(v["std_model"]))
            res.add(key(model, ch.label, "lag1_global", period="all"), global_mean(v["lag1_model"]))
            res.add(key(model, ch.label, "lag1_diff", period="all"), global_mean(v["lag1_difference"]))
            if subject.store_maps:
                res.add_field(v["std_model"], "std_anomaly", model, ch.label, period="all", units=units,
                              long_name="std of monthly anomalies",
                              description=f"std of monthly anomalies of {model} (root of the member-mean variance)")
            if subject.first:
                res.add(key(REFERENCE, ch.label, "std_global", period="all"), global_mean(v["std_reference"]))
                res.add(key(REFERENCE, ch.label, "lag1_global", period="all"), global_mean(v["lag1_reference"]))
                res.add_field(v["std_reference"], "std_anomaly", REFERENCE, ch.label, period="all", units=units,
                              long_name="std of monthly anomalies",
                              description="std of monthly anomalies of the reference")

        batch.add(vr, each_channel(ctx.channels, done))
