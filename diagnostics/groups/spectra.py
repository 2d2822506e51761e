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
        lazy = xr.Dataset({
            "sh_m": spectra.sh_power_spectrum(f).mean(over), "sh_r": spectra.sh_power_spectrum(o).mean("time"),
            "zo_m": _lat_mean(spectra.zonal_power_spectrum(f).mean(over)).drop_vars("wavelength", errors="ignore"),
            "zo_r": _lat_mean(spectra.zonal_power_spectrum(o).mean("time")).drop_vars("wavelength", errors="ignore"),
        })

        def done(v: xr.Dataset, ch) -> None:
            for name, ratios in (("sh_band_ratio", spectra.band_ratio(v["sh_m"], v["sh_r"], BANDS)),
                                 ("zonal_band_ratio", spectra.band_ratio(v["zo_m"], v["zo_r"], BANDS))):
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
