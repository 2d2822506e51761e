"""The latent linear inverse model: the step's mean and noise for ``model.step.type: latent_lim``.

Fitted once per calibration (after training, on the EMA model) from the standardised latents
``zn [T, Z, h, w]`` of the training months (posterior means) with the kernels of
:mod:`emulator.lim.operator` (not copied). Reduced state of month t::

    y_t = sqrt(w_lat) zn_t   (flattened, P = Z h w; w_lat the latent rows' relative area, mean 1)
    x_t = E^T y_t            (E [P, K]: the K leading EOFs of the training y, orthonormal)

forcing predictors ``u_t`` (M = forcing_modes + F): the leading PCs of the area-weighted
forcing-anomaly channels of the normalised forcing (``forcing_anomaly``; the F anomaly
channels of :meth:`emulator.normalisation.Normaliser.normalise_forcing`) and their F
area-weighted global means (a uniform +2 K SST offset enters through the latter), each
standardised on the training months. Dynamics (:func:`emulator.lim.operator.fit_operator`)::

    x_{t+1} = A x_t + B u_{t+1} + c_{m(t+1)} + L_{m(t+1)} eta,   eta ~ N(0, I_K)

and the part of the latent outside the EOF span is white noise with its training standard
deviation ``s [Z, h]`` (per latent channel and row, standardised units): from one white field
``xi [P]``, ``eta = E^T xi`` (exactly N(0, I_K)) and ``xi_perp = xi - E E^T xi`` (variance
``1 - sum_k E_pk^2``, close to 1 for K << P), so one step consumes one latent-shaped draw::

    zn_{t+1} = (E x_{t+1}) / sqrt(w_lat) + s * xi_perp
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .lim.operator import _cholesky, fit_operator, leading_eofs


class LatentLinearModel(nn.Module):
    """Buffers of a latent LIM (float32) and its one-month step; all zeros until :meth:`fit`.

    Args:
        latent_shape: ``(Z, h, w)``.
        data_shape: ``(H, W)`` of the forcing.
        n_forcings: F, the number of forcing fields (the anomaly channels are the last F of the
            normalised forcing).
        modes: K latent PCs; forcing_modes: forcing-anomaly PCs.
        area_latent, area_data: relative row areas (mean 1) ``[h]`` and ``[H]``.
        noise: ``constant`` or ``seasonal`` residual covariance (:func:`fit_operator`).
    """

    def __init__(self, latent_shape: tuple[int, int, int], data_shape: tuple[int, int], n_forcings: int,
                 modes: int, forcing_modes: int, area_latent: torch.Tensor, area_data: torch.Tensor,
                 noise: str = "seasonal"):
        super().__init__()
        z, h, w = latent_shape
        self.latent_shape, self.n_forcings, self.noise_kind = tuple(latent_shape), n_forcings, noise
        n_pred = forcing_modes + n_forcings
        self.register_buffer("sqrt_w", area_latent.float().sqrt().view(1, 1, h, 1), persistent=False)
        self.register_buffer("area_data", area_data.float().view(1, 1, -1, 1), persistent=False)
        self.register_buffer("eofs", torch.zeros(z * h * w, modes))
        self.register_buffer("A", torch.zeros(modes, modes))
        self.register_buffer("B", torch.zeros(modes, n_pred))
        self.register_buffer("c", torch.zeros(12, modes))
        self.register_buffer("chol", torch.zeros(12, modes, modes))
        self.register_buffer("perp_std", torch.zeros(z, h))
        self.register_buffer("forcing_eofs", torch.zeros(n_forcings * data_shape[0] * data_shape[1], forcing_modes))
        self.register_buffer("pred_mean", torch.zeros(n_pred))
        self.register_buffer("pred_std", torch.ones(n_pred))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    # ------------------------------------------------------------------ reductions
    def _anomalies(self, forcing_n: torch.Tensor) -> torch.Tensor:
        """The F forcing-anomaly channels ``[B, F, H, W]`` (the last F of the normalised forcing)."""
        return forcing_n[:, -self.n_forcings:].float()

    def _raw_predictors(self, forcing_n: torch.Tensor) -> torch.Tensor:
        """``[B, M]``: forcing-anomaly PCs, then the F area-weighted global means (unstandardised)."""
        anom = self._anomalies(forcing_n)
        flat = (anom * self.area_data.sqrt()).flatten(1)
        pcs = flat @ self.forcing_eofs
        means = (anom * self.area_data).mean(dim=(2, 3))
        return torch.cat([pcs, means], dim=1)

    def predictors(self, forcing_n: torch.Tensor) -> torch.Tensor:
        """Standardised forcing predictors ``u [B, M]`` of normalised forcing ``[B, n_forcing_channels, H, W]``."""
        return (self._raw_predictors(forcing_n) - self.pred_mean) / self.pred_std

    def reduce(self, zn: torch.Tensor) -> torch.Tensor:
        """``y = sqrt(w) zn`` flattened ``[B, P]``."""
        return (zn.float() * self.sqrt_w).flatten(1)

    # ------------------------------------------------------------------ fit
    @torch.no_grad()
    def fit(self, zn: torch.Tensor, forcing_n: torch.Tensor, month: torch.Tensor,
            skip_mean: torch.Tensor | None = None) -> dict[str, float]:
        """Fit on a consecutive record: latents ``zn [T, Z, h, w]``, normalised forcing
        ``[T, n_forcing_channels, H, W]``, calendar months ``[T]``; every t -> t+1 is a pair.

        With ``skip_mean [T - 1, Z, h, w]`` (the skip path's prediction of each month t+1,
        ``step.mean: skip``) the noise (``chol``, ``perp_std``) is that of ``zn_{t+1} - skip_mean``
        instead of the LIM's own residuals: the skip path is the mean, this Gaussian its spread.

        Returns fit statistics: the variance fraction the K modes explain, the spectral
        radius of A, and the residual variance fractions inside / outside the span.
        """
        y = self.reduce(zn).double().cpu().numpy()
        k = self.eofs.shape[1]
        e, s = leading_eofs(y - y.mean(axis=0), k)
        if e.shape[1] < k:
            raise ValueError(f"the training latents have only {e.shape[1]} modes with variance; "
                             f"model.step.modes is {k}")
        anom = (self._anomalies(forcing_n) * self.area_data.sqrt()).flatten(1).double().cpu().numpy()
        kf = self.forcing_eofs.shape[1]
        if kf:
            fe, _ = leading_eofs(anom - anom.mean(axis=0), kf)
            fe = np.pad(fe, ((0, 0), (0, kf - fe.shape[1])))  # a forcing with fewer modes: zero predictors
            self.forcing_eofs.copy_(torch.from_numpy(fe))
        raw = self._raw_predictors(forcing_n.cpu().to(self.forcing_eofs.device)).double().cpu().numpy()
        mean, std = raw.mean(axis=0), raw.std(axis=0)
        std = np.where(std > 1e-8, std, 1.0)  # a constant predictor (no forcing variability) stays 0
        u = (raw - mean) / std
        x = y @ e
        pairs = np.arange(len(y) - 1)
        months = month.cpu().numpy().astype(int)
        op = fit_operator(x, u, months, pairs, noise=self.noise_kind)
        target = y[1:]
        if skip_mean is not None:  # the spread around the skip path: the covariance of its residual
            resid = target - self.reduce(skip_mean).double().cpu().numpy()
            target = resid
            op = type(op)(A=op.A, B=op.B, c=op.c, chol=self._residual_chol(resid @ e, months[1:]), dA=op.dA)
        # the latent outside the span: its std per (channel, row), standardised units, around its mean
        perp = target - (target @ e) @ e.T
        perp = perp.reshape(len(perp), *self.latent_shape) / self.sqrt_w.cpu().numpy()[0]
        perp_std = (perp - perp.mean(axis=0)).std(axis=(0, 3))
        for name, value in (("eofs", e), ("A", op.A), ("B", op.B), ("c", op.c), ("chol", op.chol),
                            ("perp_std", perp_std), ("pred_mean", mean), ("pred_std", std)):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(value), dtype=torch.float32))
        self.fitted.fill_(True)
        total = float(((y - y.mean(axis=0)) ** 2).sum())
        resid_in = float(np.trace(op.covariance.mean(axis=0))) * (len(y) - 1)
        return {"explained": float((s ** 2).sum() / total), "spectral_radius": op.spectral_radius(),
                "noise_fraction_in_span": resid_in / total,
                "noise_fraction_outside": float((perp ** 2 * self.sqrt_w.cpu().numpy()[0] ** 2).sum()) / total}

    def _residual_chol(self, r: np.ndarray, target_month: np.ndarray) -> np.ndarray:
        """Cholesky factors ``[12, K, K]`` of the second moment of residual PCs ``r [N, K]`` about
        zero (the skip path is the mean): one for all months, or (``seasonal``) month m's from
        the residuals of target months m-1, m, m+1, as :func:`emulator.lim.operator.fit_operator`."""
        k = r.shape[1]
        if self.noise_kind == "constant":
            return np.broadcast_to(_cholesky(r.T @ r / len(r)), (12, k, k)).copy()
        out = np.empty((12, k, k))
        for m in range(1, 13):
            near = np.isin(target_month, [(m - 2) % 12 + 1, m, m % 12 + 1])
            out[m - 1] = _cholesky(r[near].T @ r[near] / max(int(near.sum()), 1))
        return out

    # ------------------------------------------------------------------ step
    def step(self, zn_prev: torch.Tensor, forcing_n_next: torch.Tensor, month_next: torch.Tensor,
             xi: torch.Tensor) -> torch.Tensor:
        """Standardised latent of month t ``[B, Z, h, w]`` -> a sample of month t+1, given the
        normalised forcing of t+1 and its calendar month ``[B]`` (1..12) and one white field
        ``xi`` of the latent's shape."""
        if not bool(self.fitted):
            raise RuntimeError("the latent linear model is not fitted (the trainer's calibration fits it)")
        e = self.eofs
        m = month_next.long().to(e.device) - 1
        x1 = self.reduce(zn_prev) @ e @ self.A.T + self.predictors(forcing_n_next) @ self.B.T + self.c[m]
        return (x1 @ e.T).view(zn_prev.shape) / self.sqrt_w + self.noise(month_next, xi)

    def noise(self, month_next: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        """The step's noise ``(E L_m E^T xi) / sqrt(w) + s * xi_perp`` (standardised latent units)
        from one white field ``xi [B, Z, h, w]``; ``month_next [B]`` the month predicted (1..12)."""
        if not bool(self.fitted):
            raise RuntimeError("the latent linear model is not fitted (the trainer's calibration fits it)")
        e = self.eofs
        m = month_next.long().to(e.device) - 1
        flat_xi = xi.float().flatten(1)
        eta = flat_xi @ e
        in_span = (torch.einsum("bij,bj->bi", self.chol[m], eta) @ e.T).view(xi.shape) / self.sqrt_w
        return in_span + (flat_xi - eta @ e.T).view(xi.shape) * self.perp_std.view(1, *self.perp_std.shape, 1)
