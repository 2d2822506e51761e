"""The planted truth of a synthetic dataset (``truth.nc`` beside ``dataset.zarr``).

Every variable carries ``units`` and a ``description``. ``<v>`` runs over the 13 state store
names ps, ts, tas, tdas, uas, vas, pr, psl, ta, hus, ua, va, zg500; 3-D variables have dims
(plev, lat, lon), the others (lat, lon). "Anomaly" means the departure from the calendar-month
mean of the dataset. Definitions (all weights: :func:`diagnostics.data.grid.area_weights`):

Relative Nino-3.4 index N(t) (K): area-weighted mean of tos over 5S-5N, 190-240E minus the
area-weighted mean of tos over 20S-20N (all longitudes), bounds inclusive, land (NaN) cells left
out, computed from the tos written to the dataset; monthly, no running mean. Its anomaly is what
the atmosphere responds to (``nino34_relative_index``).

``<v>_nino34_regression`` (units of v per K): least-squares slope of monthly anomalies of v on
the monthly anomaly of N (cov / var over all months). Exact in expectation for the monthly index;
with a 3-month centred running mean of N the slope is the same to within ~2 % because N is
dominated by a 48-month oscillation. For pr and hus: relative slope times the calendar-month-mean
climatology. Planted as exactly 0 for va and vas, and for zg500, psl, ps inside the NAO domain.
``<v>_trend`` (units per decade): linear trend in time (years / 10); 0 for psl, ps, va, vas,
uas. ``tos_trend``: SST trend before the freezing clamp (cells under sea ice do not show it),
NaN over land. ``tas_trend_global``, ``tos_trend_global``: area-weighted means of the maps (tos
over its defined cells).
``<v>_warming_per_K`` (units per K): response to a uniform SST offset dT; (p<dT>k - historical)
/ dT with the same seed recovers it exactly for additive fields (the noise is identical) and in
expectation (time mean) for pr and hus.
With ``forced_trend`` (``md-synth --forced-trend``; absent by default) every ``<v>_trend`` is
``<v>_warming_per_K`` x ``forced_trend_rate`` (0.15 K decade-1, the SST trend within 25S-25N), and
the zg500 / psl / ps warming maps are tapered to 0 in the NAO domain like their trends; the global
attribute ``forced_trend`` is 1.
``<v>_noise_std``: standard deviation of the noise term (log-noise for pr and hus, unit 1; for
tdas the combined tas + dewpoint-depression noise, approximate).
``<v>_lag1``: lag-1 (one month) autocorrelation of the noise term (of the log-noise for pr/hus).
Full anomalies show it directly where nothing else is planted (va at every level, vas, everywhere;
most fields outside the tropics and outside DJF in the North Atlantic).
``noise_spectral_slope``: exponent s of the expected power per total wavenumber of every noise
field, P(l) = |a_l0|^2 + 2 sum_{m>0} |a_lm|^2 ~ l^s for 1 <= l < ``noise_lmax`` (orthonormal
spherical harmonics, torch-harmonics ``RealSHT(norm="ortho")``), P(0) = 0. Anomalies of va and
vas (uniform noise amplitude, nothing else planted) have exactly this spectrum.
``nao_z500_pattern`` / ``nao_psl_pattern`` (m / Pa per standard deviation): the planted dipole:
regression of DJF-mean zg500 / psl on the standardised NAO amplitude (one value per winter;
DJF of winter Y = Dec Y-1, Jan Y, Feb Y); low near Iceland, high near the Azores (positive NAO).
``nao_z500_eof_pattern`` / ``nao_psl_eof_pattern``: what an EOF analysis recovers with infinite
data: the regression of DJF-mean anomalies on the standardised leading PC of the covariance of
sqrt(area)-weighted DJF-mean anomalies inside the NAO domain (20-80N, 270-360E and 0-40E, bounds
inclusive; NaN outside), sign positive NAO (mean over 60-80N negative) - eofs
``eofsAsCovariance(pcscaling=1)``. ``nao_z500_variance_fraction`` / ``nao_psl_variance_fraction``:
the leading eigenvalue over the trace of that covariance (eofs ``varianceFraction()[0]``), exact
for the planted NAO + noise (nothing else varies there). ``..._variance_fraction_stderr1``: its
asymptotic (North et al. 1982, delta method) standard error for one winter; divide by
sqrt(number of winters).
Planted nonlinearity (values of the linear climate when ``nonlinear`` is 0): ``enso_asymmetry`` A
and ``<v>_nino34_regression_positive`` / ``_negative`` = (1 +- A) x ``<v>_nino34_regression``, the
slopes for N > 0 / N < 0 (piecewise-linear regression on max(N, 0), min(N, 0)); ``nino34_std``
(exact population std of N) and ``nino34_abs_mean`` = E|N|; ``cc_scaling_rate`` (K-1), the slope of
log(pr) on the tas weather and of log(hus<lev>) on the ta<lev> weather; ``nao_std_by_month``
(month 1..12) the std of the monthly NAO amplitude; ``nao_std_la_nina`` / ``nao_std_el_nino`` the
std of the DJF-mean amplitude in winters with N < 0 / N >= 0 in their first DJF month.
``tos_enso_pattern``: SST per K of the ENSO oscillator, scaled so its relative Nino-3.4 value is
1; ``enso_oscillator`` the oscillator series; ``enso_period_months``, ``enso_damping``,
``enso_std``. ``nao_amplitude`` the realised NAO amplitude (time[, member]), 0 outside DJF.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.linalg import eigh

from .. import __version__
from ..data import catalogue
from ..data.contract import plev_coord
from ..data.grid import area_weights
from ..data.timeaxis import Month, monthly_axis
from . import patterns
from .model import MULTIPLICATIVE, Run
from .climatology import SCALE_HEIGHT
from .forcing import ENSO_DAMPING, ENSO_PERIOD_MONTHS, ENSO_STD, nino34_std, sst_pattern
from .spectral_noise import correlation

NAO_DEFINITION = ("leading EOF of DJF-mean anomalies over 20-80N, 270-360E and 0-40E (bounds inclusive), "
                  "weights sqrt(area_weights); pattern = regression on the standardised PC; positive NAO = "
                  "low near Iceland (mean over 60-80N negative)")
NINO34_DEFINITION = ("relative Nino-3.4 index: area-weighted tos mean over 5S-5N, 190-240E minus area-weighted "
                     "tos mean over 20S-20N, bounds inclusive, NaN cells excluded; monthly anomaly, no running mean")


def djf_mean_factor(phi: float) -> float:
    """Variance of the mean of 3 consecutive months of a unit AR(1) series: (3 + 4 phi + 2 phi^2) / 9."""
    return (3.0 + 4.0 * phi + 2.0 * phi**2) / 9.0


def nao_population(run: Run, label: str) -> dict[str, np.ndarray | float]:
    """Population EOF1 of DJF-mean ``label`` (zg500 or psl) anomalies in the NAO domain.

    Covariance C = p p^T + f_DJF(phi) (sigma sigma^T) o rho(gamma) (planted NAO + noise; ENSO and
    trends vanish there by construction), weighted by sqrt(area) on both sides.
    """
    m = run.model
    st = m.statics
    inside = patterns.in_nao_domain(st.lat, st.lon)
    i = m.labels.index(label)
    sig, p = m.sigma[i][inside], m.nao[i][inside]
    # rho depends on (row a, row b, longitude step): tabulate it once instead of per pair.
    rows, cols = np.nonzero(inside)
    phi_r, nlon = np.deg2rad(st.grid.lat), st.grid.lon.size
    dlon = 2 * np.pi * np.arange(nlon) / nlon
    cos_table = (np.sin(phi_r)[:, None, None] * np.sin(phi_r)[None, :, None]
                 + np.cos(phi_r)[:, None, None] * np.cos(phi_r)[None, :, None] * np.cos(dlon)[None, None, :])
    used = np.unique(rows)
    rho_table = np.zeros_like(cos_table)
    rho_table[np.ix_(used, used)] = correlation(cos_table[np.ix_(used, used)], m.noise.lmax, m.slope)
    rho = rho_table[rows[:, None], rows[None, :], (cols[:, None] - cols[None, :]) % nlon]
    cov = np.outer(p, p) + djf_mean_factor(m.lag1(label)) * np.outer(sig, sig) * rho
    wrow = np.sqrt(area_weights(np.asarray(st.grid.lat)).values)[:, None] * np.ones(st.grid.lon.size)[None, :]
    w = wrow[inside]
    cw = cov * np.outer(w, w)
    n = cw.shape[0]
    lam, vec = eigh(cw, subset_by_index=[n - 1, n - 1])
    lam1, e1 = float(lam[0]), vec[:, 0]
    trace = float(np.trace(cw))
    rest = trace - lam1
    sum_sq_rest = float(np.sum(cw * cw)) - lam1**2  # sum of squared remaining eigenvalues
    stderr1 = np.sqrt(2.0) * lam1 * np.sqrt(rest**2 + sum_sq_rest) / trace**2
    pattern = cov @ (w * e1) / np.sqrt(lam1)
    if pattern[st.lat[inside] >= 60.0].mean() > 0:
        pattern = -pattern
    full = np.full(st.grid.shape, np.nan)
    full[inside] = pattern
    return {"fraction": lam1 / trace, "stderr1": stderr1, "pattern": full, "mask": inside}


def _for_variable(run: Run, kind: str, store: str) -> np.ndarray:
    """Planted map of ``kind`` for a store name, in the variable's own units (stacked over plev)."""
    m = run.model
    var = catalogue.variable(store)
    labels = [catalogue.channel_label(n, lev) for n, lev in catalogue.channels([var.name])]
    out = []
    for lab in labels:
        src = {"ps": "psl", "tdas": "tas"}.get(lab, lab)
        i = m.labels.index(src)
        arr = {"enso": m.beta, "trend": m.trend, "warming": m.warming, "sigma": m.sigma}[kind][i].copy()
        if var.name in MULTIPLICATIVE and kind != "sigma":
            arr = arr * m.clim[lab].mean(axis=0)
        if lab == "ps":
            arr = arr * np.exp(-m.statics.orog / SCALE_HEIGHT)
        if lab == "tdas" and kind == "sigma":
            d = m.clim["dewpoint_depression"].mean(axis=0)
            s = patterns.DEPRESSION_LOG_STD
            arr = np.sqrt(arr**2 + d**2 * (np.exp(s**2) - 1.0))
        out.append(arr)
    return np.stack(out) if var.is_3d else out[0]


