"""Benchmark: free-run fidelity of step variants on trained checkpoints (issue 13 point 4).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_fidelity.py \
        --checkpoint 0=outputs/demo/train --checkpoint 1=/tmp/seed1 ... \
        --data outputs/demo/synthetic --members-data outputs/demo/synthetic-members \
        --variant D48s4 --work /tmp/fidelity/bench [--experiments historical,p2k,p4k]
    screening (session 7): --end 2004-12 --members 3 --train-period 1979-01:1998-12 \
        --test-period 1999-01:2004-12 --quick

Each variant is a ``model.step`` of configs/demo.yaml's networks (the table ``VARIANTS``), or of
a training of its own (``TRAINED``: the ``--checkpoint`` runs then only name the seeds); a
``latent_lim`` variant needs no training: :func:`emulator.train.calibrate_checkpoint` fits its
Gaussian on the trained checkpoint (one per training seed). Each (variant, seed) is run with
the real ``emulator-run`` (``--seed 0``, as ``make demo``) and scored by the real
``md-diagnose`` against the demo reference (``--noise-floor`` with the other realisations when
``--members-data`` is given). The statistics of the issue's targets are read back from each
``metrics.json`` and printed per seed and as the mean over seeds. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

CHANNELS = ("tas", "pr", "psl", "zg500", "ta850", "ua850")

# model.step of each variant (None: the checkpoint's own step, no re-calibration)
_LL = {"type": "latent_lim", "mean": "skip", "forcing_modes": 4, "noise": "seasonal", "max_residual_scale": 1.0,
       "next_forcing": True, "mixing": True, "denoiser_previous": False, "denoiser_forcing": False}
VARIANTS: dict[str, dict | None] = {
    "A": None,  # the checkpoint as trained (configs/demo.yaml: skip + diffusion)
    "D24": {**_LL, "modes": 24},  # session 6's configs/demo-latent-lim.yaml
    "D48": {**_LL, "modes": 48},
    "D96": {**_LL, "modes": 96},
    "D48a": {**_LL, "modes": 48, "basis": "anomalies"},
    "D96a": {**_LL, "modes": 96, "basis": "anomalies"},
    "D48r": {**_LL, "modes": 48, "basis": "residuals"},
    "B48": {**_LL, "modes": 48, "mean": "lim"},
    "D48s2": {**_LL, "modes": 48, "seasonal_modes": 2},  # + month-dependent persistence (session 7)
    "D48s4": {**_LL, "modes": 48, "seasonal_modes": 4},
    "D96s4": {**_LL, "modes": 96, "seasonal_modes": 4},
}

# Variants with their own training (session 8: model.step.previous_noise changes the denoiser).
# TRAININGS: name -> (config file, model.step replacing the file's, or None); each is trained
# once per seed into --trained DIR/<name>-s<seed> (emulator-train, train.seed = the seed) when
# absent. TRAINED: variant -> (its training, a model.step re-calibrated on it, or None: as trained);
# a step differing in previous_noise.sample only is the same networks sampled at another level.
_NA = {"type": "skip", "next_forcing": True, "mixing": True, "denoiser_previous": True, "denoiser_forcing": False}
TRAININGS: dict[str, tuple[str, dict | None]] = {
    "N1": ("configs/demo-noiseaug.yaml", None),  # previous_noise {max: 1, sample: 0.5}
    "N2": ("configs/demo-noiseaug.yaml", {**_NA, "previous_noise": {"max": 2.0, "sample": 1.0}}),
    "P": ("configs/demo-noiseaug.yaml", {**_NA}),  # denoiser_previous without augmentation (session 6)
}
TRAINED: dict[str, tuple[str, dict | None]] = {
    "N1": ("N1", None),
    "N1s0": ("N1", {**_NA, "previous_noise": {"max": 1.0, "sample": 0.0}}),
    "N1s1": ("N1", {**_NA, "previous_noise": {"max": 1.0, "sample": 1.0}}),
    "N2": ("N2", None),
    "N2s05": ("N2", {**_NA, "previous_noise": {"max": 2.0, "sample": 0.5}}),
    "N2s2": ("N2", {**_NA, "previous_noise": {"max": 2.0, "sample": 2.0}}),
    "P": ("P", None),
}


def train_variant(training: str, seed: int, data: str, trained: Path, log: Path) -> Path:
    """The run directory of ``training`` for ``seed`` under ``trained`` (trained here when absent)."""
    out = trained / f"{training}-s{seed}"
    if (out / "checkpoint" / "meta.json").exists():
        return out
    path, step = TRAININGS[training]
    raw = yaml.safe_load(Path(path).read_text())
    raw["train"]["seed"] = seed
    raw["name"] = f"{raw['name']}-{training}-s{seed}"
    if step is not None:
        raw["model"]["step"] = dict(step)
    trained.mkdir(parents=True, exist_ok=True)
    cfg_file = trained / f"{training}-s{seed}.yaml"
    cfg_file.write_text(yaml.safe_dump(raw, sort_keys=False))
    t = _call([_bin("emulator-train"), "--config", str(cfg_file), "--data", data, "--out", str(out), "--device", "cpu",
               "--no-progress"] + (["--resume"] if (out / "checkpoint").exists() else []), log)
    print(f"trained {training} seed {seed}: {t:.0f} s", flush=True)
    return out


def statistics(metrics: dict, model: str) -> dict[str, float]:
    """The issue-13 statistics of ``model`` from an md-diagnose ``metrics.json`` ``metrics`` dict."""
    out: dict[str, float] = {}
    for mode in ("nao_psl", "nao_z500", "nh_z500_eof1"):
        for stat in ("pattern_corr", "pc_std_ratio"):
            out[f"{mode}.{stat}"] = metrics.get(f"{model}.{mode}.{stat}", np.nan)
    for c in CHANNELS:
        for key in ("nino34_pattern_corr.all", "nino34_amplitude_ratio.all", "lag1_ratio.all", "std_ratio.all",
                    "bias_rms.test.ANN", "crps.test", "warming_per_K_global.p2k", "warming_per_K_global.p4k"):
            out[f"{c}.{key}"] = metrics.get(f"{model}.{c}.{key}", np.nan)
    return out


def _bin(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def _call(cmd: list[str], log: Path) -> float:
    """Run a console script (output to ``log``); its wall time in seconds."""
    t0 = time.perf_counter()
    with open(log, "a") as fh:
        fh.write("$ " + " ".join(cmd) + "\n")
        fh.flush()
        code = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT)
    if code:
        raise SystemExit(f"{Path(cmd[0]).name} failed ({code}), see {log}")
    return time.perf_counter() - t0


def prepare(variant: str, run: Path, data: str, work: Path, seed: int = 0, trained: Path | None = None) -> Path:
    """The run directory of ``variant`` on the trained ``run`` (re-calibrated when needed); a
    ``TRAINED`` variant on its own training of ``seed`` under ``trained`` instead."""
    if variant in TRAINED:
        training, step = TRAINED[variant]
        run = train_variant(training, seed, data, trained or work / "train", work / "log.txt")
    else:
        step = VARIANTS[variant]
    if step is None:
        return run
    out = work / "ckpt" / f"{variant}-{run.name}"
    if not (out / "checkpoint" / "meta.json").exists():
        from emulator import checkpoint, config as config_mod
        from emulator.train import calibrate_checkpoint

        raw = yaml.safe_load((checkpoint.meta_path(run).parent / "config.yaml").read_text())
        raw["model"]["step"] = dict(step)
        raw["name"] = f"{raw['name']}-{variant}"
        cfg = config_mod.from_dict(raw, f"variant {variant}")
        calibrate_checkpoint(run, cfg, out, data, device="cpu")
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", action="append", required=True, help="SEED=RUN_DIR (repeat)")
    p.add_argument("--data", required=True)
    p.add_argument("--members-data", help="md-synth --members output: scored as the noise floor")
    p.add_argument("--variant", action="append", required=True, choices=[*VARIANTS, *TRAINED])
    p.add_argument("--trained", help="where TRAINED variants' trainings live (default WORK/train)")
    p.add_argument("--work", required=True)
    p.add_argument("--start", default="1978-10")
    p.add_argument("--end", default="2024-12")
    p.add_argument("--members", type=int, default=5)
    p.add_argument("--experiments", default="historical", help="comma list of historical,p2k,p4k")
    p.add_argument("--train-period", default="1979-01:2014-12")
    p.add_argument("--test-period", default="2015-01:2024-12")
    p.add_argument("--quick", action="store_true", help="screening: md-diagnose without baselines and spectra")
    p.add_argument("--json")
    args = p.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    log = work / "log.txt"
    runs = {int(s.split("=", 1)[0]): Path(s.split("=", 1)[1]) for s in args.checkpoint}
    exps = args.experiments.split(",")
    results: dict = {}
    for variant in args.variant:
        results[variant] = {}
        for seed, run in sorted(runs.items()):
            tag = f"{variant}-s{seed}-{args.end}-m{args.members}"
            scores = work / "scores" / tag
            if not (scores / "metrics.json").exists():
                t0 = time.perf_counter()
                ckpt = prepare(variant, run, args.data, work, seed, Path(args.trained) if args.trained else None)
                t_cal = time.perf_counter() - t0
                t_run = 0.0
                for exp in exps:
                    out = work / "runs" / tag / exp
                    if not (out / "run_state.json").exists() or json.loads(
                            (out / "run_state.json").read_text()).get("status") != "complete":
                        t_run += _call([_bin("emulator-run"), "--checkpoint", str(ckpt), "--experiment", exp,
                                        "--members", str(args.members), "--start", args.start, "--end", args.end,
                                        "--out", str(out), "--seed", "0", "--device", "cpu", "--model-name", "MD", "--forcing", args.data,
                                        "--no-progress"] + (["--resume"] if (out / "run_state.json").exists() else []), log)
                cmd = [_bin("md-diagnose"), "--ensemble", f"MD={work / 'runs' / tag / 'historical'}",
                       "--reference", args.data, "--out", str(scores), "--report", "none", "--no-progress",
                       "--train-period", args.train_period, "--test-period", args.test_period,
                       "--members-max", str(args.members)]
                if args.members_data:
                    cmd += ["--noise-floor", args.members_data]
                if args.quick:
                    cmd += ["--no-baselines", "--no-spectra"]
                for exp in exps[1:]:
                    cmd += ["--scenario", f"MD:{exp}={work / 'runs' / tag / exp}"]
                t_diag = _call(cmd, log)
                print(f"{tag}: calibration {t_cal:.0f} s, runs {t_run:.0f} s, md-diagnose {t_diag:.0f} s", flush=True)
            metrics = json.loads((scores / "metrics.json").read_text())["metrics"]
            results[variant][seed] = statistics(metrics, "MD")
            if args.members_data:
                results.setdefault("noise-floor", {})[seed] = statistics(metrics, "noise-floor")
    keys = list(next(iter(next(iter(results.values())).values())))
    print(f"{'statistic':<34}" + "".join(f"{v:>16}" for v in results))
    for key in keys:
        cells = []
        for variant in results:
            vals = np.array([results[variant][s][key] for s in results[variant]], float)
            cells.append(f"{np.nanmean(vals):8.3f}+-{np.nanstd(vals):5.3f}" if len(vals) > 1 else f"{vals[0]:16.3g}")
        print(f"{key:<34}" + "".join(f"{c:>16}" for c in cells))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
