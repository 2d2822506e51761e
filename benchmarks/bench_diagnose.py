"""Benchmark: md-diagnose on an AI-MIP-shaped synthetic ensemble, against the I/O floor.

    python -m benchmarks.bench_diagnose                 # small (default): 5.625 deg, 3 members, 4 years
    python -m benchmarks.bench_diagnose --grid 3 --members 5 --start 2005-01 --end 2014-12
    python -m benchmarks.bench_diagnose --full          # AI-MIP size: 1.5 deg, 5 members, 1978-10..2024-12
                                                        # (~12 GB float32; needs ~15 GB disk, hours on 2 cores)
    python -m benchmarks.bench_diagnose --full --grid 1 --channels tas pr psl zg500 --variables tas pr psl zg500
                                                        # AI-MIP length, 4 channels only (2 GiB at 1 deg,
                                                        # ~30 min to generate on the loaded 2-core VM)

Steps: ``md-synth`` writes the ensemble (all 37 channels + forcings) and a one-member
reference as prepared zarr directories (``--channels``: only those, see :func:`synth`); the I/O floor is the wall time of one dask pass
that reads every chunk of both stores once (a sum per variable); then ``md-diagnose`` runs
in a subprocess while a thread samples the resident memory of it and all its children
(psutil, every 0.1 s). Prints sizes, wall times, the ratio to the floor and the peak RSS.

``--baseline-code DIR`` also runs md-diagnose from another checkout (e.g. ``git archive main``
unpacked in DIR) on the same data and prints both side by side, with the largest relative
difference between their numbers (the guardrail: a speed-up must not change them)::

    python -m benchmarks.bench_diagnose --grid 1.5 --members 5 --start 2013-01 --end 2014-12 \
        --work /tmp/b15 --baseline-code /tmp/base --variables tas pr psl zg
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

FULL = {"grid": "1.5", "members": 5, "start": "1978-10", "end": "2024-12"}
SMALL = {"grid": "5.625", "members": 3, "start": "2011-01", "end": "2014-12"}
LAST_CPU = 0.0


def tree_rss(proc: psutil.Process) -> int:
    """Resident bytes of a process and all its descendants (dask workers included)."""
    total = 0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            total += p.memory_info().rss
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return total


def children_cpu() -> float:
    """User + system CPU seconds of the finished child processes (and their waited-for children)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_measured(cmd: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, int, int]:
    """(wall seconds, peak RSS bytes of the process tree, exit code) of ``cmd``; the CPU seconds
    of the run are left in :data:`LAST_CPU` (wall time on a shared machine waits for others)."""
    global LAST_CPU
    cpu0 = children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    ps = psutil.Process(proc.pid)
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            try:
                peak[0] = max(peak[0], tree_rss(ps))
            except psutil.NoSuchProcess:
                return
            time.sleep(0.1)

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    stop.set()
    t.join()
    wall = time.perf_counter() - start
    LAST_CPU = children_cpu() - cpu0
    if proc.returncode != 0:
        print(out[-3000:], file=sys.stderr)
    return wall, peak[0], proc.returncode


