"""Benchmark: our CRPS against properscoring and scoringrules, numba on and off, same input, one thread.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_crps.py [--members 50 --time 120
        --lat 33 --lon 64 --chunk 12 --repeat 5 --no-jit]

One random float32 ensemble laid out as ``md-diagnose`` holds it, (member, time, lat, lon),
and its observation (time, lat, lon) are scored by

* ours: ``diagnostics.metrics.sorted_ensemble.sorted_scores`` (the kernel, numba and numpy
  paths), ``crps.crps_ensemble`` on numpy and on dask chunks of ``--chunk`` months (the path
  ``md-diagnose`` uses), and ``crps.ensemble_scores`` (standard + fair CRPS + rank from one
  sort) against the three separate calls it replaces;
* properscoring 0.1 ``crps_ensemble(axis=0)`` (numba gufunc over np.sort; also given the
  member-last contiguous copy it prefers) and, numba off, its O(M^2) numpy path
  ``_crps_ensemble_vectorized`` looped over 2-month slices (its M x M temporaries);
* scoringrules ``crps_ensemble(m_axis=0)``: estimator ``pwm`` (fair form) and ``qd``
  (standard form), backend numba and, numba off, numpy.

Everything runs on one thread: dask's synchronous scheduler, ``OMP_NUM_THREADS=1``,
``NUMBA_NUM_THREADS=1`` (set here before numba is imported; none of the kernels timed is
``parallel=True``). Each run is timed best-of-``repeat``, the runs interleaved round by round
(so all sample the same load of a shared machine), after a warm-up call (numba's JIT excluded).
Prints wall times, the ratios to our dask path, the max abs difference from ours (standard or
fair form as appropriate) and, unless ``--no-jit``, numba's first-call compile cost with an
empty cache and the cached start (``cache=True``) measured in fresh processes.
This is a script, not a test: the machine and its load are printed with the figures.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import dask  # noqa: E402
import numpy as np  # noqa: E402
import xarray as xr  # noqa: E402

from diagnostics.metrics import sorted_ensemble  # noqa: E402
from diagnostics.metrics.crps import crps_ensemble, ensemble_scores  # noqa: E402
from diagnostics.metrics.rank_histogram import histogram_of_ranks, rank_histogram  # noqa: E402


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _interleaved(runs: dict[str, Callable[[], object]], repeat: int,
                 slow: tuple[str, ...] = ()) -> dict[str, tuple[float, object]]:
    """Best-of-``repeat`` wall time per run, the runs interleaved round by round.

    Each round times every run once, in a shuffled order, so on a shared machine all of them
    sample the same load and none always runs on the caches another left; ``slow`` runs (seconds
    each) are timed once, after the rounds. One warm-up call each first (numba JIT, imports,
    caches).
    """
    outputs = {name: fn() for name, fn in runs.items()}
    best = dict.fromkeys(runs, np.inf)
    order = np.random.default_rng(0)
    for rounds, names in ((repeat, [n for n in runs if n not in slow]), (1, [n for n in runs if n in slow])):
        for _ in range(rounds):
            for name in order.permutation(names):  # no run always follows the same one
                start = time.perf_counter()
                outputs[name] = runs[name]()
                best[name] = min(best[name], time.perf_counter() - start)
    return {name: (best[name], outputs[name]) for name in runs}


_JIT_PROBE = ("import time; t = time.perf_counter(); import numpy as np; "
              "from diagnostics.metrics.sorted_ensemble import sorted_scores; t1 = time.perf_counter(); "
              "f = np.zeros((50, 100), np.float32); sorted_scores(f, f[0]); "
              "print(f'{t1 - t:.3f} {time.perf_counter() - t1:.3f}')")


def _first_call_seconds(cache_dir: str, extra_env: dict[str, str] | None = None) -> tuple[float, float]:
    """(import s, first float32 call s) in a fresh process using ``cache_dir`` as numba's cache."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir, **(extra_env or {})}
    out = subprocess.run([sys.executable, "-c", _JIT_PROBE], capture_output=True, text=True, check=True,
                         env=env, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))).stdout
    imported, first = out.split()
    return float(imported), float(first)


