"""Guided sampling: drift of the global-mean ``ps`` with and without ``--guide dry-mass``, and the
cost per step as a ratio to unguided sampling, on a trained checkpoint's own dataset.

    OMP_NUM_THREADS=1 python benchmarks/bench_guidance.py --checkpoint /tmp/wind/train --months 120 --members 3
    python benchmarks/bench_guidance.py --checkpoint C --months 555 --members 2 --device cuda

From the files of finished ``emulator-run`` directories instead (what a user gets):

    python benchmarks/bench_guidance.py --checkpoint C --runs unguided=R0 mmps=R1 dps=R2
    python benchmarks/bench_guidance.py --checkpoint C --runs plain=R0 tas2=R3 tas2-cc=R4 \
        --storyline plain --truth SYNTH/truth.nc

``--runs``: per run the dry-mass deviation (as below) of every member and month read from
its ``ps_Amon_*`` files, its linear drift per decade (least-squares slope over months 2..,
mean over members) and the run's own wall time per member-month (``run_state.json``).
``--storyline BASE``: each other run's global-mean tas, near-surface specific humidity
(derived from ``tdas`` and ``ps`` like the humidity-scaling constraint) and precipitation
minus BASE's (months 2..), beside the planted warming response of the synthetic truth
(``<v>_warming_per_K`` per K of SST offset, scaled to the tas change the run has).

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
import re
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from diagnostics.data.grid import global_mean
from diagnostics.io.levels import huss_from_tdas
from diagnostics.metrics.pattern import pattern_correlation

from diagnostics.data.timeaxis import Month
from emulator import checkpoint
from emulator.forcing import ForcingReader, initial_state
from emulator.guidance.cli import training_global_humidity, training_global_mean
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


def read_run(run_dir: str | Path, var: str) -> xr.DataArray:
    """``var [member, time, lat, lon]`` from an emulator-run directory's AI-MIP files (members r1, r2, ...).

    A run still going (or stopped) is read from its ``.VAR_Amon_*.nc.partial`` files, copied first
    (they are open for writing), up to the months ``run_state.json`` counts as completed (the
    files are flushed before the state advances; later months are still zero there)."""
    run_dir = Path(run_dir)
    state = json.loads((run_dir / "run_state.json").read_text())
    partial = state["status"] != "complete"
    pattern = f".{var}_Amon_*.nc.partial" if partial else f"{var}_Amon_*.nc"
    files = sorted(run_dir.glob(pattern), key=lambda f: int(re.search(r"_r(\d+)i", f.name).group(1)))
    if not files:
        raise SystemExit(f"{run_dir}: no {pattern} files")
    members = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in files:
            if partial:
                f = Path(shutil.copy(f, Path(tmp) / f.name.lstrip(".")))
            with xr.open_dataset(f) as ds:
                members.append(ds[var].isel(time=slice(0, state["completed"])).load())
    return xr.concat(members, dim="member")


def drift_stats(dev: np.ndarray) -> dict[str, float]:
    """Deviation ``dev [months, members]`` (Pa) -> mean of the last 12 months, RMS and max |dev| over
    months 2.. (month 1 is the initial state), linear drift per decade (slope of a least-squares
    line over months 2.. per member, times 120 months, mean over members)."""
    t = np.arange(dev.shape[0])[1:] / 120.0  # decades
    slopes = [np.polyfit(t, dev[1:, m], 1)[0] for m in range(dev.shape[1])]
    return {"drift_last12_Pa": float(dev[-12:].mean()), "rms_Pa": float(np.sqrt((dev[1:] ** 2).mean())),
            "max_abs_Pa": float(np.abs(dev[1:]).max()), "mean_Pa": float(dev[1:].mean()),
            "trend_Pa_per_decade": float(np.mean(slopes))}


def _wall_per_member_month(run_dir: str | Path) -> float:
    summary = json.loads((Path(run_dir) / "run_state.json").read_text()).get("summary") or {}
    return summary["wall_s"] / summary["member_months"] if summary.get("member_months") else float("nan")


def from_runs(args, cfg, spec, labels) -> dict:
    """Dry-mass deviation statistics and cost of finished emulator-run directories (``--runs``)."""
    clim = training_global_mean(cfg.data.path, "ps", list(spec.channels), labels, cfg.data.train_period)
    runs = dict(r.split("=", 1) for r in args.runs)
    results, base, series = {}, None, {}
    for name, run_dir in runs.items():
        ps = read_run(run_dir, "ps")
        gm = global_mean(ps).transpose("time", "member").values.astype(np.float64)
        months = ps["time"].dt.month.values
        res = drift_stats(gm - clim[months - 1][:, None])
        res["s_per_member_month"] = _wall_per_member_month(run_dir)
        base = res["s_per_member_month"] if base is None else base
        res["cost_ratio"] = res["s_per_member_month"] / base
        res["members"], res["months"] = int(ps.sizes["member"]), int(ps.sizes["time"])
        results[name] = res
        series[name] = (ps["time"].values, gm - clim[months - 1][:, None])
        print(f"{name:10s} {res['members']} x {res['months']} months: last 12 {res['drift_last12_Pa']:+7.2f} Pa  "
              f"rms {res['rms_Pa']:6.2f} Pa  max {res['max_abs_Pa']:6.2f} Pa  trend "
              f"{res['trend_Pa_per_decade']:+6.2f} Pa/decade  {res['s_per_member_month']:.2f} s/member-month "
              f"x{res['cost_ratio']:.2f}", flush=True)
    if args.plot:
        plot_drift(series, args.plot)
    return results


def plot_drift(series: dict[str, tuple[np.ndarray, np.ndarray]], path: str) -> None:
    """Dry-mass deviation (Pa) against time, one line per run (member mean) with its members'
    min-max band; written as a PNG for docs/guidance.md."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.2), dpi=110)
    for name, (time, dev) in series.items():
        months = time.astype("datetime64[M]").astype(int)  # months since 1970-01
        years = 1970 + (months + 0.5) / 12
        line, = ax.plot(years, dev.mean(axis=1), lw=0.9, label=f"{name} ({dev.shape[1]} members)")
        ax.fill_between(years, dev.min(axis=1), dev.max(axis=1), color=line.get_color(), alpha=0.2, lw=0)
    ax.axhline(0.0, color="k", lw=0.6)
    ax.set_ylabel("global-mean ps minus\ntraining climatology (Pa)")
    ax.legend(frameon=False, fontsize=8, ncol=len(series))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    print(f"wrote {path}")


