"""``emulator-run``: AI-MIP ensemble rollout of a trained Monthly Diffusion checkpoint.

    emulator-run --checkpoint outputs/demo-train --experiment historical --members 5 --out runs/hist
    emulator-run --checkpoint outputs/demo-train --experiment p2k --members 5 --out runs/p2k
    emulator-run ... --resume            # continue a killed run (same arguments)

Forcing (tos, siconc) and the initial state come from the prepared dataset the checkpoint was
trained on, or from --forcing DIR. See docs/rollout.md.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from diagnostics.data.errors import InputError, add_debug_flag, cli_entry
from diagnostics.data.timeaxis import Month

from ..guidance.cli import add_guide_arguments, parse_guide


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emulator-run", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="training run directory or its checkpoint/ folder")
    p.add_argument("--experiment", required=True, help="historical (aimip), p2k (aimip-p2k) or p4k (aimip-p4k)")
    p.add_argument("--sst-offset", type=float, default=None, metavar="K",
                   help="uniform SST offset in K where SST is defined (default 0 / 2 / 4 by experiment)")
    p.add_argument("--forcing", metavar="DIR", help="prepared dataset with tos and siconc for the run's months "
                                                    "(default: the dataset the checkpoint was trained on)")
    p.add_argument("--members", type=int, default=5, help="ensemble members r1..rN (default 5, as AI-MIP)")
    p.add_argument("--start", default="1978-10", help="first month YYYY-MM (default 1978-10)")
    p.add_argument("--end", default="2024-12", help="last month YYYY-MM (default 2024-12)")
    p.add_argument("--initial-state", metavar="DIR|DATE",
                   help="initial state: a prepared dataset DIR (its state of --start) or a month YYYY-MM of the "
                        "forcing dataset (lagged start); default the forcing dataset's state of --start")
    p.add_argument("--perturb", type=float, default=0.0, metavar="SCALE",
                   help="perturb each member's initial state by white noise of this std (normalised units)")
    p.add_argument("--out", help="run directory (default outputs/<model-name>-<experiment>)")
    p.add_argument("--seed", type=int, default=0, help="seed; member m, month k draw from hash(seed, m, k)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--resume", action="store_true", help="continue the unfinished run in --out")
    p.add_argument("--sampler", default="ancestral", help="ancestral (DDPM, default) or ddim (deterministic); "
                                                          "any other name is refused")
    p.add_argument("--steps", type=int, default=None, help="denoising steps (default: the checkpoint's, 15 / 5)")
    p.add_argument("--batch-size", type=int, default=None, help="members per device batch (default all)")
    p.add_argument("--format", default="netcdf", help="netcdf (AI-MIP files, default) or zarr (one store)")
    p.add_argument("--model-name", default=None, help="model name in file names (default MD-1p5, LIM for a LIM)")
    p.add_argument("--weights", default="ema", choices=["ema", "model"], help="checkpoint weights (default ema)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (there is none unless stderr is a "
                                                               "terminal)")
    p.add_argument("--around", metavar="PATH", help="residual ensembles: members around the trajectory in PATH "
                                                    "(AI-MIP files or a prepared dataset), with a --checkpoint of "
                                                    "emulator-train --config configs/around.yaml (docs/residual.md)")
    p.add_argument("--around-member", type=int, default=None, metavar="M",
                   help="member of --around to condition on when it holds several (default the first)")
    add_guide_arguments(p)
    add_debug_flag(p)
    return p


def _month(text: str, flag: str) -> Month:
    try:
        return Month.parse(text)
    except ValueError as exc:
        raise InputError(f"{flag}: {exc}") from None


def _refuse_inapplicable(args: argparse.Namespace, kind: str | None) -> None:
    """A one-line error for an option the checkpoint ``kind`` would silently ignore (a LIM has no
    sampler and one set of weights; a residual ensemble also starts from its conditioning run)."""
    if args.around_member is not None and not args.around:
        raise InputError("--around-member applies only with --around PATH")
    if kind is None:
        return
    given = [opt for opt, on in (("--sampler", args.sampler != "ancestral"), ("--weights", args.weights != "ema"),
                                 ("--initial-state", kind != "LIM" and args.initial_state is not None)) if on]
    if given:
        raise InputError(f"{', '.join(given)} does not apply to a {kind} checkpoint", args.checkpoint)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from ..lim.checkpoint import is_lim_checkpoint
    from ..rollout import RolloutConfig, check_out_dir  # torch import after the cheap checks keeps --help fast

    from ..residual.checkpoint import is_around_checkpoint

    lim, around = is_lim_checkpoint(args.checkpoint), is_around_checkpoint(args.checkpoint)
    if around != bool(args.around):
        raise InputError("--around needs a residual-ensemble checkpoint (emulator-train --config configs/around.yaml)"
                         if args.around else "a residual-ensemble checkpoint runs with --around PATH (the "
                         "trajectory to generate members around)", args.checkpoint)
    cfg = RolloutConfig(experiment=args.experiment, members=args.members, start=_month(args.start, "--start"),
                        end=_month(args.end, "--end"), sst_offset=args.sst_offset, seed=args.seed,
                        sampler=args.sampler, steps=args.steps, perturb=args.perturb,
                        model_name=args.model_name or ("LIM" if lim else "MD-around" if around else "MD-1p5"), format=args.format).check()
    if args.batch_size is not None and args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.guide:
        parse_guide(args.guide)  # a bad spec fails before the checkpoint loads

    out = Path(args.out) if args.out else Path("outputs") / f"{cfg.model_name}-{args.experiment}"
    check_out_dir(out, args.resume)  # before the checkpoint, the forcing and the model are read
    if lim and args.guide:
        raise InputError("--guide steers the diffusion sampler; a linear inverse model has none", args.checkpoint)
    if around and args.guide:
        raise InputError("--guide and --around cannot be combined (the residual sampler is not guided)")
    _refuse_inapplicable(args, "LIM" if lim else "residual-ensemble" if around else None)
    if around:  # residual ensembles around a conditioning run (emulator/residual)
        from ..residual.cli import prepare_run as prepare_around

        stepper, forcing, initial, identity = prepare_around(args, cfg)
        return _run(stepper, forcing, initial, cfg, out, identity, args, "around ")
    if lim:  # a linear inverse model (emulator/lim) behind the same rollout
        from ..lim.cli import prepare_run

        stepper, forcing, initial, identity = prepare_run(args, cfg)
        return _run(stepper, forcing, initial, cfg, out, identity, args, "LIM ")
    from .. import checkpoint
    from ..forcing import ForcingReader, forcing_directory, resolve_initial_state
    from ..train import resolve_device

    meta = checkpoint.read_meta(args.checkpoint)
    forcing_dir = forcing_directory(args.forcing, checkpoint.config_of(meta).data.path, args.checkpoint)
    spec = checkpoint.spec_from_meta(meta)
    forcing = ForcingReader(forcing_dir, spec, cfg.start, cfg.end, cfg.offset)
    initial, init_id = resolve_initial_state(args.initial_state, forcing_dir, spec, cfg.start)

    device = resolve_device(args.device)
    model = checkpoint.load_model(meta["_dir"], device=device, weights=args.weights)
    if args.guide:  # docs/guidance.md
        from ..guidance.cli import guided_stepper

        model = guided_stepper(model, cfg.sampler, cfg.steps, args, meta)
    from diagnostics.io.writer import read_manifest

    manifest = read_manifest(forcing_dir) or {}
    identity = {"checkpoint_sha256": meta["sha256"][f"{args.weights}.safetensors"], "weights": args.weights,
                "forcing": os.path.abspath(forcing_dir), "forcing_fingerprint": manifest.get("fingerprint"),
                "initial_state": init_id}
    return _run(model, forcing, initial, cfg, out, identity, args)


def _run(stepper, forcing, initial, cfg, out: Path, identity: dict, args: argparse.Namespace, what: str = "") -> int:
    """Run (or resume) the rollout and print its one-line summary."""
    from ..rollout import run_rollout

    # progress bars only on a terminal: redraws written into a log file are noise (issue 16)
    state = run_rollout(stepper, forcing, initial, cfg, out, identity, resume=args.resume,
                        batch_size=args.batch_size, progress=not args.no_progress and sys.stderr.isatty())
    s = state.summary
    rate = s.get("member_months_per_s")
    print(f"emulator-run: {what}{cfg.members} member(s) x {state.total} months ({cfg.experiment_id}) complete: "
          f"{s.get('files')} files, {s.get('output_bytes', 0) / 1e6:.1f} MB in {out}; "
          f"wall {s.get('wall_s', 0):.1f} s, " + (f"{rate:.3g} member-months/s" if rate else "nothing left to compute"))
    return 0


main = cli_entry(_main, resume_hint="rerun the same command with --resume to continue")

if __name__ == "__main__":
    raise SystemExit(main())
