"""Benchmark: the every-month value guard (``contract.guard_values``) against no guard, side by side.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_value_guard.py [--months 120 --res 1.5 --repeat 5]

A zarr store of ``tas`` and ``ta`` (7 levels) on the equiangular grid, chunked by 12 months, is
read and reduced (time mean) twice per round, without and with the guard, on dask's threaded
scheduler with 2 workers; prints the best-of-``repeat`` times and their ratio. The guard is one
vectorised sum (and for non-negative fields a min) per block over data already in memory, so
the ratio should stay near 1. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import tempfile
import time
from pathlib import Path

import dask
import numpy as np
import xarray as xr

from diagnostics.data.contract import guard_values, plev_coord
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis


def _store(path: Path, months: int, res: float) -> int:
    g = equiangular(res)
    axis = monthly_axis(Month(2000, 1), Month(2000, 1) + (months - 1), "noleap")
    rng = np.random.default_rng(0)
    ds = xr.Dataset({"tas": (("time", "lat", "lon"), (280 + rng.standard_normal((months,) + g.shape))
                             .astype(np.float32), {"units": "K"}),
                     "ta": (("time", "plev", "lat", "lon"), (250 + rng.standard_normal((months, 7) + g.shape))
                            .astype(np.float32), {"units": "K"})},
                    coords={**g.coords(), "time": axis["time"], "plev": plev_coord()})
    ds.chunk({"time": 12}).to_zarr(path, zarr_format=2)
    return ds.nbytes


def _run(path: Path, guard: bool) -> float:
    src = xr.open_zarr(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    fields = [guard_values(src[n], n, str(path)) if guard else src[n] for n in ("tas", "ta")]
    t0 = time.perf_counter()
    dask.compute(*[f.mean("time") for f in fields])
    return time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--months", type=int, default=120)
    p.add_argument("--res", type=float, default=1.5)
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args()
    dask.config.set(scheduler="threads", num_workers=2)
    tmp = Path(tempfile.mkdtemp(prefix="bench-guard-"))
    try:
        nbytes = _store(tmp / "s.zarr", args.months, args.res)
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeat):
            for guard in (False, True):  # interleaved, so load on the machine hits both alike
                times[guard].append(_run(tmp / "s.zarr", guard))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    a, b = min(times[False]), min(times[True])
    print(f"{platform.processor() or platform.machine()}, {nbytes / 2**20:.0f} MiB, best of {args.repeat}: "
          f"read + time mean {a:.3f} s without the guard, {b:.3f} s with it; ratio {b / a:.2f}")


if __name__ == "__main__":
    main()
