"""Guided sampling: drift of the global-mean ``ps`` with and without ``--guide dry-mass``, and the
cost per step as a ratio to unguided sampling, on a trained checkpoint's own dataset.

    OMP_NUM_THREADS=1 python benchmarks/bench_guidance.py --checkpoint /tmp/wind/train --months 120 --members 3
    python benchmarks/bench_guidance.py --checkpoint C --months 555 --members 2 --device cuda

Every case runs the same stepper calls as ``emulator-run`` (condition / init / step / decode,
member generators seeded by (seed, member, month)) in memory, from the dataset's state of
``--start``, with the dataset's own forcing. Drift: the area-weighted global mean of ``ps``
minus its training-period climatology of the same calendar month (what ``--guide dry-mass``
targets), per member and month; reported as the mean over members of the last 12 months
(drift), the RMS over all months after the first, and the largest excursion. Cost: wall
time of the step + decode calls only, side by side in one process (ratios to unguided).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch

from diagnostics.data.timeaxis import Month
from emulator import checkpoint
from emulator.forcing import ForcingReader, initial_state
from emulator.guidance.cli import training_global_mean
from emulator.guidance.operators import GlobalMean
from emulator.guidance.sampler import GuidanceConfig
from emulator.guidance.stepper import GlobalMeanGuide, GuidedStepper
from emulator.rollout import member_generators
from emulator.stepper import DiffusionStepper


def rollout_global_mean(stepper, forcing: ForcingReader, x0: np.ndarray, members: int, seed: int,
                        op: GlobalMean) -> tuple[np.ndarray, float]:
    """Global mean ``[months, members]`` of the operator's channel, and the step+decode wall time (s)."""
    ids = list(range(1, members + 1))
    out = np.empty((len(forcing), members))
    month0 = forcing.calendar_month(0)
    cond = stepper.condition(torch.from_numpy(forcing.month(0)).unsqueeze(0).expand(members, -1, -1, -1),
                             torch.full((members,), month0))
    x = torch.from_numpy(x0).float().unsqueeze(0).expand(members, -1, -1, -1).contiguous()
    z = stepper.init(x, cond, member_generators(seed, ids, 0, stepper.device))
    out[0] = op(x).squeeze(-1).numpy()
    wall = 0.0
    for k in range(1, len(forcing)):
        m = forcing.calendar_month(k)
        c1 = stepper.condition(torch.from_numpy(forcing.month(k)).unsqueeze(0).expand(members, -1, -1, -1),
                               torch.full((members,), m))
        gens = member_generators(seed, ids, k, stepper.device)
        t0 = time.perf_counter()
        z = stepper.step(z, cond, c1, gens)
        x = stepper.decode(z, c1, gens)
        wall += time.perf_counter() - t0
        out[k] = op(x.float().cpu()).squeeze(-1).detach().numpy()
        cond = c1
    return out, wall


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--start", default="1978-10")
    p.add_argument("--months", type=int, default=120)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sigma", type=float, default=10.0, help="dry-mass tolerance, Pa")
    p.add_argument("--device", default="cpu")
    p.add_argument("--cases", default="unguided,mmps,dps")
    p.add_argument("--json", help="write the results here")
    args = p.parse_args()

    meta = checkpoint.read_meta(args.checkpoint)
    cfg = checkpoint.config_of(meta)
    model = checkpoint.load_model(meta["_dir"], device=args.device)
    spec, labels = model.spec, list(model.spec.labels)
    ps = labels.index("ps")
    start = Month.parse(args.start)
    forcing = ForcingReader(cfg.data.path, spec, start, start + (args.months - 1), 0.0)
    x0 = initial_state(cfg.data.path, spec, start)
    clim = training_global_mean(cfg.data.path, "ps", list(spec.channels), labels, cfg.data.train_period)
    target = np.array([clim[forcing.calendar_month(k) - 1] for k in range(len(forcing))])
    op = GlobalMean(ps, spec.lat, "ps")
    guide = GlobalMeanGuide("ps", ps, spec.lat, clim, args.sigma, name="dry-mass")
    steppers = {"unguided": DiffusionStepper(model),
                "mmps": GuidedStepper(DiffusionStepper(model), guide, GuidanceConfig("mmps", cg_iters=1)),
                "dps": GuidedStepper(DiffusionStepper(model), guide, GuidanceConfig("dps", zeta=1.0))}
    print(f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} torch thread(s), "
          f"device {args.device}; {args.members} members x {args.months} months from {start}, "
          f"{DiffusionStepper(model).describe()}, sigma {args.sigma:g} Pa")
    results, base_wall = {}, None
    for name in args.cases.split(","):
        gm, wall = rollout_global_mean(steppers[name], forcing, x0, args.members, args.seed, op)
        dev = gm - target[:, None]  # Pa
        per_step = wall / ((args.months - 1) * args.members)
        base_wall = per_step if name == "unguided" else base_wall
        res = {"drift_last12_Pa": float(dev[-12:].mean()), "rms_Pa": float(np.sqrt((dev[1:] ** 2).mean())),
               "max_abs_Pa": float(np.abs(dev[1:]).max()), "mean_Pa": float(dev[1:].mean()),
               "s_per_member_step": per_step,
               "cost_ratio": per_step / base_wall if base_wall else None}
        results[name] = res
        print(f"{name:13s} drift(last 12 mo) {res['drift_last12_Pa']:+8.2f} Pa  rms {res['rms_Pa']:7.2f} Pa  "
              f"max |dev| {res['max_abs_Pa']:7.2f} Pa  {per_step * 1e3:8.1f} ms/member-step"
              + (f"  x{res['cost_ratio']:.2f}" if res["cost_ratio"] else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"args": vars(args), "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
