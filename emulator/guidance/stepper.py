"""A frozen Monthly Diffusion stepper whose step is guided towards observations (no retraining).

:class:`GuidedStepper` is a :class:`~emulator.stepper.Stepper`: the rollout runs it like any
other. Its ``step`` replaces the diffusion sampler by :func:`.sampler.guided_sample`, with
``observe = A o D``: ``D`` maps the diffusion's standardised sample to the physical state of
month t+1 exactly as ``step`` then ``decode`` do (skip path, unstandardise, decoder with the
conditioning of t+1, the member's decoder-residual sample, denormalisation), and ``A`` is the
:class:`Guide`'s operator for that month. ``condition`` / ``perturb`` / ``init`` / ``decode``
are the base stepper's, so a month with no target (``Guide.target`` returns None) is stepped
bit for bit as unguided.

The decoder-residual sample of month t+1 (models with ``residual_noise``) is part of ``D``:
``step`` draws it from a copy of each member's generator state, so ``decode`` then draws the
same field and the guided constraint holds for the written state, not only for the decoder
mean.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from .. import diffusion
from ..model import autocast
from ..stepper import Conditioning, DiffusionStepper, Generators
from .operators import GlobalMean, ObservationOperator, Stacked
from .sampler import GuidanceConfig, guided_sample


@dataclass(frozen=True)
class Target:
    """Observations ``y [B, D]`` (or [D]) of ``operator`` with error std ``sigma`` (scalar or [D])."""

    operator: ObservationOperator
    y: torch.Tensor
    sigma: torch.Tensor | float


class Guide(Protocol):
    """What to steer the step into month t+1 towards: ``target(cond_t1, batch)`` (None: unguided)."""

    def target(self, cond_t1: Conditioning, batch: int) -> Target | None: ...

    def describe(self) -> str: ...


class GlobalMeanGuide:
    """Keep the area-weighted global mean of one channel at a target per calendar month.

    ``monthly_target [12]`` (units of the channel) for January..December, e.g. the
    training-period climatology of the global mean of ``ps`` (dry air mass), or that of
    ``tas`` plus 2 K (a warming storyline); ``sigma`` the tolerance (observation error std).
    ``operator`` replaces the global mean of ``channel`` by another 1-D global quantity (e.g.
    :class:`~.operators.GlobalMeanHumidity`); ``channel`` is then unused.
    """

    def __init__(self, label: str, channel: int, lat: Sequence[float], monthly_target: np.ndarray, sigma: float,
                 name: str = "", operator: ObservationOperator | None = None):
        target = np.asarray(monthly_target, dtype=np.float64)
        if target.shape != (12,) or not np.isfinite(target).all():
            raise ValueError(f"monthly_target must be 12 finite values, got shape {target.shape}")
        if not sigma > 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.label, self.name = label, name or label
        self.operator = operator if operator is not None else GlobalMean(channel, lat, label)
        if self.operator.dim != 1:
            raise ValueError(f"a global-mean guide observes one value per member, got dim {self.operator.dim}")
        self.monthly_target, self.sigma = target, float(sigma)

    def target(self, cond_t1: Conditioning, batch: int) -> Target:
        month = cond_t1.month.detach().cpu().long().numpy()
        y = torch.as_tensor(self.monthly_target[month - 1], dtype=torch.float32).view(batch, 1)
        return Target(self.operator, y, self.sigma)

    def describe(self) -> str:
        return f"{self.name}(sigma={self.sigma:g})"


class StackedGuide:
    """Several :class:`GlobalMeanGuide` constraints at once (e.g. a warming storyline and its
    humidity scaling): one observation vector ``[B, len(guides)]`` with per-entry tolerances."""

    def __init__(self, guides: Sequence[GlobalMeanGuide]):
        if not guides:
            raise ValueError("StackedGuide needs at least one guide")
        self.guides = list(guides)
        self.operator = Stacked([g.operator for g in self.guides])
        self.sigma = torch.tensor([g.sigma for g in self.guides], dtype=torch.float32)

    def target(self, cond_t1: Conditioning, batch: int) -> Target:
        y = torch.cat([g.target(cond_t1, batch).y for g in self.guides], dim=-1)
        return Target(self.operator, y, self.sigma)

    def describe(self) -> str:
        return "+".join(g.describe() for g in self.guides)


def _peek_noise(n: int, shape: tuple[int, ...], generators: Generators, device: torch.device) -> torch.Tensor:
    """The noise ``draw_noise`` would return now, leaving the generators' states unchanged."""
    gens = list(generators) if isinstance(generators, (list, tuple)) else [generators]
    states = [g.get_state() for g in gens]
    try:
        return diffusion.draw_noise(n, shape, generators, device)
    finally:
        for g, st in zip(gens, states):
            g.set_state(st)


