"""Inference in physical units: the :class:`Stepper` protocol the rollout runs, and the
Monthly Diffusion stepper.

Month and forcing convention (one month-ahead step from month t to month t+1)::

    c_t     = stepper.condition(forcing_t, month_t)          # normalised + conditioned ONCE per month
    z_0     = stepper.init(x_0, c_0, generators)             # a posterior SAMPLE of the start month
    z_{t+1} = stepper.step(z_t, c_t, c_{t+1}, generators)    # conditioning of t and of t+1
    x_{t+1} = stepper.decode(z_{t+1}, c_{t+1}, generators)   # the conditioning OF t+1

A month's conditioning is used three times (decoding month t, the step from t and the step
into t): computing it once per month and batch replaces the three normalisations and
conditionings per month of the model-level API it came from (issue 12), with the same values.

Tensors: state ``[B, C, nlat, nlon]`` in catalogue units, channel order ``spec.channels``;
forcing ``[B, F, nlat, nlon]`` in catalogue units (``tos`` may be NaN over land), order
``spec.forcing_names``; month ``[B]`` calendar month 1..12; latent ``[B, *latent_shape]``.
``generators``: one ``torch.Generator`` per member (a member's draws then do not depend on the
batch it is in), or one for the batch, or None (the global RNG). Each call draws its noise in a
fixed order from them: init the encoder sample; step the sampler's fields; decode the residual
sample (only with ``residual_noise``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence, runtime_checkable

import torch

from . import diffusion
from .diffusion import Sampler
from .model import DataSpec, MonthlyDiffusion, autocast

Generators = torch.Generator | Sequence[torch.Generator] | None


@runtime_checkable
class Stepper(Protocol):
    """What a model must provide for :func:`emulator.rollout.run_rollout` to run it.

    ``spec`` (channels, forcings, grid), ``device``, ``latent_shape`` (one member's latent,
    which the rollout saves after every month for an exact ``--resume``), ``describe()`` (the
    settings that enter the run fingerprint and the files' ``sampler`` attribute, e.g.
    ``{"sampler": "ancestral", "steps": 15}``), and the five calls below. The conditioning
    object is opaque to the rollout: it only passes it back.
    """

    spec: DataSpec
    device: torch.device
    latent_shape: tuple[int, ...]

    def describe(self) -> dict[str, Any]: ...

    def condition(self, forcing: torch.Tensor, month: torch.Tensor) -> Any: ...

    def perturb(self, state: torch.Tensor, month: torch.Tensor, scale: float,
                generators: Generators) -> torch.Tensor: ...

    def init(self, state: torch.Tensor, cond: Any, generators: Generators) -> torch.Tensor: ...

    def step(self, latent: torch.Tensor, cond_t: Any, cond_t1: Any, generators: Generators) -> torch.Tensor: ...

    def decode(self, latent: torch.Tensor, cond: Any, generators: Generators) -> torch.Tensor: ...


@dataclass(frozen=True)
class Conditioning:
    """One month's conditioning for a batch: ``data [B, K, H, W]`` on the data grid, ``latent
    [B, K, h, w]`` its resampling to the latent grid, ``month [B]`` (1..12) on the model's device.
    K channels: normalised forcings (+ mask, + anomalies), seasonality, normalised statics."""

    data: torch.Tensor
    latent: torch.Tensor
    month: torch.Tensor


class DiffusionStepper:
    """The Monthly Diffusion model as a :class:`Stepper` (plus the normalised-unit calls that
    validation and calibration use on already-normalised data).

    Args:
        model: the network (eval mode, on its device).
        sampler: ``ancestral`` (DDPM) or ``ddim`` (deterministic).
        steps: denoising steps; None: the model's default for the sampler (15 / 5).
    """

    def __init__(self, model: MonthlyDiffusion, sampler: Sampler = "ancestral", steps: int | None = None):
        if sampler not in diffusion.SAMPLERS:
            raise ValueError(f"sampler must be one of {diffusion.SAMPLERS}, got {sampler!r}")
        self.model, self.sampler = model, sampler
        self.steps = steps or model.default_steps(sampler)
        self.spec = model.spec
        self.latent_shape = model.latent_shape_full()

    @property
    def device(self) -> torch.device:
        return self.model.device

    def describe(self) -> dict[str, Any]:
        return {"sampler": self.sampler, "steps": self.steps}

    # ------------------------------------------------------------------ normalised units
    def condition_normalised(self, forcing_n: torch.Tensor, month: torch.Tensor) -> Conditioning:
        """Conditioning from normalised forcing ``[B, n_forcing_channels, H, W]``."""
        month = month.to(self.device)
        with autocast(self.device):
            data, latent = self.model.conditioning(forcing_n.to(self.device), month)
        return Conditioning(data, latent, month)

    def noise_for_step(self, batch: int, generators: Generators = None) -> torch.Tensor:
        """Noise ``[n_draws, B, Z, h, w]`` one :meth:`step` consumes (one field for a ``latent_lim``
        step, which samples no diffusion; one more with ``model.step.previous_noise``)."""
        m = self.model
        n = 1 if m.latent_linear is not None else diffusion.n_draws(self.sampler, self.steps)
        if m.latent_linear is None and m.previous_noise is not None:
            n += 1  # the last field perturbs the previous latent the denoiser sees (model.step.previous_noise)
        return diffusion.draw_noise(n, self.model.latent_batch_shape(batch), generators, self.device)

    def encode_normalised(self, x_n: torch.Tensor, cond: Conditioning,
                          noise: torch.Tensor | None = None) -> torch.Tensor:
        """Latent sample (the posterior mean when ``noise`` is None) of normalised state."""
        m = self.model
        with autocast(self.device):
            mean, logvar = m.encoder(x_n, cond.data, cond.latent)
            return mean if noise is None else m.reparameterise(mean, logvar, noise.to(mean.device))

    def _step_inputs(self, z_prev: torch.Tensor, cond_t: Conditioning,
                     cond_t1: Conditioning | None) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        cl_t1 = cond_t1.latent if (m.cfg.step_next_forcing and cond_t1 is not None) else None
        return m.standardise(z_prev.float()), m.step_conditioning(cond_t.latent, cl_t1)

    def _diffuse(self, zn_prev: torch.Tensor, cl_step: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The diffusion's sample (standardised; with the skip path, the residual over its skip_std)."""
        m = self.model
        cl_denoiser = cl_step.index_select(1, m.denoiser_cond_index)
        zn_prev_denoiser, sigma = zn_prev, None
        if m.previous_noise is not None:  # the sampling level, drawn once per step (the last noise field)
            sigma = torch.full((zn_prev.shape[0],), m.previous_noise.sample, device=zn_prev.device)
            zn_prev_denoiser = m.noisy_previous(zn_prev, sigma, noise[-1].to(zn_prev.device))

        def velocity(z_s, s):
            return m.denoiser(z_s, zn_prev_denoiser, cl_denoiser, s, sigma)

        return diffusion.sample(velocity, noise.to(zn_prev.device), self.steps, self.sampler)

    def residual_draws(self, z_prev: torch.Tensor, cond_t: Conditioning, cond_t1: Conditioning | None,
                       noise: torch.Tensor) -> torch.Tensor:
        """The diffusion's raw samples of the skip residual, before ``diffusion_offset`` (calibration)."""
        with autocast(self.device):
            zn_prev, cl_step = self._step_inputs(z_prev, cond_t, cond_t1)
            return self._diffuse(zn_prev, cl_step, noise)

    def step_normalised(self, z_prev: torch.Tensor, cond_t: Conditioning, cond_t1: Conditioning | None,
                        noise: torch.Tensor) -> torch.Tensor:
        """Next raw latent from a raw latent sample of month t; ``cond_t1`` is needed when the model
        has ``step_next_forcing`` (otherwise ignored).

        With the skip path: z_{t+1} = unstd(mu + skip_std (r - diffusion_offset)), r the diffusion's
        sample and mu the linear skip path of (z_t, conditioning); without: z_{t+1} = unstd(r);
        with ``step.type: latent_lim``: the latent LIM's sample (:mod:`emulator.latent_lim`) from the
        first of the step's noise fields.
        """
        m = self.model
        if m.latent_linear is not None:  # step.type latent_lim: the latent LIM's sample, no diffusion
            if cond_t1 is None:
                raise ValueError("a latent_lim step needs the conditioning of month t+1 (its forcing)")
            n_forcing = m.normaliser.n_forcing_channels
            zn_prev, xi = m.standardise(z_prev.float()), noise[0].to(z_prev.device)
            if m.cfg.step.mean == "skip":  # the skip path's mean, the Gaussian fitted to its residuals
                _, cl_step = self._step_inputs(z_prev, cond_t, cond_t1)
                lin = m.latent_linear
                return m.unstandardise(m.skip(zn_prev, cl_step).float() + lin.seasonal_correction(zn_prev, cond_t1.month)
                                       + lin.noise(cond_t1.month, xi))
            return m.unstandardise(m.latent_linear.step(zn_prev, cond_t1.data[:, :n_forcing], cond_t1.month, xi))
        with autocast(self.device):
            zn_prev, cl_step = self._step_inputs(z_prev, cond_t, cond_t1)
            zn_next = self._diffuse(zn_prev, cl_step, noise)
            if m.skip is not None:
                r = (zn_next - m.diffusion_offset) * m.skip_std.view(1, -1, 1, 1)
                zn_next = r + m.skip(zn_prev, cl_step).float()
            return m.unstandardise(zn_next)

    def decode_normalised(self, z: torch.Tensor, cond: Conditioning,
                          residual_noise: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised state from a latent; plus a residual sample when ``residual_noise`` is given."""
        m = self.model
        with autocast(self.device):
            x = m.decoder(z, cond.data, cond.latent)
            if residual_noise is not None:
                x = x + m.residual_sample(residual_noise.to(x.device))
            return x

    # ------------------------------------------------------------------ physical units (the Stepper)
    @torch.no_grad()
    def condition(self, forcing: torch.Tensor, month: torch.Tensor) -> Conditioning:
        """Physical forcing ``[B, F, H, W]`` and calendar month ``[B]`` -> :class:`Conditioning`."""
        month = month.to(self.device)
        f_n = self.model.normaliser.normalise_forcing(forcing.to(self.device), month)
        return self.condition_normalised(f_n, month)

    @torch.no_grad()
    def perturb(self, state: torch.Tensor, month: torch.Tensor, scale: float,
                generators: Generators) -> torch.Tensor:
        """x' = denorm(norm(x) + scale eps), eps white noise from each member's generator
        (``scale`` in normalised units); ``state`` itself when ``scale`` <= 0."""
        if scale <= 0:
            return state
        dev, norm = self.device, self.model.normaliser
        month = month.to(dev)
        x_n = norm.normalise_state(state.to(dev), month)
        eps = diffusion.draw_noise(1, tuple(state.shape), generators, dev)[0]
        return norm.denormalise_state(x_n + scale * eps, month).cpu()

    @torch.no_grad()
    def init(self, state: torch.Tensor, cond: Conditioning, generators: Generators = None,
             sample: bool = True) -> torch.Tensor:
        """Physical state of the start month -> latent: a posterior sample (the mean with
        ``sample=False``)."""
        m = self.model
        x_n = m.normaliser.normalise_state(state.to(self.device), cond.month)
        noise = None
        if sample:
            noise = diffusion.draw_noise(1, m.latent_batch_shape(state.shape[0]), generators, self.device)[0]
        return self.encode_normalised(x_n, cond, noise).float()

    @torch.no_grad()
    def step(self, latent: torch.Tensor, cond_t: Conditioning, cond_t1: Conditioning | None,
             generators: Generators = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Sampled latent of month t -> sampled latent of t+1 (``noise`` overrides ``generators``)."""
        if noise is None:
            noise = self.noise_for_step(latent.shape[0], generators)
        return self.step_normalised(latent.to(self.device), cond_t, cond_t1, noise).float()

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, cond: Conditioning, generators: Generators = None) -> torch.Tensor:
        """Latent of month t+1 with the conditioning OF t+1 -> physical state ``[B, C, H, W]``.

        With ``residual_noise`` and generators, adds a sample of the decoder residual (what the
        latent does not carry); otherwise deterministic.
        """
        m = self.model
        noise = None
        if m.cfg.residual_noise and generators is not None:
            noise = diffusion.draw_noise(1, m.residual_noise_shape(latent.shape[0]), generators, self.device)[0]
        x_n = self.decode_normalised(latent.to(self.device), cond, noise).float()
        return m.normaliser.denormalise_state(x_n, cond.month)
