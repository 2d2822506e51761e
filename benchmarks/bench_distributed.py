"""Benchmark: md-diagnose on dask's threaded scheduler vs a dask.distributed LocalCluster.

    python -m benchmarks.bench_distributed                      # 5.625 deg, 3 members, 4 years
    python -m benchmarks.bench_distributed --workers 2 --grid 3 --variables tas ta zg

Runs the same md-diagnose command twice on the same synthetic inputs (written by md-synth, as in
bench_diagnose) — default scheduler, then ``--scheduler local:N`` — and prints both wall times,
peak memory of the process tree and the largest absolute difference over all metrics.json numbers
(expected: 0, the graphs and their reduction order are the same).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from benchmarks.bench_diagnose import SMALL, run_measured, synth


def max_abs_difference(a: dict, b: dict) -> tuple[float, int]:
    """Largest |a - b| over keys both hold as numbers, and the count of keys that differ in presence/None."""
    worst, mismatched = 0.0, 0
    for k in a.keys() | b.keys():
        va, vb = a.get(k), b.get(k)
        if va is None or vb is None:
            mismatched += (va is None) != (vb is None)
            continue
        worst = max(worst, abs(va - vb))
    return worst, mismatched


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--grid", choices=["1.5", "3", "5.625"], default=SMALL["grid"])
    p.add_argument("--members", type=int, default=SMALL["members"])
    p.add_argument("--start", default=SMALL["start"])
    p.add_argument("--end", default=SMALL["end"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--variables", nargs="+", default=["tas", "psl", "zg", "ta"])
    p.add_argument("--work", type=Path, default=None)
    args = p.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_distributed_"))
    work.mkdir(parents=True, exist_ok=True)
    synth(work / "ensemble", args.grid, args.members, args.start, args.end, seed=1)
    synth(work / "reference", args.grid, 1, args.start, args.end, seed=2)
    split = int(args.start[:4]) + max(1, (int(args.end[:4]) - int(args.start[:4]) + 1) * 2 // 3)
    base = [sys.executable, "-m", "diagnostics.cli.diagnose", "--ensemble", f"SYN={work / 'ensemble'}",
            "--reference", str(work / "reference"), "--report", "none", "--no-progress",
            "--train-period", f"{args.start}:{split - 1}-12", "--test-period", f"{split}-01:{args.end}",
            "--variables", *args.variables]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    runs = {}
    for label, extra in (("threads", []), (f"LocalCluster({args.workers})", ["--scheduler", f"local:{args.workers}"])):
        out = work / label.split("(")[0]
        wall, rss, code = run_measured(base + ["--out", str(out)] + extra, env)
        if code != 0:
            print(f"{label}: md-diagnose failed ({code})")
            return code
        runs[label] = (wall, rss, json.loads((out / "metrics.json").read_text())["metrics"])
    print(f"inputs: grid {args.grid} deg, {args.members} members, {args.start}..{args.end}, "
          f"variables {' '.join(args.variables)}")
    print(f"{'scheduler':<20} {'wall s':>8} {'peak RSS GiB':>13}")
    for label, (wall, rss, _) in runs.items():
        print(f"{label:<20} {wall:8.1f} {rss / 2**30:13.2f}")
    (a, b) = [r[2] for r in runs.values()]
    worst, mismatched = max_abs_difference(a, b)
    print(f"{len(a)} numbers; max abs difference {worst:.3g}; keys differing in presence/null: {mismatched}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if mismatched == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
