"""Response to uniform SST warming (AI-MIP E5: aimip-p2k, aimip-p4k).

The response per kelvin of SST warming is the difference of the time means of a scenario
run and the historical run over the same months, divided by the imposed SST change:
R = (mean_m time_mean(scenario) - mean_m time_mean(historical)) / dSST.
"""

from __future__ import annotations

import xarray as xr

from ..data import experiments
from ..data.grid import global_mean
from ..data.timeaxis import Period
from .climatology import time_mean


def delta_sst_of(scenario: str | float) -> float:
    """The SST change in K of a scenario name (``p2k`` -> 2, ``aimip-p4k`` -> 4, from
    :mod:`diagnostics.data.experiments`) or a number."""
    if isinstance(scenario, (int, float)):
        return float(scenario)
    try:
        return experiments.sst_offset_k(scenario)
    except ValueError as exc:
        raise ValueError(f"unknown scenario {scenario!r}: {exc}, or the SST change in K") from None


def warming_response(scenario: xr.DataArray, historical: xr.DataArray, delta_sst: str | float,
                     period: Period | str | None = None, season: str = "ANN",
                     member_dim: str = "member") -> xr.DataArray:
    """Time-mean response per K of SST warming, in field units per K (maps or any shape).

    R = (time_mean(scenario) - time_mean(historical)) / dSST with ensemble means over
    ``member`` (members need not correspond), the same ``period`` and ``season`` for both
    (month-equal weights, see :mod:`.climatology`), dSST in K or a scenario name.
    """
    dsst = delta_sst_of(delta_sst)
    if dsst == 0:
        raise ValueError("the SST change of a warming scenario must be non-zero")
    s = time_mean(scenario, period, season)
    h = time_mean(historical, period, season)
    if member_dim in s.dims:
        s = s.mean(member_dim)
    if member_dim in h.dims:
        h = h.mean(member_dim)
    try:
        s, h = xr.align(s, h, join="exact")
    except ValueError as exc:
        raise ValueError(f"scenario and historical are not on the same grid: {exc}") from None
    out = (s - h) / dsst
    out.attrs = {"units": f"{historical.attrs.get('units', '')} K-1".strip(),
                 "long_name": f"response per K of SST warming ({season})"}
    out.name = f"{historical.name}_warming_response" if historical.name else "warming_response"
    return out


def global_warming_response(scenario: xr.DataArray, historical: xr.DataArray, delta_sst: str | float,
                            period: Period | str | None = None, season: str = "ANN",
                            member_dim: str = "member") -> xr.DataArray:
    """Area-weighted global mean of :func:`warming_response` (field units per K)."""
    out = global_mean(warming_response(scenario, historical, delta_sst, period, season, member_dim))
    out.attrs = {"units": f"{historical.attrs.get('units', '')} K-1".strip(),
                 "long_name": "global-mean response per K of SST warming"}
    return out


def warming_responses(scenarios: dict[str, xr.DataArray], historical: xr.DataArray,
                      period: Period | str | None = None, season: str = "ANN",
                      member_dim: str = "member") -> dict[str, xr.DataArray]:
    """:func:`warming_response` for each scenario run, keyed by its name (``p2k``, ``p4k``, ...),
    the SST change taken from the name."""
    return {name: warming_response(run, historical, name, period, season, member_dim)
            for name, run in scenarios.items()}