def _global_quantities(run_dir: str | Path) -> dict[str, xr.DataArray]:
    """Global means ``[member, time]`` of tas (K), huss from tdas and ps (kg kg-1) and pr; maps of tas, pr."""
    tas, pr = read_run(run_dir, "tas"), read_run(run_dir, "pr")
    q = huss_from_tdas(read_run(run_dir, "tdas"), read_run(run_dir, "ps"))
    return {"tas": global_mean(tas), "huss": global_mean(q), "pr": global_mean(pr), "tas_map": tas, "pr_map": pr}


def storyline(args, cfg) -> dict:
    """Each run's global tas / huss / pr change relative to ``--storyline`` BASE (months 2..) beside the
    synthetic truth's planted response to the SST offset that gives the same global tas change."""
    runs = dict(r.split("=", 1) for r in args.runs)
    truth = xr.open_dataset(args.truth)
    ref = xr.open_zarr(Path(cfg.data.path) / "dataset.zarr")
    base = _global_quantities(runs[args.storyline])
    times = base["tas"]["time"].values[1:]
    months = slice(1, None)
    ds = ref.sel(time=slice(str(times[0])[:7], str(times[-1])[:7]))
    tas_per_sst = float(global_mean(truth["tas_warming_per_K"]))  # K of global tas per K of SST offset
    spec = checkpoint.spec_from_meta(checkpoint.read_meta(args.checkpoint))
    clim_tas = training_global_mean(cfg.data.path, "tas", list(spec.channels), list(spec.labels), cfg.data.train_period)
    clim_q = training_global_humidity(cfg.data.path, cfg.data.train_period)
    out = {}
    for name, run_dir in runs.items():
        run = _global_quantities(run_dir)
        cal = run["tas"]["time"].dt.month.values - 1
        vs_clim = {"tas_minus_clim_K": float((run["tas"] - clim_tas[cal]).isel(time=months).mean()),
                   "huss_over_clim": float((run["huss"] / clim_q[cal]).isel(time=months).mean() - 1.0)}
        print(f"{name:10s} global tas - training climatology {vs_clim['tas_minus_clim_K']:+.3f} K, "
              f"huss / climatology - 1 {100 * vs_clim['huss_over_clim']:+.2f} % (months 2..)")
        if name == args.storyline:
            out[name] = vs_clim
            continue
        d_tas = float((run["tas"] - base["tas"]).isel(time=months).mean())
        d_q = float((run["huss"] / base["huss"]).isel(time=months).mean() - 1.0)
        d_pr = float((run["pr"] / base["pr"]).isel(time=months).mean() - 1.0)
        sst = d_tas / tas_per_sst  # the SST offset whose planted response warms global tas by d_tas
        q0 = huss_from_tdas(ds["tdas"], ds["ps"])
        q1 = huss_from_tdas(ds["tdas"] + sst * truth["tdas_warming_per_K"],
                                             ds["ps"] + sst * truth["ps_warming_per_K"])
        truth_q = float((global_mean(q1) / global_mean(q0)).mean() - 1.0)
        truth_pr = float((global_mean(ds["pr"] + sst * truth["pr_warming_per_K"]) / global_mean(ds["pr"])).mean() - 1)
        corr = {v: float(pattern_correlation((run[f"{v}_map"] - base[f"{v}_map"]).isel(time=months).mean(("member", "time")),
                                             truth[f"{v}_warming_per_K"])) for v in ("tas", "pr")}
        out[name] = {**vs_clim, "d_tas_K": d_tas, "d_huss_frac": d_q, "d_pr_frac": d_pr, "truth_d_huss_frac": truth_q,
                     "truth_d_pr_frac": truth_pr, "cc_d_huss_frac": float(np.expm1(0.07 * d_tas)),
                     "pattern_corr_tas": corr["tas"], "pattern_corr_pr": corr["pr"],
                     "s_per_member_month": _wall_per_member_month(run_dir)}
        r = out[name]
        print(f"{name:10s} dtas {d_tas:+.3f} K  dhuss {100 * d_q:+.2f} % (truth {100 * truth_q:+.2f} %, "
              f"CC 7 %/K {100 * r['cc_d_huss_frac']:+.2f} %)  dpr {100 * d_pr:+.2f} % (truth {100 * truth_pr:+.2f} %)  "
              f"pattern r tas {corr['tas']:.2f} pr {corr['pr']:.2f}  {r['s_per_member_month']:.2f} s/member-month",
              flush=True)
    return out


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
    p.add_argument("--runs", nargs="+", metavar="NAME=DIR", help="score finished emulator-run directories instead")
    p.add_argument("--storyline", metavar="NAME", help="with --runs: the unguided run the storylines are relative to")
    p.add_argument("--plot", metavar="PNG", help="with --runs: draw the dry-mass deviation of each run")
    p.add_argument("--truth", help="with --storyline: truth.nc of the synthetic dataset")
    args = p.parse_args()

    meta = checkpoint.read_meta(args.checkpoint)
    cfg = checkpoint.config_of(meta)
    if args.runs:
        spec = checkpoint.spec_from_meta(meta)
        results = storyline(args, cfg) if args.storyline else from_runs(args, cfg, spec, list(spec.labels))
        if args.json:
            Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))
        return
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
