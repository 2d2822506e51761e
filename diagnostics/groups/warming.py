"""AI-MIP E5: the response per K of SST warming of each scenario run (p2k, p4k) of an ensemble."""

from __future__ import annotations

import xarray as xr

from ..data.grid import global_mean
from ..data.timeaxis import period_of
from ..metrics import warming
from ..outputs import Results
from ..schema import key
from .base import Batch, Context, Group, Subject, each_channel, label_of, register


@register
class Warming(Group):
    """Scenario minus historical over the scenario's months (which the historical window holds: the
    pipeline aligned the scenario to it), divided by the scenario's SST offset."""

    name = "warming"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("warming_per_K_global",)
    fields = ("warming_response",)

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return super().applies(ctx, subject) and bool(subject.scenarios)

    def units(self, ctx: Context, subject: Subject) -> int:
        return len(ctx.channels) * len(subject.scenarios)

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        model = subject.name
        for scen, sda in subject.scenarios.items():
            if sda is None:
                res.skip(f"{model}.{label_of(ctx.channels)}.warming.{scen}",
                         f"{ctx.var} not in the {scen} run of {model}")
                continue
            response = warming.warming_response(sda, subject.da, scen, period=period_of(sda))

            def done(v: xr.DataArray, ch, scen=scen, units=response.attrs["units"]) -> None:
                res.add(key(model, ch.label, "warming_per_K_global", scenario=scen), global_mean(v))
                res.add_field(v, "warming_response", model, ch.label, scenario=scen, units=units,
                              long_name="response per K of SST warming",
                              description=f"{model} time-mean response to {scen} per K of SST warming "
                                          "(ensemble-mean scenario minus historical, divided by the SST change)")

            batch.add(response, each_channel(ctx.channels, done))