def _peers(forecast: np.ndarray, obs: np.ndarray) -> dict[str, tuple[str, Callable[[], np.ndarray]]]:
    """name -> (form, fn) for the installed peer libraries."""
    runs: dict[str, tuple[str, Callable[[], np.ndarray]]] = {}
    try:
        import properscoring
        from properscoring._crps import _crps_ensemble_vectorized
    except ImportError:
        print("  (properscoring not installed)")
    else:
        member_last = np.ascontiguousarray(np.moveaxis(forecast, 0, -1))
        runs["properscoring numba, axis=0"] = ("crps", lambda: properscoring.crps_ensemble(obs, forecast, axis=0))
        runs["properscoring numba, member-last copy"] = ("crps", lambda: properscoring.crps_ensemble(obs, member_last))
        runs["properscoring numpy O(M^2) (numba off)"] = ("crps", lambda: np.concatenate(
            [_crps_ensemble_vectorized(obs[s:s + 2], member_last[s:s + 2], np.ones_like(member_last[s:s + 2]))
             for s in range(0, len(obs), 2)]))
    try:
        import scoringrules as sr
    except ImportError:
        print("  (scoringrules not installed)")
    else:
        for est, form in (("pwm", "crps_fair"), ("qd", "crps")):
            for backend in ("numba", "numpy"):
                runs[f"scoringrules {est} {backend}"] = (form, lambda est=est, backend=backend: sr.crps_ensemble(
                    obs, forecast, m_axis=0, estimator=est, backend=backend))
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=50)
    parser.add_argument("--time", type=int, default=120)
    parser.add_argument("--lat", type=int, default=33)
    parser.add_argument("--lon", type=int, default=64)
    parser.add_argument("--chunk", type=int, default=12, help="months per dask chunk")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--no-jit", action="store_true", help="skip the first-call JIT measurement")
    args = parser.parse_args(argv)
    if sorted_ensemble.NUMBA:
        import numba
        numba.set_num_threads(1)

    rng = np.random.default_rng(0)
    shape = (args.time, args.lat, args.lon)
    dims = ("time", "lat", "lon")
    forecast = rng.normal(size=(args.members, *shape)).astype(np.float32)
    obs = rng.normal(size=shape).astype(np.float32)
    f_xr = xr.DataArray(forecast, dims=("member", *dims))
    o_xr = xr.DataArray(obs, dims=dims)
    f_lazy, o_lazy = f_xr.chunk(time=args.chunk), o_xr.chunk(time=args.chunk)
    n_bins = args.members + 1

    def three_calls() -> np.ndarray:
        return dask.compute(crps_ensemble(f_lazy, o_lazy).mean("time"),
                            crps_ensemble(f_lazy, o_lazy, fair=True).mean("time"),
                            rank_histogram(f_lazy, o_lazy, dims=("lat", "lon")).sum("time"))[0].values

    def shared_sort() -> np.ndarray:
        s = ensemble_scores(f_lazy, o_lazy)
        return dask.compute(s["crps"].mean("time"), s["crps_fair"].mean("time"),
                            histogram_of_ranks(s["rank"], n_bins, dims=("lat", "lon")).sum("time"))[0].values

    ours: dict[str, tuple[str, Callable[[], np.ndarray]]] = {
        "ours dask (md-diagnose path)": ("crps", lambda: crps_ensemble(f_lazy, o_lazy).values),
        "ours xarray, numpy-backed": ("crps", lambda: crps_ensemble(f_xr, o_xr).values),
        "ours kernel": ("crps", lambda: sorted_ensemble.sorted_scores(forecast, obs, rank=False).crps),
        "ours kernel, numpy path (numba off)": ("crps", lambda: sorted_ensemble.sorted_scores(
            forecast, obs, rank=False, use_numba=False).crps),
    }
    with dask.config.set(scheduler="synchronous"):
        reference = sorted_ensemble.sorted_scores(forecast, obs, rank=False, use_numba=False)
        runs = {**ours, **_peers(forecast, obs)}
        timed = _interleaved({name: fn for name, (_, fn) in runs.items()}, args.repeat,
                             slow=tuple(n for n in runs if "O(M^2)" in n))
        results = {name: (form, *timed[name]) for name, (form, _) in runs.items()}
        combined = _interleaved({"3 calls": three_calls, "one sort": shared_sort}, args.repeat)

    info = sorted_ensemble.describe()
    print(f"CRPS benchmark: {args.members} members x {args.time} x {args.lat} x {args.lon} float32, "
          f"member-first, dask chunks of {args.chunk} months, 1 thread (dask synchronous, "
          f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}, NUMBA_NUM_THREADS={os.environ['NUMBA_NUM_THREADS']})")
    print(f"machine: {_cpu_model()}, {os.cpu_count()} cores, {platform.machine()}, load average "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}; numpy {np.__version__}, numba {info['numba_version']}")
    base = results["ours dask (md-diagnose path)"][1]
    peer_times = [t for name, (_, t, _) in results.items()
                  if not name.startswith("ours") and "numba" in name and "numba off" not in name]
    for name, (form, seconds, values) in results.items():
        ref = reference.crps_fair if form == "crps_fair" else reference.crps
        diff = float(np.max(np.abs(np.asarray(values, dtype=np.float64) - ref)))
        print(f"  {name:42s} {seconds:8.4f} s  {seconds / base:7.1f}x ours dask   "
              f"max |diff| ({form}) = {diff:.1e}")
    if peer_times:
        fastest = min(peer_times)
        print(f"  fastest numba peer / ours dask = {fastest / base:.1f}x, / ours kernel = "
              f"{fastest / results['ours kernel'][1]:.1f}x")
    (t3, h3), (t1, h1) = combined.values()
    print(f"  3 calls: crps, crps_fair, rank_histogram    {t3:8.4f} s")
    print(f"  ensemble_scores (one sort), same outputs    {t1:8.4f} s  ({t3 / t1:.1f}x faster; "
          f"histograms equal: {bool(np.array_equal(h3, h1))})")
    if not args.no_jit and sorted_ensemble.NUMBA:
        with tempfile.TemporaryDirectory() as cache:
            imp, cold = _first_call_seconds(cache)
            _, warm = _first_call_seconds(cache)
            _, no_numba = _first_call_seconds(cache, {"MD_NO_NUMBA": "1"})
        print(f"  numba JIT, float32 kernel, fresh process: first call {cold:.2f} s with an empty cache, "
              f"{warm:.2f} s from the cache (cache=True), {no_numba:.3f} s numpy path (import {imp:.2f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
