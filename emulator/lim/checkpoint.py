"""LIM checkpoints: one directory written atomically (temporary name, then ``os.replace``).

    <run>/checkpoint/
        lim.safetensors   every array of the fitted model (normalisation, EOFs, operator, noise)
        config.yaml       the resolved LIM configuration (``type: lim``)
        meta.json         format, channels, forcings, grid, fit summary, SHA-256 of the two files

No pickles: arrays go through ``safetensors.numpy``, the rest through JSON / YAML
(``yaml.safe_load``). Loading checks the format, the hashes and the array shapes, and refuses a
Monthly Diffusion checkpoint (and ``emulator.checkpoint`` refuses this one) with one line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from diagnostics.data.errors import InputError

from ..checkpoint import checkpoint_format, read_checkpoint_meta, spec_from_meta, spec_meta, write_checkpoint_dir
from . import config as lim_config
from .config import LimConfig
from .model import LinearInverseModel
from .operator import LinearOperator

FORMAT = "monthly-diffusion-lim/1"
_FILES = ("lim.safetensors", "config.yaml")
_ARRAYS = ("state_clim", "state_std", "forcing_clim", "forcing_std", "eofs", "residual_eofs", "residual_std",
           "forcing_eofs", "predictor_mean", "predictor_std")
_OPERATOR = ("A", "B", "c", "chol", "dA")
_FLOAT32 = ("eofs", "residual_eofs", "forcing_eofs")  # stored as float32 (exact: their values are)


def is_lim_checkpoint(path: str | os.PathLike) -> bool:
    """True if ``path`` (a run directory or its checkpoint/) holds a meta.json of this format."""
    return checkpoint_format(path) == FORMAT


def save(path: str | os.PathLike, lim: LinearInverseModel, cfg: LimConfig, info: dict) -> Path:
    """Write a complete checkpoint directory at ``path`` atomically."""
    arrays = {name: np.ascontiguousarray(getattr(lim, name), np.float32 if name in _FLOAT32 else None)
              for name in _ARRAYS}
    arrays.update({f"operator.{name}": np.ascontiguousarray(getattr(lim.operator, name)) for name in _OPERATOR})

    def write(tmp: Path) -> None:
        save_file(arrays, str(tmp / "lim.safetensors"))
        (tmp / "config.yaml").write_text(lim_config.to_yaml(cfg))

    meta = {"format": FORMAT, **spec_meta(lim.spec), "global_sst": lim.global_sst, "fit": info}
    return write_checkpoint_dir(path, write, _FILES, meta)


def read_meta(path: str | os.PathLike) -> dict:
    """Read ``meta.json`` and verify every file's SHA-256; InputError on anything wrong."""
    return read_checkpoint_meta(path, FORMAT, _FILES, "LIM")


def config_of(meta: dict) -> LimConfig:
    return lim_config.load(Path(meta["_dir"]) / "config.yaml")


def load(path: str | os.PathLike) -> tuple[LinearInverseModel, dict]:
    """The fitted model of a checkpoint and its (verified) meta."""
    meta = read_meta(path)
    file = Path(meta["_dir"]) / "lim.safetensors"
    try:
        arrays = load_file(str(file))
    except Exception as exc:  # safetensors raises its own error types for a malformed header
        raise InputError(f"cannot read arrays ({type(exc).__name__}: {exc})", file) from None
    spec = spec_from_meta(meta)
    need = set(_ARRAYS) | {f"operator.{n}" for n in _OPERATOR}
    if set(arrays) != need:
        raise InputError(f"arrays {sorted(need ^ set(arrays))} missing or unexpected", file)
    op = LinearOperator(*(arrays[f"operator.{n}"].astype(np.float64) for n in _OPERATOR))
    held = {n: arrays[n].astype(np.float64) if n in _FLOAT32 else arrays[n] for n in _ARRAYS}
    lim = LinearInverseModel(spec, **held, global_sst=bool(meta["global_sst"]),
                             operator=op)
    k, p = op.modes, len(spec.channels) * spec.shape[0] * spec.shape[1]
    if lim.eofs.shape != (p, k) or lim.state_clim.shape != (12, len(spec.channels), *spec.shape):
        raise InputError("arrays do not fit the channels and grid recorded in meta.json", file)
    return lim, meta
