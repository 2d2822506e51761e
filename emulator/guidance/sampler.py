"""Guided reverse diffusion: DPS and MMPS on the v-prediction samplers of :mod:`emulator.diffusion`.

The prior is the frozen emulator's step ``p(z)`` (a latent of the next month); the data are
``y = A(D(z)) + eta``, ``eta ~ N(0, diag(sigma_y^2))``, with ``D`` the map from the
diffusion's sample to the physical state (skip path, decoder, denormalisation: built by
:class:`~emulator.guidance.stepper.GuidedStepper`) and ``A`` an observation operator
(:mod:`.operators`). ``observe = A o D``. At each reverse step, with ``z0_hat(z_s)`` the
v-prediction's clean estimate (Tweedie's mean, ``z0_hat = alpha z_s - sigma v``) and
``gamma = sigma_s^2 / alpha_s``:

* **MMPS** (moment-matching posterior sampling, Rozet et al. 2024, arXiv 2405.13712):
  ``p(z0 | z_s) ~ N(z0_hat, Cov)``, Tweedie's covariance ``Cov = gamma d z0_hat / d z_s``,
  linearised ``A o D`` with Jacobian ``J`` at ``z0_hat``; the posterior-corrected estimate is
  ``z0_hat + gamma (d z0_hat/d z_s)^T J^T u`` with ``u`` solving
  ``(Sigma_y + J Cov J^T) u = y - observe(z0_hat)`` by a few conjugate-gradient steps whose
  matrix products are a vector-Jacobian product through the denoiser and decoder and a
  Jacobian-vector product through the decoder. The ancestral / DDIM update then uses the
  corrected estimate (and its implied eps). For a Gaussian prior and linear ``observe`` this
  is the exact posterior mean ``E[z0 | z_s, y]`` (tested in closed form).
* **DPS** (diffusion posterior sampling, Chung et al. 2022, arXiv 2209.14687), the cheap
  variant (one backward pass per step): after the prior update,
  ``z_{s'} -= zeta grad_{z_s} ||(y - observe(z0_hat)) / sigma_y||_2`` (the norm, not its
  square, as in the paper and azula's ``DPSSampler``: the step size then does not scale with
  the residual).

No guidance at s = 1 (the first step): there alpha = 0, the clean estimate does not depend on
the noisy latent (``gamma`` is infinite, Tweedie's covariance undefined); later steps correct.

Why not azula (MIT, the reference implementation of both): azula 0.11.1 does not import in
this environment without ``einops`` (its ``azula.nn`` is imported by the package root), and
its ``DPSSampler`` draws the ancestral noise with ``torch.randn_like`` from the global RNG,
which breaks the per-member, per-month generators that make a member's trajectory
independent of its batch and of a resume (:mod:`emulator.rollout`); its schedules are
``(alpha, sigma)`` callables where ours is the v-prediction cosine grid. The formulas here
follow its ``MMPSDenoiser`` (batched per member: CG inner products are per member).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch

from .. import diffusion
from ..diffusion import Sampler, alpha_sigma, predict

from . import METHODS

Method = Literal["mmps", "dps"]


@dataclass(frozen=True)
class GuidanceConfig:
    """How strongly and how the sampler is guided.

    ``method`` mmps or dps; ``cg_iters`` conjugate-gradient steps of MMPS (>= 1; a 1-D
    observation is solved exactly by one); ``zeta`` the DPS step (latent units per whitened
    residual norm); ``start`` the first diffusion time that is guided (1 = every step but
    the first, see the module docstring; smaller values guide only the last, low-noise steps).
    """

    method: Method = "mmps"
    cg_iters: int = 3
    zeta: float = 1.0
    start: float = 1.0

    def check(self) -> "GuidanceConfig":
        if self.method not in METHODS:
            raise ValueError(f"guidance method must be one of {METHODS}, got {self.method!r}")
        if self.cg_iters < 1:
            raise ValueError(f"cg_iters must be >= 1, got {self.cg_iters}")
        if not 0.0 < self.start <= 1.0:
            raise ValueError(f"start must be in (0, 1], got {self.start}")
        return self


def batched_cg(matvec: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, iters: int) -> torch.Tensor:
    """Solve ``M u = b`` per row of ``b [B, D]`` (M symmetric positive definite, one per member)
    by ``iters`` conjugate-gradient steps from u = 0; rows that converged stop moving."""
    u = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rr = (r * r).sum(-1, keepdim=True)
    for _ in range(iters):
        mp = matvec(p)
        pmp = (p * mp).sum(-1, keepdim=True)
        step = torch.where(pmp > 0, rr / pmp.clamp(min=torch.finfo(b.dtype).tiny), torch.zeros_like(rr))
        u = u + step * p
        r = r - step * mp
        rr_new = (r * r).sum(-1, keepdim=True)
        p = r + torch.where(rr > 0, rr_new / rr.clamp(min=torch.finfo(b.dtype).tiny), torch.zeros_like(rr)) * p
        rr = rr_new
    return u


def _vjp(out: torch.Tensor, inp: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return torch.autograd.grad(out, inp, v, retain_graph=True)[0]


def mmps_estimate(z: torch.Tensor, v_hat: torch.Tensor, s: torch.Tensor, observe: Callable[[torch.Tensor], torch.Tensor],
                  y: torch.Tensor, sigma_y: torch.Tensor, cg_iters: int) -> torch.Tensor:
    """MMPS clean estimate ``E[z0 | z_s, y]`` (see the module docstring).

    ``z`` the noisy latent with ``requires_grad`` and ``v_hat`` the velocity computed from it
    (graph kept); ``s`` the scalar diffusion time; ``y [B, D]`` and ``sigma_y`` ([D] or [B, D]).
    """
    a, sg = alpha_sigma(s)
    gamma = sg ** 2 / a
    z0 = a * z - sg * v_hat
    x0 = z0.detach().requires_grad_()
    with torch.enable_grad():
        y_hat = observe(x0)
        dual = torch.zeros_like(y_hat, requires_grad=True)
        # J^T w as a function of w: its vjp is the jvp J t (double-vjp trick; forward-mode AD
        # would need every custom autograd.Function in the decoder to define a jvp)
        jt_dual = torch.autograd.grad(y_hat, x0, dual, create_graph=True)[0]

    def jvp(t: torch.Tensor) -> torch.Tensor:
        return torch.autograd.grad(jt_dual, dual, t, retain_graph=True)[0]

    def cov_jt(u: torch.Tensor) -> torch.Tensor:  # Tweedie covariance times J^T u
        return gamma * _vjp(z0, z, _vjp(y_hat, x0, u))

    def matvec(u: torch.Tensor) -> torch.Tensor:
        return sigma_y ** 2 * u + jvp(cov_jt(u))

    u = batched_cg(matvec, (y - y_hat).detach(), cg_iters)
    return (z0 + cov_jt(u)).detach()


def guided_sample(velocity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], noise: torch.Tensor, steps: int,
                  sampler: Sampler, observe: Callable[[torch.Tensor], torch.Tensor], y: torch.Tensor,
                  sigma_y: torch.Tensor | float, cfg: GuidanceConfig) -> torch.Tensor:
    """:func:`emulator.diffusion.sample` with the posterior guidance of ``cfg`` towards ``y``.

    ``observe`` maps the diffusion's clean sample ``[B, ...]`` to observations ``[B, D]``;
    ``y [B, D]`` (or [D]); ``sigma_y`` the observation error std (scalar, [D] or [B, D]).
    Same noise layout and time grid as the unguided sampler: with no step guided (``start``
    below the smallest time) it returns what :func:`~emulator.diffusion.sample` returns.
    """
    cfg = cfg.check()
    need = diffusion.n_draws(sampler, steps)
    if noise.shape[0] < need:
        raise ValueError(f"{sampler} sampling with {steps} steps needs {need} noise fields, got {noise.shape[0]}")
    z = noise[0].float()
    batch = z.shape[0]
    y = torch.as_tensor(y, dtype=torch.float32, device=z.device).expand(batch, -1)
    sigma_y = torch.as_tensor(sigma_y, dtype=torch.float32, device=z.device)
    grid = torch.linspace(1.0, 0.0, steps + 1, device=z.device)
    for i in range(steps):
        s = grid[i].expand(batch)
        guided = i > 0 and float(grid[i]) <= cfg.start + 1e-9
        dps_grad = None
        if not guided:
            with torch.no_grad():
                z0, eps = predict(z, velocity(z, s), s)
        else:
            zg = z.detach().requires_grad_()
            with torch.enable_grad():
                v = velocity(zg, s)
                if cfg.method == "mmps":
                    z0 = mmps_estimate(zg, v, grid[i], observe, y, sigma_y, cfg.cg_iters)
                    a_s, sg_s = alpha_sigma(grid[i])
                    eps = ((z - a_s * z0) / sg_s).detach()
                else:
                    z0g, _ = predict(zg, v, s)
                    norm = torch.linalg.vector_norm((y - observe(z0g)) / sigma_y, dim=-1).sum()
                    dps_grad = torch.autograd.grad(norm, zg)[0]
                    z0, eps = (t.detach() for t in predict(zg, v, s))
        if i == steps - 1:
            return z0 if dps_grad is None else z0 - cfg.zeta * dps_grad
        a_s, sg_s = alpha_sigma(grid[i])
        a_n, sg_n = alpha_sigma(grid[i + 1])
        if sampler == "ddim":
            z = a_n * z0 + sg_n * eps
        else:
            a = a_s / a_n
            var_sn = sg_s ** 2 - a ** 2 * sg_n ** 2
            mean = (a * sg_n ** 2 / sg_s ** 2) * z + (a_n * var_sn / sg_s ** 2) * z0
            z = mean + torch.sqrt(var_sn * sg_n ** 2 / sg_s ** 2) * noise[i + 1].float()
        if dps_grad is not None:
            z = z - cfg.zeta * dps_grad
        z = z.detach()
    return z
