"""``ResidualStepper``: members around a conditioning trajectory, as a :class:`emulator.stepper.Stepper`.

The rollout's "forcing" of month k is the forcing ``[F, H, W]`` followed by the conditioning
run's state ``[C, H, W]`` of that month (:class:`AroundForcing`), so the shared
:func:`emulator.rollout.run_rollout` (files, seeds, resume) runs it unchanged. The latent the
rollout keeps is the residual ``r``. Per month (conditioning of month t+1)::

    z_c      = E(x_c)                                (frozen encoder, posterior mean)
    r_{t+1}  = s_r (mean_step(r_t, z_c(t+1), z_c(t), u) + s_e e), e ~ diffusion(. | r_t, season)
    x_{t+1}  = denorm(norm(x_c) + D(z_c + r_{t+1}) - D(z_c))   (normalised decoder; its residual noise per member)

Decoding the difference keeps what the latent does not carry of the conditioning run (D(z_c)
is not x_c exactly): with r = 0 a member is the conditioning run itself. The start month is
the conditioning run's state for every member (r_0 = 0, optionally perturbed with --perturb),
as AI-MIP starts every member from the reference state.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Month

from .. import diffusion
from ..model import DataSpec
from ..stepper import Conditioning, DiffusionStepper, Generators
from .model import ResidualModel


@dataclass(frozen=True)
class AroundConditioning:
    """One month: the emulator's conditioning, the conditioning run's state, latent and decode,
    and the SST predictors ``u``."""

    md: Conditioning
    x_c: torch.Tensor  # normalised (transformed: sqrt of pr) conditioning state
    z_c: torch.Tensor
    decoded_c: torch.Tensor  # normalised decode of z_c
    u: torch.Tensor
    month: torch.Tensor


class ResidualStepper:
    """The residual model plus the frozen Monthly Diffusion encoder/decoder (:class:`DiffusionStepper`)."""

    title = "residual ensemble around a conditioning run"
    #: written as the files' ``conditioning`` attribute: md-diagnose scores the ``conditioning``
    #: group (distance to the reference, weather correlation) only for such ensembles
    conditioning = "around a conditioning run (emulator-run --around)"

    def __init__(self, model: ResidualModel, md: DiffusionStepper, steps: int,
                 noise_scale: list[float] | None = None):
        self.model, self.md, self.steps = model.to(md.device), md, steps
        #: per channel, the decoder's reconstruction-residual std over its residual-noise std (fitted;
        #: None: the emulator's own residual noise, as checkpoints fitted before it was measured)
        self.noise_scale = None if noise_scale is None else torch.tensor(noise_scale, dtype=torch.float32)
        self.spec: DataSpec = md.spec
        self.latent_shape = tuple(model.latent_shape)
        self.n_forcing = len(md.spec.forcing_names)
        self.tos = list(md.spec.forcing_names).index("tos")

    @property
    def device(self) -> torch.device:
        return self.md.device

    def describe(self) -> dict[str, Any]:
        return {"sampler": "around-ancestral", "steps": self.steps}

    @torch.no_grad()
    def condition(self, forcing: torch.Tensor, month: torch.Tensor) -> AroundConditioning:
        """``forcing [B, F + C, H, W]``: the forcing, then the conditioning run's state (same for every member)."""
        f, x_c = forcing[:, :self.n_forcing], forcing[:, self.n_forcing:]
        b = len(month)
        # forcing and conditioning run are the same for every member: condition, encode and decode once
        one = self.md.condition(f[:1], month[:1])
        cond = Conditioning(one.data.expand(b, -1, -1, -1), one.latent.expand(b, -1, -1, -1), month.to(self.device))
        z_c = self.md.init(x_c[:1], one, None, sample=False)
        decoded = self.md.decode_normalised(z_c, one).float()
        x_c_n = self.md.model.normaliser.normalise_state(x_c[:1].to(self.device), one.month)
        u = self.model.forcing_predictors(f[0, self.tos].numpy(), int(month[0])).to(self.device)
        return AroundConditioning(cond, x_c_n.expand(b, -1, -1, -1), z_c.expand(b, -1, -1, -1), decoded.expand(b, -1, -1, -1),
                                  u.unsqueeze(0).expand(b, -1), month.to(self.device))

    def perturb(self, state: torch.Tensor, month: torch.Tensor, scale: float, generators: Generators) -> torch.Tensor:
        return self.md.perturb(state, month, scale, generators)

    @torch.no_grad()
    def init(self, state: torch.Tensor, cond: AroundConditioning, generators: Generators) -> torch.Tensor:
        """r_0 = E(x_0) - E(x_c(0)): zero when the members start from the conditioning state."""
        return self.md.init(state, cond.md, None, sample=False) - cond.z_c

    @torch.no_grad()
    def step(self, latent: torch.Tensor, cond_t: AroundConditioning, cond_t1: AroundConditioning,
             generators: Generators) -> torch.Tensor:
        m = self.model
        r_n = m.standardise(latent.to(self.device))
        mean = m.mean_step(r_n, cond_t1.z_c, cond_t1.month, cond_t.z_c, cond_t.month, cond_t1.u, cond_t.u)
        noise = diffusion.draw_noise(diffusion.n_draws("ancestral", self.steps), tuple(latent.shape),
                                     generators, self.device)

        def velocity(e_s, s):
            return m.denoiser(e_s, r_n, cond_t1.month, s)

        e = diffusion.sample(velocity, noise, self.steps, "ancestral")
        return m.unstandardise(mean + (m.e_std * m.e_scale).view(1, -1, 1, 1) * e)

    @torch.no_grad()
    def decode(self, latent: torch.Tensor, cond: AroundConditioning, generators: Generators) -> torch.Tensor:
        """``x = denorm(norm(x_c) + D_n(z_c + r) - D_n(z_c))``: the difference is taken in the normalised
        (transformed) space, so sqrt-transformed channels (pr) stay >= 0; the decoder's residual
        noise (when the model has it) is drawn per member as in the emulator's own decode, scaled per
        channel to what the decoder misses of real states (``noise_scale``, when fitted)."""
        m = self.md.model
        noise = None
        if m.cfg.residual_noise and generators is not None:
            noise = diffusion.draw_noise(1, m.residual_noise_shape(latent.shape[0]), generators, self.device)[0]
            if self.noise_scale is not None:  # residual_sample is linear in the white noise, per channel
                noise = noise * self.noise_scale.to(noise.device).view(1, -1, 1, 1, 1)
        x_n = self.md.decode_normalised(cond.z_c + latent.to(self.device), cond.md, noise).float()
        return m.normaliser.denormalise_state(cond.x_c + x_n - cond.decoded_c, cond.md.month).cpu()


