"""The latent linear inverse model: the step's mean and noise for ``model.step.type: latent_lim``.

Fitted once per calibration (after training, on the EMA model) from the standardised latents
``zn [T, Z, h, w]`` of the training months (posterior means) by
:func:`emulator.latent_lim_fit.fit_latent_lim`, with the kernels of :mod:`emulator.lim.operator`
(not copied; a separate module because ``emulator.lim`` imports the model, which holds this one). Reduced state of month t::

    y_t = sqrt(w_lat) zn_t   (flattened, P = Z h w; w_lat the latent rows' relative area, mean 1)
    x_t = E^T y_t            (E [P, K]: the K leading EOFs of the training y, orthonormal)

forcing predictors ``u_t`` (M = forcing_modes + F): the leading PCs of the area-weighted
forcing-anomaly channels of the normalised forcing (``forcing_anomaly``; the F anomaly
channels of :meth:`emulator.normalisation.Normaliser.normalise_forcing`) and their F
area-weighted global means (a uniform +2 K SST offset enters through the latter), each
standardised on the training months. Dynamics (:func:`emulator.lim.operator.fit_operator`)::

    x_{t+1} = A x_t + B u_{t+1} + c_{m(t+1)} + L_{m(t+1)} eta,   eta ~ N(0, I_K)

optionally (``seasonal_modes`` J > 0, session 7) with a month-dependent persistence added to the
step's mean (the skip path's or the LIM's): ``G_m (x_t - x̄_m)``, ``G_m [K, K]`` of rank J
(:func:`emulator.latent_lim_fit.fit_seasonal_gain`), ``x̄_m`` the mean PCs of the months
preceding target month m; and the part of the latent outside the EOF span is white noise with its training standard
deviation ``s [Z, h]`` (per latent channel and row, standardised units): from one white field
``xi [P]``, ``eta = E^T xi`` (exactly N(0, I_K)) and ``xi_perp = xi - E E^T xi`` (variance
``1 - sum_k E_pk^2``, close to 1 for K << P), so one step consumes one latent-shaped draw::

    zn_{t+1} = (E x_{t+1}) / sqrt(w_lat) + s * xi_perp
"""

from __future__ import annotations

import torch
from torch import nn



class LatentLinearModel(nn.Module):
    """Buffers of a latent LIM (float32) and its one-month step; all zeros until fitted
    (:func:`emulator.latent_lim_fit.fit_latent_lim`).

    Args:
        latent_shape: ``(Z, h, w)``.
        data_shape: ``(H, W)`` of the forcing.
        n_forcings: F, the number of forcing fields (the anomaly channels are the last F of the
            normalised forcing).
        modes: K latent PCs; forcing_modes: forcing-anomaly PCs.
        area_latent, area_data: relative row areas (mean 1) ``[h]`` and ``[H]``.
        noise: ``constant`` or ``seasonal`` residual covariance (:func:`fit_operator`).
        seasonal_modes: J of the month-dependent persistence (0: none).
    """

    def __init__(self, latent_shape: tuple[int, int, int], data_shape: tuple[int, int], n_forcings: int,
                 modes: int, forcing_modes: int, area_latent: torch.Tensor, area_data: torch.Tensor,
                 noise: str = "seasonal", seasonal_modes: int = 0):
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
        # the month-dependent persistence (only with seasonal_modes: older checkpoints have none)
        self.seasonal_modes = seasonal_modes
        if seasonal_modes:
            self.register_buffer("gain", torch.zeros(12, modes, modes))
            self.register_buffer("gain_centre", torch.zeros(12, modes))

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

    def seasonal_correction(self, zn_prev: torch.Tensor, month_next: torch.Tensor) -> torch.Tensor:
        """The month-dependent persistence ``E G_m (x_t - x̄_m) / sqrt(w)`` (standardised latent
        units) added to the step's mean; zero without ``seasonal_modes``."""
        if not self.seasonal_modes:
            return torch.zeros_like(zn_prev, dtype=torch.float32)
        m = month_next.long().to(self.eofs.device) - 1
        x = self.reduce(zn_prev) @ self.eofs - self.gain_centre[m]
        return (torch.einsum("bij,bj->bi", self.gain[m], x) @ self.eofs.T).view(zn_prev.shape) / self.sqrt_w

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
        return ((x1 @ e.T).view(zn_prev.shape) / self.sqrt_w + self.seasonal_correction(zn_prev, month_next)
                + self.noise(month_next, xi))

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
