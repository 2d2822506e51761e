"""Power spectra: time- and member-mean spherical-harmonic and zonal power spectra of each ensemble
and their band ratios to the reference's (large, synoptic, small scales)."""

from __future__ import annotations

import xarray as xr

from ..data.grid import area_weights
from ..metrics import climatology, spectra
from ..outputs import Results
from ..schema import REFERENCE, key
from .base import Batch, Context, Group, Subject, each_channel, register

#: Spectral bands (total wavenumber l or zonal wavenumber k): large, synoptic, small scales.
BANDS: tuple[tuple[int, int | None], ...] = ((1, 10), (10, 30), (30, None))


def _lat_mean(da: xr.DataArray) -> xr.DataArray:
    return da.weighted(area_weights(da["lat"])).mean("lat")


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
        model, ref = subject.name, ctx.ref
        pname, period = ctx.spectra_period
        f = climatology.in_period(subject.da, period)
        o = climatology.in_period(ref, period)
        over = [d for d in ("member", "time") if d in f.dims]
        # masked (below-ground) cells: a spectrum cannot take NaN. SH spectra of a month with a
        # missing cell are NaN (and the channel's sh_band_ratio skipped below); zonal spectra keep
        # the latitude rows complete on both sides in every month, the same rows for both.
        zo_m_rows = spectra.zonal_power_spectrum(f).mean(over, skipna=False)
        zo_r_rows = spectra.zonal_power_spectrum(o).mean("time", skipna=False)
        rows = zo_m_rows.notnull().all("k") & zo_r_rows.notnull().all("k")
        lazy = xr.Dataset({
            "sh_m": spectra.sh_power_spectrum(f).mean(over, skipna=False),
            "sh_r": spectra.sh_power_spectrum(o).mean("time", skipna=False),
            "zo_m": _lat_mean(zo_m_rows.where(rows)).drop_vars("wavelength", errors="ignore"),
            "zo_r": _lat_mean(zo_r_rows.where(rows)).drop_vars("wavelength", errors="ignore"),
            "rows": _lat_mean(rows.astype(float)),
        })

        def done(v: xr.Dataset, ch) -> None:
            complete = bool(v["sh_m"].notnull().all()) and bool(v["sh_r"].notnull().all())
            pairs = [("zonal_band_ratio", spectra.band_ratio(v["zo_m"], v["zo_r"], BANDS))]
            if complete:
                pairs.insert(0, ("sh_band_ratio", spectra.band_ratio(v["sh_m"], v["sh_r"], BANDS)))
            else:
                res.skip(f"{model}.{ch.label}.sh_band_ratio.{pname}",
                         "missing (below-ground masked) cells: a spherical-harmonic spectrum needs a complete "
                         f"field; zonal spectra use the {float(v['rows']):.0%} of the area in complete rows")
            for name, ratios in pairs:
                for band, value in ratios.items():
                    res.add(key(model, ch.label, name, period=pname, band=band), value)
            sq = f"({ref.attrs.get('units', '')})2"
            res.add_field(v["sh_m"], "sh_spectrum", model, ch.label, period=pname, units=sq,
                          long_name="spherical-harmonic power per total wavenumber",
                          description=f"spherical-harmonic power per total wavenumber l of {model}, "
                                      f"mean over months and members ({pname} period)")
            res.add_field(v["zo_m"], "zonal_spectrum", model, ch.label, period=pname, units=f"{sq} m",
                          long_name="zonal power spectrum",
                          description=f"zonal power spectrum of {model}, area-weighted mean over "
                                      f"latitudes, months and members ({pname} period)")
            if subject.first:
                res.add_field(v["sh_r"], "sh_spectrum", REFERENCE, ch.label, period=pname, units=sq,
                              long_name="spherical-harmonic power per total wavenumber",
                              description=f"spherical-harmonic power of the reference ({pname} period)")
                res.add_field(v["zo_r"], "zonal_spectrum", REFERENCE, ch.label, period=pname, units=f"{sq} m",
                              long_name="zonal power spectrum",
                              description=f"zonal power spectrum of the reference ({pname} period)")

        batch.add(lazy, each_channel(ctx.channels, done))
