"""Benchmark: the forced response of a trained emulator to a uniform SST offset, vs the planted truth.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_warming.py --run outputs/demo/train \
        --data outputs/demo/synthetic [--start 2000-01 --end 2009-12 --members 3 --offset 2 --sampler ddim]

Free runs from the reference state of ``--start`` with the dataset's SST and sea ice, and with SST
+``--offset`` K where it is defined (sea ice unchanged, as AI-MIP's +2K): the same member
generators in both, so their difference is the response, not noise. The first 24 months are
dropped (spin-up towards the new forcing); the time- and member-mean difference divided by the
offset is compared with the synthetic climate's ``<v>_warming_per_K`` (truth.nc): global means
(area-weighted, ``diagnostics.data.grid.global_mean``) and the pattern correlation of the maps.
The emulator's run API is used directly (``DiffusionStepper.init/step/decode``), exactly as emulator-run
calls it. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import platform
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from diagnostics.data.grid import area_weights
from diagnostics.data.timeaxis import Period
from emulator import checkpoint
from emulator.data import load_split, open_prepared_dataset
from emulator.stepper import DiffusionStepper

SPIN_UP = 24


def free_run_mean(model, split, members: int, offset: float, sampler: str, seed: int) -> np.ndarray:
    """Member- and time-mean state ``[C, H, W]`` of free runs after the spin-up (physical units)."""
    gens = [torch.Generator().manual_seed(seed * 1000 + m) for m in range(members)]
    tos = model.forcing_names.index("tos")

    def forcing(t: int) -> torch.Tensor:
        f = torch.from_numpy(split.forcing[[t] * members].copy())
        f[:, tos] += offset  # NaN (land) stays NaN
        return f

    def month(t: int) -> torch.Tensor:
        return torch.from_numpy(split.month[[t] * members])

    total, count = 0.0, 0
    stepper = DiffusionStepper(model, sampler)
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="training run directory (holds checkpoint/)")
    p.add_argument("--data", required=True, help="the synthetic climate (md-synth directory with truth.nc)")
    p.add_argument("--start", default="2000-01")
    p.add_argument("--end", default="2009-12")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--offset", type=float, default=2.0, help="SST offset in K")
    p.add_argument("--sampler", default="ddim", choices=["ancestral", "ddim"])
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    model = checkpoint.load_model(args.run, weights="ema")
    split = load_split(open_prepared_dataset(args.data), model.spec, Period.parse(f"{args.start}:{args.end}"), args.data)
    if len(split) <= SPIN_UP + 1:
        raise SystemExit(f"--start..--end must hold more than {SPIN_UP + 1} months")
    base = free_run_mean(model, split, args.members, 0.0, args.sampler, args.seed)
    warm = free_run_mean(model, split, args.members, args.offset, args.sampler, args.seed)
    response = (warm - base) / args.offset
    truth = xr.open_dataset(Path(args.data) / "truth.nc", engine="netcdf4")
    w = area_weights(np.asarray(model.spec.lat)).values[:, None]

    def gmean(a: np.ndarray) -> float:
        return float((a * w).mean() / w.mean())

    print(f"forced response to SST +{args.offset:g} K, {args.start}..{args.end} ({args.members} members, "
          f"{args.sampler}, first {SPIN_UP} months dropped), run {args.run}; "
          f"{platform.processor() or platform.machine()}, torch {torch.__version__}")
    print(f"{'channel':<8} {'emulator':>10} {'truth':>10} {'ratio':>7} {'pattern corr':>13}   (global means, units per K)")
    for c, (name, level) in enumerate(model.channels):
        planted = truth[f"{name}_warming_per_K"]
        if "plev" in planted.dims:
            planted = planted.sel(plev=level * 100.0)
        planted = planted.transpose("lat", "lon").values
        corr = np.corrcoef(response[c].ravel(), planted.ravel())[0, 1]
        e, t = gmean(response[c]), gmean(planted)
        print(f"{model.spec.labels[c]:<8} {e:>10.4g} {t:>10.4g} {e / t:>7.2f} {corr:>13.2f}")


if __name__ == "__main__":
    main()
