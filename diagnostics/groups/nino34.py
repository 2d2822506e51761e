"""AI-MIP E3: regression maps on the Niño-3.4 index (per K), members pooled, against the reference's."""

from __future__ import annotations

import xarray as xr

from ..metrics import nino34
from ..outputs import Results
from ..schema import REFERENCE, key
from .base import Batch, Context, Group, Subject, each_channel, register


@register
class Nino34Regression(Group):
    """Pattern correlation and RMS of the regression maps; needs the index (the pipeline computes it
    once per run from the forcing tos, else the reference)."""

    name = "nino34"
    stage = "two_pass"
    applies_to = frozenset({"ensemble"})
    metrics = tuple(f"nino34_{s}" for s in ("pattern_corr", "rms_diff", "amplitude_ratio"))
    fields = ("nino34_regression",)

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return super().applies(ctx, subject) and ctx.index is not None

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        model, da, ref = subject.name, subject.da, ctx.ref
        lazy = xr.Dataset({"model": nino34.regression_map(da, ctx.index, ctx.clim_period, dims=("member", "time")),
                           "reference": nino34.regression_map(ref, ctx.index, ctx.clim_period)})

        def done(v: xr.Dataset, ch) -> None:
            for name, value in nino34.compare_patterns(v["model"], v["reference"]).items():
                res.add(key(model, ch.label, f"nino34_{name}", period="all"), value)
            res.add_field(v["model"], "nino34_regression", model, ch.label, period="all",
                          units=da.attrs.get("units", "") + " K-1", long_name="regression on the Nino-3.4 index",
                          description=f"regression of {model} monthly anomalies on the Nino-3.4 index "
                                      f"(members pooled), per K of the {ctx.index.attrs.get('convention', 'index')}")
            if subject.first:
                res.add_field(v["reference"], "nino34_regression", REFERENCE, ch.label, period="all",
                              units=ref.attrs.get("units", "") + " K-1",
                              long_name="regression on the Nino-3.4 index",
                              description="regression of reference monthly anomalies on the Nino-3.4 index, per K "
                                          f"of the {ctx.index.attrs.get('convention', 'index')}")

        batch.add(lazy, each_channel(ctx.channels, done))