def synth(out: Path, grid: str, members: int, start: str, end: str, seed: int,
          channels: list[str] | None = None) -> float:
    """Write the synthetic ensemble to ``out`` (skipped when it exists); returns the seconds taken.

    Without ``channels``: ``md-synth`` itself (all 37 channels). With them: the same generator
    (:mod:`diagnostics.synth`) through its Python API, writing only those state channels plus
    the forcings and statics md-diagnose reads (tos for the Nino-3.4 index): the blocks of the
    other channels are never computed, so a 555-month 1 deg input takes minutes, not hours.
    Members are independent one-member runs (seeds ``seed + 1000 i``) appended along ``member``,
    which bounds the generator's memory; the manifest is written last (it marks a finished input).
    """
    if (out / "manifest.json").exists():
        return 0.0
    t = time.perf_counter()
    if not channels:
        subprocess.run([sys.executable, "-m", "diagnostics.cli.synth", "--out", str(out), "--grid", grid,
                        "--start", start, "--end", end, "--seed", str(seed), "--members", str(members)],
                       check=True, stdout=subprocess.DEVNULL)
        return time.perf_counter() - t
    code = (
        "import sys, dask\n"
        "from diagnostics.data import catalogue\n"
        "from diagnostics.data.grid import equiangular\n"
        "from diagnostics.data.timeaxis import Month\n"
        "from diagnostics.data.provenance import digest\n"
        "from diagnostics.io.writer import write_json, write_zarr, MANIFEST, PREPARED_STORE\n"
        "from diagnostics.synth.climate import to_dataset\n"
        "from diagnostics.synth.model import Model, make_run\n"
        "out, grid, start, end, seed, members, channels = sys.argv[1:8]\n"
        "model = Model.build(equiangular(float(grid)))\n"
        "state = [catalogue.variable(c).store_name for c in channels.split(',')]\n"
        "rest = [*catalogue.FORCING_VARIABLES, *catalogue.STATIC_VARIABLES, 'time_bnds']\n"
        "store = f'{out}/{PREPARED_STORE}'\n"
        "with dask.config.set(scheduler='threads', num_workers=2):\n"
        "    for i in range(int(members)):\n"
        "        # one one-member run per member (seed + 1000 i): a run keeps the AR(1) states of\n"
        "        # all its members in memory (~13 GB for 5 members at 1 deg), one member ~3 GB\n"
        "        run = make_run(model, Month.parse(start), Month.parse(end), int(seed) + 1000 * i, 1)\n"
        "        ds = to_dataset(run, lazy=True)\n"
        "        if int(members) == 1:\n"
        "            write_zarr(ds[state + rest], store)\n"
        "        elif i == 0:\n"
        "            one = ds[state].expand_dims(member=[1]).transpose('member', 'time', ...)\n"
        "            write_zarr(one.merge(ds[rest]), store)\n"
        "        else:\n"
        "            one = ds[state].expand_dims(member=[i + 1]).transpose('member', 'time', ...)\n"
        "            one.chunk({'member': 1, 'time': 12}).to_zarr(store, append_dim='member', zarr_format=2)\n"
        "args = {'generator': 'bench_diagnose (diagnostics.synth, one run per member)', 'grid': float(grid),\n"
        "        'start': start, 'end': end, 'seed': int(seed), 'members': int(members), 'channels': channels}\n"
        "write_json({**args, 'fingerprint': digest(args), 'kind': 'synthetic'}, f'{out}/{MANIFEST}')\n")
    subprocess.run([sys.executable, "-c", code, str(out), grid, start, end, str(seed), str(members),
                    ",".join(channels)], check=True)
    return time.perf_counter() - t


def io_floor_cmd(paths: list[Path], variables: list[str] | None = None) -> list[str]:
    """A subprocess that reads every chunk of the stores once (sum per variable), dask threads;
    only ``variables`` (store names, e.g. ``zg``) when given: the floor of what is scored."""
    code = (
        "import sys, dask, xarray as xr\n"
        "from diagnostics.io.open import open_prepared\n"
        "keep = set(sys.argv[1].split(',')) - {''}\n"
        "sums = []\n"
        "for p in sys.argv[2:]:\n"
        "    ds = open_prepared(p)\n"
        "    sums += [ds[v].sum() for v in ds.data_vars if 'time' in ds[v].dims and v != 'time_bnds'\n"
        "             and (not keep or v in keep)]\n"
        "dask.compute(*sums)\n")
    return [sys.executable, "-c", code, ",".join(variables or []), *map(str, paths)]


