"""Modes of variability (NAO from Z500 or sea-level pressure, the NH Z500 EOF1): eager EOF analyses
of each ensemble (per member and members pooled) compared with the reference's."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import xarray as xr

from ..metrics import climatology, modes
from ..outputs import Results
from ..schema import REFERENCE, key
from .base import Context, EagerGroup, Subject, register


def northern_subset(da: xr.DataArray) -> xr.DataArray:
    """The 0-90N rows (all modes live there): the small piece the eager EOF analyses need."""
    return da.isel(lat=np.flatnonzero(da["lat"].values >= 0.0))


def _pc_by_year(pc: xr.DataArray, years: np.ndarray) -> xr.DataArray:
    out = pc.isel(mode=0, drop=True)
    out = out.drop_vars([c for c in out.coords if c not in out.dims and c != "member"], errors="ignore")
    return out.assign_coords(time=years).rename(time="year")


def _season_years(da: xr.DataArray) -> np.ndarray:
    return np.asarray(climatology.seasonal_mean(da.isel(lat=[0], lon=[0]), "DJF")["year"].values)


class Mode(EagerGroup):
    """One mode of one channel. Keys ``<model>.<mode>.<stat>`` for the pooled ensemble and
    ``.<stat>.member<N>`` per member; the reference's variance fraction, pattern and PC."""

    applies_to = frozenset({"ensemble"})
    metrics = ("pattern_corr", "rms", "variance_fraction_model", "variance_fraction_ref", "pc_std_ratio",
               "variance_fraction")
    fields = ("eof_pattern", "eof_pc")
    analysis: ClassVar[str]  # "nao" or "nh_eof1" of diagnostics.metrics.modes

    def units(self, ctx: Context, subject: Subject) -> int:
        return 1

    def _run(self, da: xr.DataArray, pooled: bool = False) -> xr.Dataset:
        return getattr(modes, self.analysis)(da, pooled=pooled)

    def run_subsets(self, res: Results, models: dict[str, xr.DataArray], ref: xr.DataArray) -> None:
        mode = self.name
        r = self._run(ref)
        years = _season_years(ref)
        units = ref.attrs.get("units", "")
        res.add(key(REFERENCE, mode, "variance_fraction"), r["variance_fraction"].isel(mode=0))
        res.add_field(r["pattern"].isel(mode=0, drop=True), "eof_pattern", REFERENCE, mode, season="DJF",
                      units=units, description=f"reference {mode}: regression of DJF-mean anomalies on the "
                                               "standardised leading PC (sign: low near the pole/Iceland positive)")
        res.add_field(_pc_by_year(r["pc"], years), "eof_pc", REFERENCE, mode, season="DJF", units="1",
                      description=f"standardised leading PC of the reference {mode} by DJF season year")
        for model, da in models.items():
            pooled = self._run(da, pooled=True)
            for stat, value in modes.compare_modes(pooled, r).items():
                res.add(key(model, mode, stat), value)
            res.add_field(pooled["pattern"].isel(mode=0, drop=True), "eof_pattern", model, mode, season="DJF",
                          units=units, description=f"{model} {mode} from the members' DJF anomalies pooled")
            res.add_field(_pc_by_year(pooled["pc"], years), "eof_pc", model, mode, season="DJF", units="1",
                          description=f"standardised leading PC of {model} {mode} per member, by DJF season year")
            if da.sizes.get("member", 1) > 1:
                stats = modes.compare_modes(self._run(da, pooled=False), r)
                for i, member in enumerate(da["member"].values):
                    for stat, value in stats.items():
                        v = value.isel(member=i) if "member" in value.dims else value
                        res.add(key(model, mode, stat, member=f"member{int(member)}"), v)


@register
class NaoZ500(Mode):
    name, channel, analysis = "nao_z500", "zg500", "nao"


@register
class NaoPsl(Mode):
    name, channel, analysis = "nao_psl", "psl", "nao"


@register
class NhZ500Eof1(Mode):
    name, channel, analysis = "nh_z500_eof1", "zg500", "nh_eof1"
