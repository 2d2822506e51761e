"""Checkpoints: one directory written atomically (temporary name, then ``os.replace``).

    <run>/checkpoint/
        model.safetensors      model weights + buffers (normalisation stats, latent stats, statics)
        ema.safetensors        EMA weights (what inference uses by default)
        optimizer.safetensors  AdamW moments, training RNG states
        trainer.json           epoch, step, optimiser param groups, EMA update count, history
        config.yaml            the resolved run configuration
        meta.json              format, channels, forcings, statics, grid, latent grid, parameter
                               count and the SHA-256 of every file above

No pickles: tensors go through safetensors, everything else through JSON/YAML. Loading checks
the hashes (a tampered or truncated file fails with one line), then that the configuration,
channels and grid match what the caller expects.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable

import torch
import yaml
from safetensors.torch import load_file, save_file

from diagnostics.data.errors import InputError
from diagnostics.io.writer import atomic_path, file_sha256

from . import config as config_mod
from .config import RunConfig
from .ema import EMA
from .model import DataSpec, MonthlyDiffusion

FORMAT = "monthly-diffusion-checkpoint/1"
CHECKPOINT_DIR = "checkpoint"
_FILES = ("model.safetensors", "ema.safetensors", "optimizer.safetensors", "trainer.json", "config.yaml")


def _state_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    sd = optimizer.state_dict()
    tensors, scalars = {}, {}
    for pid, state in sd["state"].items():
        for key, value in state.items():
            if torch.is_tensor(value):
                tensors[f"state.{pid}.{key}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars[f"{pid}.{key}"] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def spec_meta(spec: DataSpec) -> dict:
    return {"channels": [[n, lev] for n, lev in spec.channels], "labels": spec.labels,
            "forcings": list(spec.forcing_names), "statics": list(spec.static_names),
            "lat": list(spec.lat), "lon": list(spec.lon)}


def spec_from_meta(meta: dict) -> DataSpec:
    return DataSpec(tuple((n, None if lev is None else int(lev)) for n, lev in meta["channels"]),
                    tuple(meta["forcings"]), tuple(meta["statics"]), tuple(meta["lat"]), tuple(meta["lon"]))


def save(path: str | os.PathLike, model: MonthlyDiffusion, ema: EMA, optimizer: torch.optim.Optimizer,
         cfg: RunConfig, trainer: dict, rng: dict[str, torch.Tensor]) -> Path:
    """Write a complete checkpoint directory at ``path`` atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.mkdir(parents=True)
        save_file(_state_tensors(model), tmp / "model.safetensors")
        save_file(_state_tensors(ema.model), tmp / "ema.safetensors")
        opt_tensors, opt_json = _optimizer_tensors(optimizer)
        opt_tensors.update({f"rng.{k}": v.cpu().contiguous().clone() for k, v in rng.items()})
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        (tmp / "trainer.json").write_text(json.dumps({**trainer, "optimizer": opt_json,
                                                      "ema_updates": ema.updates,
                                                      "ema_held": sorted(ema.held)}, indent=1))
        (tmp / "config.yaml").write_text(config_mod.to_yaml(cfg))
        meta = {"format": FORMAT, **spec_meta(model.spec), "latent_shape": list(model.latent_shape),
                "latent_channels": model.cfg.latent_channels, "n_parameters": model.n_parameters(),
                "sha256": {name: file_sha256(tmp / name) for name in _FILES}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return path


def meta_path(path: str | os.PathLike) -> Path:
    """The ``meta.json`` of a run directory or of its ``checkpoint/`` folder (which may not exist)."""
    path = Path(path)
    return path / CHECKPOINT_DIR / "meta.json" if (path / CHECKPOINT_DIR / "meta.json").exists() else path / "meta.json"


def write_checkpoint_dir(path: str | os.PathLike, write: Callable[[Path], None], files: tuple[str, ...],
                         meta: dict) -> Path:
    """Write a checkpoint directory atomically: ``write(tmp)`` writes ``files`` into the temporary
    directory, then ``meta.json`` gets ``meta`` plus the SHA-256 of each (what
    :func:`read_checkpoint_meta` verifies). The one writer of the LIM and residual checkpoints."""
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.mkdir(parents=True)
        write(tmp)
        meta = {**meta, "sha256": {name: file_sha256(tmp / name) for name in files}}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
    return path


def read_checkpoint_meta(path: str | os.PathLike, fmt: str, files: tuple[str, ...], what: str) -> dict:
    """Read the ``meta.json`` of a checkpoint of format ``fmt`` (``what`` names it in errors) and
    verify the SHA-256 of each of ``files``; InputError (one line) on anything wrong. The one
    reader of every checkpoint kind (Monthly Diffusion, LIM, residual ensembles)."""
    mp = meta_path(path)
    if not mp.exists():
        raise InputError("no checkpoint here (expected a run directory or its checkpoint/ with meta.json)", path)
    try:
        meta = json.loads(mp.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"checkpoint meta.json is corrupt ({exc})", mp) from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise InputError(f"not a {what} checkpoint (format {found!r}, expected {fmt})", mp)
    d = mp.parent
    for name in files:
        if not (d / name).exists():
            raise InputError(f"checkpoint is incomplete: {name} is missing", d)
        if file_sha256(d / name) != meta.get("sha256", {}).get(name):
            raise InputError(f"checkpoint file {name} does not match its recorded SHA-256 (corrupt or modified)", d)
    meta["_dir"] = str(d)
    return meta


def checkpoint_format(path: str | os.PathLike) -> str | None:
    """The ``format`` recorded in the meta.json at ``path`` (None when there is none or it is unreadable)."""
    mp = meta_path(path)
    try:
        data = json.loads(mp.read_text()) if mp.is_file() else None
        return data.get("format") if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def read_meta(path: str | os.PathLike) -> dict:
    """Read a Monthly Diffusion ``meta.json`` and verify every file's SHA-256; InputError on anything wrong."""
    return read_checkpoint_meta(path, FORMAT, _FILES, FORMAT)


def _load_tensors(file: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(file)
    except Exception as exc:  # safetensors raises its own error types for a malformed header
        raise InputError(f"cannot read weights ({type(exc).__name__}: {exc})", file) from None


# buffers added after checkpoints were first written; an older checkpoint loads with their
# initial value, which reproduces its behaviour (diffusion_offset 0: no centring)
_ADDED_BUFFERS = ("diffusion_offset",)


def _load_into(module: torch.nn.Module, file: Path) -> None:
    tensors = _load_tensors(file)
    expected = module.state_dict()
    for name in expected:
        if name not in tensors and name.rsplit(".", 1)[-1] in _ADDED_BUFFERS:
            tensors[name] = expected[name]
    if set(tensors) != set(expected) or any(tensors[k].shape != expected[k].shape for k in expected):
        raise InputError("weights do not fit the model described by config.yaml/meta.json", file)
    module.load_state_dict(tensors)


def config_of(meta: dict) -> RunConfig:
    path = Path(meta["_dir"]) / "config.yaml"
    return config_mod.from_dict(yaml.safe_load(path.read_text()), str(path))


def check_compatible(meta: dict, cfg: RunConfig | None = None, spec: DataSpec | None = None) -> None:
    """InputError (one line) if the checkpoint's config, channels or grid differ from the caller's."""
    where = meta["_dir"]
    if cfg is not None:
        diff = config_mod.differences(config_of(meta), cfg)
        if diff:
            raise InputError(f"checkpoint was made with a different configuration: {'; '.join(diff[:3])}", where)
    if spec is not None:
        theirs = spec_from_meta(meta)
        if theirs.labels != spec.labels:
            raise InputError(f"checkpoint channels {theirs.labels} differ from the data's {spec.labels}", where)
        if list(theirs.forcing_names) != list(spec.forcing_names) or list(theirs.static_names) != list(spec.static_names):
            raise InputError("checkpoint forcings/statics differ from the data's", where)
        if theirs.shape != spec.shape or max(abs(a - b) for a, b in zip(theirs.lat + theirs.lon, spec.lat + spec.lon)) > 1e-4:
            raise InputError(f"checkpoint grid {theirs.shape[0]} x {theirs.shape[1]} differs from the data's "
                             f"{spec.shape[0]} x {spec.shape[1]}", where)


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu", weights: str = "ema",
               spec: DataSpec | None = None) -> MonthlyDiffusion:
    """The model of a checkpoint (``weights``: ``ema`` (default) or ``model``), in eval mode."""
    if weights not in ("ema", "model"):
        raise ValueError("weights must be 'ema' or 'model'")
    meta = read_meta(path)
    check_compatible(meta, None, spec)
    cfg = config_of(meta)
    model = MonthlyDiffusion(cfg.model, spec_from_meta(meta))
    _load_into(model, Path(meta["_dir"]) / f"{weights}.safetensors")
    return model.to(device).eval()


def load_training_state(path: str | os.PathLike, model: MonthlyDiffusion, ema: EMA,
                        optimizer: torch.optim.Optimizer, cfg: RunConfig) -> tuple[dict, dict[str, torch.Tensor]]:
    """Restore model, EMA and optimiser in place for ``--resume``; returns (trainer state, RNG states)."""
    meta = read_meta(path)
    check_compatible(meta, cfg, model.spec)
    d = Path(meta["_dir"])
    _load_into(model, d / "model.safetensors")
    _load_into(ema.model, d / "ema.safetensors")
    trainer = json.loads((d / "trainer.json").read_text())
    tensors = _load_tensors(d / "optimizer.safetensors")
    opt_json = trainer.pop("optimizer")
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, pid, name = key.split(".", 2)
            state.setdefault(int(pid), {})[name] = value
    for key, value in opt_json["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    try:
        optimizer.load_state_dict({"state": state, "param_groups": opt_json["param_groups"]})
    except (ValueError, KeyError) as exc:
        raise InputError(f"optimizer state does not fit the model ({exc})", d) from None
    ema.updates = int(trainer.pop("ema_updates"))
    ema.held = set(trainer.pop("ema_held", []))  # absent before the calibration fix: nothing held
    rng = {k[4:]: v for k, v in tensors.items() if k.startswith("rng.")}
    return trainer, rng
