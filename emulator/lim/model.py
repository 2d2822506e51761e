"""The linear inverse model on a grid: normalisation, EOF reduction, forcing predictors, one step.

State vector of month t (calendar month m), channel c, grid point (i, j)::

    y_t[c, i, j] = sqrt(w_i) (g_c(x_t[c, i, j]) - clim_c[m, i, j]) / s_c

with ``g_c`` the catalogue transform (sqrt for pr / hus, none otherwise), ``clim_c`` the
training-period monthly climatology of the transformed field, ``s_c`` the area-weighted standard
deviation of its anomalies and ``w_i`` the relative cell area of latitude row i (mean 1), so that
``|y|^2`` is the area-weighted sum of squared standardised anomalies and EOFs are area-weighted.

Forcing predictors ``u_t``: the same reduction of the forcing anomalies (``tos`` NaN over land
-> 0, ``siconc`` in logit space, each divided by one scalar, the area-weighted std of its
anomalies), projected on their ``forcing_modes`` leading EOFs, plus (``global_sst``) the
ocean-area-weighted mean SST anomaly in K. A uniform +2 K / +4 K SST offset (AI-MIP p2k / p4k)
enters through both. Each predictor is standardised with its training mean and std.

Dynamics: :class:`emulator.lim.operator.LinearOperator` on the K leading PCs (stationary, or
with ``seasonal_ridge`` cyclostationary: a persistence operator per calendar month). The variance of
EOFs K+1 .. K+R (``residual_modes``) is added back as white noise with each mode's training
standard deviation (the unresolved weather has almost no month-to-month memory); what lies
beyond K+R is not represented (its fraction is recorded in the checkpoint).

Decoding: ``x_phys = g^-1(clim_m + s_c (E x + E_r (sigma_r * zeta)) / sqrt(w))``; the sqrt
transform's inverse is applied to ``max(y, 0)`` (a negative square root is no precipitation).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from diagnostics.data import catalogue, transforms
from diagnostics.data.grid import area_weights

from ..model import DataSpec
from .operator import LinearOperator, fit_operator, leading_eofs


def _transforms(names) -> list[str]:
    return [catalogue.variable(n).transform for n in names]


@dataclass
class LinearInverseModel:
    """All arrays of a fitted LIM (float64 unless noted) and the maps between grid and reduced space."""

    spec: DataSpec
    state_clim: np.ndarray  # [12, C, H, W] float32, transformed space
    state_std: np.ndarray  # [C]
    forcing_clim: np.ndarray  # [12, F, H, W] float32, transformed space
    forcing_std: np.ndarray  # [F]
    eofs: np.ndarray  # [P, K], P = C * H * W (stored as float32, held as float64)
    residual_eofs: np.ndarray  # [P, R] (float32 values)
    residual_std: np.ndarray  # [R]
    forcing_eofs: np.ndarray  # [C_f * H * W, K_f] (float32 values)
    predictor_mean: np.ndarray  # [M]
    predictor_std: np.ndarray  # [M]
    global_sst: bool
    operator: LinearOperator

    # ------------------------------------------------------------------ shapes
    @property
    def modes(self) -> int:
        return self.eofs.shape[1]

    @functools.cached_property
    def sqrt_w(self) -> np.ndarray:
        """``[H, 1]`` square root of the relative cell area of each latitude row."""
        return np.sqrt(area_weights(np.asarray(self.spec.lat)).values)[:, None]

    # ------------------------------------------------------------------ state
    def normalise_state(self, x: np.ndarray, month: np.ndarray | int) -> np.ndarray:
        """Physical ``[..., C, H, W]`` of calendar month(s) ``month`` -> ``y [..., P]`` (float64)."""
        x = np.asarray(x, np.float64)
        y = np.empty_like(x)
        clim = self.state_clim[np.asarray(month) - 1]
        for c, kind in enumerate(_transforms(n for n, _ in self.spec.channels)):
            y[..., c, :, :] = (transforms.forward(x[..., c, :, :], kind) - clim[..., c, :, :]) / self.state_std[c]
        y *= self.sqrt_w
        return y.reshape(*x.shape[:-3], -1)

    def denormalise_state(self, y: np.ndarray, month: int) -> np.ndarray:
        """``y [..., P]`` of calendar month ``month`` -> physical ``[..., C, H, W]`` (float64)."""
        c_, (h, w) = len(self.spec.channels), self.spec.shape
        a = np.asarray(y, np.float64).reshape(*np.shape(y)[:-1], c_, h, w) / self.sqrt_w
        out = np.empty_like(a)
        for c, kind in enumerate(_transforms(n for n, _ in self.spec.channels)):
            g = self.state_clim[month - 1, c] + self.state_std[c] * a[..., c, :, :]
            out[..., c, :, :] = transforms.inverse(np.maximum(g, 0.0) if kind == "sqrt" else g, kind)
        return out

    def project(self, y: np.ndarray) -> np.ndarray:
        """PCs ``x = E^T y`` ``[..., K]``."""
        return np.asarray(y, np.float64) @ self.eofs

    def reconstruct(self, x: np.ndarray, zeta: np.ndarray | None = None) -> np.ndarray:
        """``y = E x + E_r (sigma_r * zeta)`` ``[..., P]`` (no residual noise when ``zeta`` is None)."""
        y = np.asarray(x, np.float64) @ self.eofs.T
        if zeta is not None and self.residual_std.size:
            y = y + (zeta * self.residual_std) @ self.residual_eofs.T
        return y

    # ------------------------------------------------------------------ forcing
    def forcing_anomaly(self, f: np.ndarray, month: np.ndarray | int) -> tuple[np.ndarray, np.ndarray | None]:
        """Physical forcing ``[..., F, H, W]`` -> (area-weighted anomaly vector ``[..., F*H*W]``,
        ocean-area-weighted mean SST anomaly in K ``[...]`` or None without ``tos``)."""
        f = np.asarray(f, np.float64)
        a = np.empty_like(f)
        clim = self.forcing_clim[np.asarray(month) - 1]
        gsst = None
        for i, (name, kind) in enumerate(zip(self.spec.forcing_names, _transforms(self.spec.forcing_names))):
            raw = transforms.forward(f[..., i, :, :], kind) - clim[..., i, :, :]
            ok = np.isfinite(raw)
            raw = np.where(ok, raw, 0.0)
            if name == "tos":
                wgt = np.broadcast_to(self.sqrt_w ** 2, raw.shape) * ok
                gsst = (wgt * raw).sum(axis=(-2, -1)) / np.maximum(wgt.sum(axis=(-2, -1)), 1e-300)
            a[..., i, :, :] = raw / self.forcing_std[i] * self.sqrt_w
        return a.reshape(*f.shape[:-3], -1), gsst

    def raw_predictors(self, f: np.ndarray, month: np.ndarray | int) -> np.ndarray:
        """Unstandardised predictors ``[..., M]``: forcing PCs, then the global-mean SST anomaly."""
        a, gsst = self.forcing_anomaly(f, month)
        parts = [a @ self.forcing_eofs]
        if self.global_sst:
            parts.append(np.asarray(gsst)[..., None])
        return np.concatenate(parts, axis=-1)

    def predictors(self, f: np.ndarray, month: np.ndarray | int) -> np.ndarray:
        """Standardised predictors ``u [..., M]`` of the forcing ``f`` of calendar month(s) ``month``."""
        return (self.raw_predictors(f, month) - self.predictor_mean) / self.predictor_std

    # ------------------------------------------------------------------ dynamics
    def step(self, x: np.ndarray, u_next: np.ndarray, month_next: int, eta: np.ndarray) -> np.ndarray:
        """``x_{t+1} = A_m x_t + B u_{t+1} + c_m + L_m eta`` for ``x [..., K]``, unit normal ``eta [..., K]``,
        ``u_next = predictors(f_{t+1}, m)`` (shared by all members of a month)."""
        op = self.operator
        return op.mean_step(x, u_next, month_next) + op.noise(eta, month_next)


def fit(spec: DataSpec, state: np.ndarray, forcing: np.ndarray, month: np.ndarray, stats: dict,
        modes: int, forcing_modes: int, residual_modes: int, global_sst: bool, noise: str,
        ridge: float, seasonal_ridge: float | None = None) -> tuple[LinearInverseModel, dict]:
    """Fit a LIM on one contiguous training record.

    Args:
        state: physical ``[T, C, H, W]``; forcing: physical ``[T, F, H, W]``; month: ``[T]`` 1..12.
        stats: :func:`emulator.data.compute_stats` with ``anomaly`` and ``forcing_anomaly``.
    Returns the model and a summary (variance fractions, spectral radius, sizes).
    """
    t = len(month)
    empty = np.zeros((0, 0), np.float32)
    lim = LinearInverseModel(spec, stats["state_clim"], np.asarray(stats["state_std"], np.float64),
                             stats["forcing_clim"], np.asarray(stats["forcing_anom_std"], np.float64),
                             empty, empty, np.zeros(0), empty, np.zeros(0), np.ones(0), global_sst,
                             LinearOperator(*(np.zeros((0, 0)),) * 5))
    y = lim.normalise_state(state, month)
    e, s = leading_eofs(y, modes + residual_modes)
    if e.shape[1] < modes:
        raise ValueError(f"the training data have only {e.shape[1]} independent anomaly patterns; "
                         f"model.modes {modes} is too many")
    total = float((y ** 2).sum())
    # float32 values (what the checkpoint stores) held as float64, so that products with the
    # float64 PCs need no conversion and a loaded model computes exactly what the fitted one did
    lim.eofs = e[:, :modes].astype(np.float32).astype(np.float64)
    lim.residual_eofs = e[:, modes:].astype(np.float32).astype(np.float64)
    lim.residual_std = s[modes:] / np.sqrt(t)
    a, _ = lim.forcing_anomaly(forcing, month)
    g, _ = leading_eofs(a, forcing_modes) if forcing_modes else (np.zeros((a.shape[1], 0)), None)
    lim.forcing_eofs = g.astype(np.float32).astype(np.float64)
    raw = lim.raw_predictors(forcing, month)
    lim.predictor_mean = raw.mean(axis=0)
    lim.predictor_std = np.maximum(raw.std(axis=0), 1e-12)
    x = lim.project(y)
    u = lim.predictors(forcing, month)
    lim.operator = fit_operator(x, u, month, np.arange(t - 1), noise=noise, ridge=ridge,
                                 seasonal_ridge=seasonal_ridge)
    info = {"training_months": t, "modes": modes, "forcing_predictors": int(u.shape[1]),
            "residual_modes": int(lim.residual_std.size),
            "resolved_variance_fraction": float((s[:modes] ** 2).sum() / total),
            "residual_variance_fraction": float((s[modes:] ** 2).sum() / total),
            "spectral_radius": lim.operator.spectral_radius()}
    return lim, info
