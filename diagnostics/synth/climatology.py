"""Mean seasonal cycle of the synthetic climate (deterministic, per calendar month).

Analytic, zonally dominated climatologies with land/sea contrast and orography, in contract
units. Seasonal terms use s(m) = cos(2 pi (m - 7) / 12) (air: warmest in July in the north,
m = 1..12) and the hemispheric factor sin(lat), so amplitudes grow with latitude and the two
hemispheres are in opposite phase. Magnitudes follow the observed climate roughly:
tas 300 K at the equator, ~255 K Siberian January; zg500 5870 m tropics to 5350 m pole;
psl 101325 Pa +- subtropical highs / subpolar lows; jets of ~30-40 m s-1 in ua at 250 hPa;
ta decreasing with height through the troposphere to a ~195 K tropical tropopause; specific
humidity = relative humidity x saturation (Bolton 1980), falling by four orders of magnitude.
"""

from __future__ import annotations

import numpy as np

from ..data.catalogue import PLEV_HPA
from .statics import Statics

MM_DAY = 1.0 / 86400.0  # kg m-2 s-1 per mm day-1
T_FREEZE = 271.35  # K, freezing point of sea water
LAPSE = 0.0065  # K m-1
SCALE_HEIGHT = 8000.0  # m, for ps = psl exp(-orog / H)

#: Relative humidity per level (1000 ... 50 hPa; the two stratospheric levels use fixed ppmv values).
RH = (0.78, 0.70, 0.55, 0.45, 0.25, 0.0, 0.0)


def month_of_year() -> np.ndarray:
    """Calendar months 1..12 as a (12, 1, 1) array for broadcasting."""
    return np.arange(1, 13, dtype=float)[:, None, None]


def season_air(m: np.ndarray) -> np.ndarray:
    """+1 in July, -1 in January."""
    return np.cos(2 * np.pi * (m - 7.0) / 12.0)


def season_sea(m: np.ndarray) -> np.ndarray:
    """SST lags the air by about a month: +1 in August."""
    return np.cos(2 * np.pi * (m - 8.0) / 12.0)


def saturation_humidity(t: np.ndarray, p_pa: float) -> np.ndarray:
    """q_sat = 0.622 e_s / p with e_s = 611.2 exp(17.67 (T - 273.15) / (T - 29.65)) Pa (Bolton 1980)."""
    es = 611.2 * np.exp(17.67 * (t - 273.15) / (t - 29.65))
    return 0.622 * es / p_pa


def tos_raw(st: Statics) -> np.ndarray:
    """Climatological SST before the freezing clamp (12, nlat, nlon), K; may dip below 271.35."""
    lat, m = np.deg2rad(st.lat), month_of_year()
    base = 270.0 + 32.0 * np.cos(lat) ** 2 - 4.0 * np.exp(-(((st.lat + 70.0) / 12.0) ** 2))
    amp = 4.0 * np.sin(lat) * np.sqrt(np.cos(lat))
    return base + amp * season_sea(m)


def _surface_air(st: Statics, m: np.ndarray, land: np.ndarray, with_orography: bool) -> np.ndarray:
    lat = np.deg2rad(st.lat)
    t0 = 300.5 - 42.0 * np.sin(lat) ** 2 - 8.0 * np.exp(-(((st.lat + 90.0) / 20.0) ** 2))
    t = t0 + (3.0 + 12.0 * land) * np.sin(lat) * season_air(m)
    return t - LAPSE * st.orog if with_orography else t


def _jets(st: Statics, m: np.ndarray) -> np.ndarray:
    """Zonal wind at 250 hPa, m s-1: subtropical/eddy-driven jets, stronger in winter."""
    s = season_air(m)
    nh = (30.0 - 10.0 * s) * np.exp(-0.5 * ((st.lat - (33.0 + 5.0 * s)) / 9.0) ** 2)
    sh = (32.0 + 6.0 * s) * np.exp(-0.5 * ((st.lat + 45.0) / 10.0) ** 2)
    return nh + sh


