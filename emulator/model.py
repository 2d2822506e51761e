"""The Monthly Diffusion network and its training loss: conditioning, CVAE, latent
standardisation, denoiser, the latent skip path and the calibration buffers.

Inference (encode / step / decode in physical units, each month's forcing conditioned once)
is :class:`emulator.stepper.DiffusionStepper`, which the rollout and validation use.

The diffusion step is conditioned on the forcing of month t (the month it starts from) and,
with ``cfg.step_next_forcing``, also on the prescribed forcing of month t+1; the decoder on the
forcing of the month it decodes. The denoiser is conditioned on a *sampled* previous latent in
training and at inference, never on the posterior mean.

Tensors: state ``[B, C, nlat, nlon]`` (normalised inside the model), channel order
``model.channels``; forcing ``[B, F, nlat, nlon]``, order ``model.forcing_names``; month ``[B]``
calendar month 1..12; latent ``[B, Z, h, w]``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from diagnostics.data.catalogue import channel_label
from diagnostics.data.grid import area_weights

from . import diffusion
from .config import ModelConfig, PreviousNoise
from .cvae import Decoder, Encoder
from .denoiser import Denoiser, LatentSkip
from .embeddings import SeasonalityEmbedding
from .latent_lim import LatentLinearModel
from .normalisation import Normaliser
from .sht import SpectralResample, forward_sht, inverse_sht, truncation


@dataclass(frozen=True)
class DataSpec:
    """What the model reads and predicts: channels, forcings, statics and the data grid."""

    channels: tuple[tuple[str, int | None], ...]
    forcing_names: tuple[str, ...]
    static_names: tuple[str, ...]
    lat: tuple[float, ...]
    lon: tuple[float, ...]

    @property
    def shape(self) -> tuple[int, int]:
        return (len(self.lat), len(self.lon))

    @property
    def labels(self) -> list[str]:
        return [channel_label(n, lev) for n, lev in self.channels]


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA, nothing elsewhere (CPU bf16 is slower and less accurate)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _equiangular_lat(nlat: int) -> np.ndarray:
    return np.linspace(-90.0, 90.0, nlat)


class MonthlyDiffusion(nn.Module):
    """Spectral CVAE + latent v-prediction diffusion for monthly means."""

    def __init__(self, cfg: ModelConfig, spec: DataSpec):
        super().__init__()
        self.cfg, self.spec = cfg, spec
        self.channels = list(spec.channels)
        self.forcing_names = list(spec.forcing_names)
        data_shape, latent_shape = spec.shape, tuple(cfg.latent_shape)
        self.data_shape, self.latent_shape = data_shape, latent_shape
        n_state, z = len(spec.channels), cfg.latent_channels
        self.normaliser = Normaliser([n for n, _ in spec.channels], list(spec.forcing_names), data_shape,
                                     anomaly=cfg.normalisation == "anomaly", forcing_anomaly=cfg.forcing_anomaly)
        self.n_cond = self.normaliser.n_forcing_channels + cfg.season_channels + len(spec.static_names)
        # the step's conditioning: that of month t, and of t+1 too with step_next_forcing
        n_step_cond = 2 * self.n_cond if cfg.step_next_forcing else self.n_cond
        block_kw = dict(operator=cfg.operator.type, diagonal_mode=getattr(cfg.operator, "mode", "l"),
                        norm_hidden=cfg.norm_hidden, mlp_ratio=cfg.mlp_ratio)
        self.register_buffer("statics", torch.zeros(len(spec.static_names), *data_shape))
        self.register_buffer("latent_mean", torch.zeros(z))
        self.register_buffer("latent_std", torch.ones(z))
        self.register_buffer("latent_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("area_data", torch.as_tensor(
            area_weights(np.asarray(spec.lat)).values, dtype=torch.float32), persistent=False)
        self.register_buffer("area_latent", torch.as_tensor(
            area_weights(_equiangular_lat(latent_shape[0])).values, dtype=torch.float32), persistent=False)

        # decoder residual statistics: E|c_lm|^2 of the SHT of (x - decode(z)), normalised units
        self.data_lmax = truncation(*data_shape)
        self.data_sht = forward_sht(data_shape, self.data_lmax)
        self.data_isht = inverse_sht(data_shape, self.data_lmax)
        self.register_buffer("residual_power", torch.zeros(n_state, self.data_lmax, self.data_lmax))
        self.register_buffer("residual_updates", torch.zeros((), dtype=torch.long))
        # per-(channel, latitude) variance factor of the residual samples, set by the spread calibration
        self.register_buffer("residual_scale", torch.ones(n_state, data_shape[0]))

        self.season = SeasonalityEmbedding(data_shape, cfg.season_channels)
        self.to_latent = SpectralResample(data_shape, latent_shape)
        self.encoder = Encoder(n_state, self.n_cond, z, data_shape, latent_shape, cfg.embed_dim,
                               cfg.encoder_rank, **block_kw)
        self.decoder = Decoder(n_state, self.n_cond, z, data_shape, latent_shape, cfg.embed_dim,
                               cfg.decoder_rank, **block_kw)
        # without step.denoiser_forcing the forcings reach the step through the linear skip path only: the
        # denoiser's nonlinear forcing response, fitted on a few hundred months, added a mean shift
        # (and a test-period bias) that the skip path's linear one does not (docs/emulator.md)
        n_forcing = self.normaliser.n_forcing_channels
        blocks = 2 if cfg.step_next_forcing else 1
        keep = [b * self.n_cond + k for b in range(blocks) for k in range(self.n_cond)
                if getattr(cfg.step, "denoiser_forcing", True) or k >= n_forcing]
        self.register_buffer("denoiser_cond_index", torch.tensor(keep, dtype=torch.long), persistent=False)
        pn = self.previous_noise
        self.denoiser = Denoiser(z, len(keep), latent_shape, cfg.embed_dim, cfg.denoiser_rank,
                                 cfg.denoiser_blocks, use_previous=getattr(cfg.step, "denoiser_previous", True),
                                 previous_noise_max=pn.max if pn is not None else None, **block_kw)
        self.skip = LatentSkip(z, n_step_cond, latent_shape, mixing=cfg.step.mixing) if cfg.latent_skip else None
        if cfg.latent_skip:  # per-channel std of z_next - mu: the diffusion works on unit-variance residuals
            self.register_buffer("skip_std", torch.ones(z))
            # mean of the sampled residuals, set by the end-of-run calibration and subtracted
            # (validation.diffusion_offset): the skip path is the mean, the diffusion adds spread only
            self.register_buffer("diffusion_offset", torch.zeros(z, *latent_shape))
        self.latent_linear = None
        if cfg.latent_lim:  # step.type latent_lim: the step's mean and noise, fitted at calibration
            if not cfg.forcing_anomaly:
                raise ValueError("model.step.type latent_lim needs model.forcing_anomaly: true "
                                 "(its forcing predictors are the forcing anomalies)")
            self.latent_linear = LatentLinearModel(
                (z, *latent_shape), data_shape, len(spec.forcing_names), cfg.step.modes, cfg.step.forcing_modes,
                self.area_latent, self.area_data, noise=cfg.step.noise, seasonal_modes=cfg.step.seasonal_modes)

    @staticmethod
    def normaliser_only(spec: DataSpec, stats: dict) -> Normaliser:
        """A :class:`Normaliser` for ``spec`` with statistics ``stats`` (for data preparation)."""
        norm = Normaliser([n for n, _ in spec.channels], list(spec.forcing_names), spec.shape,
                          anomaly="state_clim" in stats, forcing_anomaly="forcing_clim" in stats)
        norm.set_stats(**stats)
        return norm

    # ------------------------------------------------------------------ internals (normalised)
    @property
    def device(self) -> torch.device:
        return self.latent_mean.device

    @property
    def previous_noise(self) -> PreviousNoise | None:
        """``model.step.previous_noise`` (:class:`emulator.config.PreviousNoise`), None when off."""
        return getattr(self.cfg.step, "previous_noise", None)

    def noisy_previous(self, zn_prev: torch.Tensor, sigma: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """``zn_prev + sigma eps`` with a per-sample ``sigma [B]`` (standardised latent units): the
        previous latent the denoiser sees under ``model.step.previous_noise``."""
        return zn_prev + sigma.to(zn_prev.dtype).view(-1, *([1] * (zn_prev.dim() - 1))) * eps.to(zn_prev.dtype)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def conditioning(self, forcing_n: torch.Tensor, month: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Conditioning ``[B, K, H, W]`` on the data grid and its resampling to the latent grid.

        K channels: normalised forcings + mask, seasonality (month), normalised statics.
        """
        b = forcing_n.shape[0]
        statics = self.statics.unsqueeze(0).expand(b, -1, -1, -1)
        cond = torch.cat([forcing_n.float(), self.season(month.to(forcing_n.device)), statics], dim=1)
        return cond, self.to_latent(cond)

    def step_conditioning(self, cl_t: torch.Tensor, cl_t1: torch.Tensor | None) -> torch.Tensor:
        """The diffusion step's conditioning on the latent grid: month t's, with t+1's appended
        when ``cfg.step_next_forcing`` (the prescribed SST of the month being predicted)."""
        if not self.cfg.step_next_forcing:
            return cl_t
        if cl_t1 is None:
            raise ValueError("this model's step needs the forcing of month t+1 (the conditioning cond_t1; "
                             "model.step.next_forcing is on)")
        return torch.cat([cl_t, cl_t1], dim=1)

    def standardise(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_mean.view(1, -1, 1, 1)) / self.latent_std.view(1, -1, 1, 1)

    def unstandardise(self, zn: torch.Tensor) -> torch.Tensor:
        return zn * self.latent_std.view(1, -1, 1, 1) + self.latent_mean.view(1, -1, 1, 1)

    def reparameterise(self, mean, logvar, noise):
        return mean + torch.exp(0.5 * logvar) * noise

    def _weighted_mse(self, a: torch.Tensor, b: torch.Tensor, area: torch.Tensor) -> torch.Tensor:
        """Area-weighted mean square difference over batch, channels, lat, lon."""
        return ((a.float() - b.float()) ** 2 * area.view(1, 1, -1, 1)).mean()

    @torch.no_grad()
    def _update_latent_stats(self, z: torch.Tensor) -> None:
        """EMA of the population (batch, lat, lon) mean and std of latent samples, per channel."""
        mean, std = z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3)).clamp(min=1e-4)
        if int(self.latent_updates) == 0:
            self.latent_mean.copy_(mean)
            self.latent_std.copy_(std)
        else:
            m = self.cfg.latent_momentum
            self.latent_mean.lerp_(mean, m)
            self.latent_std.lerp_(std, m)
        self.latent_updates += 1

    @torch.no_grad()
    def _update_skip_std(self, r: torch.Tensor) -> None:
        """EMA (rate ``latent_momentum``) of the per-channel std of the skip path's residual.

        The diffusion sees ``r / skip_std``, unit-variance residuals whatever share of the latent
        the skip path explains: the 15-step sampler damps small-variance targets (docs/emulator.md),
        and in a measured run without this (and with the target not detached) the encoder drifted
        to latents whose month-to-month anomalies were about 0.1 of their std. On the demo the
        final skip_std is 0.83-0.97.
        """
        std = r.float().std(dim=(0, 2, 3)).clamp(min=1e-4)
        if int(self.latent_updates) <= 1:
            self.skip_std.copy_(std)
        else:
            self.skip_std.lerp_(std, self.cfg.latent_momentum)

    @torch.no_grad()
    def _update_residual_power(self, residual: torch.Tensor) -> None:
        """EMA of the per-coefficient power E|c_lm|^2 of the decoder residual, per channel."""
        power = self.data_sht(residual.float()).abs().pow(2).mean(dim=0)
        if int(self.residual_updates) == 0:
            self.residual_power.copy_(power)
        else:
            self.residual_power.lerp_(power, self.cfg.latent_momentum)
        self.residual_updates += 1

    def residual_sample(self, noise: torch.Tensor) -> torch.Tensor:
        """A random field with the decoder residual's power per (l, m) from white ``noise [B, C, L, L, 2]``.

        c_lm = sqrt(P_lm / 2) (e1 + i e2) for m > 0 and sqrt(P_l0) e1 for m = 0, so E|c_lm|^2 = P_lm;
        then the inverse SHT. Models what the latent does not carry as isotropic-in-m Gaussian noise;
        the field is then multiplied by ``sqrt(residual_scale)`` per channel and latitude (ones until
        the trainer's spread calibration sets it), so its variance follows that of the forecast error.
        """
        p = self.residual_power.unsqueeze(0)
        scale = torch.sqrt(p / 2.0)
        scale[..., 0] = torch.sqrt(p[..., 0])
        re = scale * noise[..., 0]
        im = scale * noise[..., 1]
        im[..., 0] = 0.0
        field = self.data_isht(torch.complex(re, im))
        return field * self.residual_scale.clamp(min=0.0).sqrt().view(1, *self.residual_scale.shape, 1)

    def residual_noise_shape(self, batch: int) -> tuple[int, ...]:
        return (batch, len(self.channels), self.data_lmax, self.data_lmax, 2)

    def training_loss(self, x_t, x_t1, f_t, f_t1, month_t, month_t1, generator: torch.Generator | None,
                      weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
        """Joint CVAE + diffusion loss for a batch of normalised month pairs.

        total = rec + kl_weight KL + v_weight |v_hat - v|^2 + pop_weight (mean_c^2 + (std_c - 1)^2)
        rec: area-weighted MSE of the reconstructed month t+1 (normalised units);
        KL: mean over latent elements of 0.5 (mu^2 + e^lv - 1 - lv);
        the denoiser sees the SAMPLED latent of month t and learns the sampled latent of t+1
        (with ``model.step.previous_noise``, that latent plus ``sigma eps``, ``sigma ~ U(0, max)``
        per pair, and is told ``sigma``; the skip path sees it clean).
        """
        b = x_t.shape[0]
        gen_dev = generator.device if generator is not None else x_t.device

        def randn(*shape):
            return torch.randn(shape, generator=generator, device=gen_dev).to(x_t.device)

        cond_t, cl_t = self.conditioning(f_t, month_t)
        cond_t1, cl_t1 = self.conditioning(f_t1, month_t1)
        mean, logvar = self.encoder(torch.cat([x_t, x_t1]), torch.cat([cond_t, cond_t1]), torch.cat([cl_t, cl_t1]))
        z = self.reparameterise(mean, logvar, randn(*mean.shape))
        # month t is month t+1 of another pair: decoding only t+1 halves the decoder cost
        recon = self.decoder(z[b:], cond_t1, cl_t1)
        rec = self._weighted_mse(recon, x_t1, self.area_data)
        if self.training:
            self._update_residual_power(x_t1 - recon.detach())
        kl = 0.5 * (mean ** 2 + logvar.exp() - 1.0 - logvar).mean()

        pop_mean, pop_std = z.mean(dim=(0, 2, 3)), z.std(dim=(0, 2, 3))
        pop = (pop_mean ** 2).mean() + ((pop_std - 1.0) ** 2).mean()
        if self.training:
            self._update_latent_stats(z.detach())

        zn = self.standardise(z)
        zn_prev, zn_next = zn[:b], zn[b:]
        target, skip_loss = zn_next, None
        cl_step = self.step_conditioning(cl_t, cl_t1)
        if self.skip is not None:  # least squares on detached latents: the skip path never shapes the encoder
            mu = self.skip(zn_prev.detach(), cl_step.detach())
            skip_loss = self._weighted_mse(mu, zn_next.detach(), self.area_latent)
            if self.training:
                self._update_skip_std((zn_next - mu).detach())
            # detached: through the target the v-loss pulls the encoder towards easy-to-diffuse rather
            # than faithful latents (demo: rec 0.25 vs 0.02), and divided by a small skip_std it made
            # training diverge (measured); the encoder still gets the v-loss through zn_prev
            target = (zn_next.detach() - mu.detach()) / self.skip_std.view(1, -1, 1, 1)
        s = torch.rand((b,), generator=generator, device=gen_dev).to(x_t.device)
        z_s, v = diffusion.q_sample(target, randn(*zn_next.shape), s)
        zn_prev_denoiser, sigma_prev = zn_prev, None
        if self.previous_noise is not None:  # drawn after the others: without it the draws are unchanged
            sigma_prev = self.previous_noise.max * torch.rand((b,), generator=generator, device=gen_dev).to(x_t.device)
            zn_prev_denoiser = self.noisy_previous(zn_prev, sigma_prev, randn(*zn_prev.shape))
        v_hat = self.denoiser(z_s, zn_prev_denoiser, cl_step.index_select(1, self.denoiser_cond_index), s, sigma_prev)
        vloss = self._weighted_mse(v_hat, v, self.area_latent)

        total = rec + weights["kl_weight"] * kl + weights["v_weight"] * vloss + weights["pop_weight"] * pop
        terms = {"loss": 0.0, "rec": float(rec.detach()), "kl": float(kl.detach()),
                 "v": float(vloss.detach()), "pop": float(pop.detach())}
        if skip_loss is not None:
            total = total + weights.get("skip_weight", 1.0) * skip_loss
            terms["skip"] = float(skip_loss.detach())
        terms["loss"] = float(total.detach())
        return total, terms

    # ------------------------------------------------------------------ shapes
    def latent_shape_full(self) -> tuple[int, int, int]:
        """``(Z, h, w)`` of one latent."""
        return (self.cfg.latent_channels, *self.latent_shape)

    def latent_batch_shape(self, batch: int) -> tuple[int, int, int, int]:
        return (batch, self.cfg.latent_channels, *self.latent_shape)

    def default_steps(self, sampler: str) -> int:
        """Denoising steps the model was configured with for ``sampler`` (ancestral 15, ddim 5)."""
        return self.cfg.sample_steps if sampler == "ancestral" else self.cfg.ddim_steps
