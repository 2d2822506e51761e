"""Planted spatial maps of the synthetic climate: ENSO teleconnections, NAO, trends, warming
responses and noise amplitudes, per state channel.

Every map is (nlat, nlon). For the additive channels the map is in the channel's units per
unit of its driver (per K of the relative Nino-3.4 index, per decade, per K of uniform SST
warming, per standard deviation of the NAO). For the positive channels ``pr`` and ``hus<lev>``
the ENSO, trend and warming maps are *relative* (fraction of the climatology per K / decade)
and the noise amplitude is the standard deviation of log-noise (see :mod:`.climate`).

zg500 and psl (and so ps) have neither ENSO teleconnection nor trend inside the NAO domain
(20-80N, 90W-40E, tapered to zero over 15 degrees outside), so the DJF-mean variability there
is exactly NAO + noise and the planted NAO variance fraction is exact.
"""

from __future__ import annotations

import numpy as np

from ..data.catalogue import PLEV_HPA
from .statics import Statics, gauss

#: NAO domain (inclusive): latitude 20..80 N, longitude 270..360 and 0..40 E.
NAO_LAT = (20.0, 80.0)
NAO_LON = (270.0, 40.0)
#: Nino-3.4 box and the tropical band of the relative index (inclusive bounds).
NINO34_LAT = (-5.0, 5.0)
NINO34_LON = (190.0, 240.0)
TROPICS_LAT = (-20.0, 20.0)

#: Month-to-month lag-1 autocorrelation of the noise of each variable (store names).
LAG1: dict[str, float] = {"ps": 0.3, "ts": 0.55, "tas": 0.55, "tdas": 0.55, "uas": 0.25, "vas": 0.2,
                          "pr": 0.2, "psl": 0.3, "ta": 0.5, "hus": 0.4, "ua": 0.3, "va": 0.2, "zg500": 0.3}
TOS_LAG1 = 0.75
#: Exponent of the planted power spectrum P(l) ~ l^slope of every noise field.
SPECTRAL_SLOPE = -2.5
#: Log-noise standard deviation of the dewpoint depression (tdas = tas - depression).
DEPRESSION_LOG_STD = 0.2

# Planted nonlinearity (on by default; ``md-synth --linear`` / ``nonlinear=False`` switch it off).
#: ENSO asymmetry A: every ENSO response beta N becomes beta (N + A (|N| - E|N|)), i.e. slope
#: beta (1 + A) for El Nino (N > 0) and beta (1 - A) for La Nina (N < 0); the least-squares slope
#: on N stays beta because N is symmetric (cov(|N|, N) = 0).
ENSO_ASYMMETRY = 0.4
#: Clausius-Clapeyron-like rate (K-1): pr and hus<lev> are multiplied by exp(CC_RATE T' - (CC_RATE s_T)^2 / 2),
#: T' = s_T xi_T the weather (noise) part of tas (for pr) or of ta<lev> (for hus<lev>).
CC_RATE = 0.07
#: NAO amplitude scale per calendar month (DJF mean 1, so DJF-mean statistics are unchanged).
NAO_MONTH_SCALE: dict[int, float] = {12: 0.8, 1: 1.2, 2: 1.0}
#: Variance of the winter NAO amplitude by ENSO phase (sign of N in the winter's first month in the
#: run, normally December); the two are equally likely, so the mean variance stays 1.
NAO_PHASE_VARIANCE: dict[str, float] = {"la_nina": 1.5, "el_nino": 0.5}

#: SST trend (K per decade), exactly uniform within 25S-25N (:func:`tos_trend`). Off by default
#: (``md-synth --forced-trend``), it is also the warming rate of the SST the atmosphere's forced
#: trend responds to: trend_c = gamma_c x TOS_TREND_TROPICS (:func:`planted`).
TOS_TREND_TROPICS = 0.15


