"""The residual ensembles behind ``emulator-train`` (``type: around``) and ``emulator-run --around``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def fit_command(args: argparse.Namespace) -> int:
    """``emulator-train --config configs/around.yaml --data MEMBERS --out DIR``."""
    from diagnostics.data.errors import ensure_output_dir

    from ..config import with_data_path
    from . import config as around_config
    from .train import fit_dataset

    cfg = around_config.load(args.config)
    cfg = with_data_path(cfg, args.data)
    out = ensure_output_dir(Path(args.out) if args.out else Path("outputs") / cfg.name, "--out")
    target, info = fit_dataset(cfg, out, resume=args.resume)
    print(f"residual model: {info['members']} members ({info['pairs']} ordered pairs) x {info['months']} months "
          f"({info['train_period']}); mean step a = {info['mean_a']:.3f}, b = {info['mean_b']:.3f}, d = {info['mean_d']:.3f}, innovation "
          f"variance fraction {info['innovation_fraction']:.3f}; encode {info['encode_s']:.1f} s, fit "
          f"{info['fit_s']:.1f} s, diffusion {info['diffusion_s']:.1f} s")
    print(f"checkpoint: {target}")
    return 0


def prepare_run(args: argparse.Namespace, cfg) -> tuple:
    """(``ResidualStepper``, forcing + conditioning run, initial state, identity) for
    :func:`emulator.rollout.run_rollout`; the initial state is the conditioning run's start month."""
    from diagnostics.io.writer import read_manifest

    from .. import checkpoint as md_checkpoint
    from ..forcing import ForcingReader, forcing_directory
    from ..stepper import DiffusionStepper
    from ..train import resolve_device
    from . import checkpoint
    from .stepper import AroundForcing, ResidualStepper, read_conditioning_run

    model, meta, emeta = checkpoint.load(args.checkpoint)
    spec = md_checkpoint.spec_from_meta(emeta)
    states, around_id = read_conditioning_run(args.around, spec, cfg.start, cfg.end, args.around_member)
    # forcing: --forcing, else the conditioning dataset itself when it is a prepared one, else the encoder's data
    given = args.forcing or (args.around if _is_prepared(args.around) else None)
    forcing_dir = forcing_directory(given, md_checkpoint.config_of(emeta).data.path, args.checkpoint)
    forcing = ForcingReader(forcing_dir, spec, cfg.start, cfg.end, cfg.offset)
    device = resolve_device(args.device)
    md = DiffusionStepper(md_checkpoint.load_model(emeta["_dir"], device=device, weights="ema"), "ancestral")
    mcfg = checkpoint.config_of(meta).model
    scale = meta["fit"].get("decoder_noise_scale") if mcfg.decoder_noise == "reconstruction" else None
    stepper = ResidualStepper(model, md, args.steps or mcfg.steps, scale)
    manifest = read_manifest(forcing_dir) or {}
    identity = {"checkpoint_sha256": meta["sha256"]["residual.safetensors"], "model": "around",
                "encoder_sha256": meta["encoder_sha256"], "forcing": os.path.abspath(forcing_dir),
                "forcing_fingerprint": manifest.get("fingerprint"), "around": around_id}
    return stepper, AroundForcing(forcing, states), states[0], identity


def _is_prepared(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "dataset.zarr"))
