"""The residual model: a linear mean step plus a latent diffusion of its innovations.

Residual of a member j around a conditioning run c at month t (latents of the frozen Monthly
Diffusion encoder, posterior means): ``r_t = z_j(t) - z_c(t)`` ``[Z, h, w]``. One month-ahead
step, at every latent point p and channel (pointwise: 3 + K_f coefficients each)::

    y_{t+1} = r_{t+1} / s_r = a_p r_t / s_r + b_p z_c'(t+1) / s_z + d_p z_c'(t) / s_z + sum_k (g_pk u_k(t+1) + h_pk u_k(t)) + c_p
              + s_e e_{t+1}

with ``z_c' = z_c - clim_z(month)`` the conditioning run's latent anomaly, ``u`` the K_f leading
standardised PCs of the area-weighted SST anomaly of month t+1 (the forced signal the members
share), ``s_r``, ``s_z``, ``s_e`` per-channel standard deviations, and ``e`` the standardised
innovation drawn by a conditional diffusion model (v-prediction, cosine schedule,
:mod:`emulator.diffusion`) conditioned on ``r_t / s_r`` and the season of t+1, times ``e_scale``:
a few-step ancestral sampler under-disperses (a denoiser trained on white noise gives samples of
std ~0.66 at 4 steps), so each channel's samples are rescaled to the innovations' unit variance
after training (spread calibration, as the emulator's ``diffusion_offset`` / decoder noise are). The ``b`` term
and ``d`` terms are what keep the ensemble on the forced signal: given a single trajectory, the
expected residual is ``forced - z_c``, and the members of the training ensemble share their
forcing. With ``z_c'(t)`` among the predictors the step is exact for linear-Gaussian members:
for AR(1) members n(t+1) = phi n(t) + eps around a shared forced signal, r_{t+1} = phi r_t +
phi n_c(t) - n_c(t+1) + eps, so a = phi, d = phi, b = -1 (and the u terms remove the
forced signal from both z_c) (tests/emulator/test_residual.py).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from diagnostics.data.grid import area_weights


class ConvDenoiser(nn.Module):
    """v-prediction network on the latent grid: ``depth`` 3x3 convolutions (periodic in
    longitude, edge-replicated in latitude), SiLU, input ``[e_s, r_t / s_r, sin, cos, s]``."""

    def __init__(self, channels: int, hidden: int, depth: int):
        super().__init__()
        sizes = [2 * channels + 3] + [hidden] * (depth - 1) + [channels]
        self.layers = nn.ModuleList(nn.Conv2d(a, b, 3) for a, b in zip(sizes[:-1], sizes[1:]))
        nn.init.zeros_(self.layers[-1].weight)
        nn.init.zeros_(self.layers[-1].bias)

    def forward(self, e_s: torch.Tensor, r_prev: torch.Tensor, month: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        b, _, h, w = e_s.shape
        phase = 2 * math.pi * (month.float() - 1) / 12
        extra = torch.stack([phase.sin(), phase.cos(), s.float()], dim=1).view(b, 3, 1, 1).expand(b, 3, h, w)
        x = torch.cat([e_s, r_prev, extra.to(e_s.dtype)], dim=1)
        for i, layer in enumerate(self.layers):
            x = layer(F.pad(F.pad(x, (1, 1, 0, 0), mode="circular"), (0, 0, 1, 1), mode="replicate"))
            if i < len(self.layers) - 1:
                x = F.silu(x)
        return x


class ResidualModel(nn.Module):
    """Every array of a fitted residual model (buffers) and its denoiser.

    Buffers: ``z_clim [12, Z, h, w]``, ``z_std [Z]``, ``r_std [Z]``, ``e_std [Z]``, ``e_scale [Z]`` (spread
    calibration of the diffusion's samples: 1 / their std per channel at the configured steps), ``coef [Z, h, w, P]``
    (order: r_t, z_c'(t+1), z_c'(t), u(t+1), u(t), 1; P = 4 + 2 K_f), ``tos_clim [12, H, W]`` (K, 0 over land),
    ``tos_eofs [H*W, K_f]`` (area-weighted), ``u_std [K_f]``.

    With ``mixing`` the mean step is a VAR(1) across the latent channels at each point: ``r_t`` and
    ``z_c'(t)`` enter with all Z channels of the point (``r_{t+1} = Phi r_t + Phi n_c(t) - n_c(t+1) + eps``
    for AR(1) members with a channel-mixing Phi), P = 2 Z + 2 + 2 K_f. A latent channel's own
    persistence is not that of a field: the decoder mixes the channels, so a field's lag-1 depends
    on the cross-channel lagged covariances a diagonal step drops (docs/residual.md, measured).
    """

    def __init__(self, latent_shape: tuple[int, int, int], grid_shape: tuple[int, int], forcing_modes: int,
                 hidden: int, depth: int, mixing: bool = False):
        super().__init__()
        z, h, w = latent_shape
        H, W = grid_shape
        self.latent_shape, self.forcing_modes, self.mixing = tuple(latent_shape), forcing_modes, bool(mixing)
        for name, shape in (("z_clim", (12, z, h, w)), ("z_std", (z,)), ("r_std", (z,)), ("e_std", (z,)), ("e_scale", (z,)),
                            ("coef", (z, h, w, n_predictors(z, forcing_modes, mixing))), ("tos_clim", (12, H, W)),
                            ("tos_eofs", (H * W, forcing_modes)), ("u_std", (forcing_modes,)),
                            ("sqrt_w", (H, 1))):
            self.register_buffer(name, torch.zeros(shape))
        self.e_scale.fill_(1.0)
        self.denoiser = ConvDenoiser(z, hidden, depth)

    # ------------------------------------------------------------------ predictors
    def forcing_predictors(self, tos: np.ndarray | torch.Tensor, month: int) -> torch.Tensor:
        """``u [K_f]``: standardised PCs of the area-weighted SST anomaly of one month (``tos [H, W]`` in K)."""
        tos = torch.as_tensor(np.asarray(tos, np.float32))
        anom = torch.nan_to_num(tos - self.tos_clim[month - 1], nan=0.0) * self.sqrt_w
        return (anom.reshape(-1) @ self.tos_eofs) / self.u_std

    def anomaly(self, z_c: torch.Tensor, month: torch.Tensor) -> torch.Tensor:
        """``z_c' / s_z``: the conditioning latent minus its training climatology of the month, standardised."""
        return (z_c - self.z_clim[month - 1]) / self.z_std.view(1, -1, 1, 1)

    def design(self, r_prev_n: torch.Tensor, zc_next: torch.Tensor, month_next: torch.Tensor,
               zc_prev: torch.Tensor, month_prev: torch.Tensor, u_next: torch.Tensor,
               u_prev: torch.Tensor) -> torch.Tensor:
        """Predictors ``[B, Z, h, w, P]`` of the mean step (standardised units; P see the class docstring)."""
        b, z, h, w = r_prev_n.shape
        u = torch.cat([u_next, u_prev], dim=-1).view(b, 1, 1, 1, -1).expand(b, z, h, w, -1)
        one = torch.ones_like(r_prev_n).unsqueeze(-1)
        zp = self.anomaly(zc_prev, month_prev)
        if self.mixing:  # every channel of the point predicts every channel: [B, Z_out, h, w, Z_in]
            return torch.cat([_all_channels(r_prev_n), self.anomaly(zc_next, month_next).unsqueeze(-1),
                              _all_channels(zp), u, one], dim=-1)
        return torch.cat([r_prev_n.unsqueeze(-1), self.anomaly(zc_next, month_next).unsqueeze(-1),
                          zp.unsqueeze(-1), u, one], dim=-1)

    def own_terms(self) -> dict[str, torch.Tensor]:
        """Coefficients ``[Z, h, w]`` of a channel's own r_t (``a``), z_c'(t+1) (``b``) and z_c'(t) (``d``)."""
        z = self.latent_shape[0]
        if not self.mixing:
            return {"a": self.coef[..., 0], "b": self.coef[..., 1], "d": self.coef[..., 2]}
        eye = torch.eye(z, dtype=torch.bool)
        diag = lambda block: block.permute(1, 2, 0, 3)[..., eye].permute(2, 0, 1)  # noqa: E731  [Z, h, w]
        return {"a": diag(self.coef[..., :z]), "b": self.coef[..., z], "d": diag(self.coef[..., z + 1:2 * z + 1])}

    def mean_step(self, r_prev_n: torch.Tensor, zc_next: torch.Tensor, month_next: torch.Tensor,
                  zc_prev: torch.Tensor, month_prev: torch.Tensor, u_next: torch.Tensor,
                  u_prev: torch.Tensor) -> torch.Tensor:
        """The linear part of ``y_{t+1}`` (standardised residual) ``[B, Z, h, w]``."""
        x = self.design(r_prev_n, zc_next, month_next, zc_prev, month_prev, u_next, u_prev)
        return (x * self.coef).sum(-1)

    def standardise(self, r: torch.Tensor) -> torch.Tensor:
        return r / self.r_std.view(1, -1, 1, 1)

    def unstandardise(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.r_std.view(1, -1, 1, 1)


def n_predictors(z: int, forcing_modes: int, mixing: bool) -> int:
    """Predictors per point and channel of the mean step (see :class:`ResidualModel`)."""
    return 2 * z + 2 + 2 * forcing_modes if mixing else 4 + 2 * forcing_modes


def _all_channels(x: torch.Tensor) -> torch.Tensor:
    """``[B, Z, h, w]`` -> ``[B, Z, h, w, Z]``: the point's channels as predictors of each channel."""
    b, z, h, w = x.shape
    return x.permute(0, 2, 3, 1).unsqueeze(1).expand(b, z, h, w, z)


def sqrt_area_weights(lat) -> np.ndarray:
    """``[H, 1]`` square root of the relative cell areas (mean 1) of the data grid."""
    return np.sqrt(area_weights(np.asarray(lat)).values)[:, None].astype(np.float32)
