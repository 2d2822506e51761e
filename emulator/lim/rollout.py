"""Ensemble rollout of a LIM under prescribed SST and sea ice: the same files, seeds and resume
as the neural emulator's :func:`emulator.rollout.run_rollout`.

Month convention (docs/rollout.md): run month k = 0 is the start month and its output is the
initial state (the reference state, optionally perturbed, as AI-MIP prescribes); its PCs
``x_0 = E^T y_0`` start every member. For k = 1 .. N-1::

    x_k = A_{m_k} x_{k-1} + B u(forcing_k) + c_{m_k} + L_{m_k} eta_k   (the forcing of the month predicted)
    out_k = denormalise(E x_k + E_r (sigma_r * zeta_k), m_k)

Randomness: ``eta_k`` then ``zeta_k`` are drawn from ``numpy.random.Generator(PCG64(
member_seed(seed, member, k)))``, the 63-bit SHA-256 seed the neural rollout uses, so a member's
trajectory depends on (seed, member, month) only, not on the batch, the number of members or a
resume (bit for bit: the step is per member, float64).

Resume: after each month every member's file is flushed, then the PCs ``[members, K]`` (float64,
safetensors) are written atomically as ``.run/state-<k>.safetensors`` and ``run_state.json``
(:mod:`emulator.run_state`) names them; a resume reloads them and continues.

Folding into the shared rollout: the model side of this loop is ``initial(x_phys) -> x_0``,
``step(x, f_next, month_next, rng) -> x`` and ``decode(x, month, rng) -> [B, C, H, W]`` with a
state that serialises as one array. A ``Stepper`` protocol with those three methods (the neural
model's encode / step+decode behind it) lets :func:`run_lim` disappear into ``run_rollout``:
the file, state and refusal logic below already is the shared one.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file
from tqdm import tqdm

from diagnostics.data.catalogue import channel_label
from diagnostics.data.errors import InputError
from diagnostics.data.provenance import digest as fingerprint
from diagnostics.io.stream_writer import AimipStreamWriter, StreamField, ZarrStreamWriter, stream_fields
from diagnostics.io.writer import atomic_path, file_sha256

from ..rollout import Forcing, RolloutConfig, RolloutUnstable, _finish, _resolve_state, _stop_unstable, member_seed
from ..run_state import LATENT_DIR, RunState, drop_stale_latents
from .model import LinearInverseModel

_PERTURB_STEP = -1  # stream id of the initial-state perturbation (as the neural rollout)


def member_rng(seed: int, member: int, step: int) -> np.random.Generator:
    """The numpy generator of ``member`` at run month ``step``."""
    return np.random.Generator(np.random.PCG64(member_seed(seed, member, step)))


def _field_sources(fields: list[StreamField], lim: LinearInverseModel) -> dict[str, tuple[str, list[int]]]:
    """Output variable -> ("state" | "forcing", indices into the model's channels / forcings)."""
    labels = lim.spec.labels
    names = [n for n, _ in lim.spec.channels]
    out = {}
    for f in fields:
        if f.name not in names:
            out[f.name] = ("forcing", [list(lim.spec.forcing_names).index(f.name)])
        elif f.levels and any(n == f.name and lev is not None for n, lev in lim.spec.channels):
            out[f.name] = ("state", [labels.index(channel_label(f.name, lev)) for lev in f.levels])
        else:
            out[f.name] = ("state", [labels.index(f.name)])
    return out


def _save_pcs(out: Path, k: int, x: np.ndarray) -> tuple[str, str]:
    rel = f"{LATENT_DIR}/state-{k:06d}.safetensors"
    with atomic_path(out / rel) as tmp:
        save_file({"pcs": np.ascontiguousarray(x, np.float64)}, str(tmp))
    return rel, file_sha256(out / rel)


def _load_pcs(out: Path, state: RunState) -> np.ndarray:
    path = out / str(state.latent)
    if not path.exists() or file_sha256(path) != state.latent_sha256:
        raise InputError("the saved state of the unfinished run is missing or does not match its SHA-256; "
                         "cannot resume", path)
    return load_file(str(path))["pcs"]


def _initial(lim: LinearInverseModel, initial: np.ndarray, member: int, cfg: RolloutConfig,
             month: int) -> np.ndarray:
    """Member's initial state (physical ``[C, H, W]``): the reference, plus with ``perturb`` > 0
    white noise of std ``perturb`` in normalised units, ``x' = denorm(norm(x) + perturb * eps)``."""
    if cfg.perturb <= 0:
        return np.asarray(initial, np.float64)
    eps = member_rng(cfg.seed, member, _PERTURB_STEP).standard_normal(initial.shape)
    y = lim.normalise_state(initial, month) + cfg.perturb * (eps * lim.sqrt_w).reshape(-1)
    return lim.denormalise_state(y, month)


def _check_finite(x: np.ndarray, member: int, labels: list[str], month) -> None:
    bad = ~np.isfinite(x.reshape(x.shape[0], -1)).all(axis=1)
    if bad.any():
        raise RolloutUnstable(f"unstable: member r{member}i1p1f1 produced a non-finite value in variable "
                              f"{labels[int(np.flatnonzero(bad)[0])]} at month {month}; the run stopped and "
                              "the months before it are kept")


def run_lim(lim: LinearInverseModel, forcing: Forcing, initial: np.ndarray, cfg: RolloutConfig,
            out_dir: str | Path, identity: dict, *, resume: bool = False, progress: bool = True,
            stop_after: int | None = None) -> RunState:
    """Run (or resume) a LIM ensemble into ``out_dir``; returns the final run state.

    ``forcing``: months start..end (:class:`emulator.forcing.ForcingReader`); ``initial``: the
    reference state ``[C, H, W]`` of the start month; ``identity``: what identifies the inputs
    (checkpoint hash, forcing, initial state), hashed with ``cfg`` into the run fingerprint;
    ``stop_after``: stop (as if killed) after this many months, for tests.
    """
    cfg = cfg.check()
    out = Path(out_dir)
    n, members = cfg.n_months, list(range(1, cfg.members + 1))
    if len(forcing) != n:
        raise InputError(f"forcing holds {len(forcing)} months, the run {cfg.start}..{cfg.end} needs {n}")
    args = {**identity, "experiment": cfg.experiment, "experiment_id": cfg.experiment_id, "sst_offset": cfg.offset,
            "members": cfg.members, "start": str(cfg.start), "end": str(cfg.end), "seed": cfg.seed,
            "perturb": cfg.perturb, "model_name": cfg.model_name, "format": cfg.format, "grid_label": cfg.grid_label}
    fp = fingerprint(args)
    state = _resolve_state(out, fp, resume)
    if state is not None and state.status == "complete":
        return state

    extra = tuple(f for f in ("tos", "siconc") if f in lim.spec.forcing_names)
    fields = stream_fields(list(lim.spec.channels), extra)
    sources = _field_sources(fields, lim)
    attrs = {"title": f"{cfg.model_name} {cfg.experiment_id} ensemble (linear inverse model baseline)",
             "forcing_sst_offset_K": f"{cfg.offset:g}", "run_fingerprint": fp, "sampler": "lim",
             "seed": cfg.seed, "institution": "monthly-diffusion open reference tool"}
    cls = AimipStreamWriter if cfg.format == "netcdf" else ZarrStreamWriter
    writer = cls(out, fields, members, cfg.model_name, cfg.experiment_id, cfg.start, cfg.end,
                 np.asarray(lim.spec.lat), np.asarray(lim.spec.lon), forcing.calendar, cfg.grid_label, attrs)
    if state is None:
        out.mkdir(parents=True, exist_ok=True)
        drop_stale_latents(out, None)
        writer.create()
        state = RunState(fp, {**args, "batch_size": cfg.members, "device": "cpu"}, n,
                         files=[p[1].name for p in writer.paths()])
        state.save(out)
    if state.status == "finalising":  # killed while renaming: finish the renames
        return _finish(out, writer, state, cfg, 0.0, 0)

    k0, labels = state.completed, lim.spec.labels
    pcs = _load_pcs(out, state) if k0 > 0 else np.zeros((cfg.members, lim.modes))
    writer.open()
    bar = tqdm(total=n * cfg.members, initial=k0 * cfg.members, unit="member-month", unit_scale=False,
               desc=f"{cfg.experiment_id} x{cfg.members}", disable=not progress, dynamic_ncols=True)
    start_time, done = time.perf_counter(), 0
    try:
        for k in range(k0, n):
            month = cfg.start + k
            f_k = forcing.month(k)
            u_k = lim.predictors(f_k, month.month) if k > 0 else None
            for i, m in enumerate(members):
                rng = member_rng(cfg.seed, m, k)
                if k == 0:
                    x_phys = _initial(lim, initial, m, cfg, month.month)
                    pcs[i] = lim.project(lim.normalise_state(x_phys, month.month))
                else:
                    eta = rng.standard_normal(lim.modes)
                    zeta = rng.standard_normal(lim.residual_std.size)
                    pcs[i] = lim.step(pcs[i], u_k, month.month, eta)
                    x_phys = lim.denormalise_state(lim.reconstruct(pcs[i], zeta), month.month)
                _check_finite(x_phys, m, labels, month)
                for name, (kind, idx) in sources.items():
                    values = x_phys[idx] if kind == "state" else f_k[idx]
                    writer.write(k, m, name, values[0] if len(idx) == 1 else values)
                bar.update(1)
                done += 1
            writer.sync()
            rel, sha = _save_pcs(out, k, pcs)
            old = state.latent
            state.completed, state.latent, state.latent_sha256 = k + 1, rel, sha
            state.save(out)
            if old and old != rel:
                (out / old).unlink(missing_ok=True)
            if stop_after is not None and k + 1 >= stop_after and k + 1 < n:
                writer.close()
                return state
    except RolloutUnstable as exc:
        _stop_unstable(out, writer, state, exc)
        raise
    finally:
        bar.close()
    return _finish(out, writer, state, cfg, time.perf_counter() - start_time, done)
