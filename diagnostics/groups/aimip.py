"""The official AI-MIP scores beside ours: E1 (RMS of the time-mean bias map, per member, and its
median / min / max over members) and E5 (perturbed minus control time mean, in field units), as
``ai2cm/AIMIP``'s evaluation computes them (cos-lat weights, |lat| <= 87.5; formulas in
:mod:`diagnostics.metrics.aimip` and docs/metrics.md, "AI-MIP E1-E5")."""

from __future__ import annotations

import xarray as xr

from ..data.timeaxis import Period, period_of
from ..metrics import aimip
from ..outputs import Results
from ..schema import key
from .base import Batch, Context, Group, Subject, each_channel, label_of, register


def _member_label(value) -> str:
    return f"member{int(value)}"


@register
class AimipE1(Group):
    """E1 per period the ensemble is scored on (train, test): ``aimip_rmsb`` per member and
    ``aimip_rmsb_median`` / ``_min`` / ``_max`` over members, ``aimip_global_bias_median``."""

    name = "aimip_e1"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("aimip_rmsb", "aimip_rmsb_median", "aimip_rmsb_min", "aimip_rmsb_max", "aimip_global_bias_median")

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        periods = {n: p for n, p in subject.periods.items() if n in ("train", "test")}
        if not periods:
            return
        config = aimip.AimipEvaluation(periods=periods)
        e1 = aimip.e1_time_mean_bias(subject.da, ctx.ref, config)
        lazy = e1[["rmsb", "rmsb_median", "rmsb_min", "rmsb_max", "global_bias"]]

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
