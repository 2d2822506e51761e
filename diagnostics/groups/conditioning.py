"""Ensembles around a trajectory and guided runs (docs/residual.md, docs/guidance.md): per member, the
global-mean series of ``tas``, ``ps`` (dry air mass) and ``psl`` minus the reference's climatology;
per ensemble, the distance of its mean to the reference (the conditioning run, when md-diagnose is
given it as ``--reference``) and, with ``--noise-floor``, to the forced signal, its spread against
the noise floor's and whether its mean follows the reference's own weather. Formulas and their
sampling-only values: :mod:`diagnostics.metrics.conditioning`.

The noise-floor comparisons need every ensemble's computed mean, so this group runs in the single
pass (one batch for all subjects of a variable) and files them from the noise floor's callback:
md-diagnose lists the noise floor after every other ensemble, and callbacks run in build order.
An ensemble added to a cached md-diagnose run (the per-model cache scores only it) gets its own
numbers but not the noise-floor ones, which need the noise floor scored in the same run.
"""

from __future__ import annotations

import xarray as xr

from ..data.grid import global_mean
from ..metrics import conditioning as cond
from ..metrics.climatology import monthly_anomalies, monthly_climatology
from ..outputs import Results
from ..schema import NOISE_FLOOR, REFERENCE, key
from .base import Batch, Context, Group, Subject, ensemble_mean, register

#: the channels whose global means a constraint or a conditioning run is about
VARIABLES = ("tas", "ps", "psl")
_STORE = "conditioning"  # ctx.shared key prefix of the computed means


@register
class Conditioning(Group):
    """See the module docstring; 2-D variables of :data:`VARIABLES` only (their fields are held in
    memory, one ``[time, lat, lon]`` mean per ensemble)."""

    name = "conditioning"
    stage = "single_pass"
    applies_to = frozenset({"reference", "ensemble"})
    metrics = ("global_anomaly_mean", "global_anomaly_rms", "distance_reference", "distance_forced",
               "distance_forced_sampling", "spread_ratio_noise_floor", "weather_corr_reference",
               "weather_corr_reference_sampling")
    fields = ("global_anomaly_series",)

    def applies(self, ctx: Context, subject: Subject) -> bool:
        """Only where an ensemble's files say it was generated around a conditioning run or guided
        (``Context.conditioned``): then for those, the reference and the noise floor they are set against.
        A free-running ensemble's distance to the reference's weather means nothing."""
        scored = subject.name in ctx.conditioned or (
            bool(ctx.conditioned) and (subject.kind == "reference" or subject.name == NOISE_FLOOR))
        return scored and subject.kind in self.applies_to and ctx.var in VARIABLES and not ctx.is_3d \
            and ctx.clim_period is not None

    def units(self, ctx: Context, subject: Subject) -> int:
        return 0 if subject.kind == "reference" else len(ctx.channels)

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        ch = ctx.channels[0]
        units = ctx.ref.attrs.get("units", "")
        if subject.kind == "reference":
            def done_ref(ref: xr.DataArray) -> None:
                _, clim = self._reference(ctx, ref)
                self._series(res, REFERENCE, ch.label, cond.global_anomaly_series(global_mean(ref), clim), units)
            batch.add(ctx.ref, done_ref)
            return
        da = subject.da
        n = int(da.sizes.get("member", 1))
        # the reference rides along with every ensemble (one dask key: computed once per batch), so an
        # ensemble scored alone (md-diagnose's per-model cache: reference and others cached) has it too
        lazy = {"mean": ensemble_mean(da), "series": global_mean(da), "reference": ctx.ref}
        if n >= 2:
            lazy["variance"] = cond.member_variance(da)

        def done(v: xr.Dataset) -> None:
            ref_anom, clim = self._reference(ctx, v["reference"])
            name = subject.name
            self._series(res, name, ch.label, cond.global_anomaly_series(v["series"], clim), units)
            mean_anom = monthly_anomalies(v["mean"], ctx.clim_period)
            res.add(key(name, ch.label, "distance_reference", period="all"), cond.weighted_rms(mean_anom - ref_anom))
            sigma = cond.spread(v["variance"]) if "variance" in v else None
            ctx.shared[(_STORE, name)] = (mean_anom, n, sigma)
            if name == NOISE_FLOOR and sigma is not None:
                self._against_floor(res, ctx, ch.label)

        batch.add(xr.Dataset(lazy), done)

    @staticmethod
    def _reference(ctx: Context, ref: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
        """(the reference's monthly anomalies, its monthly climatology), computed once per variable."""
        if (_STORE, REFERENCE) not in ctx.shared:
            ctx.shared[(_STORE, REFERENCE)] = (monthly_anomalies(ref, ctx.clim_period),
                                               monthly_climatology(ref, ctx.clim_period))
        return ctx.shared[(_STORE, REFERENCE)]

    @staticmethod
    def _series(res: Results, model: str, channel: str, series: xr.DataArray, units: str) -> None:
        """The series field and its mean / RMS over members and months (units of the field)."""
        res.add(key(model, channel, "global_anomaly_mean", period="all"), float(series.mean()))
        res.add(key(model, channel, "global_anomaly_rms", period="all"), float((series.astype(float) ** 2).mean() ** 0.5))
        res.add_field(series, "global_anomaly_series", model, channel, period="all", units=units,
                      long_name="global-mean anomaly from the reference's climatology",
                      description=f"area-weighted global mean of each {model} member minus the reference's "
                                  "monthly climatology of the climatology (train) period")

    @staticmethod
    def _against_floor(res: Results, ctx: Context, channel: str) -> None:
        """Every stored ensemble (and the reference) against the noise floor's mean and spread."""
        forced, m, sigma = ctx.shared[(_STORE, NOISE_FLOOR)]
        ref_anom, _ = ctx.shared[(_STORE, REFERENCE)]
        ref_off = ref_anom - forced
        res.add(key(REFERENCE, channel, "distance_forced", period="all"), cond.weighted_rms(ref_off))
        res.add(key(REFERENCE, channel, "distance_forced_sampling", period="all"),
                float(sigma * (1 + 1 / m) ** 0.5))
        for k, value in list(ctx.shared.items()):
            if not (isinstance(k, tuple) and len(k) == 2 and k[0] == _STORE) or k[1] in (REFERENCE, NOISE_FLOOR):
                continue
            name, (mean_anom, n, s) = k[1], value
            off = mean_anom - forced
            res.add(key(name, channel, "distance_forced", period="all"), cond.weighted_rms(off))
            res.add(key(name, channel, "distance_forced_sampling", period="all"), cond.sampling_distance(sigma, n, m))
            res.add(key(name, channel, "weather_corr_reference", period="all"), cond.weighted_corr(off, ref_off))
            res.add(key(name, channel, "weather_corr_reference_sampling", period="all"),
                    cond.shared_estimate_correlation(n, m))
            if s is not None:
                res.add(key(name, channel, "spread_ratio_noise_floor", period="all"), s / sigma)
