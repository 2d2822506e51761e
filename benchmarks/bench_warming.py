"""Benchmark: the forced response of a trained emulator to a uniform SST offset, vs the planted truth.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_warming.py --run outputs/demo/train \
        --data outputs/demo/synthetic [--start 2000-01 --end 2009-12 --members 3 --offset 2 4 --sampler ddim]

``--run`` is a neural checkpoint or a LIM one (``configs/lim.yaml``: its ``LimStepper``, with one
numpy generator per member; the LIM is linear, so its paired difference is exact).

Free runs from the reference state of ``--start`` with the dataset's SST and sea ice, and with SST
+``--offset`` K where it is defined (sea ice unchanged, as AI-MIP's +2K): the same member
generators in both, so their difference is the response, not noise. The first 24 months are
dropped (spin-up towards the new forcing); the time- and member-mean difference divided by the
offset is compared with the synthetic climate's ``<v>_warming_per_K`` (truth.nc): global means
(area-weighted, ``diagnostics.data.grid.global_mean``) and the pattern correlation of the maps.
The emulator's run API is used directly (the ``Stepper`` calls ``condition/init/step/decode`` of
``DiffusionStepper`` or ``LimStepper``), exactly as emulator-run calls it. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from diagnostics.data.grid import area_weights
from diagnostics.data.timeaxis import Period
from emulator import checkpoint
from emulator.data import load_split, open_prepared_dataset
from emulator.lim import checkpoint as lim_checkpoint
from emulator.lim.checkpoint import is_lim_checkpoint
from emulator.lim.rollout import LimStepper
from emulator.stepper import DiffusionStepper

SPIN_UP = 24


def free_run_mean(stepper, spec, split, members: int, offset: float, make_generators) -> np.ndarray:
    """Member- and time-mean state ``[C, H, W]`` of free runs after the spin-up (physical units).

    ``make_generators()`` gives fresh per-member generators (the same draws for every offset)."""
    gens = make_generators()
    tos = spec.forcing_names.index("tos")

    def forcing(t: int) -> torch.Tensor:
        f = torch.from_numpy(split.forcing[[t] * members].copy())
        f[:, tos] += offset  # NaN (land) stays NaN
        return f

    def month(t: int) -> torch.Tensor:
        return torch.from_numpy(split.month[[t] * members])

    total, count = 0.0, 0
    with torch.inference_mode():
        cond = stepper.condition(forcing(0), month(0))
        z = stepper.init(torch.from_numpy(split.state[[0] * members]), cond, gens)
        for t in range(len(split) - 1):
            cond_next = stepper.condition(forcing(t + 1), month(t + 1))
            z = stepper.step(z, cond, cond_next, gens)
            x = stepper.decode(z, cond_next, gens)
            cond = cond_next
            if t >= SPIN_UP:
                total, count = total + x.mean(0).numpy().astype(np.float64), count + 1
    return total / count


def load_stepper(run: str, sampler: str, seed: int, members: int):
    """(stepper, spec, generator factory) of a neural or LIM checkpoint."""
    if is_lim_checkpoint(run):
        lim = lim_checkpoint.load(run)[0]
        return LimStepper(lim), lim.spec, lambda: [np.random.default_rng(seed * 1000 + m) for m in range(members)]
    model = checkpoint.load_model(run, weights="ema")
    return (DiffusionStepper(model, sampler), model.spec,
            lambda: [torch.Generator().manual_seed(seed * 1000 + m) for m in range(members)])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="training run directory (holds checkpoint/)")
    p.add_argument("--data", required=True, help="the synthetic climate (md-synth directory with truth.nc)")
    p.add_argument("--start", default="2000-01")
    p.add_argument("--end", default="2009-12")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--offset", type=float, nargs="+", default=[2.0], help="SST offset(s) in K")
    p.add_argument("--sampler", default="ddim", choices=["ancestral", "ddim"])
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    stepper, spec, make_generators = load_stepper(args.run, args.sampler, args.seed, args.members)
    split = load_split(open_prepared_dataset(args.data), spec, Period.parse(f"{args.start}:{args.end}"), args.data)
    if len(split) <= SPIN_UP + 1:
        raise SystemExit(f"--start..--end must hold more than {SPIN_UP + 1} months")
    t0 = time.process_time()
    base = free_run_mean(stepper, spec, split, args.members, 0.0, make_generators)
    truth = xr.open_dataset(Path(args.data) / "truth.nc", engine="netcdf4")
    w = area_weights(np.asarray(spec.lat)).values[:, None]

    def gmean(a: np.ndarray) -> float:
        return float((a * w).mean() / w.mean())

    for offset in args.offset:
        response = (free_run_mean(stepper, spec, split, args.members, offset, make_generators) - base) / offset
        print(f"forced response to SST +{offset:g} K, {args.start}..{args.end} ({args.members} members, "
              f"{getattr(stepper, 'label', args.sampler)}, first {SPIN_UP} months dropped), run {args.run}; "
              f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
        print(f"{'channel':<8} {'emulator':>10} {'truth':>10} {'ratio':>7} {'pattern corr':>13}   (global means, units per K)")
        for c, (name, level) in enumerate(spec.channels):
            planted = truth[f"{name}_warming_per_K"]
            if "plev" in planted.dims:
                planted = planted.sel(plev=level * 100.0)
            planted = planted.transpose("lat", "lon").values
            corr = np.corrcoef(response[c].ravel(), planted.ravel())[0, 1]
            e, t = gmean(response[c]), gmean(planted)
            print(f"{spec.labels[c]:<8} {e:>10.4g} {t:>10.4g} {e / t:>7.2f} {corr:>13.2f}")
    print(f"CPU time {time.process_time() - t0:.1f} s")


if __name__ == "__main__":
    main()