def make_truth(run: Run) -> xr.Dataset:
    """The truth dataset of ``run`` (see the module docstring for every variable)."""
    m = run.model
    st = m.statics
    g = m.grid
    axis = monthly_axis(Month.from_index(int(run.months[0])), Month.from_index(int(run.months[-1])))
    ds = xr.Dataset(coords={**g.coords(), "plev": plev_coord(), "time": axis["time"]})
    ds["time_bnds"] = axis["time_bnds"]

    def put(name: str, values, units: str, description: str, dims: tuple[str, ...] | None = None) -> None:
        values = np.asarray(values, dtype=float)
        if dims is None:
            dims = {0: (), 1: ("time",), 2: ("lat", "lon"), 3: ("plev", "lat", "lon")}[values.ndim]
        ds[name] = xr.DataArray(values.astype(np.float32) if values.ndim else values, dims=dims,
                                attrs={"units": units, "description": description})

    for name in catalogue.STATE_VARIABLES:
        var = catalogue.variable(name)
        s, u = var.store_name, var.units
        rel = " (relative slope x calendar-month-mean climatology)" if name in MULTIPLICATIVE else ""
        put(f"{s}_nino34_regression", _for_variable(run, "enso", s), f"{u} K-1",
            f"planted regression of monthly {s} anomalies on the monthly relative Nino-3.4 index anomaly{rel}")
        asym = patterns.ENSO_ASYMMETRY if run.nonlinear else 0.0
        for phase, sign, when in (("positive", 1.0, "N > 0 (El Nino)"), ("negative", -1.0, "N < 0 (La Nina)")):
            put(f"{s}_nino34_regression_{phase}", (1.0 + sign * asym) * _for_variable(run, "enso", s), f"{u} K-1",
                f"planted slope of {s} on the relative Nino-3.4 index anomaly N for {when}: "
                f"(1 {'+' if sign > 0 else '-'} enso_asymmetry) x {s}_nino34_regression{rel}")
        put(f"{s}_trend", _for_variable(run, "trend", s), f"{u} decade-1",
            f"planted linear trend of {s} per decade{rel}")
        put(f"{s}_warming_per_K", _for_variable(run, "warming", s), f"{u} K-1",
            f"planted response of {s} to a uniform SST offset, per K ((p2k - historical) / 2){rel}")
        noise_units = "1" if name in MULTIPLICATIVE else u
        put(f"{s}_noise_std", _for_variable(run, "sigma", s), noise_units,
            f"standard deviation of the noise term of {s}"
            + (" (its own log-noise; the log also holds cc_scaling_rate x the temperature weather)"
               if name in MULTIPLICATIVE else ""))
        lab = catalogue.channel_label(*catalogue.channels([name])[0])
        lab = {"ps": "psl", "tdas": "tas"}.get(lab, lab)
        put(f"{s}_lag1", m.lag1(lab), "1", f"planted lag-1 (one month) autocorrelation of the noise of {s}"
            + (" (its own log-noise)" if name in MULTIPLICATIVE else ""))

    ocean = st.ocean
    tos_trend = np.where(ocean, patterns.tos_trend(st), np.nan)
    put("tos_trend", tos_trend, "K decade-1", "planted SST trend per decade (before the freezing clamp), NaN over land")
    w = area_weights(g.lat).values[:, None] * np.ones(g.lon.size)[None, :]
    put("tos_trend_global", np.nansum(tos_trend * w) / np.sum(w * ocean), "K decade-1",
        "area-weighted mean of tos_trend over cells where tos is defined")
    tas_trend = _for_variable(run, "trend", "tas")
    put("tas_trend_global", np.sum(tas_trend * w) / np.sum(w), "K decade-1", "area-weighted global mean of tas_trend")
    put("tos_enso_pattern", np.where(ocean, sst_pattern(st), np.nan), "1",
        "SST anomaly per K of the ENSO oscillator; its relative Nino-3.4 value is exactly 1")
    put("nino34_relative_index", run.forcing.nino34, "K",
        "relative Nino-3.4 index anomaly the atmosphere responds to: " + NINO34_DEFINITION
        + "; anomaly w.r.t. the deterministic SST climatology")
    put("enso_oscillator", run.forcing.enso, "K", "ENSO oscillator e(t) (AR(2)); tos = ... + tos_enso_pattern * e(t)")
    put("enso_period_months", ENSO_PERIOD_MONTHS, "month", "period of the AR(2) ENSO oscillator")
    put("enso_damping", ENSO_DAMPING, "1", "modulus of the AR(2) roots per month")
    put("enso_std", ENSO_STD, "K", "standard deviation of the ENSO oscillator")
    nl = run.nonlinear
    put("enso_asymmetry", patterns.ENSO_ASYMMETRY if nl else 0.0, "1",
        "A: every ENSO response is beta (N + A (|N| - nino34_abs_mean)): slope (1 + A) beta for N > 0, "
        "(1 - A) beta for N < 0, least-squares slope beta (N is symmetric)")
    put("nino34_std", nino34_std(st, m.slope), "K", "population standard deviation of N (Gaussian, mean 0)")
    put("nino34_abs_mean", m.nino34_abs_mean, "K", "E|N| = sqrt(2/pi) nino34_std, removed from |N| so the "
        "asymmetric response has zero mean")
    put("cc_scaling_rate", patterns.CC_RATE if nl else 0.0, "K-1",
        "Clausius-Clapeyron-like rate: pr and hus<lev> are multiplied by exp(rate T' - rate^2 s_T^2 / 2), T' = "
        "s_T xi_T the noise (weather) part of tas (for pr) or of ta<lev> (for hus); regression of log(pr) or "
        "log(hus) on T' = rate; the mean, trend, ENSO and warming maps are unchanged (the factor has mean 1)")
    month_scale = [patterns.NAO_MONTH_SCALE.get(mo, 0.0) if nl else float(mo in patterns.NAO_MONTH_SCALE)
                   for mo in range(1, 13)]
    ds["nao_std_by_month"] = xr.DataArray(np.array(month_scale), dims=("month",), coords={"month": np.arange(1, 13)},
                                          attrs={"units": "1", "description": "standard deviation of the monthly "
                                                 "NAO amplitude (nao_amplitude) per calendar month; DJF mean 1"})
    for phase, label in (("la_nina", "N < 0"), ("el_nino", "N >= 0")):
        put(f"nao_std_{phase}", np.sqrt(patterns.NAO_PHASE_VARIANCE[phase]) if nl else 1.0, "1",
            f"standard deviation of the DJF-mean NAO amplitude in winters with {label} in their first DJF month "
            "of the run (normally December); DJF-mean zg500 / psl regressed on nao_amplitude keep the NAO patterns")
    put("noise_spectral_slope", m.slope, "1",
        "exponent s of the expected power per total wavenumber P(l) ~ l^s of every noise field (orthonormal SH, "
        "P(l) = |a_l0|^2 + 2 sum_m>0 |a_lm|^2), 1 <= l < noise_lmax")
    put("noise_lmax", float(m.noise.lmax), "1", "noise fields hold total wavenumbers l < noise_lmax")
    nao = run.nao_amplitude if run.members > 1 else run.nao_amplitude[0]
    ds["nao_amplitude"] = xr.DataArray(nao.astype(np.float32), dims=("member", "time") if run.members > 1 else ("time",),
                                       attrs={"units": "1", "description": "realised NAO amplitude: one N(0,1) value "
                                              "per winter shared by Dec, Jan, Feb, times nao_std_by_month and the "
                                              "winter's ENSO-phase std (nonlinear); 0 outside DJF"})
    if run.members > 1:
        ds = ds.assign_coords(member=("member", np.arange(1, run.members + 1)))
    for label, short, units in (("zg500", "z500", "m"), ("psl", "psl", "Pa")):
        pop = nao_population(run, label)
        put(f"nao_{short}_pattern", m.nao[m.labels.index(label)], units,
            f"planted NAO pattern of {label}: regression of DJF-mean {label} on the standardised NAO amplitude, "
            f"{units} per standard deviation; low near Iceland, high near the Azores")
        put(f"nao_{short}_eof_pattern", pop["pattern"], units,
            f"population EOF1 regression pattern of DJF-mean {label} in the NAO domain (NaN outside): "
            + NAO_DEFINITION)
        put(f"nao_{short}_variance_fraction", pop["fraction"], "1",
            f"population variance fraction of EOF1 of DJF-mean {label} anomalies: " + NAO_DEFINITION)
        put(f"nao_{short}_variance_fraction_stderr1", pop["stderr1"], "1",
            "asymptotic standard error of the estimated variance fraction for one winter; divide by sqrt(winters)")
    put("nao_domain_mask", patterns.in_nao_domain(st.lat, st.lon).astype(float), "1",
        "1 inside the NAO domain 20-80N, 270-360E and 0-40E (bounds inclusive), else 0")
    if m.forced_trend:  # only then: the default truth file stays bit-identical
        put("forced_trend_rate", patterns.TOS_TREND_TROPICS, "K decade-1",
            "forced trend: every <v>_trend = <v>_warming_per_K x forced_trend_rate (the SST trend, uniform "
            "within 25S-25N), i.e. the atmosphere's forced term is warming_per_K x (forced_trend_rate y/10 + dT); "
            "zg500, psl, ps warming and trend tapered to 0 in the NAO domain")
    ds.attrs = {"title": "Planted truth of a synthetic md-synth dataset", "source": f"diagnostics.synth {__version__}",
                "seed": int(run.seed), "sst_offset_K": float(run.sst_offset), "members": int(run.members),
                "nonlinear": int(run.nonlinear), "nino34_definition": NINO34_DEFINITION, "nao_definition": NAO_DEFINITION,
                "trend_time": "years since 2000-01 (month index / 12), trends per decade",
                "Conventions": "CF-1.8"}
    if m.forced_trend:
        ds.attrs["forced_trend"] = 1
    return ds

