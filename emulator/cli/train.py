"""``emulator-train``: train (or resume) a Monthly Diffusion emulator on a prepared dataset.

    emulator-train --config configs/demo.yaml --data /tmp/synth --out outputs/demo-run
    emulator-train --config configs/demo.yaml --data /tmp/synth --out outputs/demo-run --resume
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from diagnostics.data.errors import InputError, add_debug_flag, cli_entry, ensure_output_dir

from .. import config as config_mod


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emulator-train", description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True, help="YAML run configuration, e.g. configs/demo.yaml")
    p.add_argument("--data", help="prepared dataset directory (dataset.zarr + manifest.json); "
                                  "overrides data.path of the config")
    p.add_argument("--out", help="run directory (default outputs/<config name>)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--max-epochs", type=int, help="stop after this many epochs in total (the learning-rate "
                                                  "schedule still follows train.epochs of the config)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (there are none unless stderr is "
                                                               "a terminal)")
    return p


def _main(argv: list[str]) -> int:
    args = add_debug_flag(_parser()).parse_args(argv)
    from ..lim.config import is_lim_config

    if is_lim_config(args.config):  # type: lim -> the linear inverse model (emulator/lim)
        from ..lim.cli import fit_command
        return fit_command(args)
    from ..residual.config import is_around_config

    if is_around_config(args.config):  # type: around -> residual ensembles (emulator/residual)
        from ..residual.cli import fit_command as around_fit
        return around_fit(args)
    cfg = config_mod.load(args.config)
    cfg = config_mod.with_data_path(cfg, args.data)
    if args.max_epochs is not None and args.max_epochs < 1:
        raise InputError(f"--max-epochs must be >= 1, got {args.max_epochs}")
    from ..train import Trainer  # torch import after argument checks keeps --help fast

    out = ensure_output_dir(Path(args.out) if args.out else Path("outputs") / cfg.name, "--out")  # before the data
    trainer = Trainer(cfg, out, device=args.device, resume=args.resume, max_epochs=args.max_epochs,
                      progress=not args.no_progress and sys.stderr.isatty())  # bars on a terminal only
    trainer.run()
    print(f"checkpoint: {out / 'checkpoint'}  metrics: {out / 'metrics.csv'}")
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    raise SystemExit(main())
