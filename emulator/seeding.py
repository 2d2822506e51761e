"""Per-member random streams: one seed formula for the rollout, validation and calibration.

Every member's noise comes from its own ``torch.Generator`` seeded from (run seed, member,
step), so a member's draws do not depend on the batch it is computed in, on how many members
run, or on a resume. ``step`` is the run month in a rollout (-1 for the initial-state
perturbation) and the month-pair index in validation and calibration.
"""

from __future__ import annotations

import hashlib

import torch


def member_seed(seed: int, member: int, step: int) -> int:
    """63-bit seed of the noise of ``member`` at ``step``: the first 8 bytes (little-endian) of
    SHA-256(``"monthly-diffusion/{seed}/{member}/{step}"``), top bit cleared.

    This is the formula the rollout files were made with (kept bit for bit). Validation used
    ``(seed * 1_000_003 + step * 1_009 + member) mod 2^63`` before, which collides, e.g.
    (seed 0, pair 1, member 0) and (seed 0, pair 0, member 1009).
    """
    digest = hashlib.sha256(f"monthly-diffusion/{seed}/{member}/{step}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def member_generators(seed: int, members: list[int], step: int,
                      device: torch.device | str = "cpu") -> list[torch.Generator]:
    """One generator per member, seeded by :func:`member_seed` (seed, member, step), on ``device``."""
    return [torch.Generator(device=device).manual_seed(member_seed(seed, m, step)) for m in members]


def member_numpy_generators(seed: int, members: list[int], step: int) -> list:
    """One ``numpy.random.Generator(PCG64(member_seed(seed, member, step)))`` per member: the same
    streams as :func:`member_generators` for models that draw with numpy (the LIM)."""
    import numpy as np

    return [np.random.Generator(np.random.PCG64(member_seed(seed, m, step))) for m in members]
