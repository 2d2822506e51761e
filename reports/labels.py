"""Readable labels for what the report shows: models, channels, modes, metrics and qualifiers.

The one place that turns metrics.json's keys (``nao_psl``, ``baseline-ar1``,
``warming_per_K_global``, ``p2k``) into words a reader sees in tables and captions; the raw key
stays in the cell's tooltip. Unknown names fall back to their parts with underscores as spaces,
so no raw key reaches the visible text.
"""

from __future__ import annotations

import re

from diagnostics.data import catalogue
from diagnostics.schema import BASELINE_PREFIX, NOISE_FLOOR, REFERENCE, MetricKey

NOISE_FLOOR_LABEL = "noise floor (perfect model)"

MODELS = {NOISE_FLOOR: NOISE_FLOOR_LABEL, REFERENCE: "reference", "baseline-climatology": "climatology",
          "baseline-persistence": "persistence", "baseline-ar1": "AR(1)", "baseline-seasonal-ar1": "seasonal AR(1)"}

MODES = {"nao_z500": "NAO (Z500)", "nao_psl": "NAO (sea-level pressure)", "nh_z500_eof1": "NH Z500 EOF1",
         "nino34": "Niño-3.4 index"}

SHORT_VARIABLES = {"tas": "Surface air temperature", "psl": "Sea-level pressure", "zg": "Geopotential height",
                   "ta": "Temperature", "ua": "Zonal wind", "va": "Meridional wind", "uas": "Surface zonal wind",
                   "vas": "Surface meridional wind", "hus": "Specific humidity", "huss": "Surface specific humidity",
                   "ts": "Surface temperature", "pr": "Precipitation"}

METRICS = {
    "bias_mean": "global-mean bias", "bias_rms": "RMS of bias map", "crps": "CRPS", "crps_fair": "fair CRPS",
    "ensmean_rmse": "ensemble-mean RMSE", "spread": "ensemble spread", "spread_skill": "spread-skill ratio",
    "spread_skill_corrected": "spread-skill ratio (corrected)", "std_ratio": "variability ratio",
    "std_global": "std of monthly anomalies (global mean)", "lag1_ratio": "lag-1 autocorrelation ratio",
    "lag1_global": "lag-1 autocorrelation (global mean)", "lag1_diff": "lag-1 autocorrelation difference",
    "trend_global": "global-mean trend", "trend_global_diff": "global-mean trend difference",
    "trend_map_rms_diff": "RMS of trend difference", "index_std": "index std",
    "nino34_pattern_corr": "Niño-3.4 pattern corr.", "nino34_rms_diff": "Niño-3.4 RMS difference",
    "nino34_amplitude_ratio": "Niño-3.4 amplitude ratio", "pattern_corr": "pattern correlation",
    "rms": "RMS difference", "variance_fraction": "variance fraction", "variance_fraction_model":
    "variance fraction (model)", "variance_fraction_ref": "variance fraction (reference)",
    "pc_std_ratio": "PC std ratio", "warming_per_K_global": "warming per K (global mean)",
    "sh_band_ratio": "spherical-harmonic power ratio", "zonal_band_ratio": "zonal power ratio",
    "anomaly_sh_band_ratio": "anomaly spherical-harmonic power ratio",
    "anomaly_zonal_band_ratio": "anomaly zonal power ratio", "scored_area_fraction": "scored area fraction",
    # the official AI-MIP evaluation (diagnostics/groups/aimip.py); per-member statistics via MEMBER_STATS
    "aimip_rmsb": "RMS of time-mean bias (AI-MIP E1)", "aimip_rmsb_2p8deg": "RMS of time-mean bias, 2.8° (AI-MIP E1)",
    "aimip_global_bias": "global-mean bias (AI-MIP E1)", "aimip_global_trend": "global trend per decade (AI-MIP E2)",
    "aimip_global_trend_error": "global trend error (AI-MIP E2)", "aimip_trend_bias_rms": "RMS of trend bias (AI-MIP E2)",
    "aimip_enso_rmse": "RMSE of Niño-3.4 regression (AI-MIP E3)",
    "aimip_daily_std_global": "std of daily departures (AI-MIP E4)",
    "aimip_daily_std_error_rms": "RMS error of daily std (AI-MIP E4)",
    "aimip_response_global": "perturbed minus control (AI-MIP E5)",
    # ensembles around a trajectory and guided runs (diagnostics/groups/conditioning.py)
    "global_anomaly_mean": "global-mean anomaly from the reference's climatology (mean)",
    "global_anomaly_rms": "global-mean anomaly from the reference's climatology (RMS)",
    "distance_reference": "ensemble-mean distance to the reference (anomalies)",
    "distance_forced": "distance to the forced signal (noise-floor mean)",
    "distance_forced_sampling": "distance to the forced signal from sampling alone",
    "spread_ratio_noise_floor": "spread / noise floor's spread",
    "weather_corr_reference": "correlation with the reference's weather",
    "weather_corr_reference_sampling": "correlation with the reference's weather from sampling alone",
}
#: Suffixes of the statistics over members the AI-MIP groups write beside the per-member values.
MEMBER_STATS = {"median": "member median", "min": "member min", "max": "member max"}


