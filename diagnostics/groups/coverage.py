"""The area scored where the inputs miss cells: below-ground masks of pressure-level fields."""

from __future__ import annotations

import math

import xarray as xr

from ..data.contract import BELOW_GROUND_MASKED
from ..metrics import coverage
from ..outputs import Results
from ..schema import key
from .base import Batch, Channel, Context, Group, Subject, each_channel, register


@register
class Coverage(Group):
    """``scored_area_fraction`` per period of each masked channel (ta/ua/va/hus/zg500) where the model
    or the reference misses cells: the area the time-mean scores of that channel cover. Written
    only when it is below 1, so an unmasked channel carries no extra number."""

    name = "coverage"
    stage = "single_pass"
    applies_to = frozenset({"ensemble", "baseline"})
    metrics = ("scored_area_fraction",)

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return super().applies(ctx, subject) and ctx.var in BELOW_GROUND_MASKED

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        for pname, period in subject.periods.items():
            try:
                lazy = coverage.scored_fraction(subject.da, ctx.ref, period)
            except ValueError as exc:  # a period the field does not cover: the other groups say so
                res.skip(f"{subject.name}.{ctx.var}.coverage.{pname}", str(exc))
                continue

            def done(v: xr.DataArray, ch: Channel, pname=pname) -> None:
                value = float(v)
                if math.isfinite(value) and value < 1.0 - 1e-12:
                    res.add(key(subject.name, ch.label, "scored_area_fraction", period=pname), value)

            batch.add(lazy, each_channel(ctx.channels, done))
