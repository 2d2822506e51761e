"""Run configuration: YAML (``yaml.safe_load``) into strict dataclasses.

Unknown keys, wrong types and bad values raise one-line :class:`InputError` naming the key
(``model.rankk: unknown key``), like ACE's ``fme`` configs. ``resolved(cfg)`` is the full
configuration written next to every checkpoint.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml

from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Period


@dataclass
class DataConfig:
    """Which prepared dataset and which fields; periods as ``YYYY-MM:YYYY-MM``."""

    path: str | None = None
    state: list[str] = field(default_factory=lambda: ["ps", "ts", "tas", "tdas", "uas", "vas", "pr", "psl",
                                                      "ta", "hus", "ua", "va", "zg500"])
    forcings: list[str] = field(default_factory=lambda: ["tos", "siconc"])
    statics: list[str] = field(default_factory=lambda: ["sftlf", "orog", "sdor", "slor"])
    train_period: str = "1985-01:2014-12"
    valid_period: str = "1979-01:1984-12"
    test_period: str = "2015-01:2024-12"


#: Sampler names (one home: configs, the diffusion sampler, emulator-run, make demo).
Sampler = Literal["ancestral", "ddim"]
SAMPLERS: tuple[str, ...] = typing.get_args(Sampler)


@dataclass
class TensorOperator:
    """Spectral blocks with the low-rank tensor-product operator (the published model)."""

    type: Literal["tensor"] = "tensor"


@dataclass
class DiagonalOperator:
    """Spectral blocks with a diagonal operator: one weight per degree l (``mode: l``) or (l, m)."""

    type: Literal["diagonal"] = "diagonal"
    mode: Literal["l", "lm"] = "l"


@dataclass
class PreviousNoise:
    """Noise augmentation of the previous latent the denoiser sees (ours, session 8; diffusion
    forcing, Chen et al. 2024; GenCast-style noise conditioning). Training: the denoiser's previous
    latent is ``z_prev + sigma eps`` (standardised units, eps white), ``sigma ~ U(0, max)`` per
    sample, and ``sigma / max`` enters the denoiser's time embedding; sampling: the fixed ``sample``
    (a draw per step, one more noise field). The skip path always sees the clean latent."""

    max: float = 1.0
    sample: float = 0.0


@dataclass
class DiffusionStep:
    """The published step: the denoiser sees the previous latent and the conditioning and
    samples z_{t+1} itself. ``next_forcing``: the step also sees the conditioning of month t+1
    (the prescribed SST of the month being predicted; ours)."""

    type: Literal["diffusion"] = "diffusion"
    next_forcing: bool = False
    previous_noise: PreviousNoise | None = None  # off (None): the published step


@dataclass
class SkipStep:
    """Ours: diffuse z_{t+1} - mu, mu = a z_t + W cond_t (+ S cond_t), a linear skip path fitted by
    least squares (docs/emulator.md). ``mixing``: the persistence also mixes latent channels;
    ``denoiser_previous: false``: month t reaches the step through the skip path only;
    ``denoiser_forcing: false``: so do the forcings (the denoiser sees season and statics)."""

    type: Literal["skip"] = "skip"
    next_forcing: bool = False
    mixing: bool = False
    denoiser_previous: bool = True
    denoiser_forcing: bool = True
    previous_noise: PreviousNoise | None = None  # needs denoiser_previous; off (None) by default


@dataclass
class LatentLimStep(SkipStep):
    """Ours (session 6): trained as ``skip``, but the step's mean and noise are a linear inverse
    model fitted in the EOF-reduced latent space on the training latents at calibration
    (:mod:`emulator.latent_lim`): ``x_{t+1} = A x_t + B u_{t+1} + c_m + L_m eta`` on the
    ``modes`` leading latent PCs, with ``forcing_modes`` forcing-anomaly PCs plus the
    global means of the forcing anomalies as ``u``; the latent beyond the modes is white
    noise with its training std. ``mean: skip``: the trained skip path is the step's mean and
    the Gaussian (fitted to the skip path's residuals) its noise. The diffusion's samples are
    not used (docs/emulator.md,
    "Free-run fidelity (session 6)")."""

    type: Literal["latent_lim"] = "latent_lim"  # type: ignore[assignment]
    modes: int = 24
    forcing_modes: int = 4
    noise: Literal["constant", "seasonal"] = "seasonal"
    mean: Literal["lim", "skip"] = "lim"  # skip: the trained skip path is the mean, the Gaussian its spread
    # the sample set whose EOFs span the model (emulator.latent_lim_fit.basis_samples): the latents
    # (session 6), their monthly anomalies with the forcing regressed out, or the skip residuals
    basis: Literal["latents", "anomalies", "residuals"] = "latents"
    # month-dependent persistence (session 7): for each target month m, the residual regressed on the
    # state's projection on the `seasonal_modes` leading EOFs of month m-1's residuals (0: none); a
    # winter-long NAO needs persistence Dec -> Jan -> Feb that a step fitted over all months lacks
    seasonal_modes: int = 0
    # cap of the spread calibration's residual_scale: the decoder residual noise is white in time and
    # without structure, so inflating it to make up for the step's spread costs memory (lag-1) and modes
    max_residual_scale: float = 100.0


@dataclass
class ModelConfig:
    """Architecture (see docs/emulator.md). Variants are nested sections chosen by ``type``
    (``operator``, ``step``), so that options of one variant cannot be set on another; a
    section given as a plain string is its ``type`` (``operator: tensor``)."""

    latent_channels: int = 32
    latent_shape: list[int] = field(default_factory=lambda: [30, 60])
    embed_dim: int = 128
    encoder_rank: int = 64
    decoder_rank: int = 256
    denoiser_rank: int = 128
    denoiser_blocks: int = 1
    operator: TensorOperator | DiagonalOperator = field(default_factory=TensorOperator)
    norm_hidden: int = 16
    mlp_ratio: int = 2
    season_channels: int = 3
    sample_steps: int = 15  # ancestral sampler
    ddim_steps: int = 5  # deterministic sampler
    latent_momentum: float = 0.01  # EMA rate of the latent population statistics
    normalisation: Literal["zscore", "anomaly"] = "zscore"  # zscore (published) | minus monthly climatology first
    residual_noise: bool = False  # sample the decoder residual (per-(l, m) power) when decoding ensembles
    forcing_anomaly: bool = False  # conditioning also holds forcing anomalies from the monthly climatology
    step: DiffusionStep | SkipStep | LatentLimStep = field(default_factory=DiffusionStep)

    @property
    def latent_skip(self) -> bool:
        """The step has the linear skip path (``step.type: skip`` or ``latent_lim``)."""
        return isinstance(self.step, SkipStep)

    @property
    def latent_lim(self) -> bool:
        """The step's mean and noise are the latent linear inverse model (``step.type: latent_lim``)."""
        return isinstance(self.step, LatentLimStep)

    @property
    def step_next_forcing(self) -> bool:
        return self.step.next_forcing


@dataclass
class LossConfig:
    """total = rec + kl_weight KL + v_weight v-MSE + pop_weight (latent mean^2 + (std - 1)^2)."""

    kl_weight: float = 5.0e-3
    v_weight: float = 0.5
    pop_weight: float = 1.0e-2
    skip_weight: float = 1.0  # least-squares term of the latent skip path (model.latent_skip only)


@dataclass
class TrainConfig:
    epochs: int = 100
    batch_size: int = 4
    lr: float = 1.0e-3
    lr_min: float = 1.0e-5
    lr_schedule: Literal["cosine", "constant"] = "cosine"  # per optimiser step, after warm-up
    warmup_steps: int = 100
    weight_decay: float = 1.0e-2
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    seed: int = 0


@dataclass
class ValidationConfig:
    every: int = 1  # epochs between validations
    members: int = 5
    sampler: Sampler = "ancestral"
    steps: int = 0  # 0: the model default for the sampler
    max_samples: int = 24  # month pairs scored per validation (evenly spaced)
    # free-run validation (emulator.validation.free_run_validation): every ``free_run_every``
    # epochs (0: off) and after the last one, the EMA model runs freely for ``free_run_months``
    # months from the first month of the validation + training years, ``free_run_members`` members
    free_run_every: int = 0
    free_run_months: int = 144
    free_run_members: int = 3
    # which checkpoint ``<run>/selected/`` holds: ``free_run`` keeps the epoch of the lowest
    # free-run score (emulator.validation.free_run_score) beside the last one in ``checkpoint/``
    select: Literal["last", "free_run"] = "last"


@dataclass
class RunConfig:
    name: str = "run"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)


