"""``make demo``: the whole user path on the embedded synthetic climate, end to end.

    synthesise the default climate (md-synth), and 5 more realisations of it (the noise floor)
    -> train configs/demo.yaml and fit the linear baseline configs/lim.yaml (emulator-train)
    -> historical, +2K and +4K ensembles of both (emulator-run)
    -> score MD, LIM and the noise floor against the synthetic reference, side by side, and
       render the report (md-diagnose)

Each step runs the real console script, exactly as a user would type it (the commands are
printed). A finished step is skipped and an interrupted one resumed, so rerunning
``make demo`` after Ctrl-C continues where it stopped. A GPU is used when present.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from diagnostics.data.errors import InputError, add_debug_flag, cli_entry
from diagnostics.data.experiments import EXPERIMENTS, SCENARIOS

from ..config import SAMPLERS



def _bin(name: str) -> str:
    """The console script installed next to this interpreter (the project's venv)."""
    candidate = Path(sys.executable).with_name(name)
    return str(candidate) if candidate.exists() else name


def _run(cmd: list[str], log: list[dict]) -> None:
    """Run one step, echo it, record its wall time; a failing step stops the demo (exit 2)."""
    print("\n$ " + " ".join(shlex.quote(c) for c in [Path(cmd[0]).name, *cmd[1:]]), flush=True)
    t0 = time.perf_counter()
    code = subprocess.call(cmd)
    log.append({"step": Path(cmd[0]).name, "seconds": round(time.perf_counter() - t0, 1)})
    if code != 0:
        raise InputError(f"step `{Path(cmd[0]).name}` failed with exit code {code}; "
                         "fix the cause and rerun `make demo` to continue")


def _parallel_jobs(args: argparse.Namespace) -> int:
    """Concurrent rollouts: on a CPU with two or more cores all three at once (each runs one
    torch thread; on 2 cores this measured about as fast as two at a time and then the third,
    on more cores it is 3x one after another), one at a time on one core or on a GPU (members
    are batched there)."""
    if args.jobs:
        return args.jobs
    if args.device == "cuda" or (args.device == "auto" and _cuda_available()):
        return 1
    return len(EXPERIMENTS) if (os.cpu_count() or 1) >= 2 else 1


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _run_parallel(cmds: list[list[str]], jobs: int, log: list[dict]) -> None:
    """Run independent steps ``jobs`` at a time. With more than one at a time their progress
    bars would interleave, so each runs with ``--no-progress`` and its output is printed
    as a block when it ends; a failing step stops the demo (exit 2) after the others end."""
    if jobs <= 1 or len(cmds) <= 1:
        for cmd in cmds:
            _run(cmd, log)
        return
    pending, running, failed = list(cmds), [], []
    print(f"\n{len(cmds)} rollouts, {jobs} at a time (progress is printed as each one ends)", flush=True)
    while pending or running:
        while pending and len(running) < jobs:
            cmd = pending.pop(0) + ["--no-progress"]
            print("$ " + " ".join(shlex.quote(c) for c in [Path(cmd[0]).name, *cmd[1:]]), flush=True)
            output = tempfile.TemporaryFile("w+")  # not a pipe: a full pipe would block the step
            proc = subprocess.Popen(cmd, stdout=output, stderr=subprocess.STDOUT, text=True)
            running.append((cmd, proc, output, time.perf_counter()))
        time.sleep(0.5)
        for item in list(running):
            cmd, proc, output, t0 = item
            if proc.poll() is None:
                continue
            running.remove(item)
            output.seek(0)
            print(output.read().rstrip(), flush=True)
            output.close()
            log.append({"step": Path(cmd[0]).name, "seconds": round(time.perf_counter() - t0, 1)})
            if proc.returncode != 0:
                failed.append((cmd, proc.returncode))
    if failed:
        cmd, code = failed[0]
        raise InputError(f"step `{Path(cmd[0]).name} {shlex.join(cmd[1:5])}` failed with exit code {code}; "
                         "fix the cause and rerun `make demo` to continue")


def _training_finished(run_dir: Path) -> bool | None:
    """True if the run finished its configured epochs, False if it can be resumed, None if absent."""
    trainer = run_dir / "checkpoint" / "trainer.json"
    if not trainer.exists():
        return None
    epochs = yaml.safe_load((run_dir / "checkpoint" / "config.yaml").read_text())["train"]["epochs"]
    return json.loads(trainer.read_text()).get("epoch", 0) >= epochs


def _run_status(run_dir: Path) -> str | None:
    path = run_dir / "run_state.json"
    return json.loads(path.read_text()).get("status") if path.exists() else None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="make demo", description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs/demo", help="where everything goes (default outputs/demo)")
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--lim-config", default="configs/lim.yaml", help="the linear baseline (default configs/lim.yaml)")
    p.add_argument("--grid", default="5.625", help="grid of the synthetic climate, degrees")
    p.add_argument("--start", default="1978-10")
    p.add_argument("--end", default="2024-12")
    p.add_argument("--members", type=int, default=5, help="ensemble members per experiment (AI-MIP: 5)")
    p.add_argument("--sampler", default="ancestral", choices=list(SAMPLERS))
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--model-name", default="MD-demo")
    p.add_argument("--jobs", type=int, default=0,
                   help="rollouts run at the same time (default: all three on a multi-core CPU, one on a GPU)")
    return p


def _main(argv: list[str]) -> int:
    args = add_debug_flag(_parser()).parse_args(argv)
    out = Path(args.out)
    synth, train, runs, scores = out / "synthetic", out / "train", out / "runs", out / "diagnostics"
    realisations, train_lim, runs_lim = out / "synthetic-members", out / "train-lim", out / "runs-lim"
    log: list[dict] = []
    t0 = time.perf_counter()

    if not (synth / "manifest.json").exists():
        _run([_bin("md-synth"), "--out", str(synth), "--grid", args.grid, "--start", args.start,
              "--end", args.end, "--seed", "0"], log)
    _run([_bin("md-describe"), str(synth)], log)
    if not (realisations / "manifest.json").exists():  # member 0 = the reference, 1..5 its other weather
        _run([_bin("md-synth"), "--out", str(realisations), "--grid", args.grid, "--start", args.start,
              "--end", args.end, "--seed", "0", "--members", "6"], log)

    finished = _training_finished(train)
    if not finished:
        _run([_bin("emulator-train"), "--config", args.config, "--data", str(synth), "--out", str(train),
              "--device", args.device] + (["--resume"] if finished is False else []), log)

    if not (train_lim / "checkpoint").exists():  # the linear stochastic baseline: fitted in seconds
        _run([_bin("emulator-train"), "--config", args.lim_config, "--data", str(synth), "--out", str(train_lim)],
             log)

    rollouts = []
    for exp in EXPERIMENTS:
        run_dir = runs / exp
        status = _run_status(run_dir)
        if status == "complete":
            continue
        rollouts.append([_bin("emulator-run"), "--checkpoint", str(train / "checkpoint"), "--experiment", exp,
                         "--members", str(args.members), "--start", args.start, "--end", args.end,
                         "--out", str(run_dir), "--seed", "0", "--device", args.device, "--sampler", args.sampler,
                         "--model-name", args.model_name] + (["--resume"] if status else []))
    _run_parallel(rollouts, _parallel_jobs(args), log)

    # the linear stochastic baseline's runs, one after another (about 20 s each on one core)
    for exp in EXPERIMENTS:
        status = _run_status(runs_lim / exp)
        if status != "complete":
            _run([_bin("emulator-run"), "--checkpoint", str(train_lim / "checkpoint"), "--experiment", exp,
                  "--members", str(args.members), "--start", args.start, "--end", args.end,
                  "--out", str(runs_lim / exp), "--seed", "0", "--model-name", "LIM"]
                 + (["--resume"] if status else []), log)

    scenarios = [f"{model}:{exp}={root / exp}" for model, root in ((args.model_name, runs), ("LIM", runs_lim))
                 for exp in SCENARIOS]
    _run([_bin("md-diagnose"), "--ensemble", f"{args.model_name}={runs / 'historical'}",
          "--ensemble", f"LIM={runs_lim / 'historical'}", "--reference", str(synth),
          "--noise-floor", str(realisations), *[a for s in scenarios for a in ("--scenario", s)],
          "--out", str(scores), "--report", "html,pdf"], log)

    total = time.perf_counter() - t0
    print("\ndemo finished in {:.0f} s ({})".format(
        total, ", ".join(f"{s['step']} {s['seconds']:.0f} s" for s in log)))
    print(f"  synthetic climate : {synth}")
    print(f"  trained emulator  : {train / 'checkpoint'}")
    print(f"  linear baseline   : {train_lim / 'checkpoint'}")
    print(f"  ensembles (AI-MIP): {runs}/{{historical,p2k,p4k}}, LIM: {runs_lim}/{{historical,p2k,p4k}}")
    print(f"  noise floor       : {realisations} (members 1-5: the reference's own other weather)")
    print(f"  metrics           : {scores / 'metrics.json'}")
    print(f"  report            : {scores / 'report' / 'index.html'}  (PDF: {scores / 'report' / 'report.pdf'})")
    return 0


main = cli_entry(_main, "rerun `make demo`: finished steps are skipped, an interrupted one resumes", prog="make demo")

if __name__ == "__main__":
    raise SystemExit(main())
