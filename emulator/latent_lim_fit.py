"""Fitting the latent linear inverse model (:mod:`emulator.latent_lim`) with the kernels of
:mod:`emulator.lim.operator`: EOFs of the training latents, the least-squares operator and
its residual covariance (see :mod:`emulator.latent_lim` for the notation)."""

from __future__ import annotations

import numpy as np
import torch

from .latent_lim import LatentLinearModel
from .lim.operator import _cholesky, fit_operator, leading_eofs


def _residual_chol(r: np.ndarray, target_month: np.ndarray, kind: str) -> np.ndarray:
    """Cholesky factors ``[12, K, K]`` of the second moment of residual PCs ``r [N, K]`` about
    zero (the skip path is the mean): one for all months (``constant``), or (``seasonal``)
    month m's from the residuals of target months m-1, m, m+1, as
    :func:`emulator.lim.operator.fit_operator` does."""
    k = r.shape[1]
    if kind == "constant":
        return np.broadcast_to(_cholesky(r.T @ r / len(r)), (12, k, k)).copy()
    out = np.empty((12, k, k))
    for m in range(1, 13):
        near = np.isin(target_month, [(m - 2) % 12 + 1, m, m % 12 + 1])
        out[m - 1] = _cholesky(r[near].T @ r[near] / max(int(near.sum()), 1))
    return out


BASES = ("latents", "anomalies", "residuals")


