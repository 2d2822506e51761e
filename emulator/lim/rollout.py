"""The LIM as a :class:`emulator.stepper.Stepper`: its ensembles run through the shared
:func:`emulator.rollout.run_rollout` (the same files, run state, seeds, resume and refusals as
the neural emulator's).

Month convention (docs/rollout.md): run month k = 0 is the start month and its output is the
initial state (the reference state, optionally perturbed, as AI-MIP prescribes); its PCs
``x_0 = E^T y_0`` start every member. For k = 1 .. N-1::

    x_k = A_{m_k} x_{k-1} + B u(forcing_k) + c_{m_k} + L_{m_k} eta_k   (step: the forcing of the month predicted)
    out_k = denormalise(E x_k + E_r (sigma_r * zeta_k), m_k)            (decode)

Randomness: ``eta_k`` then ``zeta_k`` are drawn from ``numpy.random.Generator(PCG64(
member_seed(seed, member, k)))`` (:func:`emulator.seeding.member_numpy_generators`, the 63-bit
SHA-256 seed of the neural rollout), so a member's trajectory depends on (seed, member, month)
only, not on the batch, the number of members or a resume. Bit for bit: every call works member
by member in float64 (a batched matrix product may round differently from a single one), and the
PCs the rollout keeps and saves for ``--resume`` are float64 (``latent_dtype``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..model import DataSpec
from ..rollout import Forcing, RolloutConfig, run_rollout
from ..run_state import RunState
from ..seeding import member_numpy_generators
from .model import LinearInverseModel


@dataclass(frozen=True)
class LimConditioning:
    """One month's conditioning: the standardised forcing predictors ``u [M]`` (shared by all
    members: the forcing is) and the calendar month 1..12."""

    predictors: np.ndarray
    month: int


class LimStepper:
    """A fitted :class:`LinearInverseModel` behind the :class:`~emulator.stepper.Stepper` calls.

    Besides the protocol it sets the rollout's optional hooks: ``latent_dtype`` (float64 PCs),
    ``generators`` (numpy streams), ``title`` and ``label`` (the files' title and ``sampler``
    attribute). ``describe()`` is empty: a LIM has no sampler settings to fingerprint.
    """

    latent_dtype = torch.float64
    title = "linear inverse model baseline"
    label = "lim"

    def __init__(self, lim: LinearInverseModel):
        self.lim = lim
        self.spec: DataSpec = lim.spec
        self.device = torch.device("cpu")
        self.latent_shape = (lim.modes,)

    def describe(self) -> dict[str, Any]:
        return {}

    def generators(self, seed: int, members: list[int], step: int, device=None) -> list[np.random.Generator]:
        """One numpy generator per member, seeded from (seed, member, step)."""
        return member_numpy_generators(seed, members, step)

    def condition(self, forcing: torch.Tensor, month: torch.Tensor) -> LimConditioning:
        """Predictors of the batch's forcing ``[B, F, H, W]`` (every member's is the same: the first's)."""
        m = int(month[0])
        return LimConditioning(self.lim.predictors(forcing[0].numpy(), m), m)

    def perturb(self, state: torch.Tensor, month: torch.Tensor, scale: float,
                generators: Sequence[np.random.Generator]) -> torch.Tensor:
        """``x' = denorm(norm(x) + scale * eps)``, eps white noise in the area-weighted normalised
        space (float64); ``state`` itself when ``scale`` <= 0."""
        lim = self.lim
        x = state.double()
        if scale <= 0:
            return x
        m = int(month[0])
        out = torch.empty_like(x)
        for i, rng in enumerate(generators):
            x_i = x[i].numpy()
            eps = rng.standard_normal(x_i.shape)
            y = lim.normalise_state(x_i, m) + scale * (eps * lim.sqrt_w).reshape(-1)
            out[i] = torch.from_numpy(lim.denormalise_state(y, m))
        return out

    def init(self, state: torch.Tensor, cond: LimConditioning, generators) -> torch.Tensor:
        """PCs ``x_0 = E^T y_0`` of each member's start state (no draw)."""
        x = state.double()
        return torch.from_numpy(np.stack([self.lim.project(self.lim.normalise_state(x[i].numpy(), cond.month))
                                          for i in range(x.shape[0])]))

    def step(self, latent: torch.Tensor, cond_t: LimConditioning, cond_t1: LimConditioning,
             generators: Sequence[np.random.Generator]) -> torch.Tensor:
        """``x_{t+1} = A x_t + B u_{t+1} + c + L eta`` per member (``eta`` from its generator)."""
        lim = self.lim
        pcs = latent.double().numpy()
        return torch.from_numpy(np.stack([
            lim.step(pcs[i], cond_t1.predictors, cond_t1.month, rng.standard_normal(lim.modes))
            for i, rng in enumerate(generators)]))

    def decode(self, latent: torch.Tensor, cond: LimConditioning,
               generators: Sequence[np.random.Generator]) -> torch.Tensor:
        """Physical ``[B, C, H, W]`` (float64): ``E x + E_r (sigma_r zeta)`` denormalised."""
        lim = self.lim
        pcs = latent.double().numpy()
        return torch.from_numpy(np.stack([
            lim.denormalise_state(lim.reconstruct(pcs[i], rng.standard_normal(lim.residual_std.size)), cond.month)
            for i, rng in enumerate(generators)]))


def run_lim(lim: LinearInverseModel, forcing: Forcing, initial: np.ndarray, cfg: RolloutConfig,
            out_dir: str | Path, identity: dict, *, resume: bool = False, progress: bool = True,
            stop_after: int | None = None) -> RunState:
    """Run (or resume) a LIM ensemble into ``out_dir`` with :func:`emulator.rollout.run_rollout`."""
    return run_rollout(LimStepper(lim), forcing, initial, cfg, out_dir, identity, resume=resume,
                       progress=progress, stop_after=stop_after)
