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


@torch.no_grad()
def fit_latent_lim(lim: LatentLinearModel, zn: torch.Tensor, forcing_n: torch.Tensor, month: torch.Tensor,
                   skip_mean: torch.Tensor | None = None) -> dict[str, float]:
    """Fit ``lim``'s buffers (in place) on a consecutive record: latents ``zn [T, Z, h, w]``,
    normalised forcing ``[T, n_forcing_channels, H, W]``, calendar months ``[T]``; every
    t -> t+1 is a pair.

    With ``skip_mean [T - 1, Z, h, w]`` (the skip path's prediction of each month t+1,
    ``step.mean: skip``) the noise (``chol``, ``perp_std``) is that of ``zn_{t+1} - skip_mean``
    instead of the LIM's own residuals: the skip path is the mean, this Gaussian its spread.

    Returns fit statistics: the variance fraction the K modes explain, the spectral
    radius of A, and the residual variance fractions inside / outside the span.
    """
    y = lim.reduce(zn).double().cpu().numpy()
    k = lim.eofs.shape[1]
    e, s = leading_eofs(y - y.mean(axis=0), k)
    if e.shape[1] < k:
        raise ValueError(f"the training latents have only {e.shape[1]} modes with variance; "
                         f"model.step.modes is {k}")
    anom = (lim._anomalies(forcing_n) * lim.area_data.sqrt()).flatten(1).double().cpu().numpy()
    kf = lim.forcing_eofs.shape[1]
    if kf:
        fe, _ = leading_eofs(anom - anom.mean(axis=0), kf)
        fe = np.pad(fe, ((0, 0), (0, kf - fe.shape[1])))  # a forcing with fewer modes: zero predictors
        lim.forcing_eofs.copy_(torch.from_numpy(fe))
    raw = lim._raw_predictors(forcing_n.cpu().to(lim.forcing_eofs.device)).double().cpu().numpy()
    mean, std = raw.mean(axis=0), raw.std(axis=0)
    std = np.where(std > 1e-8, std, 1.0)  # a constant predictor (no forcing variability) stays 0
    u = (raw - mean) / std
    x = y @ e
    pairs = np.arange(len(y) - 1)
    months = month.cpu().numpy().astype(int)
    op = fit_operator(x, u, months, pairs, noise=lim.noise_kind)
    target = y[1:]
    if skip_mean is not None:  # the spread around the skip path: the covariance of its residual
        resid = target - lim.reduce(skip_mean).double().cpu().numpy()
        target = resid
        op = type(op)(A=op.A, B=op.B, c=op.c, chol=_residual_chol(resid @ e, months[1:], lim.noise_kind), dA=op.dA)
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
    return {"explained": float((s ** 2).sum() / total), "spectral_radius": op.spectral_radius(),
            "noise_fraction_in_span": resid_in / total,
            "noise_fraction_outside": float((perp ** 2 * lim.sqrt_w.cpu().numpy()[0] ** 2).sum()) / total}
