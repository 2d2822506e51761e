"""The LIM behind ``emulator-train`` and ``emulator-run`` (they dispatch here on the config's
``type: lim`` and on the checkpoint's format; the arguments are theirs)."""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path


def fit_command(args: argparse.Namespace) -> int:
    """``emulator-train --config configs/lim.yaml --data DIR --out DIR``."""
    from . import config as lim_config
    from .train import fit_dataset

    cfg = lim_config.load(args.config)
    if args.data:
        cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, path=str(Path(args.data))))
    out = Path(args.out) if args.out else Path("outputs") / cfg.name
    target, info = fit_dataset(cfg, out, resume=args.resume)
    print(f"LIM: {info['modes']} modes, {info['forcing_predictors']} forcing predictors, {info['residual_modes']} "
          f"noise modes on {info['training_months']} months ({info['train_period']}): "
          f"{100 * info['resolved_variance_fraction']:.1f} % of the anomaly variance resolved, "
          f"{100 * info['residual_variance_fraction']:.1f} % as white noise; spectral radius "
          f"{info['spectral_radius']:.3f}; fit {info['fit_s']:.2f} s (read {info['read_s']:.2f} s)")
    print(f"checkpoint: {target}")
    return 0


def run_command(args: argparse.Namespace, cfg, out: Path) -> int:
    """``emulator-run --checkpoint LIMDIR ...``; ``cfg`` is the checked :class:`RolloutConfig`
    (its sampler and steps do not apply to a LIM; --device, --batch-size and --weights neither)."""
    from diagnostics.io.writer import read_manifest

    from ..forcing import ForcingReader, forcing_directory, resolve_initial_state
    from . import checkpoint
    from .rollout import run_lim

    lim, meta = checkpoint.load(args.checkpoint)
    forcing_dir = forcing_directory(args.forcing, checkpoint.config_of(meta).data.path, args.checkpoint)
    forcing = ForcingReader(forcing_dir, lim.spec, cfg.start, cfg.end, cfg.offset)
    initial, init_id = resolve_initial_state(args.initial_state, forcing_dir, lim.spec, cfg.start)
    manifest = read_manifest(forcing_dir) or {}
    identity = {"checkpoint_sha256": meta["sha256"]["lim.safetensors"], "model": "lim",
                "forcing": os.path.abspath(forcing_dir), "forcing_fingerprint": manifest.get("fingerprint"),
                "initial_state": init_id}
    state = run_lim(lim, forcing, initial, cfg, out, identity, resume=args.resume, progress=not args.no_progress and sys.stderr.isatty())  # bars on a terminal only
    s = state.summary
    rate = s.get("member_months_per_s")
    print(f"emulator-run: LIM {cfg.members} member(s) x {state.total} months ({cfg.experiment_id}) complete: "
          f"{s.get('files')} files, {s.get('output_bytes', 0) / 1e6:.1f} MB in {out}; "
          f"wall {s.get('wall_s', 0):.1f} s, " + (f"{rate:.3g} member-months/s" if rate else "nothing left to compute"))
    return 0
