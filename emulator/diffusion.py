"""Latent diffusion: cosine schedule, v-prediction, ancestral (DDPM) and DDIM samplers.

Continuous time s in [0, 1]; ``alpha_bar(s) = cos^2(pi/2 (s + k)/(1 + k)) / cos^2(pi/2 k/(1 + k))``
with k = 0.008 (Nichol & Dhariwal 2021), ``alpha = sqrt(alpha_bar)``, ``sigma = sqrt(1 - alpha_bar)``.

    z_s = alpha z_0 + sigma eps,   v = alpha eps - sigma z_0
    z_0 = alpha z_s - sigma v,     eps = sigma z_s + alpha v

Sampling walks the grid s_i = i / N from s_N = 1 (pure noise) to s_0 = 0.

* ancestral: z_{s'} ~ q(z_{s'} | z_s, z_0_hat) with, for a = alpha_s / alpha_{s'} and
  sigma2_{s|s'} = sigma_s^2 - a^2 sigma_{s'}^2,
  mean = a sigma_{s'}^2 / sigma_s^2 z_s + alpha_{s'} sigma2_{s|s'} / sigma_s^2 z_0_hat,
  var = sigma2_{s|s'} sigma_{s'}^2 / sigma_s^2; the last step returns z_0_hat.
  Draws N noise fields (the start and N - 1 intermediate steps).
* ddim (deterministic, eta = 0): z_{s'} = alpha_{s'} z_0_hat + sigma_{s'} eps_hat; one draw (the start).

All randomness comes from an explicit noise tensor ``[n_draws, B, ...]`` so that one member's
trajectory does not depend on the batch it was computed in (see :func:`draw_noise`).
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch

from .config import SAMPLERS, Sampler  # noqa: F401  (the sampler names: one home, emulator.config)
_K = 0.008


def alpha_sigma(s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(alpha, sigma) of the cosine schedule at times ``s`` in [0, 1] (float32)."""
    s = s.float().clamp(0.0, 1.0)
    f0 = math.cos(0.5 * math.pi * _K / (1.0 + _K)) ** 2
    alpha_bar = (torch.cos(0.5 * math.pi * (s + _K) / (1.0 + _K)) ** 2 / f0).clamp(0.0, 1.0)
    return alpha_bar.sqrt(), (1.0 - alpha_bar).clamp(min=0.0).sqrt()


def _bcast(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return x.view(-1, *([1] * (like.dim() - 1)))


def q_sample(z0: torch.Tensor, eps: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy latent ``z_s`` and its velocity target ``v`` for per-sample times ``s [B]``."""
    a, sg = alpha_sigma(s)
    a, sg = _bcast(a, z0), _bcast(sg, z0)
    return a * z0 + sg * eps, a * eps - sg * z0


def predict(z_s: torch.Tensor, v: torch.Tensor, s: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(z0_hat, eps_hat) from the velocity prediction at times ``s [B]``."""
    a, sg = alpha_sigma(s)
    a, sg = _bcast(a, z_s), _bcast(sg, z_s)
    return a * z_s - sg * v, sg * z_s + a * v


def n_draws(sampler: Sampler, steps: int) -> int:
    """Number of noise fields one trajectory consumes."""
    if sampler == "ancestral":
        return steps
    if sampler == "ddim":
        return 1
    raise ValueError(f"sampler must be 'ancestral' or 'ddim', got {sampler!r}")


def draw_noise(n: int, shape: Sequence[int], generator: torch.Generator | Sequence[torch.Generator] | None,
               device: torch.device | str = "cpu") -> torch.Tensor:
    """Standard normal noise ``[n, B, *shape[1:]]`` for a batch of ``shape[0]`` members.

    With a list of generators, member ``i`` draws its ``n`` fields from generator ``i`` only,
    so its trajectory is the same in any batch. A single generator (or None, the global RNG)
    draws the whole block at once.
    """
    batch, rest = int(shape[0]), tuple(shape[1:])
    if isinstance(generator, (list, tuple)):
        if len(generator) != batch:
            raise ValueError(f"{len(generator)} generators for a batch of {batch}")
        parts = [torch.randn((n, 1, *rest), generator=g, device=g.device) for g in generator]
        return torch.cat(parts, dim=1).to(device)
    if generator is None:
        return torch.randn((n, batch, *rest), device=device)
    return torch.randn((n, batch, *rest), generator=generator, device=generator.device).to(device)


def sample(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], noise: torch.Tensor,
           steps: int, sampler: Sampler = "ancestral") -> torch.Tensor:
    """Integrate from pure noise to a clean latent.

    Args:
        velocity: ``(z_s, s [B]) -> v_hat``, the conditioned denoiser.
        noise: ``[n_draws(sampler, steps), B, ...]`` standard normal fields.
        steps: number of denoiser evaluations N.
    """
    need = n_draws(sampler, steps)
    if noise.shape[0] < need:
        raise ValueError(f"{sampler} sampling with {steps} steps needs {need} noise fields, got {noise.shape[0]}")
    z = noise[0].float()
    batch = z.shape[0]
    grid = torch.linspace(1.0, 0.0, steps + 1, device=z.device)
    for i in range(steps):
        s, s_next = grid[i].expand(batch), grid[i + 1].expand(batch)
        z0, eps = predict(z, velocity(z, s), s)
        if i == steps - 1:
            return z0
        a_s, sg_s = alpha_sigma(grid[i])
        a_n, sg_n = alpha_sigma(grid[i + 1])
        if sampler == "ddim":
            z = a_n * z0 + sg_n * eps
            continue
        a = a_s / a_n
        var_sn = sg_s ** 2 - a ** 2 * sg_n ** 2
        mean = (a * sg_n ** 2 / sg_s ** 2) * z + (a_n * var_sn / sg_s ** 2) * z0
        z = mean + torch.sqrt(var_sn * sg_n ** 2 / sg_s ** 2) * noise[i + 1].float()
    return z