class GuidedStepper:
    """``base`` (a :class:`~emulator.stepper.DiffusionStepper`) with guided steps.

    The network is frozen (its parameters stop requiring gradients: the guidance
    differentiates with respect to the noisy latent only).
    """

    def __init__(self, base: DiffusionStepper, guide: Guide, cfg: GuidanceConfig = GuidanceConfig()):
        self.base, self.guide, self.cfg = base, guide, cfg.check()
        self.spec, self.latent_shape = base.spec, base.latent_shape
        for p in base.model.parameters():
            p.requires_grad_(False)

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def conditioning(self) -> str:
        """The files' ``conditioning`` attribute (see :class:`~emulator.residual.stepper.ResidualStepper`)."""
        return f"guided by {self.guide.describe()} (emulator-run --guide)"

    def describe(self) -> dict[str, Any]:
        c = self.cfg
        how = f"{c.method}-cg{c.cg_iters}" if c.method == "mmps" else f"dps-zeta{c.zeta:g}"
        return {**self.base.describe(), "guide": self.guide.describe(),
                "guidance": how + (f"-start{c.start:g}" if c.start < 1 else "")}

    def condition(self, forcing: torch.Tensor, month: torch.Tensor) -> Conditioning:
        return self.base.condition(forcing, month)

    def perturb(self, state, month, scale, generators):
        return self.base.perturb(state, month, scale, generators)

    def init(self, state, cond, generators=None):
        return self.base.init(state, cond, generators)

    def decode(self, latent, cond, generators=None):
        return self.base.decode(latent, cond, generators)

    def step(self, latent: torch.Tensor, cond_t: Conditioning, cond_t1: Conditioning | None,
             generators: Generators = None, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Guided :meth:`DiffusionStepper.step` (same noise draws, same order)."""
        b, m = latent.shape[0], self.base.model
        target = self.guide.target(cond_t1, b) if cond_t1 is not None else None
        if target is None:
            return self.base.step(latent, cond_t, cond_t1, generators, noise)
        if noise is None:
            noise = self.base.noise_for_step(b, generators)
        dev = self.device
        residual = None
        if m.cfg.residual_noise and generators is not None:
            res_noise = _peek_noise(1, m.residual_noise_shape(b), generators, dev)[0]
            with torch.no_grad():
                residual = m.residual_sample(res_noise).float()
        with torch.no_grad(), autocast(dev):
            zn_prev, cl_step = self.base._step_inputs(latent.to(dev), cond_t, cond_t1)
            cl_den = cl_step.index_select(1, m.denoiser_cond_index)
            mu = m.skip(zn_prev, cl_step).float() if m.skip is not None else None

        def to_latent(r: torch.Tensor) -> torch.Tensor:
            if mu is None:
                return m.unstandardise(r)
            return m.unstandardise((r - m.diffusion_offset) * m.skip_std.view(1, -1, 1, 1) + mu)

        def observe(r: torch.Tensor) -> torch.Tensor:
            with autocast(dev):
                x_n = m.decoder(to_latent(r), cond_t1.data, cond_t1.latent).float()
            if residual is not None:
                x_n = x_n + residual
            return target.operator(m.normaliser.denormalise_state(x_n, cond_t1.month))

        def velocity(z_s: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            with autocast(dev):
                return m.denoiser(z_s, zn_prev, cl_den, s).float()

        y = torch.as_tensor(target.y, dtype=torch.float32, device=dev)
        sigma = torch.as_tensor(target.sigma, dtype=torch.float32, device=dev)
        r = guided_sample(velocity, noise.to(dev), self.base.steps, self.base.sampler, observe, y, sigma, self.cfg)
        with torch.no_grad():
            return to_latent(r).float()
