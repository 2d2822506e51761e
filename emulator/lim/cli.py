"""The LIM behind ``emulator-train`` and ``emulator-run`` (they dispatch here on the config's
``type: lim`` and on the checkpoint's format; the arguments are theirs)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def fit_command(args: argparse.Namespace) -> int:
    """``emulator-train --config configs/lim.yaml --data DIR --out DIR``."""
    from diagnostics.data.errors import ensure_output_dir

    from ..config import with_data_path
    from . import config as lim_config
    from .train import fit_dataset

    cfg = lim_config.load(args.config)
    cfg = with_data_path(cfg, args.data)
    out = ensure_output_dir(Path(args.out) if args.out else Path("outputs") / cfg.name, "--out")  # before the data
    target, info = fit_dataset(cfg, out, resume=args.resume)
    print(f"LIM: {info['modes']} modes, {info['forcing_predictors']} forcing predictors, {info['residual_modes']} "
          f"noise modes on {info['training_months']} months ({info['train_period']}): "
          f"{100 * info['resolved_variance_fraction']:.1f} % of the anomaly variance resolved, "
          f"{100 * info['residual_variance_fraction']:.1f} % as white noise; spectral radius "
          f"{info['spectral_radius']:.3f}; fit {info['fit_s']:.2f} s (read {info['read_s']:.2f} s)")
    print(f"checkpoint: {target}")
    return 0


def prepare_run(args: argparse.Namespace, cfg) -> tuple:
    """What ``emulator-run --checkpoint LIMDIR`` runs: (:class:`~.rollout.LimStepper`, forcing,
    initial state, identity) for :func:`emulator.rollout.run_rollout`; ``cfg`` is the checked
    :class:`RolloutConfig` (its sampler and steps do not apply to a LIM; --device and --weights neither)."""
    from diagnostics.io.writer import read_manifest

    from ..forcing import ForcingReader, forcing_directory, resolve_initial_state
    from . import checkpoint
    from .rollout import LimStepper

    lim, meta = checkpoint.load(args.checkpoint)
    forcing_dir = forcing_directory(args.forcing, checkpoint.config_of(meta).data.path, args.checkpoint)
    forcing = ForcingReader(forcing_dir, lim.spec, cfg.start, cfg.end, cfg.offset)
    initial, init_id = resolve_initial_state(args.initial_state, forcing_dir, lim.spec, cfg.start)
    manifest = read_manifest(forcing_dir) or {}
    identity = {"checkpoint_sha256": meta["sha256"]["lim.safetensors"], "model": "lim",
                "forcing": os.path.abspath(forcing_dir), "forcing_fingerprint": manifest.get("fingerprint"),
                "initial_state": init_id}
    return LimStepper(lim), forcing, initial, identity
