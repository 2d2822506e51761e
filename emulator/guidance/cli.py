"""``--guide`` for ``emulator-run``: parse the constraints, build their targets, wrap the stepper.

    --guide dry-mass          global-mean ps kept at its training-period climatology (per calendar month)
    --guide global-tas=+2     global-mean tas at its training-period climatology + 2 K
    --guide global-ps=-50     any state channel: global mean at climatology + offset (its units)
    --guide global-tas=+2 --guide humidity-scaling
                              and global-mean huss at its climatology x exp(0.07 x 2) (Clausius-Clapeyron)

``--guide`` repeats; the constraints are met together (one stacked observation vector).
``humidity-scaling[=RATE]`` scales the training-period climatology of the global-mean
near-surface specific humidity by ``exp(RATE x dT)``, dT the offset of the ``global-tas``
storyline (K), RATE 0.07 per K by default (:data:`CC_RATE_PER_K`). The climatologies are
area-weighted global means in the checkpoint's training period of its prepared dataset, per
calendar month (:func:`training_global_mean`).
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diagnostics.data import catalogue
from diagnostics.data.errors import InputError
from diagnostics.data.grid import global_mean
from diagnostics.data.timeaxis import Period, month_index, select_period

from . import METHODS

_NUMBER = r"[+-]?\d+(\.\d*)?([eE][+-]?\d+)?"
_SPEC = re.compile(rf"^global-(?P<label>[A-Za-z0-9]+)=(?P<offset>{_NUMBER})$")
_HUMIDITY = re.compile(rf"^humidity-scaling(=(?P<rate>{_NUMBER}))?$")
#: Default tolerance (observation-error std of the global mean) per channel, in its units.
#: huss: 3e-5 kg kg-1, about 0.3 % of its global mean (0.0094 in the demo training period), 1/50 of
#: the +2 K humidity response.
DEFAULT_SIGMA = {"ps": 10.0, "tas": 0.05, "huss": 3.0e-5}
#: Clausius-Clapeyron rate d ln e_s / dT (per K) at fixed relative humidity. The Tetens form of
#: e_s (diagnostics.io.levels) gives 17.502 x 240.97 / (T - 32.19)^2 = 6.7 %/K at 10 degC and
#: 7.3 %/K at 0 degC; the global-mean surface value is ~7 %/K (Held & Soden 2006, J. Clim. 19).
CC_RATE_PER_K = 0.07
#: The label of the derived humidity quantity of ``humidity-scaling``.
HUMIDITY = "huss"


@dataclass(frozen=True)
class GuideSpec:
    """One parsed ``--guide``: ``label`` the global quantity (a state channel, or ``huss`` for
    the humidity scaling), ``offset`` added to its climatology (units of the variable), or
    ``rate`` (per K) for ``humidity-scaling``; ``text`` as given."""

    text: str
    label: str
    offset: float = 0.0
    rate: float | None = None


def add_guide_arguments(p: argparse.ArgumentParser) -> None:
    """The guidance options of ``emulator-run`` (docs/guidance.md)."""
    p.add_argument("--guide", metavar="SPEC", action="append",
                   help="guided posterior sampling (repeatable): dry-mass (global-mean ps at its training-period "
                   "climatology), global-VAR=OFFSET (e.g. global-tas=+2), humidity-scaling[=RATE] (with a "
                   "global-tas storyline: global-mean huss x exp(RATE x offset), RATE 0.07/K); docs/guidance.md")
    p.add_argument("--guide-method", default="mmps", choices=METHODS, help="mmps (default) or dps (cheaper)")
    p.add_argument("--guide-sigma", type=float, default=None, metavar="TOL", action="append",
                   help="constraint tolerance, units of the variable (default 10 Pa for ps, 0.05 K for tas, "
                   "3e-5 for huss); none or one per --guide, in their order")
    p.add_argument("--guide-cg", type=int, default=3, help="MMPS conjugate-gradient steps (default 3)")
    p.add_argument("--guide-zeta", type=float, default=1.0, help="DPS step size (default 1)")


def parse_guide(text: str | list[str]) -> list[GuideSpec]:
    """``dry-mass`` -> ps + 0; ``global-tas=+2`` -> tas + 2; ``humidity-scaling[=RATE]``; a list: each,
    checked together (one constraint per quantity; humidity scaling needs a global-tas storyline).
    InputError (one line) otherwise."""
    specs = [_parse_one(t) for t in ([text] if isinstance(text, str) else text)]
    seen: set[str] = set()
    for s in specs:
        if s.label in seen:
            raise InputError(f"--guide: two constraints on the global mean of {s.label} "
                             f"({', '.join(x.text for x in specs if x.label == s.label)}); give one")
        seen.add(s.label)
    if any(s.rate is not None for s in specs) and "tas" not in seen:
        raise InputError("--guide humidity-scaling scales humidity with a warming storyline's tas offset: add "
                         "--guide global-tas=+DT (with dry-mass alone there is no warming to scale by)")
    return specs


def _parse_one(text: str) -> GuideSpec:
    if text == "dry-mass":
        return GuideSpec(text, "ps")
    hit = _SPEC.match(text)
    if hit:
        return GuideSpec(text, hit["label"], float(hit["offset"]))
    hit = _HUMIDITY.match(text)
    if hit:
        rate = float(hit["rate"]) if hit["rate"] else CC_RATE_PER_K
        if not 0.0 <= rate <= 0.2:
            raise InputError(f"--guide {text}: rate {rate:g} per K outside 0..0.2 (Clausius-Clapeyron: ~0.07)")
        return GuideSpec(text, HUMIDITY, rate=rate)
    raise InputError(f"--guide {text!r}: expected dry-mass, global-VAR=OFFSET (e.g. global-tas=+2) or "
                     "humidity-scaling[=RATE]")


def _monthly_climatology(series: np.ndarray, months: np.ndarray, what: str, period: str, dataset) -> np.ndarray:
    """Mean of ``series`` per calendar month 1..12 -> ``[12]``; InputError if a month is missing."""
    out = np.array([series[months == m].mean() if np.any(months == m) else np.nan for m in range(1, 13)])
    if not np.isfinite(out).all():
        raise InputError(f"--guide: the training period {period} lacks some calendar months of {what}", dataset)
    return out


def training_global_mean(dataset: str | Path, label: str, channels: list[tuple[str, int | None]],
                         labels: list[str], period: str) -> np.ndarray:
    """Area-weighted global mean of channel ``label`` per calendar month ``[12]`` over ``period``."""
    from ..data import _channel, open_prepared_dataset

    name, level = channels[labels.index(label)]
    sub = select_period(open_prepared_dataset(dataset), Period.parse(period))
    series = global_mean(_channel(sub, name, level, str(dataset))).values.astype(np.float64)
    return _monthly_climatology(series, month_index(sub["time"]) % 12 + 1, label, period, dataset)


def training_global_humidity(dataset: str | Path, period: str) -> np.ndarray:
    """Area-weighted global mean of near-surface specific humidity (kg kg-1) per calendar month ``[12]``
    over ``period``, derived per cell and month from the dataset's ``tdas`` and ``ps``
    (:func:`diagnostics.io.levels.huss_from_tdas`, the readers' formula): what the model's
    :class:`~.operators.GlobalMeanHumidity` computes from its own fields, so target and
    operator agree (a dataset's own ``huss`` is not used: it is the mean of the humidity, not
    the humidity of the mean dewpoint)."""
    from diagnostics.io.levels import huss_from_tdas

    from ..data import _channel, open_prepared_dataset

    sub = select_period(open_prepared_dataset(dataset), Period.parse(period))
    q = huss_from_tdas(_channel(sub, "tdas", None, str(dataset)), _channel(sub, "ps", None, str(dataset)))
    series = global_mean(q).values.astype(np.float64)
    return _monthly_climatology(series, month_index(sub["time"]) % 12 + 1, HUMIDITY, period, dataset)


def _check_sigmas(args: argparse.Namespace, specs: list[GuideSpec]) -> None:
    """None or one positive ``--guide-sigma`` per ``--guide``; InputError otherwise."""
    given = args.guide_sigma or []
    if given and len(given) != len(specs):
        raise InputError(f"--guide-sigma given {len(given)} time(s) for {len(specs)} --guide constraint(s): "
                         "give none (defaults) or one per --guide, in their order")
    for s, v in zip(specs, given):
        if not v > 0:
            raise InputError(f"--guide-sigma must be > 0, got {v} (for {s.text})")


def _sigmas(args: argparse.Namespace, specs: list[GuideSpec], target_spread: list[float]) -> list[float]:
    """The tolerances: as given, else :data:`DEFAULT_SIGMA` (1e-3 of the target's seasonal range otherwise)."""
    return list(args.guide_sigma or []) or [DEFAULT_SIGMA.get(s.label, 1e-3 * (ptp or 1.0))
                                            for s, ptp in zip(specs, target_spread)]


def _check_reachable(text: str, label: str, target: np.ndarray, name: str) -> None:
    lo, hi = catalogue.variable(name).valid_range
    if not (lo <= target.min() and target.max() <= hi):
        raise InputError(f"--guide {text}: target global mean {target.min():.6g}..{target.max():.6g} lies "
                         f"outside the plausible range {lo:g}..{hi:g} of {label}; this constraint cannot be reached")


def guided_stepper(model, sampler: str, steps: int | None, args: argparse.Namespace, meta: dict):
    """The stepper for ``emulator-run --guide``: a GuidedStepper around the checkpoint's model."""
    from .. import checkpoint
    from ..stepper import DiffusionStepper
    from .operators import GlobalMeanHumidity
    from .sampler import GuidanceConfig
    from .stepper import GlobalMeanGuide, GuidedStepper, StackedGuide

    specs = parse_guide(args.guide)
    _check_sigmas(args, specs)
    if args.guide_cg < 1:
        raise InputError(f"--guide-cg must be >= 1, got {args.guide_cg}")
    spec = model.spec
    labels = list(spec.labels)
    for s in specs:  # every channel check before the dataset is read
        derived = s.rate is not None and HUMIDITY not in labels
        missing = [c for c in ("tdas", "ps") if c not in labels] if derived else [s.label] * (s.label not in labels)
        if missing:
            what = f"neither huss nor {' and '.join(missing)}" if derived else f"does not emulate {s.label}"
            raise InputError(f"--guide {s.text}: the model {'emulates ' if derived else ''}{what} (its channels: "
                             f"{', '.join(labels)}); this constraint cannot be reached", meta["_dir"])
    cfg = checkpoint.config_of(meta)
    storyline = {s.label: s.offset for s in specs}.get("tas", 0.0)
    targets, operators = [], []
    for s in specs:
        if s.rate is not None and HUMIDITY not in labels:  # huss derived from the model's tdas and ps
            operators.append(GlobalMeanHumidity(labels.index("tdas"), labels.index("ps"), spec.lat))
            target = training_global_humidity(cfg.data.path, cfg.data.train_period) * np.exp(s.rate * storyline)
            _check_reachable(s.text, HUMIDITY, target, HUMIDITY)
        else:
            operators.append(None)
            clim = training_global_mean(cfg.data.path, s.label, list(spec.channels), labels, cfg.data.train_period)
            # humidity scaling of a model with huss in its state: scale its own global mean
            target = clim * np.exp(s.rate * storyline) if s.rate is not None else clim + s.offset
            _check_reachable(s.text, s.label, target, spec.channels[labels.index(s.label)][0])
        targets.append(target)
    sigmas = _sigmas(args, specs, [float(np.ptp(t)) for t in targets])
    guides = [GlobalMeanGuide(s.label, labels.index(s.label) if s.label in labels else -1, spec.lat, t, sig,
                              name=s.text, operator=op)
              for s, t, sig, op in zip(specs, targets, sigmas, operators)]
    guide = guides[0] if len(guides) == 1 else StackedGuide(guides)
    gcfg = GuidanceConfig(method=args.guide_method, cg_iters=args.guide_cg, zeta=args.guide_zeta)
    return GuidedStepper(DiffusionStepper(model, sampler, steps), guide, gcfg)
