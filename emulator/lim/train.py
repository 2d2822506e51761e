"""Fit a LIM on the training years of a prepared dataset and write its checkpoint.

    emulator-train --config configs/lim.yaml --data /tmp/synth --out outputs/lim

The training period (``data.train_period``) is read into memory with the emulator's own
readers (:func:`emulator.data.load_split`, every month checked), its statistics computed with
:func:`emulator.data.compute_stats` (the same monthly climatologies and anomaly scales as the
neural emulator's ``anomaly`` / ``forcing_anomaly`` options), then :func:`.model.fit`.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Period

from ..checkpoint import CHECKPOINT_DIR
from ..data import compute_stats, data_spec, load_split, open_prepared_dataset
from . import checkpoint
from .config import LimConfig
from .model import fit


def fit_dataset(cfg: LimConfig, out_dir: str | Path, resume: bool = False) -> tuple[Path, dict]:
    """Fit on ``cfg.data.path`` and write ``out_dir/checkpoint``; returns (checkpoint dir, fit summary).

    An existing checkpoint is never overwritten: without ``resume`` it is refused; with
    ``resume`` a checkpoint of the same configuration is reported as done (a fit takes seconds,
    there is nothing to continue), one of another configuration refused.
    """
    out = Path(out_dir)
    target = out / CHECKPOINT_DIR
    if target.exists():
        if not resume:
            raise InputError("run directory already holds a checkpoint; choose another --out "
                             "(or --resume to accept the finished fit)", out)
        meta = checkpoint.read_meta(target)
        if dataclasses.asdict(checkpoint.config_of(meta)) != dataclasses.asdict(cfg):
            raise InputError("the checkpoint here was fitted with another configuration; choose another --out", out)
        return target, meta["fit"]
    if not cfg.data.path:
        raise InputError("no dataset: give --data DIR (a prepared dataset from md-prepare or md-synth)")
    source = str(cfg.data.path)
    ds = open_prepared_dataset(source)
    if cfg.model.global_sst and "tos" not in cfg.data.forcings:
        raise InputError("model.global_sst needs tos among data.forcings", source)
    spec = data_spec(ds, cfg.data.state, cfg.data.forcings, [], source)
    t0 = time.perf_counter()
    split = load_split(ds, spec, Period.parse(cfg.data.train_period), source)
    t_read = time.perf_counter() - t0
    stats = compute_stats(split, spec, anomaly=True, forcing_anomaly=True)
    m = cfg.model
    try:
        lim, info = fit(spec, split.state, split.forcing, split.month, stats, m.modes, m.forcing_modes,
                        m.residual_modes, m.global_sst, m.noise, m.ridge, m.seasonal_ridge)
    except ValueError as exc:
        raise InputError(f"cannot fit the LIM on {cfg.data.train_period}: {exc}", source) from None
    if info["spectral_radius"] >= 1.0:
        raise InputError(f"the fitted operator is unstable (spectral radius {info['spectral_radius']:.4f} >= 1); "
                         "use fewer model.modes or a larger model.ridge", source)
    info.update({"train_period": cfg.data.train_period, "read_s": round(t_read, 3),
                 "fit_s": round(time.perf_counter() - t0 - t_read, 3)})
    checkpoint.save(target, lim, cfg, info)
    return target, info