def _words(name: str) -> str:
    return name.replace("_", " ")


def model(name: str) -> str:
    """``baseline-ar1`` -> ``AR(1)``, ``noise-floor`` -> ``noise floor (perfect model)``; others as named."""
    if name in MODELS:
        return MODELS[name]
    return name[len(BASELINE_PREFIX):].replace("-", " ") if name.startswith(BASELINE_PREFIX) else name


def channel(name: str) -> str:
    """``ta850`` -> ``Temperature 850 hPa``, ``nao_psl`` -> ``NAO (sea-level pressure)``."""
    if name in MODES:
        return MODES[name]
    m = re.fullmatch(r"([a-z]+?)(\d+)", name)
    var, level = (m.group(1), m.group(2)) if m else (name, "")
    words = SHORT_VARIABLES.get(var)
    if words is None:
        try:
            words = catalogue.variable(var).long_name
        except KeyError:
            return _words(name)
    return f"{words} {level} hPa" if level else words


def metric(name: str) -> str:
    """Readable name of a metric; ``X_median`` / ``_min`` / ``_max`` of a known ``X`` say the member statistic."""
    if name in METRICS:
        return METRICS[name]
    base, _, stat = name.rpartition("_")
    if base in METRICS and stat in MEMBER_STATS:
        return f"{METRICS[base]}, {MEMBER_STATS[stat]}"
    return _words(name)


def qualifier(q: str) -> str:
    """``p2k`` -> ``+2K``, ``member3`` -> ``member 3``, ``1-10`` -> ``wavenumbers 1-10``."""
    if re.fullmatch(r"p\d+k", q):
        return f"+{q[1:-1]}K"
    if re.fullmatch(r"member\d+", q):
        return f"member {q[6:]}"
    if re.fullmatch(r"\d+(-\d+|\+)", q):
        return f"wavenumbers {q}"
    return _words(q)


def key(k: MetricKey) -> str:
    """``MD-demo.pr.warming_per_K_global.p2k`` -> ``MD-demo — Precipitation: warming per K (global mean), +2K``."""
    quals = ", ".join(qualifier(q) for q in k.qualifiers)
    return f"{model(k.model)} — {channel(k.channel)}: {metric(k.metric)}" + (f" ({quals})" if quals else "")


_SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[A-Za-z0-9]+)+\b")


def prose(text: str) -> str:
    """Metric and mode names inside a sentence written by md-diagnose, as words
    (``spread_skill_corrected multiplies ...`` -> ``spread-skill ratio (corrected) multiplies ...``)."""
    return _SNAKE.sub(lambda m: METRICS.get(m.group(), MODES.get(m.group(), m.group().replace("_", " "))), text)