def _convert(value, tp, key: str, source: str):
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, f"{key}.", source)
    if origin is Literal:
        if value not in args or isinstance(value, bool):
            raise InputError(f"{key}: expected {' or '.join(repr(a) for a in args)}, got {value!r}", source)
        return value
    variants = [a for a in args if dataclasses.is_dataclass(a)]
    if variants and len(variants) == len(args):  # a section chosen by its `type`
        return _variant(variants, value, key, source)
    if origin is typing.Union or str(origin) == "types.UnionType" or (origin is not None and type(None) in args):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(value, inner[0], key, source)
    if origin is list:
        if not isinstance(value, list):
            raise InputError(f"{key}: expected a list, got {value!r}", source)
        return [_convert(v, args[0], key, source) for v in value]
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"{key}: expected true/false, got {value!r}", source)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InputError(f"{key}: expected an integer, got {value!r}", source)
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"{key}: expected a number, got {value!r}", source)
        return float(value)
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise InputError(f"{key}: expected a string, got {value!r}", source)
        return str(value)
    return value


def _suggest(key: str, names: set[str]) -> str:
    """"did you mean ..." for a near miss; the allowed keys when they are few; else where they are."""
    close = difflib.get_close_matches(key, sorted(names), n=2, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    if len(names) <= 8:
        return f"allowed: {', '.join(sorted(names))}"
    return f"{len(names)} keys are allowed here, listed in docs/emulator.md"


def _variant(variants: list, value, key: str, source: str):
    """The dataclass among ``variants`` whose ``type`` is ``value["type"]`` (or ``value`` itself)."""
    by_type = {typing.get_args(typing.get_type_hints(v)["type"])[0]: v for v in variants}
    if isinstance(value, str):
        value = {"type": value}
    if not isinstance(value, dict) or "type" not in value:
        raise InputError(f"{key}: expected a mapping with a type ({' or '.join(by_type)}), got {value!r}", source)
    if value["type"] not in by_type:
        raise InputError(f"{key}.type: expected {' or '.join(repr(t) for t in by_type)}, got {value['type']!r}",
                         source)
    return _build(by_type[value["type"]], value, f"{key}.", source)


def _build(cls, data, prefix: str, source: str):
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputError(f"{prefix.rstrip('.') or 'top level'}: expected a mapping, got {data!r}", source)
    if cls is ModelConfig:
        data = _migrate_model(data, source)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise InputError(f"{prefix}{unknown[0]}: unknown key ({_suggest(unknown[0], names)})", source)
    kwargs = {k: _convert(v, hints[k], f"{prefix}{k}", source) for k, v in data.items()}
    return cls(**kwargs)


#: Flat keys of configs written before the typed variants (checkpoints' config.yaml) -> their new home.
_FLAT_STEP = ("latent_skip", "step_next_forcing", "skip_mixing", "denoiser_previous", "denoiser_forcing")


def _migrate_model(data: dict, source: str) -> dict:
    """An old flat ``model`` section in the typed form (new-form sections pass through).

    ``operator: diagonal`` + ``diagonal_mode`` -> ``operator: {type: diagonal, mode}``;
    ``latent_skip`` and the step options -> ``step: {type: skip | diffusion, ...}``, refusing what
    the old checks refused (skip-only options without ``latent_skip``); ``skip_monthly: true``
    (removed: measured no gain) is refused with one line, ``skip_monthly: false`` dropped.
    """
    flat = [k for k in ("diagonal_mode", "skip_monthly", *_FLAT_STEP) if k in data]
    if not flat:
        return data
    data = dict(data)
    if data.pop("skip_monthly", False):
        raise InputError("model.skip_monthly: removed (a per-month skip persistence measured no gain, "
                         "docs/emulator.md); configs and checkpoints with skip_monthly: true are no longer "
                         "supported, set it false or retrain", source)
    mode = data.pop("diagonal_mode", "l")
    if data.get("operator", "tensor") == "diagonal":
        data["operator"] = {"type": "diagonal", "mode": mode}
    old = {k: data.pop(k) for k in _FLAT_STEP if k in data}
    if "step" in data and old:
        raise InputError(f"model.{next(iter(old))}: an old flat key next to model.step; use model.step only", source)
    skip = old.pop("latent_skip", False)
    needs_skip = [key for key, on in (("skip_mixing: true", old.get("skip_mixing", False)),
                                      ("denoiser_previous: false", not old.get("denoiser_previous", True)),
                                      ("denoiser_forcing: false", not old.get("denoiser_forcing", True))) if on]
    if needs_skip and not skip:
        raise InputError(f"model.{needs_skip[0]} needs model.latent_skip: true "
                         "(the skip path carries the previous month)", source)
    step = {"type": "skip" if skip else "diffusion", "next_forcing": old.get("step_next_forcing", False)}
    if skip:
        step.update({"mixing": old.get("skip_mixing", False), "denoiser_previous": old.get("denoiser_previous", True),
                     "denoiser_forcing": old.get("denoiser_forcing", True)})
    data["step"] = step
    return data


def _check(cfg: RunConfig, source: str) -> RunConfig:
    check_periods(cfg.data, source)
    m = cfg.model
    if len(m.latent_shape) != 2 or min(m.latent_shape) < 2:
        raise InputError(f"model.latent_shape: expected [nlat, nlon], got {m.latent_shape}", source)
    for key in ("epochs", "batch_size"):
        if getattr(cfg.train, key) < 1:
            raise InputError(f"train.{key}: must be >= 1", source)
    _check_previous_noise(m.step, source)
    if cfg.validation.members < 2:
        raise InputError("validation.members: an ensemble needs at least 2 members", source)
    v = cfg.validation
    if v.free_run_every < 0:
        raise InputError(f"validation.free_run_every: must be >= 0 (0: off), got {v.free_run_every}", source)
    if v.free_run_every > 0 and v.free_run_months < 24:
        raise InputError(f"validation.free_run_months: a free run scored on lag-1, std and DJF modes needs "
                         f">= 24 months, got {v.free_run_months}", source)
    if v.free_run_every > 0 and v.free_run_members < 1:
        raise InputError(f"validation.free_run_members: must be >= 1, got {v.free_run_members}", source)
    if v.select == "free_run" and v.free_run_every < 1:
        raise InputError("validation.select: free_run needs validation.free_run_every >= 1 "
                         "(the free-run validation it selects on)", source)
    return cfg


def _check_previous_noise(step, source: str) -> None:
    """One-line InputError unless ``step.previous_noise`` (when set) has 0 < max and
    0 <= sample <= max (a sampling level outside the trained range), on a step whose denoiser
    sees the previous latent."""
    pn = getattr(step, "previous_noise", None)
    if pn is None:
        return
    if isinstance(step, LatentLimStep):
        raise InputError("model.step.previous_noise: a latent_lim step samples no diffusion (use type: skip)", source)
    if not getattr(step, "denoiser_previous", True):
        raise InputError("model.step.previous_noise needs model.step.denoiser_previous: true "
                         "(it perturbs the previous latent the denoiser sees)", source)
    if not pn.max > 0:
        raise InputError(f"model.step.previous_noise.max: must be > 0, got {pn.max}", source)
    if not 0 <= pn.sample <= pn.max:
        raise InputError(f"model.step.previous_noise.sample: must be in [0, max = {pn.max}], got {pn.sample}",
                         source)


def from_dict(data: dict, source: str = "<config>") -> RunConfig:
    """Build and check a :class:`RunConfig` from a plain mapping."""
    return _check(_build(RunConfig, data, "", source), source)


def read_yaml(path: str | os.PathLike, example: str):
    """What a YAML config file holds (``yaml.safe_load``; None for an empty file), with one-line
    errors for a missing file or invalid YAML; ``example`` names a shipped config in the message."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file not found (expected a YAML file, e.g. {example})", path)
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"not valid YAML ({str(exc).splitlines()[0]})", path) from None


def with_data_path(cfg, data: str | os.PathLike | None):
    """``cfg`` (any config with a ``data.path``: MD, LIM, residual) with ``data.path`` set to
    ``data`` (``--data`` overrides the config); unchanged when ``data`` is None."""
    if not data:
        return cfg
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(Path(data))))


def config_type(path: str | os.PathLike) -> str | None:
    """The top-level ``type`` of a YAML config (``lim``, ``around``; None when absent or unreadable):
    which model family ``emulator-train`` fits."""
    try:
        data = read_yaml(path, "configs/demo.yaml")
    except (InputError, OSError, UnicodeDecodeError):
        return None
    return data.get("type") if isinstance(data, dict) else None


def load(path: str | os.PathLike) -> RunConfig:
    """Read a YAML config file strictly."""
    return from_dict(read_yaml(path, "configs/demo.yaml") or {}, str(path))


def to_dict(cfg: RunConfig) -> dict:
    return dataclasses.asdict(cfg)


def to_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def differences(a: RunConfig, b: RunConfig, ignore: tuple[str, ...] = ("data.path",)) -> list[str]:
    """Dotted keys whose values differ between two configs (``ignore`` skipped)."""
    out: list[str] = []

    def walk(x, y, prefix):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{prefix}{k}.")
        elif prefix.rstrip(".") not in ignore and x != y:
            out.append(f"{prefix.rstrip('.')} ({x!r} vs {y!r})")

    walk(to_dict(a), to_dict(b), "")
    return out


def check_periods(data: DataConfig, source: str) -> None:
    """InputError (one line, naming the key) unless every ``data.*_period`` is ``YYYY-MM:YYYY-MM``;
    shared by every config type (Monthly Diffusion, LIM, residual ensembles)."""
    for key in ("train_period", "valid_period", "test_period"):
        try:
            Period.parse(getattr(data, key))
        except ValueError as exc:
            raise InputError(f"data.{key}: {exc}", source) from None
