"""Benchmark: our sorted-member CRPS against xskillscore and properscoring, same input.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_crps.py [--members 50 --time 120
        --lat 33 --lon 64 --chunk 12 --repeat 1]

A random float32 ensemble (member, time, lat, lon) and observation are scored by
``diagnostics.metrics.crps.crps_ensemble`` (numpy and dask-chunked), by
``xskillscore.crps_ensemble`` (dask-chunked along time: without numba properscoring builds
the M x M difference matrix, about 2.5 GB per temporary for the default size unchunked)
and by ``properscoring.crps_ensemble`` looped over the same time chunks. Everything runs
on one thread (dask synchronous scheduler) so the timings compare algorithms, not cores.
Prints the best-of-``repeat`` wall times, the speed-up ratios and the max abs difference.
This is a script, not a test.
"""

from __future__ import annotations

import argparse
import platform
import time

import dask
import numpy as np
import properscoring
import xarray as xr
import xskillscore

from diagnostics.metrics.crps import crps_ensemble


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _best(fn, repeat: int) -> tuple[float, np.ndarray]:
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--time", type=int, default=120)
    parser.add_argument("--lat", type=int, default=33)
    parser.add_argument("--lon", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=12, help="time steps per dask chunk")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    shape = (args.time, args.lat, args.lon)
    dims = ("time", "lat", "lon")
    forecast = xr.DataArray(rng.normal(size=(args.members, *shape)).astype(np.float32), dims=("member", *dims))
    obs = xr.DataArray(rng.normal(size=shape).astype(np.float32), dims=dims)
    f_lazy, o_lazy = forecast.chunk(time=args.chunk), obs.chunk(time=args.chunk)
    starts = range(0, args.time, args.chunk)

    def properscoring_loop() -> np.ndarray:
        f = np.moveaxis(forecast.values, 0, -1)
        return np.concatenate([properscoring.crps_ensemble(obs.values[s:s + args.chunk], f[s:s + args.chunk])
                               for s in starts])

    with dask.config.set(scheduler="synchronous"):
        runs = {
            "ours (numpy)": lambda: crps_ensemble(forecast, obs).values,
            "ours (dask)": lambda: crps_ensemble(f_lazy, o_lazy).compute().values,
            "xskillscore (dask)": lambda: xskillscore.crps_ensemble(o_lazy, f_lazy, dim=[]).compute()
            .transpose(*dims).values,
            "properscoring (loop)": properscoring_loop,
        }
        crps_ensemble(f_lazy.isel(time=[0]), o_lazy.isel(time=[0])).compute()  # warm-up: imports, caches
        xskillscore.crps_ensemble(o_lazy.isel(time=[0]), f_lazy.isel(time=[0]), dim=[]).compute()
        results = {name: _best(fn, args.repeat) for name, fn in runs.items()}

    print(f"CRPS benchmark: {args.members} members x {args.time} x {args.lat} x {args.lon} float32, "
          f"time chunks of {args.chunk}, 1 thread")
    print(f"machine: {_cpu_model()}, {platform.machine()}, numpy {np.__version__}, "
          f"xskillscore {xskillscore.__version__}")
    ours = results["ours (numpy)"][1]
    for name, (seconds, values) in results.items():
        diff = float(np.max(np.abs(values - ours)))
        print(f"  {name:22s} {seconds:8.3f} s   max |diff vs ours| = {diff:.2e}")
    # the peers compute in the input's float32; on a float64 copy they agree to rounding
    first = slice(0, args.chunk)
    exact = properscoring.crps_ensemble(obs.values[first].astype(np.float64),
                                        np.moveaxis(forecast.values[:, first], 0, -1).astype(np.float64))
    print(f"  properscoring in float64, first chunk: max |diff vs ours| = {np.max(np.abs(exact - ours[first])):.2e}")
    for name in ("xskillscore (dask)", "properscoring (loop)"):
        print(f"  speed-up ours (dask) vs {name}: {results[name][0] / results['ours (dask)'][0]:.1f}x, "
              f"ours (numpy): {results[name][0] / results['ours (numpy)'][0]:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
