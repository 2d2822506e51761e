"""Power spectra: time- and member-mean spherical-harmonic and zonal power spectra of each ensemble
and their band ratios to the reference's (large, synoptic, small scales), of the full fields
(:class:`Spectra`, one pass) and of the monthly anomalies (:class:`AnomalySpectra`, two passes:
departures from each input's own monthly climatology of the climatology period, which takes the
annual cycle and the time-mean pattern, both dominated by l = 0-2, out of the power)."""

from __future__ import annotations

import xarray as xr

from ..data.grid import area_weights
from ..metrics import climatology, spectra
from ..outputs import Results
from ..schema import REFERENCE, key
from .base import Batch, Channel, Context, Group, Subject, each_channel, register

#: Spectral bands (total wavenumber l or zonal wavenumber k): large, synoptic, small scales.
BANDS: tuple[tuple[int, int | None], ...] = ((1, 10), (10, 30), (30, None))


def _lat_mean(da: xr.DataArray) -> xr.DataArray:
    return da.weighted(area_weights(da["lat"])).mean("lat")


def _lazy_spectra(f: xr.DataArray, o: xr.DataArray) -> xr.Dataset:
    """Member- and time-mean SH (``sh_*``) and latitude-mean zonal (``zo_*``) spectra of the model
    field ``f`` (``_m``) and the reference field ``o`` (``_r``), lazy.

    Masked (below-ground) cells: a spectrum cannot take NaN. SH spectra of a month with a missing
    cell are NaN (the channel's sh_band_ratio is then skipped in :func:`_file_spectra`); zonal
    spectra keep the latitude rows complete on both sides in every month, the same rows for both
    (``rows``: the area fraction of those rows)."""
    over = [d for d in ("member", "time") if d in f.dims]
    zo_m_rows = spectra.zonal_power_spectrum(f).mean(over, skipna=False)
    zo_r_rows = spectra.zonal_power_spectrum(o).mean("time", skipna=False)
    rows = zo_m_rows.notnull().all("k") & zo_r_rows.notnull().all("k")
    return xr.Dataset({
        "sh_m": spectra.sh_power_spectrum(f).mean(over, skipna=False),
        "sh_r": spectra.sh_power_spectrum(o).mean("time", skipna=False),
        "zo_m": _lat_mean(zo_m_rows.where(rows)).drop_vars("wavelength", errors="ignore"),
        "zo_r": _lat_mean(zo_r_rows.where(rows)).drop_vars("wavelength", errors="ignore"),
        "rows": _lat_mean(rows.astype(float)),
    })


def _file_spectra(res: Results, v: xr.Dataset, ch: Channel, subject: Subject, ref: xr.DataArray, pname: str,
                  prefix: str = "", what: str = "") -> None:
    """File the band ratios and the spectra of one channel (``prefix`` names the anomaly variants,
    ``what`` says in the descriptions what was transformed)."""
    model = subject.name
    pairs = [(f"{prefix}zonal_band_ratio", spectra.band_ratio(v["zo_m"], v["zo_r"], BANDS))]
    if bool(v["sh_m"].notnull().all()) and bool(v["sh_r"].notnull().all()):
        pairs.insert(0, (f"{prefix}sh_band_ratio", spectra.band_ratio(v["sh_m"], v["sh_r"], BANDS)))
    else:
        res.skip(f"{model}.{ch.label}.{prefix}sh_band_ratio.{pname}",
                 "missing (below-ground masked) cells: a spherical-harmonic spectrum needs a complete "
                 f"field; zonal spectra use the {float(v['rows']):.0%} of the area in complete rows")
    for name, ratios in pairs:
        for band, value in ratios.items():
            res.add(key(model, ch.label, name, period=pname, band=band), value)
    sq = f"({ref.attrs.get('units', '')})2"
    res.add_field(v["sh_m"], f"{prefix}sh_spectrum", model, ch.label, period=pname, units=sq,
                  long_name=f"spherical-harmonic power per total wavenumber{what}",
                  description=f"spherical-harmonic power per total wavenumber l{what} of {model}, "
                              f"mean over months and members ({pname} period)")
    res.add_field(v["zo_m"], f"{prefix}zonal_spectrum", model, ch.label, period=pname, units=f"{sq} m",
                  long_name=f"zonal power spectrum{what}",
                  description=f"zonal power spectrum{what} of {model}, area-weighted mean over "
                              f"latitudes, months and members ({pname} period)")
    if subject.first:
        res.add_field(v["sh_r"], f"{prefix}sh_spectrum", REFERENCE, ch.label, period=pname, units=sq,
                      long_name=f"spherical-harmonic power per total wavenumber{what}",
                      description=f"spherical-harmonic power{what} of the reference ({pname} period)")
        res.add_field(v["zo_r"], f"{prefix}zonal_spectrum", REFERENCE, ch.label, period=pname, units=f"{sq} m",
                      long_name=f"zonal power spectrum{what}",
                      description=f"zonal power spectrum{what} of the reference ({pname} period)")


@register
class Spectra(Group):
    """SH power per total wavenumber l and zonal power per wavenumber k over the test period (else
    the whole window); the first ensemble also writes the reference's spectra."""

    name = "spectra"
    stage = "single_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("sh_band_ratio", "zonal_band_ratio")
    fields = ("sh_spectrum", "zonal_spectrum")

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return super().applies(ctx, subject) and ctx.spectra

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        pname, period = ctx.spectra_period
        lazy = _lazy_spectra(climatology.in_period(subject.da, period), climatology.in_period(ctx.ref, period))
        batch.add(lazy, each_channel(ctx.channels, lambda v, ch: _file_spectra(res, v, ch, subject, ctx.ref, pname)))


@register
class AnomalySpectra(Group):
    """The same spectra of the monthly anomalies: x'(t) = x(t) - clim[month(t)], each input (every
    member, the reference) against its own monthly climatology of ``clim_period``, then restricted
    to the spectra period. Second pass (the climatology first), so stage ``two_pass``."""

    name = "anomaly_spectra"
    stage = "two_pass"
    applies_to = frozenset({"ensemble"})
    metrics = ("anomaly_sh_band_ratio", "anomaly_zonal_band_ratio")
    fields = ("anomaly_sh_spectrum", "anomaly_zonal_spectrum")

    def applies(self, ctx: Context, subject: Subject) -> bool:
        return super().applies(ctx, subject) and ctx.spectra and ctx.clim_period is not None

    def build(self, batch: Batch, res: Results, ctx: Context, subject: Subject) -> None:
        pname, period = ctx.spectra_period
        f = climatology.in_period(climatology.monthly_anomalies(subject.da, ctx.clim_period), period)
        o = climatology.in_period(climatology.monthly_anomalies(ctx.ref, ctx.clim_period), period)
        batch.add(_lazy_spectra(f, o), each_channel(ctx.channels, lambda v, ch: _file_spectra(
            res, v, ch, subject, ctx.ref, pname, prefix="anomaly_", what=" of monthly anomalies")))