def in_nao_domain(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """True inside the NAO domain 20-80N, 270-360E and 0-40E (bounds inclusive)."""
    lon = np.mod(lon, 360.0)
    return (lat >= NAO_LAT[0]) & (lat <= NAO_LAT[1]) & ((lon >= NAO_LON[0]) | (lon <= NAO_LON[1]))


def nao_domain_taper(lat: np.ndarray, lon: np.ndarray, width: float = 15.0) -> np.ndarray:
    """1 on the closed NAO domain, falling to 0 over ``width`` degrees outside it (cos^2)."""
    def ramp(dist: np.ndarray) -> np.ndarray:
        return np.cos(0.5 * np.pi * np.clip(dist / width, 0.0, 1.0)) ** 2
    dlat = np.maximum(NAO_LAT[0] - lat, 0.0) + np.maximum(lat - NAO_LAT[1], 0.0)
    x = (np.mod(lon, 360.0) - 270.0) % 360.0  # 0..130 inside the domain
    dlon = np.where(x <= 130.0, 0.0, np.minimum(x - 130.0, 360.0 - x))
    return ramp(dlat) * ramp(dlon)


def enso_sst_pattern(st: Statics) -> np.ndarray:
    """Unnormalised SST pattern of the ENSO mode (K per unit), centred in the Nino-3.4 box."""
    p = gauss(st.lat, st.lon, 0.0, 215.0, 8.0, 40.0) + 0.5 * gauss(st.lat, st.lon, -3.0, 265.0, 6.0, 15.0)
    return np.where(st.ocean, p, 0.0)


def tos_trend(st: Statics) -> np.ndarray:
    """SST trend, K per decade: exactly uniform (0.15) within 25S-25N so the relative
    Nino-3.4 index has no trend; 0.25 in northern, 0.05 in southern high latitudes."""
    ramp = np.sin(0.5 * np.pi * np.clip((np.abs(st.lat) - 25.0) / 20.0, 0.0, 1.0)) ** 2
    return TOS_TREND_TROPICS + np.where(st.lat > 0, 0.10, -0.10) * ramp + 0.0 * st.lon


def nao_patterns(st: Statics) -> dict[str, np.ndarray]:
    """Planted NAO dipole per standard deviation: low near Iceland, high near the Azores."""
    dipole = -gauss(st.lat, st.lon, 64.0, 335.0, 7.0, 16.0) + 0.8 * gauss(st.lat, st.lon, 39.0, 338.0, 7.0, 20.0)
    return {"zg500": 80.0 * dipole, "psl": 900.0 * dipole}


def forced_trends(warming: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The forced trend of every channel (per decade) from its warming map gamma_c (per K):
    gamma_c x TOS_TREND_TROPICS, the atmosphere's response to the tropical SST warming."""
    return {lab: TOS_TREND_TROPICS * gamma for lab, gamma in warming.items()}


def planted(st: Statics, forced_trend: bool = False) -> dict[str, dict[str, np.ndarray]]:
    """All planted maps: ``{"enso"|"trend"|"warming"|"nao"|"sigma": {channel label: map}}``.

    Channels missing from a kind have a zero map there (``ps`` is derived from psl and is not
    listed; ``tdas`` shares tas's maps).

    By default the atmosphere's historical trend and its response to a uniform SST offset are
    independent maps, so no historical (offset 0) data carry the warming response.
    ``forced_trend=True`` makes the trend the forced response to the tropical SST warming:
    trend_c = gamma_c x TOS_TREND_TROPICS (per decade) for every channel, so the historical trend
    carries gamma_c and +2K / +4K are extrapolations of it. zg500's and psl's warming maps are then
    tapered to 0 in the NAO domain like their trends (a trend there would enter the DJF-mean
    covariance and break the exact NAO truth).
    """
    lat, lon, land, ocean = st.lat, st.lon, st.sftlf, st.ocean.astype(float)
    z = np.zeros_like(lat)
    g = lambda *a: gauss(lat, lon, *a)  # noqa: E731
    sin2 = np.sin(np.deg2rad(lat)) ** 2
    trop = np.exp(-((lat / 20.0) ** 2))
    arctic = np.exp(-(((lat - 90.0) / 18.0) ** 2))
    outside_nao = 1.0 - nao_domain_taper(lat, lon)
    p_sst = enso_sst_pattern(st)

    enso: dict[str, np.ndarray] = {}
    enso["tas"] = (0.85 * p_sst / p_sst.max() + 0.3 * trop * land + 0.8 * g(58.0, 240.0, 10.0, 20.0)
                   - 0.4 * g(32.0, 275.0, 7.0, 15.0) + 0.4 * g(-5.0, 300.0, 8.0, 12.0))
    enso["ts"] = 1.05 * enso["tas"]
    enso["tdas"] = enso["tas"]
    enso["uas"] = 1.2 * g(0.0, 180.0, 6.0, 30.0)
    enso["pr"] = (0.25 * g(0.0, 210.0, 7.0, 35.0) - 0.25 * g(-2.0, 125.0, 10.0, 20.0)
                  - 0.2 * g(-3.0, 305.0, 8.0, 12.0) + 0.15 * g(30.0, 260.0, 6.0, 20.0))
    enso["psl"] = (-80.0 * g(-5.0, 240.0, 12.0, 40.0) + 80.0 * g(-10.0, 130.0, 12.0, 30.0)
                   - 150.0 * g(48.0, 190.0, 10.0, 25.0)) * outside_nao
    enso["zg500"] = (12.0 * trop - 30.0 * g(47.0, 190.0, 9.0, 20.0) + 25.0 * g(57.0, 245.0, 9.0, 18.0)) * outside_nao
    ua250 = 2.5 * g(28.0, 200.0, 6.0, 30.0) + 2.0 * g(-28.0, 220.0, 6.0, 30.0) - 1.5 * g(0.0, 170.0, 8.0, 30.0)
    for lev, ta_k, hus_k, ua_k, trade_k in zip(PLEV_HPA, (0.3, 0.35, 0.45, 0.55, 0.75, -0.3, 0.0),
                                                 (0.05, 0.05, 0.06, 0.07, 0.08, 0.02, 0.0),
                                                 (0.2, 0.3, 0.45, 0.65, 1.0, 0.6, 0.3),
                                                 (1.0, 0.8, 0.5, 0.0, 0.0, 0.0, 0.0)):
        enso[f"ta{lev}"] = ta_k * trop
        enso[f"hus{lev}"] = hus_k * g(0.0, 210.0, 12.0, 50.0)
        enso[f"ua{lev}"] = ua_k * ua250 + trade_k * 1.2 * g(0.0, 180.0, 6.0, 30.0)

    trend: dict[str, np.ndarray] = {}
    trend["tas"] = ocean * (tos_trend(st) + 0.02) + (1.0 - ocean) * 0.28 + 0.45 * arctic
    trend["ts"] = trend["tas"]
    trend["tdas"] = trend["tas"]
    trend["pr"] = 0.01 + 0.02 * trop + z
    trend["zg500"] = 5.0 * np.cos(0.5 * np.pi * np.clip((np.abs(lat) - 10.0) / 10.0, 0.0, 1.0)) ** 2 * outside_nao
    for lev, k in zip(PLEV_HPA, (0.18, 0.2, 0.22, 0.25, 0.3, 0.0, -0.3)):
        trend[f"ta{lev}"] = k + z
        trend[f"hus{lev}"] = 0.07 * k + z  # Clausius-Clapeyron: ~7 % per K of warming
        trend[f"ua{lev}"] = 0.2 * (0.3 + 0.7 * (lev == 250)) * g(-55.0, 0.0, 8.0, 1e9)

    warming: dict[str, np.ndarray] = {}
    warming["tas"] = ocean * 1.0 + (1.0 - ocean) * 1.4 + 0.6 * arctic
    warming["ts"] = ocean * 1.0 + (1.0 - ocean) * 1.5
    warming["tdas"] = warming["tas"]
    warming["pr"] = 0.02 + 0.05 * np.exp(-((lat / 10.0) ** 2)) - 0.04 * np.exp(-(((np.abs(lat) - 25.0) / 7.0) ** 2)) + z
    warming["zg500"] = 22.0 + 8.0 * trop + z
    warming["psl"] = -40.0 * np.exp(-(((np.abs(lat) - 60.0) / 10.0) ** 2)) + 20.0 * np.exp(-(((np.abs(lat) - 40.0) / 10.0) ** 2)) + z
    jet_shift = (np.exp(-(((lat - 42.0) / 8.0) ** 2)) + np.exp(-(((lat + 52.0) / 8.0) ** 2))
                 - 0.6 * (np.exp(-(((lat - 28.0) / 8.0) ** 2)) + np.exp(-(((lat + 38.0) / 8.0) ** 2))))
    trop25 = np.exp(-((lat / 25.0) ** 2))
    for lev, base, extra, uk in zip(PLEV_HPA, (1.05, 1.05, 1.05, 1.1, 1.0, 0.2, -0.4),
                                     (0.05, 0.2, 0.35, 0.6, 1.2, 0.3, 0.0),
                                     (0.2, 0.3, 0.45, 0.65, 1.0, 0.6, 0.3)):
        warming[f"ta{lev}"] = base + extra * trop25 + z
        warming[f"hus{lev}"] = 0.07 * warming[f"ta{lev}"]
        warming[f"ua{lev}"] = 0.5 * uk * jet_shift + z
    warming["uas"] = 0.1 * jet_shift + z

    if forced_trend:
        for lab in ("zg500", "psl"):
            warming[lab] = warming[lab] * outside_nao
        trend = forced_trends(warming)

    sigma: dict[str, np.ndarray] = {}
    sigma["tas"] = 0.5 + 1.0 * land + 2.0 * sin2
    sigma["ts"] = 1.05 * sigma["tas"]
    sigma["tdas"] = sigma["tas"]
    sigma["uas"] = 1.0 + 0.5 * sin2
    sigma["vas"] = 1.2 + z  # uniform: a clean channel for spectra and autocorrelation
    sigma["pr"] = 0.35 + z  # log-noise std
    sigma["psl"] = 100.0 + 250.0 * sin2
    sigma["zg500"] = 10.0 + 25.0 * sin2
    for lev, tk, uk, vk in zip(PLEV_HPA, (1.3, 1.1, 0.9, 0.9, 1.0, 0.8, 1.5),
                                (0.6, 0.7, 0.8, 1.0, 1.6, 1.0, 1.2),
                                (1.0, 1.5, 1.5, 2.0, 3.0, 1.5, 1.5)):
        sigma[f"ta{lev}"] = tk * (0.3 + 1.2 * sin2)
        sigma[f"hus{lev}"] = 0.12 + z  # log-noise std
        sigma[f"ua{lev}"] = uk * (1.5 + 3.0 * sin2)
        sigma[f"va{lev}"] = vk + z  # uniform: clean channels

    return {"enso": enso, "trend": trend, "warming": warming, "nao": nao_patterns(st), "sigma": sigma}
