"""LIM configuration: a YAML file with ``type: lim`` (``yaml.safe_load``) into strict dataclasses.

    type: lim
    name: lim
    data: {state: [...], forcings: [tos, siconc], train_period: ..., valid_period: ..., test_period: ...}
    model: {modes: 40, forcing_modes: 8, global_sst: true, residual_modes: 100, noise: seasonal, ridge: 1.0e-6,
           seasonal_ridge: null}

``data`` is the emulator's :class:`emulator.config.DataConfig` (``statics`` are not used).
Unknown keys, wrong types and bad values raise one-line :class:`InputError` naming the key.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

import yaml

from diagnostics.data.errors import InputError

from .. import config as config_mod
from ..config import DataConfig
from .operator import NOISE_KINDS

TYPE = "lim"


@dataclass
class LimModelConfig:
    """Sizes of the reduced spaces and the noise model (see :mod:`emulator.lim.operator`)."""

    modes: int = 40  # K: EOFs of the state anomalies evolved by the linear operator
    forcing_modes: int = 8  # EOFs of the SST / sea-ice anomalies used as predictors
    global_sst: bool = True  # one more predictor: the ocean-mean SST anomaly (carries the +2K / +4K offset)
    residual_modes: int = 100  # EOFs K+1..K+R added as white noise with their training variance
    noise: str = "seasonal"  # constant | seasonal (Q per calendar month from months m-1..m+1)
    ridge: float = 1.0e-6  # relative ridge on the standardised regressors
    seasonal_ridge: float | None = None  # set: cyclostationary LIM, A_m = A + dA_m with this ridge on dA_m


@dataclass
class LimConfig:
    type: str = TYPE
    name: str = "lim"
    data: DataConfig = field(default_factory=DataConfig)
    model: LimModelConfig = field(default_factory=LimModelConfig)


def _check(cfg: LimConfig, source: str) -> LimConfig:
    if cfg.type != TYPE:
        raise InputError(f"type: expected {TYPE!r}, got {cfg.type!r}", source)
    config_mod.check_periods(cfg.data, source)
    m = cfg.model
    if m.modes < 1:
        raise InputError("model.modes: must be >= 1", source)
    for key in ("forcing_modes", "residual_modes"):
        if getattr(m, key) < 0:
            raise InputError(f"model.{key}: must be >= 0", source)
    if m.noise not in NOISE_KINDS:
        raise InputError(f"model.noise: expected one of {', '.join(NOISE_KINDS)}, got {m.noise!r}", source)
    if m.ridge < 0:
        raise InputError("model.ridge: must be >= 0", source)
    if m.seasonal_ridge is not None and m.seasonal_ridge <= 0:
        raise InputError("model.seasonal_ridge: must be > 0 (or null for a stationary LIM)", source)
    return cfg


def from_dict(data: dict, source: str = "<config>") -> LimConfig:
    """Build and check a :class:`LimConfig` from a plain mapping."""
    return _check(config_mod._build(LimConfig, data, "", source), source)


def is_lim_config(path: str | os.PathLike) -> bool:
    """True if ``path`` is a YAML file whose top-level ``type`` is ``lim`` (False if unreadable)."""
    return config_mod.config_type(path) == TYPE


def load(path: str | os.PathLike) -> LimConfig:
    """Read a lim YAML config file strictly."""
    return from_dict(config_mod.read_yaml(path, "configs/lim.yaml") or {}, str(path))


def to_yaml(cfg: LimConfig) -> str:
    return yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False)
