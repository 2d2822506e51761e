"""Residual-ensemble checkpoints: one directory written atomically (temporary name, then rename).

    <run>/checkpoint/
        residual.safetensors   the model's buffers and denoiser weights
        config.yaml            the resolved ``type: around`` configuration
        meta.json              format, the encoder checkpoint (absolute path + SHA-256 of its EMA
                               weights), channels, forcings, grid, fit summary, SHA-256 of the files

Loading checks the hashes (:func:`emulator.checkpoint.read_checkpoint_meta`) and that the
encoder checkpoint is still the one it was fitted with.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import load_file, save_file

from diagnostics.data.errors import InputError

from .. import checkpoint as md_checkpoint
from ..checkpoint import checkpoint_format, read_checkpoint_meta, spec_from_meta, spec_meta, write_checkpoint_dir
from . import config as around_config
from .config import AroundConfig
from .model import ResidualModel

FORMAT = "monthly-diffusion-residual/1"
_FILES = ("residual.safetensors", "config.yaml")


def is_around_checkpoint(path: str | os.PathLike) -> bool:
    return checkpoint_format(path) == FORMAT


def save(path: str | os.PathLike, model: ResidualModel, cfg: AroundConfig, encoder_meta: dict, info: dict) -> Path:
    """Write a residual-ensemble checkpoint at ``path`` atomically (weights, config, meta with SHA-256)."""
    def write(tmp: Path) -> None:
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
                  str(tmp / "residual.safetensors"))
        (tmp / "config.yaml").write_text(around_config.to_yaml(cfg))

    meta = {"format": FORMAT, **spec_meta(md_checkpoint.spec_from_meta(encoder_meta)),
            "encoder": os.path.abspath(encoder_meta["_dir"]),
            "encoder_sha256": encoder_meta["sha256"]["ema.safetensors"],
            "latent_shape": list(model.latent_shape), "fit": info}
    return write_checkpoint_dir(path, write, _FILES, meta)


def read_meta(path: str | os.PathLike) -> dict:
    return read_checkpoint_meta(path, FORMAT, _FILES, "residual-ensemble")


def config_of(meta: dict) -> AroundConfig:
    return around_config.load(Path(meta["_dir"]) / "config.yaml")


def load(path: str | os.PathLike) -> tuple[ResidualModel, dict, dict]:
    """(residual model in eval mode, its meta, the verified meta of its encoder checkpoint)."""
    meta = read_meta(path)
    emeta = md_checkpoint.read_meta(meta["encoder"])
    if emeta["sha256"]["ema.safetensors"] != meta["encoder_sha256"]:
        raise InputError("the encoder checkpoint changed since this residual model was fitted "
                         f"(its EMA weights no longer match {meta['encoder_sha256'][:12]})", meta["encoder"])
    cfg = config_of(meta)
    spec = spec_from_meta(meta)
    model = ResidualModel(tuple(meta["latent_shape"]), spec.shape, cfg.model.forcing_modes, cfg.model.hidden,
                          cfg.model.depth, cfg.model.mixing)
    file = Path(meta["_dir"]) / "residual.safetensors"
    try:
        tensors = load_file(str(file))
        model.load_state_dict(tensors)
    except Exception as exc:  # safetensors / shape mismatch
        raise InputError(f"cannot load the residual model ({type(exc).__name__})", file) from None
    return model.eval(), meta, emeta
