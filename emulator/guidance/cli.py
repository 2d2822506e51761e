"""``--guide`` for ``emulator-run``: parse the constraint, build its target, wrap the stepper.

    --guide dry-mass          global-mean ps kept at its training-period climatology (per calendar month)
    --guide global-tas=+2     global-mean tas at its training-period climatology + 2 K
    --guide global-ps=-50     any state channel: global mean at climatology + offset (its units)

The climatology is the area-weighted global mean of the channel in the checkpoint's training
period of its prepared dataset, per calendar month (:func:`training_global_mean`).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

from diagnostics.data import catalogue
from diagnostics.data.errors import InputError
from diagnostics.data.grid import global_mean
from diagnostics.data.timeaxis import Period, month_index, select_period

from . import METHODS

_SPEC = re.compile(r"^global-(?P<label>[A-Za-z0-9]+)=(?P<offset>[+-]?\d+(\.\d*)?([eE][+-]?\d+)?)$")
#: Default tolerance (observation-error std of the global mean) per channel, in its units.
DEFAULT_SIGMA = {"ps": 10.0, "tas": 0.05}


def add_guide_arguments(p: argparse.ArgumentParser) -> None:
    """The guidance options of ``emulator-run`` (docs/guidance.md)."""
    p.add_argument("--guide", metavar="SPEC", help="guided posterior sampling: dry-mass (global-mean ps at its "
                   "training-period climatology) or global-VAR=OFFSET, e.g. global-tas=+2 (see docs/guidance.md)")
    p.add_argument("--guide-method", default="mmps", choices=METHODS, help="mmps (default) or dps (cheaper)")
    p.add_argument("--guide-sigma", type=float, default=None, metavar="TOL",
                   help="constraint tolerance, units of the variable (default 10 Pa for ps, 0.05 K for tas)")
    p.add_argument("--guide-cg", type=int, default=3, help="MMPS conjugate-gradient steps (default 3)")
    p.add_argument("--guide-zeta", type=float, default=1.0, help="DPS step size (default 1)")


def parse_guide(text: str) -> tuple[str, float]:
    """``dry-mass`` -> ("ps", 0); ``global-tas=+2`` -> ("tas", 2.0); InputError otherwise."""
    if text == "dry-mass":
        return "ps", 0.0
    hit = _SPEC.match(text)
    if not hit:
        raise InputError(f"--guide {text!r}: expected dry-mass or global-VAR=OFFSET (e.g. global-tas=+2)")
    return hit["label"], float(hit["offset"])


def training_global_mean(dataset: str | Path, label: str, channels: list[tuple[str, int | None]],
                         labels: list[str], period: str) -> np.ndarray:
    """Area-weighted global mean of channel ``label`` per calendar month ``[12]`` over ``period``."""
    from ..data import _channel, open_prepared_dataset

    name, level = channels[labels.index(label)]
    sub = select_period(open_prepared_dataset(dataset), Period.parse(period))
    series = global_mean(_channel(sub, name, level, str(dataset))).values.astype(np.float64)
    months = month_index(sub["time"]) % 12 + 1
    out = np.array([series[months == m].mean() if np.any(months == m) else np.nan for m in range(1, 13)])
    if not np.isfinite(out).all():
        raise InputError(f"--guide: the training period {period} lacks some calendar months of {label}", dataset)
    return out


def guided_stepper(model, sampler: str, steps: int | None, args: argparse.Namespace, meta: dict):
    """The stepper for ``emulator-run --guide``: a GuidedStepper around the checkpoint's model."""
    from .. import checkpoint
    from ..stepper import DiffusionStepper
    from .sampler import GuidanceConfig
    from .stepper import GlobalMeanGuide, GuidedStepper

    label, offset = parse_guide(args.guide)
    spec = model.spec
    labels = list(spec.labels)
    if label not in labels:
        raise InputError(f"--guide {args.guide}: the model does not emulate {label} (its channels: "
                         f"{', '.join(labels)}); this constraint cannot be reached", meta["_dir"])
    cfg = checkpoint.config_of(meta)
    target = training_global_mean(cfg.data.path, label, list(spec.channels), labels, cfg.data.train_period) + offset
    name, level = spec.channels[labels.index(label)]
    lo, hi = catalogue.variable(name).valid_range
    if not (lo <= target.min() and target.max() <= hi):
        raise InputError(f"--guide {args.guide}: target global mean {target.min():.6g}..{target.max():.6g} lies "
                         f"outside the plausible range {lo:g}..{hi:g} of {label}; this constraint cannot be reached")
    sigma = args.guide_sigma if args.guide_sigma is not None else DEFAULT_SIGMA.get(label, 1e-3 * float(np.ptp(target) or 1.0))
    if not sigma > 0:
        raise InputError(f"--guide-sigma must be > 0, got {sigma}")
    if args.guide_cg < 1:
        raise InputError(f"--guide-cg must be >= 1, got {args.guide_cg}")
    guide = GlobalMeanGuide(label, labels.index(label), spec.lat, target, sigma,
                            name="dry-mass" if args.guide == "dry-mass" else args.guide)
    gcfg = GuidanceConfig(method=args.guide_method, cg_iters=args.guide_cg, zeta=args.guide_zeta)
    return GuidedStepper(DiffusionStepper(model, sampler, steps), guide, gcfg)