class AroundForcing:
    """The rollout's forcing for ``--around``: forcing of month k then the conditioning state."""

    def __init__(self, forcing, states: np.ndarray):
        if len(forcing) != len(states):
            raise ValueError("forcing and conditioning run differ in length")
        self.forcing, self.states, self.calendar = forcing, states, forcing.calendar

    def __len__(self) -> int:
        return len(self.forcing)

    def month(self, k: int) -> np.ndarray:
        return np.concatenate([self.forcing.month(k), self.states[k]], axis=0)

    def calendar_month(self, k: int) -> int:
        return self.forcing.calendar_month(k)


def read_conditioning_run(path: str | os.PathLike, spec: DataSpec, start: Month, end: Month,
                          member: int | None = None) -> tuple[np.ndarray, str]:
    """The conditioning trajectory ``[T, C, H, W]`` (months start..end, model channel order) from
    AI-MIP files or a prepared dataset (one member of it: ``member``, default the first), and its
    identity. One-line InputError for a missing path, another grid, missing months or variables."""
    from diagnostics.io.open import open_dataset

    from ..data import _channel
    from ..forcing import _month_positions, check_same_grid

    if not os.path.exists(path):
        raise InputError("--around: no such file or directory (expected AI-MIP files or a prepared dataset)", path)
    ds = open_dataset(str(path))
    check_same_grid(ds, spec, "conditioning run (--around)", path)
    if "member" in ds.dims:
        members = [int(v) for v in ds["member"].values]
        pick = members[0] if member is None else member
        if pick not in members:
            raise InputError(f"--around-member {pick}: the conditioning run has members {members}", path)
        ds = ds.sel(member=pick)
    elif member is not None:
        raise InputError(f"--around-member {member}: the conditioning run holds a single trajectory (no member dim)",
                         path)
    else:
        pick = None
    pos = _month_positions(ds, start, end, "conditioning run (--around)", path)
    sub = ds.isel(time=pos)
    out = np.empty((len(pos), len(spec.channels), *spec.shape), np.float32)
    for c, (name, level) in enumerate(spec.channels):
        out[:, c] = _channel(sub, name, level, str(path)).transpose("time", "lat", "lon").values
    bad = [spec.labels[c] for c in range(out.shape[1]) if not np.isfinite(out[:, c]).all()]
    if bad:
        raise InputError(f"the conditioning run holds NaN or inf in {bad} in {start}..{end}", path)
    return out, f"{os.path.abspath(path)}@member={pick}"
