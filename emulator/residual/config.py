"""Residual-ensemble configuration: a YAML file with ``type: around`` into strict dataclasses.

    type: around
    name: around
    encoder: outputs/demo/train          # the Monthly Diffusion checkpoint whose encoder/decoder is frozen
    data: {path: data/synth-train-members, train_period: "1979-01:2024-12"}
    model: {forcing_modes: 6, hidden: 32, depth: 3, steps: 10}
    train: {iterations: 600, batch_size: 32, lr: 3.0e-3, seed: 0}

Unknown keys, wrong types and bad values raise one-line :class:`InputError` naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import yaml

from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Period

from .. import config as config_mod

TYPE = "around"


@dataclass
class AroundData:
    """The training ensemble: a prepared dataset with a ``member`` dim (``md-synth --members N``)."""

    path: str | None = None
    train_period: str = "1979-01:2024-12"


DECODER_NOISE = ("emulator", "reconstruction")


@dataclass
class AroundModel:
    """Sizes: the linear mean of the residual step and the diffusion of its innovations."""

    forcing_modes: int = 6  # leading EOFs of the SST anomaly used as predictors of the forced signal
    hidden: int = 32  # channels of the convolutional denoiser
    depth: int = 3  # its 3x3 convolution layers
    steps: int = 10  # denoising steps at run time (ancestral sampler)
    # the mean step as a VAR(1) across the latent channels of each point (docs/residual.md); False:
    # each channel on its own past only (checkpoints fitted before the option have False)
    mixing: bool = False
    # decoder noise of the members: "emulator" (its residual noise as the emulator draws it, calibrated to
    # its forecast spread) or "reconstruction" (scaled per channel to what the decoder misses of the
    # training members: fit.decoder_noise_scale); measured trade-off in docs/residual.md
    decoder_noise: str = "emulator"


@dataclass
class AroundTrain:
    iterations: int = 600
    batch_size: int = 32
    lr: float = 3.0e-3
    seed: int = 0


@dataclass
class AroundConfig:
    type: str = TYPE
    name: str = "around"
    encoder: str | None = None  # Monthly Diffusion checkpoint (run directory or its checkpoint/)
    data: AroundData = field(default_factory=AroundData)
    model: AroundModel = field(default_factory=AroundModel)
    train: AroundTrain = field(default_factory=AroundTrain)


def _check(cfg: AroundConfig, source: str) -> AroundConfig:
    if cfg.type != TYPE:
        raise InputError(f"type: expected {TYPE!r}, got {cfg.type!r}", source)
    try:
        Period.parse(cfg.data.train_period)
    except ValueError as exc:
        raise InputError(f"data.train_period: {exc}", source) from None
    m, t = cfg.model, cfg.train
    for key, value in (("model.forcing_modes", m.forcing_modes), ("model.hidden", m.hidden),
                       ("model.depth", m.depth), ("model.steps", m.steps), ("train.iterations", t.iterations),
                       ("train.batch_size", t.batch_size)):
        if value < 1:
            raise InputError(f"{key}: must be >= 1", source)
    if t.lr <= 0:
        raise InputError("train.lr: must be > 0", source)
    if m.decoder_noise not in DECODER_NOISE:
        raise InputError(f"model.decoder_noise: expected one of {', '.join(DECODER_NOISE)}, got {m.decoder_noise!r}",
                         source)
    return cfg


def from_dict(data: dict, source: str = "<config>") -> AroundConfig:
    """Build and check an :class:`AroundConfig` from a plain mapping."""
    return _check(config_mod._build(AroundConfig, data, "", source), source)


def is_around_config(path: str | os.PathLike) -> bool:
    """True if ``path`` is a YAML file whose top-level ``type`` is ``around`` (False if unreadable)."""
    return config_mod.config_type(path) == TYPE


def load(path: str | os.PathLike) -> AroundConfig:
    """Read a around YAML config file strictly."""
    return from_dict(config_mod.read_yaml(path, "configs/around.yaml") or {}, str(path))


def to_yaml(cfg: AroundConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
