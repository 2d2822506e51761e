"""Ensemble rollout of a Monthly Diffusion checkpoint under prescribed SST and sea ice (AI-MIP).

Month convention (REFERENCE.md section 1; :mod:`.model`). Run month k = 0 is the start
month; its output is the initial state (the reference state of the start month for every
member, as AI-MIP prescribes, optionally perturbed), encoded to a posterior latent sample.
For k = 1 .. N-1::

    c_k = stepper.condition(forcing_k, month_k)       # once per month (and member batch)
    z_k = stepper.step(z_{k-1}, c_{k-1}, c_k)          # conditioning of t and t+1
    x_k = stepper.decode(z_k, c_k)                     # conditioning of t+1

so the AI-MIP period 1978-10..2024-12 (555 months in the files) takes 554 model steps.

Randomness is per (seed, member, month): every member draws its noise from its own
``torch.Generator`` seeded with a hash of the three (:func:`member_seed`), on the model's
device. A member's trajectory therefore does not depend on the batch it is computed in, on
how many members run, or on a resume (up to float round-off of batched arithmetic, which
is zero on the CPU kernels tested).

Output streams to disk month by month (:mod:`diagnostics.io.stream_writer`); after each
month the files are flushed, the latents saved and the run state advanced
(:mod:`.run_state`), so ``--resume`` continues a killed run and writes what an
uninterrupted run writes.

Optional stepper hooks (read with defaults, so a plain :class:`~emulator.stepper.Stepper` needs
none of them): ``generators(seed, members, step, device)`` the per-member random streams it
draws from (default :func:`emulator.seeding.member_generators`; the LIM uses numpy streams of
the same seeds), ``latent_dtype`` (default float32; the LIM keeps float64 PCs), ``title`` (what
the files' title says the model is) and ``label`` (the files' ``sampler`` attribute; default
the values of ``describe()`` joined by ``/``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from tqdm import tqdm

from diagnostics.data.catalogue import channel_label
from diagnostics.data.errors import InputError, ensure_output_dir
from diagnostics.data.experiments import EXPERIMENTS
from diagnostics.data.timeaxis import Month
from diagnostics.data.provenance import digest as fingerprint
from diagnostics.io.stream_writer import PARTIAL, AimipStreamWriter, StreamField, ZarrStreamWriter, stream_fields

from .config import SAMPLERS
from .model import DataSpec, MonthlyDiffusion
from .seeding import member_generators, member_seed  # noqa: F401  (member_seed: documented here)
from .stepper import DiffusionStepper, Stepper
from .run_state import LATENT_DIR, RunState, drop_stale_latents, load_latent, read_state, save_latent

FORMATS = ("netcdf", "zarr")
_PERTURB_STEP = -1  # stream id of the initial-state perturbation


class RolloutUnstable(InputError):
    """A member produced a non-finite value (the run stops; what was written stays valid)."""


class Forcing(Protocol):
    """Monthly forcing of the run: ``month(k) -> [F, H, W]`` for run months k = 0 .. len - 1."""

    calendar: str

    def __len__(self) -> int: ...

    def month(self, k: int) -> np.ndarray: ...


@dataclass(frozen=True)
class RolloutConfig:
    """What a rollout computes (everything but batch size and device enters the fingerprint)."""

    experiment: str = "historical"
    members: int = 5
    start: Month = Month(1978, 10)
    end: Month = Month(2024, 12)
    sst_offset: float | None = None  # None: the experiment's (0 / 2 / 4 K)
    seed: int = 0
    sampler: str = "ancestral"
    steps: int | None = None  # None: the model's default for the sampler
    perturb: float = 0.0  # initial-state perturbation, in normalised units
    model_name: str = "MD-1p5"
    format: str = "netcdf"
    grid_label: str = "gn"

    @property
    def experiment_id(self) -> str:
        return EXPERIMENTS[self.experiment].experiment_id

    @property
    def offset(self) -> float:
        return EXPERIMENTS[self.experiment].sst_offset_k if self.sst_offset is None else float(self.sst_offset)

    @property
    def n_months(self) -> int:
        return self.end.index - self.start.index + 1

    def check(self) -> "RolloutConfig":
        if self.experiment not in EXPERIMENTS:
            raise InputError(f"unknown experiment {self.experiment!r} (expected one of {', '.join(EXPERIMENTS)})")
        if self.sampler not in SAMPLERS:
            raise InputError(f"unknown sampler {self.sampler!r} (expected {' or '.join(SAMPLERS)})")
        if self.format not in FORMATS:
            raise InputError(f"unknown format {self.format!r} (expected netcdf or zarr)")
        if self.members < 1:
            raise InputError(f"--members must be >= 1, got {self.members}")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--steps must be >= 1, got {self.steps}")
        if self.end < self.start:
            raise InputError(f"--end {self.end} is before --start {self.start}")
        if self.perturb < 0:
            raise InputError(f"--perturb must be >= 0, got {self.perturb}")
        for part, label in ((self.model_name, "--model-name"), (self.experiment_id, "experiment")):
            if not part or "_" in part or "/" in part:
                raise InputError(f"{label} {part!r} must be non-empty without '_' or '/' (it is part of file names)")
        return self


def _field_sources(fields: list[StreamField], spec: DataSpec) -> dict[str, tuple[str, list[int]]]:
    """Output variable -> ("state" | "forcing", indices into the model's channels / forcings)."""
    channels, forcing_names = list(spec.channels), list(spec.forcing_names)
    labels = [channel_label(n, lev) for n, lev in channels]
    out = {}
    for f in fields:
        if f.name in forcing_names and f.name not in [n for n, _ in channels]:
            out[f.name] = ("forcing", [forcing_names.index(f.name)])
        elif f.levels and any(n == f.name and lev is not None for n, lev in channels):
            out[f.name] = ("state", [labels.index(channel_label(f.name, lev)) for lev in f.levels])
        else:
            out[f.name] = ("state", [labels.index(f.name)])
    return out


def _make_writer(cfg: RolloutConfig, out: Path, fields: list[StreamField], spec: DataSpec,
                 calendar: str, attrs: dict):
    cls = AimipStreamWriter if cfg.format == "netcdf" else ZarrStreamWriter
    return cls(out, fields, list(range(1, cfg.members + 1)), cfg.model_name, cfg.experiment_id, cfg.start,
               cfg.end, np.asarray(spec.lat), np.asarray(spec.lon), calendar, cfg.grid_label, attrs)


def _check_finite(x: torch.Tensor, z: torch.Tensor, members: list[int], labels: list[str], month: Month) -> None:
    """RolloutUnstable naming the first member, month and variable with a non-finite value."""
    bad = ~torch.isfinite(x).flatten(2).all(dim=-1)  # [B, C]
    bad_latent = ~torch.isfinite(z).flatten(1).all(dim=-1)  # [B]
    if bool(bad.any()) or bool(bad_latent.any()):
        if bool(bad.any()):
            i, c = (int(v) for v in torch.nonzero(bad)[0])
            what = f"variable {labels[c]}"
        else:
            i, what = int(torch.nonzero(bad_latent)[0]), "its latent state"
        raise RolloutUnstable(f"unstable: member r{members[i]}i1p1f1 produced a non-finite value in {what} at "
                              f"month {month}; the run stopped and the months before it are kept")


def foreign_outputs(out: Path) -> list[str]:
    """Rollout output in ``out`` (AI-MIP netCDF files, zarr stores, temporary files of either)."""
    if not out.is_dir():
        return []
    return sorted(p.name for p in out.iterdir()
                  if p.name.endswith((".nc", ".zarr", PARTIAL)) and not p.name.startswith(LATENT_DIR))


def check_out_dir(out: str | Path, resume: bool) -> Path:
    """Check ``--out`` before any work (before the model is loaded): a writable directory, and one
    that holds no rollout output this command did not write (AI-MIP files without a
    run_state.json: another tool's, or a run whose state was deleted), which a fresh run would
    overwrite with different data. A directory with a run_state.json is judged by its fingerprint
    (:func:`_resolve_state`)."""
    out = ensure_output_dir(out, "--out")
    if read_state(out) is None:
        if resume:
            raise InputError("--resume given but there is no run to resume here (no run_state.json)", out)
        found = foreign_outputs(out)
        if found:
            more = f" and {len(found) - 1} more" if len(found) > 1 else ""
            raise InputError(f"--out holds rollout output that this run did not write ({found[0]}{more}; no "
                             "run_state.json); choose another --out or remove them", out)
    return out


def _resolve_state(out: Path, fp: str, resume: bool) -> RunState | None:
    """The state to continue, None for a fresh run, or InputError for a directory we must not touch."""
    check_out_dir(out, resume)
    state = read_state(out)
    if state is None:
        return None
    if state.fingerprint != fp:
        raise InputError(f"output directory holds another run (fingerprint {state.fingerprint}, this one {fp}: "
                         "different checkpoint, forcing or arguments); choose another --out", out)
    if state.status == "unstable":
        raise InputError(f"the run here stopped ({state.message}); nothing to resume, change the arguments "
                         "or the checkpoint and use another --out", out)
    if state.status == "complete":
        if resume:
            return state
        raise InputError("output directory already holds this run, complete; choose another --out", out)
    if not resume:
        raise InputError(f"output directory holds an unfinished run of these arguments ({state.completed} of "
                         f"{state.total} months); pass --resume to continue it or choose another --out", out)
    return state


def _generators(stepper: Stepper, seed: int, members: list[int], step: int, device: torch.device):
    """The stepper's random streams of ``members`` at run month ``step`` (its ``generators`` hook,
    else one torch generator per member)."""
    hook = getattr(stepper, "generators", None)
    return hook(seed, members, step, device) if hook is not None else member_generators(seed, members, step, device)


def as_stepper(model: Stepper | MonthlyDiffusion, cfg: RolloutConfig) -> Stepper:
    """The stepper a rollout runs: a Monthly Diffusion network is wrapped with the run's sampler
    and steps; a :class:`~emulator.stepper.DiffusionStepper` must agree with them."""
    if isinstance(model, MonthlyDiffusion):
        return DiffusionStepper(model, cfg.sampler, cfg.steps)
    if isinstance(model, DiffusionStepper) and (model.sampler != cfg.sampler or
                                                (cfg.steps is not None and cfg.steps != model.steps)):
        raise ValueError(f"the stepper samples {model.sampler}/{model.steps}, the run asks for "
                         f"{cfg.sampler}/{cfg.steps or 'default'}")
    if not isinstance(model, Stepper):
        raise TypeError(f"{type(model).__name__} is not a Stepper (emulator.stepper.Stepper)")
    return model


def run_rollout(model: Stepper | MonthlyDiffusion, forcing: Forcing, initial: np.ndarray, cfg: RolloutConfig,
                out_dir: str | Path, identity: dict, *, resume: bool = False, batch_size: int | None = None,
                progress: bool = True, stop_after: int | None = None) -> RunState:
    """Run (or resume) an ensemble rollout into ``out_dir``; returns the final run state.

    Args:
        model: the emulator in eval mode on its device: a :class:`~emulator.stepper.Stepper`, or a
            Monthly Diffusion network (run with ``cfg.sampler`` / ``cfg.steps``).
        forcing: forcing of months start..end (:class:`emulator.forcing.ForcingReader`).
        initial: reference state ``[C, H, W]`` of the start month (physical units).
        identity: what identifies the inputs (checkpoint hash, forcing, initial state), hashed
            with ``cfg`` into the run fingerprint.
        batch_size: members per device batch (default all); does not change the output.
        stop_after: stop (as if killed) after this many months; for tests and benchmarks.
    """
    cfg = cfg.check()
    out = Path(out_dir)
    n, members = cfg.n_months, list(range(1, cfg.members + 1))
    if len(forcing) != n:
        raise InputError(f"forcing holds {len(forcing)} months, the run {cfg.start}..{cfg.end} needs {n}")
    stepper = as_stepper(model, cfg)
    settings = stepper.describe()  # e.g. sampler and steps: part of the fingerprint
    args = {**identity, "experiment": cfg.experiment, "experiment_id": cfg.experiment_id, "sst_offset": cfg.offset,
            "members": cfg.members, "start": str(cfg.start), "end": str(cfg.end), "seed": cfg.seed,
            **settings, "perturb": cfg.perturb, "model_name": cfg.model_name,
            "format": cfg.format, "grid_label": cfg.grid_label}
    fp = fingerprint(args)
    state = _resolve_state(out, fp, resume)
    if state is not None and state.status == "complete":
        return state

    dev, spec = stepper.device, stepper.spec
    extra = tuple(f for f in ("tos", "siconc") if f in spec.forcing_names)
    fields = stream_fields(list(spec.channels), extra)
    sources = _field_sources(fields, spec)
    title = getattr(stepper, "title", "Monthly Diffusion emulator")
    label = getattr(stepper, "label", None) or "/".join(map(str, settings.values()))
    attrs = {"title": f"{cfg.model_name} {cfg.experiment_id} ensemble ({title})",
             "forcing_sst_offset_K": f"{cfg.offset:g}", "run_fingerprint": fp, "sampler": label,
             "seed": cfg.seed, "institution": "monthly-diffusion open reference tool"}
    if getattr(stepper, "conditioning", None):  # around a trajectory or guided: md-diagnose reads it
        attrs["conditioning"] = stepper.conditioning
    writer = _make_writer(cfg, out, fields, spec, forcing.calendar, attrs)
    if state is None:
        out.mkdir(parents=True, exist_ok=True)
        drop_stale_latents(out, None)
        writer.create()
        state = RunState(fp, {**args, "batch_size": batch_size or cfg.members, "device": str(dev)}, n,
                         files=[p[1].name for p in writer.paths()])
        state.save(out)
    if state.status == "finalising":  # killed while renaming: finish the renames
        return _finish(out, writer, state, cfg, 0.0, 0)

    # A resume keeps the recorded batch size and device unless told otherwise: batched float
    # arithmetic differs at round-off level between batch sizes and devices (see docs/rollout.md).
    batch = batch_size or state.args.get("batch_size") or cfg.members
    if state.completed and (batch != state.args.get("batch_size") or str(dev) != state.args.get("device")):
        tqdm.write(f"note: resuming with batch size {batch} on {dev} (the run began with "
                   f"{state.args.get('batch_size')} on {state.args.get('device')}); months from now on agree "
                   "with an uninterrupted run to float round-off, not bit for bit")
    labels = list(stepper.spec.labels)
    k0 = state.completed
    z_shape = (cfg.members, *stepper.latent_shape)
    z_dtype = getattr(stepper, "latent_dtype", torch.float32)
    latents = (load_latent(out, state).to(dev, z_dtype) if k0 > 0
               else torch.zeros(z_shape, device=dev, dtype=z_dtype))
    writer.open()
    bar = tqdm(total=n * cfg.members, initial=k0 * cfg.members, unit="member-month", unit_scale=False,
               desc=f"{cfg.experiment_id} x{cfg.members}", disable=not progress, dynamic_ncols=True)
    start_time, done = time.perf_counter(), 0
    f_prev = torch.from_numpy(forcing.month(k0 - 1).copy()) if k0 > 0 else None
    # each month's conditioning is computed once per member batch and used for the decode of
    # that month and for the step out of it (the next month), not normalised again
    cond_prev: dict[int, object] = {}
    try:
        for k in range(k0, n):
            month = cfg.start + k
            f_k = torch.from_numpy(forcing.month(k).copy())
            cond_now: dict[int, object] = {}
            for b0 in range(0, cfg.members, batch):
                ids = members[b0:b0 + batch]
                nb = len(ids)
                gens = _generators(stepper, cfg.seed, ids, k, dev)
                mk = torch.full((nb,), month.month, dtype=torch.long)
                cond = cond_now[b0] = stepper.condition(f_k.unsqueeze(0).expand(nb, -1, -1, -1), mk)
                if k == 0:
                    x = torch.from_numpy(initial).float().unsqueeze(0).expand(nb, -1, -1, -1).contiguous()
                    x = stepper.perturb(x, mk, cfg.perturb, _generators(stepper, cfg.seed, ids, _PERTURB_STEP, dev))
                    z = stepper.init(x, cond, gens)
                else:
                    if b0 not in cond_prev:  # resumed: the previous month's conditioning is not at hand
                        prev = cfg.start + (k - 1)
                        cond_prev[b0] = stepper.condition(f_prev.unsqueeze(0).expand(nb, -1, -1, -1),
                                                          torch.full((nb,), prev.month, dtype=torch.long))
                    z = stepper.step(latents[b0:b0 + nb], cond_prev[b0], cond, gens)
                    # The member generators continue into decode: residual noise (when the model
                    # has it) is drawn per (seed, member, month) like the diffusion noise.
                    x = stepper.decode(z, cond, gens)
                _check_finite(x.float(), z.float(), ids, labels, month)
                latents[b0:b0 + nb] = z
                x_np = x.float().cpu().numpy()
                f_np = f_k.numpy()
                for i, m in enumerate(ids):
                    for name, (kind, idx) in sources.items():
                        values = x_np[i, idx] if kind == "state" else f_np[idx]
                        writer.write(k, m, name, values[0] if len(idx) == 1 else values)
                bar.update(nb)
                done += nb
            writer.sync()
            rel, sha = save_latent(out, k, latents)
            old = state.latent
            state.completed, state.latent, state.latent_sha256 = k + 1, rel, sha
            state.save(out)
            if old and old != rel:
                (out / old).unlink(missing_ok=True)
            f_prev, cond_prev = f_k, cond_now
            if stop_after is not None and k + 1 >= stop_after and k + 1 < n:
                writer.close()
                return state
    except RolloutUnstable as exc:
        _stop_unstable(out, writer, state, exc)
        raise
    finally:
        bar.close()
    return _finish(out, writer, state, cfg, time.perf_counter() - start_time, done)


def _stop_unstable(out: Path, writer, state: RunState, exc: RolloutUnstable) -> None:
    """A member went non-finite: the months not written are filled (the files stay valid, every
    month present), the files closed, and the run state says why (``status: unstable``)."""
    writer.fill_from(state.completed)
    writer.sync()
    writer.close()
    state.status, state.message = "unstable", str(exc).split(": ", 1)[-1]
    state.save(out)


def _finish(out: Path, writer, state: RunState, cfg: RolloutConfig, wall: float, done: int) -> RunState:
    """Rename the files to their final names, then mark the run complete (in that order)."""
    state.status = "finalising"
    state.save(out)
    files = writer.finalise()
    size = sum(p.stat().st_size if p.is_file() else sum(q.stat().st_size for q in p.rglob("*") if q.is_file())
               for p in files)
    state.status, state.latent, state.latent_sha256 = "complete", None, None
    state.summary = {"wall_s": round(wall, 3), "member_months": done,
                     "member_months_per_s": round(done / wall, 4) if wall > 0 else None,
                     "output_bytes": size, "files": len(files)}
    state.save(out)
    drop_stale_latents(out, None)
    if (out / LATENT_DIR).is_dir():
        (out / LATENT_DIR).rmdir()
    return state