def standardised_predictors(lim: LatentLinearModel, forcing_n: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit ``lim.forcing_eofs`` (in place) on the forcing anomalies of the record and return the
    standardised forcing predictors ``u [T, M]`` with their raw mean and std ``[M]``."""
    anom = (lim._anomalies(forcing_n) * lim.area_data.sqrt()).flatten(1).double().cpu().numpy()
    kf = lim.forcing_eofs.shape[1]
    if kf:
        fe, _ = leading_eofs(anom - anom.mean(axis=0), kf)
        fe = np.pad(fe, ((0, 0), (0, kf - fe.shape[1])))  # a forcing with fewer modes: zero predictors
        lim.forcing_eofs.copy_(torch.from_numpy(fe))
    raw = lim._raw_predictors(forcing_n.cpu().to(lim.forcing_eofs.device)).double().cpu().numpy()
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)  # a constant predictor (no forcing variability) stays 0
    return (raw - mean) / std, mean, std


def basis_samples(y: np.ndarray, u: np.ndarray, month: np.ndarray,
                  skip_residual: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The sample sets whose EOFs may span the latent LIM (``model.step.basis``), each ``[N, P]``
    in the reduced units ``y = sqrt(w_lat) zn`` of a record ``y [T, P]``:

    * ``latents``: y about its time mean (the cycle, ENSO and the trend dominate it);
    * ``anomalies``: y minus its calendar-month mean, with the forcing predictors ``u [T, M]``
      (forcing-anomaly PCs and global means: ENSO, the trend, a warming) regressed out by least
      squares: the internal variability the noise must generate (the NAO lives here);
    * ``residuals`` (with ``skip_residual [T - 1, P]``, the skip path's one-month residuals
      ``y_{t+1} - sqrt(w) mu_t``): the spread the step's noise must supply, about its mean.
    """
    out = {"latents": y - y.mean(axis=0)}
    anom = y.copy()
    for m in np.unique(month):
        anom[month == m] -= anom[month == m].mean(axis=0)
    if u.shape[1]:
        uc = u - u.mean(axis=0)
        anom -= uc @ np.linalg.lstsq(uc, anom, rcond=None)[0]
    out["anomalies"] = anom
    if skip_residual is not None:
        out["residuals"] = skip_residual - skip_residual.mean(axis=0)
    return out


def fit_seasonal_gain(x_prev: np.ndarray, resid: np.ndarray, target_month: np.ndarray, modes: int,
                      ridge: float = 1e-3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The month-dependent persistence of :mod:`emulator.latent_lim` fitted on the residuals
    ``resid [N, K]`` (PCs) of the step's stationary mean, pairs with previous-month PCs
    ``x_prev [N, K]`` and target months ``target_month [N]``. For each target month m: ``V``
    [K, J] the ``modes`` (J) leading EOFs of the residuals of target month m - 1 (what month
    m - 1 received that the stationary mean did not predict: a new winter's NAO in December),
    ``S = (x_prev - x̄_m) V`` of the pairs of target month m (``x̄_m`` their mean) and ``R``
    their residuals about their mean::

        D_m = (S^T S + ridge tr(S^T S) / J I)^-1 S^T R,   G_m = (V D_m)^T  [K, K]

    J << n_m (about 30 pairs per calendar month on 30 training years: only a few directions
    per month can carry a month-specific persistence without overfitting). Returns ``G [12, K,
    K]``, ``x̄ [12, K]`` and the residuals after the correction as leave-one-out residuals
    ``(r_i - s_i D_m) / (1 - h_ii)`` (h the hat matrix), so that the noise fitted to them does
    not understate the error of months not fitted.
    """
    k = x_prev.shape[1]
    gain, centre, out = np.zeros((12, k, k)), np.zeros((12, k)), resid.copy()
    for m in range(1, 13):
        sel, before = target_month == m, target_month == (m - 2) % 12 + 1
        if sel.sum() <= modes + 1 or before.sum() <= modes:
            continue  # too few pairs: no correction for this month
        shocks = resid[before] - resid[before].mean(axis=0)
        v = np.linalg.svd(shocks, full_matrices=False)[2][:modes].T  # [K, J]
        centre[m - 1] = x_prev[sel].mean(axis=0)
        s = (x_prev[sel] - centre[m - 1]) @ v
        gram = s.T @ s
        inv = np.linalg.inv(gram + ridge * np.trace(gram) / modes * np.eye(s.shape[1]))
        r = resid[sel] - resid[sel].mean(axis=0)
        d = inv @ s.T @ r  # [J, K]
        gain[m - 1] = (v @ d).T
        hat = np.einsum("ij,jk,ik->i", s, inv, s)
        out[sel] = resid[sel].mean(axis=0) + (r - s @ d) / (1.0 - hat)[:, None]
    return gain, centre, out


@torch.no_grad()
def fit_latent_lim(lim: LatentLinearModel, zn: torch.Tensor, forcing_n: torch.Tensor, month: torch.Tensor,
                   skip_mean: torch.Tensor | None = None, basis: str = "latents",
                   skip_prediction: torch.Tensor | None = None) -> dict[str, float]:
    """Fit ``lim``'s buffers (in place) on a consecutive record: latents ``zn [T, Z, h, w]``,
    normalised forcing ``[T, n_forcing_channels, H, W]``, calendar months ``[T]``; every
    t -> t+1 is a pair.

    With ``skip_mean [T - 1, Z, h, w]`` (the skip path's prediction of each month t+1,
    ``step.mean: skip``) the noise (``chol``, ``perp_std``) is that of ``zn_{t+1} - skip_mean``
    instead of the LIM's own residuals: the skip path is the mean, this Gaussian its spread.

    ``basis`` (:data:`BASES`, :func:`basis_samples`) chooses the sample set whose K leading
    EOFs span the model; ``residuals`` needs ``skip_prediction [T - 1, Z, h, w]``, the skip
    path's prediction of each month t+1 (``skip_mean`` itself when the skip path is the mean).

    Returns fit statistics: the variance fraction of the basis samples the K modes explain, the
    spectral radius of A, and the residual variance fractions inside / outside the span.
    """
    if basis not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {basis!r}")
    y = lim.reduce(zn).double().cpu().numpy()
    k = lim.eofs.shape[1]
    months = month.cpu().numpy().astype(int)
    u, mean, std = standardised_predictors(lim, forcing_n)
    skip_prediction = skip_mean if skip_prediction is None else skip_prediction
    skip_residual = None if skip_prediction is None else y[1:] - lim.reduce(skip_prediction).double().cpu().numpy()
    if basis == "residuals" and skip_residual is None:
        raise ValueError("basis 'residuals' needs the skip path's predictions (skip_prediction)")
    samples = basis_samples(y, u, months, skip_residual)[basis]
    e, s = leading_eofs(samples, k)
    if e.shape[1] < k:
        raise ValueError(f"the training latents ({basis}) have only {e.shape[1]} modes with variance; "
                         f"model.step.modes is {k}")
    x = y @ e
    pairs = np.arange(len(y) - 1)
    op = fit_operator(x, u, months, pairs, noise=lim.noise_kind)
    target = y[1:]
    if skip_mean is not None:  # the spread around the skip path: the covariance of its residual
        resid = target - lim.reduce(skip_mean).double().cpu().numpy()
        target = resid
        op = type(op)(A=op.A, B=op.B, c=op.c, chol=_residual_chol(resid @ e, months[1:], lim.noise_kind), dA=op.dA)
    if lim.seasonal_modes:  # month-dependent persistence on the stationary mean's residual PCs
        if skip_mean is not None:
            r_pcs = resid @ e
        else:
            r_pcs = x[1:] - x[:-1] @ op.A.T - u[1:] @ op.B.T - op.c[months[1:] - 1]
        gain, centre, r_loo = fit_seasonal_gain(x[:-1], r_pcs, months[1:], lim.seasonal_modes)
        lim.gain.copy_(torch.as_tensor(gain, dtype=torch.float32))
        lim.gain_centre.copy_(torch.as_tensor(centre, dtype=torch.float32))
        op = type(op)(A=op.A, B=op.B, c=op.c, chol=_residual_chol(r_loo, months[1:], lim.noise_kind), dA=op.dA)
    # the latent outside the span: its std per (channel, row), standardised units, around its mean
    perp = target - (target @ e) @ e.T
    perp = perp.reshape(len(perp), *lim.latent_shape) / lim.sqrt_w.cpu().numpy()[0]
    perp_std = (perp - perp.mean(axis=0)).std(axis=(0, 3))
    for name, value in (("eofs", e), ("A", op.A), ("B", op.B), ("c", op.c), ("chol", op.chol),
                        ("perp_std", perp_std), ("pred_mean", mean), ("pred_std", std)):
        getattr(lim, name).copy_(torch.as_tensor(np.asarray(value), dtype=torch.float32))
    lim.fitted.fill_(True)
    total = float(((y - y.mean(axis=0)) ** 2).sum())
    resid_in = float(np.trace(op.covariance.mean(axis=0))) * (len(y) - 1)
    return {"explained": float((s ** 2).sum() / (samples ** 2).sum()), "spectral_radius": op.spectral_radius(),
            "noise_fraction_in_span": resid_in / total,
            "noise_fraction_outside": float((perp ** 2 * lim.sqrt_w.cpu().numpy()[0] ** 2).sum()) / total}