def climatology(st: Statics) -> dict[str, np.ndarray]:
    """Every state channel's mean (12, nlat, nlon) plus ``tos_raw`` and ``dewpoint_depression``.

    Keys are channel labels (``tas``, ``ta850``, ``zg500``). ``ps`` follows from psl and orography;
    ``tdas`` = tas - dewpoint_depression.
    """
    m = month_of_year()
    lat = np.deg2rad(st.lat)
    sinl, s = np.sin(lat), season_air(m)
    land = st.sftlf
    arid = np.exp(-(((np.abs(st.lat) - 23.0) / 10.0) ** 2))
    out: dict[str, np.ndarray] = {}
    out["tas"] = _surface_air(st, m, land, True)
    out["ts"] = out["tas"] + 0.8
    out["dewpoint_depression"] = np.broadcast_to(2.0 + 3.0 * land + 10.0 * land * arid, out["tas"].shape).copy()
    out["tdas"] = out["tas"] - out["dewpoint_depression"]
    psl = (101325.0 + 900.0 * np.exp(-(((np.abs(st.lat) - 32.0) / 10.0) ** 2))
           - 1200.0 * np.exp(-(((st.lat - 62.0) / 10.0) ** 2)) - 2000.0 * np.exp(-(((st.lat + 62.0) / 9.0) ** 2))
           - 300.0 * np.exp(-((st.lat / 8.0) ** 2)) - 1200.0 * land * sinl * s)
    out["psl"] = psl
    out["ps"] = psl * np.exp(-st.orog / SCALE_HEIGHT)
    out["zg500"] = 5870.0 - 520.0 * sinl**2 + 80.0 * sinl * s + 0.0 * st.lon
    # Column temperature without orography (pressure levels extend below ground as in ERA5).
    tcol = _surface_air(st, m, 0.4 * land, False)
    t_trop = 212.0 + 8.0 * sinl**2
    jets = _jets(st, m)
    winter = np.clip(-s * np.sign(st.lat), 0.0, None)
    trades = -6.0 * np.exp(-(((np.abs(st.lat) - 15.0) / 9.0) ** 2))
    hadley = np.where(np.abs(st.lat) < 30.0, np.sin(np.pi * st.lat / 30.0), 0.0) * np.cos(lat)
    u_shape = dict(zip(PLEV_HPA, (0.15, 0.3, 0.45, 0.65, 1.0, 0.55, 0.3)))
    trade_shape = dict(zip(PLEV_HPA, (1.0, 0.7, 0.4, 0.1, 0.0, 0.0, 0.0)))
    v_shape = dict(zip(PLEV_HPA, (-2.0, -1.2, 0.0, 0.0, 2.5, 0.5, 0.0)))
    for lev, rh in zip(PLEV_HPA, RH):
        if lev >= 250:
            ta = np.maximum(tcol * (lev / 1000.0) ** 0.17, t_trop)
        elif lev == 100:
            ta = 195.0 + 25.0 * sinl**2 + 5.0 * sinl * s
        else:
            ta = 207.0 + 12.0 * sinl**2 + 15.0 * sinl * np.abs(sinl) * s
        out[f"ta{lev}"] = ta + 0.0 * st.lon
        if lev >= 250:
            out[f"hus{lev}"] = rh * saturation_humidity(ta, lev * 100.0) + 2.5e-6 + 0.0 * st.lon
        else:  # stratosphere: a few ppmv, drier than the tropopause below
            out[f"hus{lev}"] = ((3.0e-6 + 1.0e-6 * np.cos(lat) ** 2) if lev == 100 else (2.5e-6 + 0.2e-6 * np.cos(lat) ** 2)) + 0.0 * st.lon
        ua = u_shape[lev] * jets + trade_shape[lev] * trades
        if lev == 50:
            ua = ua + 25.0 * np.exp(-(((np.abs(st.lat) - 62.0) / 10.0) ** 2)) * winter
        out[f"ua{lev}"] = ua + 0.0 * st.lon
        out[f"va{lev}"] = v_shape[lev] * hadley + 0.0 * st.lon + 0.0 * m
    out["uas"] = 0.8 * out["ua1000"]
    out["vas"] = 0.8 * out["va1000"]
    itcz = 6.0 + 5.0 * s
    pr_mm = (1.0 + 7.0 * np.exp(-(((st.lat - itcz) / 8.0) ** 2)) + 2.2 * np.exp(-(((np.abs(st.lat) - 45.0) / 12.0) ** 2))
             - 0.6 * arid * (1.0 + land))
    pr_mm = np.maximum(pr_mm * (1.0 - 0.8 * land * arid), 0.1)
    out["pr"] = pr_mm * MM_DAY
    out["tos_raw"] = tos_raw(st)
    shape = (12, *st.grid.shape)
    return {k: np.broadcast_to(v, shape).astype(float) for k, v in out.items()}
