"""Benchmark: one-month-ahead skill of a trained emulator vs the reference-built baselines.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_skill.py --run outputs/demo-train \
        --data /tmp/synth [--members 10 --period 2015-01:2024-12 --json skill.json]

For every target month t of the held-out period, each of M members encodes the reference state
of month t-1 (its own posterior sample), takes one diffusion step with the forcing of t-1 and
decodes with the forcing of t (emulator.model conventions). The same targets are forecast by
the damped-persistence AR(1) ensemble and the climatology ensemble of
diagnostics.metrics.baselines (fitted on the run's training period, M members each) and by
persistence (one member). All are scored with diagnostics.metrics.crps.crps_ensemble (standard
form, equal M), area-weighted over the globe (diagnostics.data.grid.global_mean) and averaged
over months; also the ensemble-mean RMSE and the spread-skill ratio (uncorrected). The
forecasts' ENSO response (regression on the relative Nino-3.4 index of the dataset's tos,
members pooled) and NAO (leading DJF EOF of psl, diagnostics.metrics.modes.nao) are compared
with the reference's over the same months. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
import torch
import xarray as xr

from diagnostics.data.grid import global_mean
from diagnostics.data.timeaxis import Period, month_index
from diagnostics.metrics.baselines import ar1_ensemble, climatology_ensemble, persistence
from diagnostics.metrics.crps import crps_ensemble
from diagnostics.metrics.modes import compare_modes, nao
from diagnostics.metrics.nino34 import compare_patterns, nino34_index, regression_map
from diagnostics.metrics.spread_skill import spread_skill_ratio
from emulator import checkpoint
from emulator.data import _channel, load_split, open_prepared_dataset
from emulator.seeding import member_seed
from emulator.stepper import DiffusionStepper


def emulator_forecast(model, split, members: int, seed: int, batch: int = 64, sampler: str = "ancestral",
                      steps: int | None = None) -> np.ndarray:
    """``[M, T-1, C, H, W]`` forecasts of months 1..T-1 of ``split`` from months 0..T-2 (physical)."""
    t_count = len(split) - 1
    out = np.empty((members, t_count, len(model.channels), *model.data_shape), dtype=np.float32)
    stepper = DiffusionStepper(model, sampler, steps)
    jobs = [(t, m) for t in range(t_count) for m in range(members)]
    for start in range(0, len(jobs), batch):
        part = jobs[start:start + batch]
        t0 = np.array([t for t, _ in part])
        x = torch.from_numpy(split.state[t0])
        f0, f1 = torch.from_numpy(split.forcing[t0]), torch.from_numpy(split.forcing[t0 + 1])
        m0, m1 = torch.from_numpy(split.month[t0]), torch.from_numpy(split.month[t0 + 1])
        gens = [torch.Generator().manual_seed(member_seed(seed, m, int(split.index[t]))) for t, m in part]
        c0, c1 = stepper.condition(f0, m0), stepper.condition(f1, m1)
        z = stepper.init(x, c0, gens)
        z1 = stepper.step(z, c0, c1, gens)
        x1 = stepper.decode(z1, c1, gens).cpu().numpy()
        for k, (t, m) in enumerate(part):
            out[m, t] = x1[k]
    return out


def score(forecast: xr.DataArray, truth: xr.DataArray) -> dict[str, float]:
    crps = float(global_mean(crps_ensemble(forecast, truth, member_dim="member", fair=False)).mean("time"))
    rmse = float(np.sqrt(global_mean((forecast.mean("member") - truth) ** 2).mean("time")))
    out = {"crps": crps, "rmse_ensmean": rmse}
    if forecast.sizes["member"] > 1:
        out["ssr"] = float(spread_skill_ratio(forecast, truth, dims=("time", "lat", "lon"), member_dim="member"))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", required=True, help="training run directory (holds checkpoint/)")
    p.add_argument("--data", required=True, help="prepared dataset directory")
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--period", help="held-out target months (default: the config's test_period)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--sampler", default="ancestral", choices=["ancestral", "ddim"])
    p.add_argument("--steps", type=int, default=None, help="sampler steps (default: the model's)")
    p.add_argument("--json", help="write the table here as JSON")
    args = p.parse_args()

    meta = checkpoint.read_meta(args.run)
    cfg = checkpoint.config_of(meta)
    model = checkpoint.load_model(args.run, weights="ema")
    period = Period.parse(args.period or cfg.data.test_period)
    ds = open_prepared_dataset(args.data)
    split = load_split(ds, model.spec, Period(period.start + -1, period.end), args.data)
    start = time.perf_counter()
    with torch.inference_mode():
        fc = emulator_forecast(model, split, args.members, args.seed, sampler=args.sampler, steps=args.steps)
    elapsed = time.perf_counter() - start
    lat, lon = np.asarray(model.spec.lat), np.asarray(model.spec.lon)
    targets = ds["time"].isel(time=np.flatnonzero(np.isin(month_index(ds["time"]), split.index[1:])))

    table, patterns = {}, {}
    index = nino34_index(ds["tos"].load(), relative=True, smooth=None)
    for c, label in enumerate(model.spec.labels):
        name, level = model.channels[c]
        reference = _channel(ds, name, level, args.data).drop_vars("plev", errors="ignore").load()
        truth = reference.sel(time=targets)
        emu = xr.DataArray(fc[:, :, c], dims=("member", "time", "lat", "lon"),
                           coords={"time": targets, "lat": lat, "lon": lon})
        ar1 = ar1_ensemble(reference, cfg.data.train_period, n_members=args.members, seed=args.seed, like=truth)
        clim = climatology_ensemble(reference, cfg.data.train_period, like=truth, n_members=args.members)
        pers = persistence(reference, like=truth)
        table[label] = {"emulator": score(emu, truth), "ar1": score(ar1, truth),
                        "climatology": score(clim, truth), "persistence": score(pers, truth)}
        enso = compare_patterns(regression_map(emu, index, dims=("member", "time")), regression_map(truth, index))
        patterns[label] = {"enso_pattern_corr": float(enso["pattern_corr"]),
                           "enso_amplitude_ratio": float(enso["amplitude_ratio"])}
        if label in ("psl", "zg500"):
            modes = compare_modes(nao(emu, pooled=True), nao(truth))
            patterns[label].update(nao_pattern_corr=float(modes["pattern_corr"]),
                                   nao_pc_std_ratio=float(modes["pc_std_ratio"]))

    print(f"one-month-ahead skill on {period} ({len(targets)} months, {args.members} members), "
          f"run {args.run}, sampler {args.sampler}; {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}")
    print(f"emulator forecasts: {elapsed:.1f} s ({len(targets) * args.members / elapsed:.1f} member-months/s)")
    print(f"{'channel':<8} {'CRPS emu':>10} {'AR(1)':>10} {'clim':>10} {'persist':>10} "
          f"{'emu/AR1':>8} {'emu/clim':>8} {'SSR emu':>8}")
    for label, row in table.items():
        e, a, c, q = (row[k]["crps"] for k in ("emulator", "ar1", "climatology", "persistence"))
        print(f"{label:<8} {e:>10.4g} {a:>10.4g} {c:>10.4g} {q:>10.4g} {e / a:>8.3f} {e / c:>8.3f} "
              f"{row['emulator']['ssr']:>8.3f}")
    print("patterns of the forecasts vs the reference (same months):")
    for label, row in patterns.items():
        print(f"  {label:<8} " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"period": str(period), "members": args.members, "run": args.run,
                       "seconds": elapsed, "table": table, "patterns": patterns}, f, indent=1)


if __name__ == "__main__":
    main()