def store_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def diagnose(work: Path, size: dict, args: argparse.Namespace, env: dict, code_dir: Path | None,
             out: Path) -> dict | None:
    """One measured md-diagnose run (from ``code_dir``'s checkout, else this one) into ``out``."""
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "diagnostics.cli.diagnose", "--ensemble", f"SYN={work / 'ensemble'}",
           "--reference", str(work / "reference"), "--out", str(out), "--report", "none", "--no-progress"]
    start_year, end_year = int(size["start"][:4]), int(size["end"][:4])
    if not args.full:  # AI-MIP periods lie outside a short synthetic run: split it 2/3 train, 1/3 test
        split = start_year + max(1, (end_year - start_year + 1) * 2 // 3)
        cmd += ["--train-period", f"{size['start']}:{split - 1}-12", "--test-period", f"{split}-01:{size['end']}"]
    if args.scheduler:
        cmd += ["--scheduler", args.scheduler]
    if args.variables:
        cmd += ["--variables", *args.variables]
    cmd += args.extra
    run_env = dict(env)
    if code_dir is not None:  # the other checkout's packages first on the path
        run_env["PYTHONPATH"] = str(Path(code_dir).resolve())
    wall, rss, code = run_measured(cmd, run_env, cwd=Path(code_dir).resolve() if code_dir else None)
    if code != 0:
        print(f"md-diagnose failed with exit code {code}")
        return None
    doc = json.loads((out / "metrics.json").read_text())
    return {"wall_s": round(wall, 1), "cpu_s": round(LAST_CPU, 1), "rss_GiB": round(rss / 2**30, 2),
            "numbers": len(doc["metrics"])}


def side_by_side(runs: dict[str, dict], floor: float, floor_cpu: float) -> str:
    """A markdown table: one row per run, times and their ratios to the read-once floor."""
    lines = ["| run | wall | CPU | wall / floor | CPU / floor CPU | peak RSS | numbers |", "|---|---|---|---|---|---|---|"]
    for label, r in runs.items():
        lines.append(f"| {label} | {r['wall_s']:.1f} s | {r['cpu_s']:.1f} s | {r['wall_s'] / floor:.1f}x | "
                     f"{r['cpu_s'] / max(floor_cpu, 1e-9):.1f}x | {r['rss_GiB']:.2f} GiB | {r['numbers']} |")
    return "\n".join(lines)


def max_rel_diff(before: Path, after: Path) -> str:
    """Largest |a - b| / max(|a|, |b|) over the metrics.json numbers both runs wrote, and the key counts."""
    a = json.loads((before / "metrics.json").read_text())["metrics"]
    b = json.loads((after / "metrics.json").read_text())["metrics"]
    worst, where = 0.0, ""
    for k in set(a) & set(b):
        x, y = a[k], b[k]
        if x is None or y is None:
            if (x is None) != (y is None):
                return f"{k}: null in one run only"
            continue
        rel = abs(x - y) / max(abs(x), abs(y), 1e-300)
        if rel > worst:
            worst, where = rel, k
    return (f"{worst:.2e} ({where or 'all equal'}); {len(set(a) & set(b))} common, "
            f"{len(set(a) - set(b))} only before, {len(set(b) - set(a))} only after")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="AI-MIP size: 1.5 deg, 5 members, 555 months")
    p.add_argument("--grid", choices=["1", "1.5", "3", "5.625"], default=None,
                   help="grid spacing in degrees (1 needs --channels: md-synth offers 1.5, 3, 5.625)")
    p.add_argument("--members", type=int, default=None)
    p.add_argument("--start", default=None)
    p.add_argument("--end", default=None)
    p.add_argument("--work", type=Path, default=None, help="directory for the data (kept; default: a temp dir)")
    p.add_argument("--scheduler", default=None, help="passed to md-diagnose --scheduler")
    p.add_argument("--variables", nargs="+", default=None,
                   help="score only these store variables (tas pr psl zg); the I/O floor reads only them")
    p.add_argument("--channels", nargs="+", default=None,
                   help="generate only these state channels (+ forcings and statics), e.g. tas pr psl zg500")
    p.add_argument("--baseline-code", type=Path, default=None,
                   help="also run md-diagnose from this checkout (before) and print both side by side")
    p.add_argument("--before-only", action="store_true", help="with --baseline-code: run only the before code")
    p.add_argument("--reuse-before", action="store_true",
                   help="with --baseline-code: reuse the before run a previous call measured in --work")
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more md-diagnose arguments")
    args = p.parse_args(argv)
    size = dict(FULL if args.full else SMALL)
    for k in ("grid", "members", "start", "end"):
        if getattr(args, k) is not None:
            size[k] = getattr(args, k)
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_diagnose_"))
    work.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    print(f"size: grid {size['grid']} deg, {size['members']} members, {size['start']}..{size['end']}; work {work}")
    if size["grid"] == "1" and not args.channels:
        p.error("--grid 1 needs --channels (md-synth itself offers 1.5, 3 and 5.625 deg)")
    t_ens = synth(work / "ensemble", size["grid"], size["members"], size["start"], size["end"], 1, args.channels)
    t_ref = synth(work / "reference", size["grid"], 1, size["start"], size["end"], 2, args.channels)
    nbytes = store_bytes(work / "ensemble" / "dataset.zarr") + store_bytes(work / "reference" / "dataset.zarr")
    print(f"generated in {t_ens + t_ref:.1f} s; stores on disk {nbytes / 2**30:.2f} GiB")

    floor, floor_rss, code = run_measured(io_floor_cmd([work / "ensemble", work / "reference"], args.variables), env)
    assert code == 0
    floor_cpu = LAST_CPU
    print(f"I/O floor (read every chunk of {', '.join(args.variables or ['every variable'])} once): {floor:.1f} s wall, {floor_cpu:.1f} s CPU, "
          f"peak RSS {floor_rss / 2**30:.2f} GiB")

    runs = {}
    todo = ([("before", args.baseline_code)] if args.baseline_code else []) + [("after", None)]
    if args.before_only:
        todo = todo[:1]
    for label, code_dir in todo:
        saved = work / f"out-{label}" / "bench_row.json"
        if label == "before" and args.reuse_before and saved.exists():  # measured earlier on this data
            row = json.loads(saved.read_text())
            print(f"md-diagnose (before): reusing the run measured earlier ({saved})")
        else:
            row = diagnose(work, size, args, env, code_dir, work / f"out-{label}")
            if row is None:
                return 1
            saved.write_text(json.dumps(row))
        row.update(io_floor_s=floor, io_floor_cpu_s=floor_cpu)
        runs[label] = row
        print(f"md-diagnose ({label}, code {code_dir or 'this checkout'}): {row['wall_s']:.1f} s wall, "
              f"{row['cpu_s']:.1f} s CPU, peak RSS (process tree) {row['rss_GiB']:.2f} GiB; {row['numbers']} numbers; "
              f"ratio to the I/O floor {row['wall_s'] / floor:.1f}x wall, {row['cpu_s'] / max(floor_cpu, 1e-9):.1f}x CPU")
    if len(runs) == 2:
        print(side_by_side(runs, floor, floor_cpu))
        print(f"largest relative difference of the common numbers: {max_rel_diff(work / 'out-before', work / 'out-after')}")
    print(json.dumps({"grid": size["grid"], "members": size["members"], "period": f"{size['start']}..{size['end']}",
                      "store_GiB": round(nbytes / 2**30, 3), "io_floor_s": round(floor, 1),
                      "io_floor_cpu_s": round(floor_cpu, 1), "floor_rss_GiB": round(floor_rss / 2**30, 2),
                      **{f"{label}_{k}": v for label, row in runs.items() for k, v in row.items()
                         if k in ("wall_s", "cpu_s", "rss_GiB", "numbers")}}))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
