"""Benchmark: training throughput, peak memory and parameter count of both configs on CPU.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_train.py [--steps 10 --ref-steps 2]

Each config runs in its own subprocess (so the peak resident memory, ``ru_maxrss``, is its
own) on random inputs of the right shapes: the demo config (33 x 64, 6 channels, batch 8)
for ``--steps`` optimiser steps, the reference md-1p5 config (121 x 240, 37 channels,
batch 4) for ``--ref-steps``. Reports samples/s of full training steps (forward, backward,
AdamW, EMA), the time of one ancestral one-month step + decode per member, the parameter
count and the peak memory (on CUDA: torch.cuda.max_memory_allocated). A script, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_one(config: str, steps: int, batch: int, device: str) -> dict:
    import torch

    from diagnostics.data.grid import equiangular
    from emulator import config as config_mod
    from emulator.data import parse_channels
    from emulator.ema import EMA
    from emulator.model import DataSpec, MonthlyDiffusion, autocast
    from emulator.stepper import DiffusionStepper

    cfg = config_mod.load(ROOT / "configs" / f"{config}.yaml")
    grid = equiangular(1.5 if config == "md-1p5" else 5.625)
    spec = DataSpec(tuple(parse_channels(cfg.data.state)), tuple(cfg.data.forcings), tuple(cfg.data.statics),
                    tuple(grid.lat), tuple(grid.lon))
    dev = torch.device(device)
    torch.manual_seed(0)
    model = MonthlyDiffusion(cfg.model, spec).to(dev)
    ema = EMA(model, cfg.train.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr)
    h, w = grid.shape
    c, f = len(spec.channels), model.normaliser.n_forcing_channels
    x = torch.randn(batch, c, h, w, device=dev)
    forcing = torch.randn(batch, f, h, w, device=dev)
    month = torch.randint(1, 13, (batch,), device=dev)
    gen = torch.Generator().manual_seed(0)
    weights = {"kl_weight": cfg.loss.kl_weight, "v_weight": cfg.loss.v_weight, "pop_weight": cfg.loss.pop_weight,
               "skip_weight": cfg.loss.skip_weight}

    def train_step():
        with autocast(dev):
            loss, _ = model.training_loss(x, x, forcing, forcing, month, month, gen, weights)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema.update(model)

    train_step()  # warm-up (allocations, SHT precomputation)
    if dev.type == "cuda":
        torch.cuda.synchronize()
    start, cpu_start = time.perf_counter(), time.process_time()
    for _ in range(steps):
        train_step()
    if dev.type == "cuda":
        torch.cuda.synchronize()
    train_s = (time.perf_counter() - start) / steps
    train_cpu_s = (time.process_time() - cpu_start) / steps

    model.eval()
    with torch.inference_mode():
        stepper = DiffusionStepper(model, "ancestral", cfg.model.sample_steps)
        cond = stepper.condition_normalised(forcing, month)
        z = stepper.encode_normalised(x, cond, torch.randn(batch, *model.latent_shape_full(), device=dev))
        noise = stepper.noise_for_step(batch, torch.Generator().manual_seed(1))
        start, cpu_start = time.perf_counter(), time.process_time()
        z1 = stepper.step_normalised(z, cond, cond, noise)
        stepper.decode_normalised(z1, cond)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        infer_s = (time.perf_counter() - start) / batch
        infer_cpu_s = (time.process_time() - cpu_start) / batch
    peak = (torch.cuda.max_memory_allocated() if dev.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    return {"config": config, "device": device, "threads": torch.get_num_threads(), "batch": batch,
            "parameters": model.n_parameters(), "train_samples_per_s": batch / train_s,
            "train_s_per_step": train_s, "member_month_s": infer_s,
            "train_samples_per_cpu_s": batch / train_cpu_s, "member_month_cpu_s": infer_cpu_s, "peak_memory_mb": peak / 2 ** 20,
            "grid": list(grid.shape), "latent": list(model.latent_shape_full())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=10, help="timed steps for the demo config")
    p.add_argument("--ref-steps", type=int, default=2, help="timed steps for md-1p5")
    p.add_argument("--device", default="cpu")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--batch", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.steps, args.batch, args.device)))
        return
    rows = []
    for config, steps, batch in (("demo", args.steps, 8), ("md-1p5", args.ref_steps, 4)):
        out = subprocess.run([sys.executable, __file__, "--one", config, "--steps", str(steps),
                              "--batch", str(batch), "--device", args.device],
                             check=True, capture_output=True, text=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    print(f"machine: {platform.machine()} {platform.processor()}, python {platform.python_version()}")
    print("wall-clock and per-CPU-second figures (they differ when other jobs share the cores)")
    print(f"{'config':<8} {'params':>10} {'grid':>9} {'latent':>10} {'batch':>5} {'threads':>7} "
          f"{'samples/s':>10} {'samples/cpu-s':>13} {'s/member-month':>15} {'cpu-s/m-m':>10} {'peak MB':>8}")
    for r in rows:
        print(f"{r['config']:<8} {r['parameters']:>10,} {'x'.join(map(str, r['grid'])):>9} "
              f"{'x'.join(map(str, r['latent'])):>10} {r['batch']:>5} {r['threads']:>7} "
              f"{r['train_samples_per_s']:>10.2f} {r['train_samples_per_cpu_s']:>13.2f} "
              f"{r['member_month_s']:>15.3f} {r['member_month_cpu_s']:>10.3f} {r['peak_memory_mb']:>8.0f}")


if __name__ == "__main__":
    main()
