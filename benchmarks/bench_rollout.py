"""Rollout throughput (member-months per second) and peak memory of ``emulator-run``'s engine.

    OMP_NUM_THREADS=1 python benchmarks/bench_rollout.py          # demo + md-1p5, both samplers (~2-3 min CPU)
    python benchmarks/bench_rollout.py --only demo --members 10 --months 12
    python benchmarks/bench_rollout.py --only md-1p5 --ref-members 50 --ref-months 12 --device cuda
    python benchmarks/bench_rollout.py --only none --quality outputs/demo-train --quality-months 24

Speed cases use random weights (speed does not depend on training): the model of a config
(configs/demo.yaml: 5.625 degree, 6 channels; configs/md-1p5.yaml: 1.5 degree, 37 channels),
normalisation statistics set to plausible physical values, constant forcing in memory, and
the real streaming AI-MIP netCDF output into a temporary directory (so I/O is counted).
Throughput counts every member-month written (month 0 is an encoding, later months a
diffusion step plus a decoding). Peak memory is the peak resident set size sampled during
the case (and the CUDA peak allocation on a GPU).

``--quality CKPT`` compares the samplers on a trained checkpoint's own dataset (the synthetic
climate of md-synth): fair CRPS and the RMS of the time-mean bias of the ensemble, per
variable, over the run, with :mod:`diagnostics.metrics`.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch

from diagnostics.data import catalogue
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from emulator import config as config_mod
from emulator.data import parse_channels
from emulator.model import DataSpec, MonthlyDiffusion
from emulator.rollout import RolloutConfig, run_rollout

ROOT = Path(__file__).resolve().parents[1]
GRIDS = {"demo": 5.625, "md-1p5": 1.5}


def cpu_model_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


class PeakRSS:
    """Peak resident set size (bytes) of this process while the context is open, sampled every 20 ms."""

    def __enter__(self):
        self.peak, self._stop = self._rss(), threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    @staticmethod
    def _rss() -> int:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * 4096

    def _watch(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._rss())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())


class ConstantForcing:
    """Forcing of a run held in memory: the same SST/sea-ice field every month."""

    calendar = "proleptic_gregorian"

    def __init__(self, fields: np.ndarray, months: int):
        self.fields, self.months = fields, months

    def __len__(self) -> int:
        return self.months

    def month(self, k: int) -> np.ndarray:
        return self.fields


def random_model(name: str, device: torch.device, seed: int = 0) -> tuple[MonthlyDiffusion, np.ndarray, np.ndarray]:
    """Random-weight model of ``configs/<name>.yaml``, a plausible initial state and forcing."""
    cfg = config_mod.load(ROOT / "configs" / f"{name}.yaml")
    grid = equiangular(GRIDS[name])
    spec = DataSpec(tuple(parse_channels(cfg.data.state)), tuple(cfg.data.forcings), tuple(cfg.data.statics),
                    tuple(grid.lat), tuple(grid.lon))
    torch.manual_seed(seed)
    model = MonthlyDiffusion(cfg.model, spec)
    # statistics in transformed space: centre and 1/8 of the catalogue's plausible range
    def stats(names):
        mean, std = [], []
        for n in names:
            var = catalogue.variable(n)
            lo, hi = var.valid_range
            lo, hi = max(lo, -100.0), min(hi, 1e5)
            if var.transform == "sqrt":
                lo, hi = 0.0, float(np.sqrt(hi))
            elif var.transform == "logit":
                lo, hi = -4.0, 4.0
            mean.append(0.5 * (lo + hi))
            std.append((hi - lo) / 8.0)
        return np.array(mean), np.array(std)

    sm, ss = stats([n for n, _ in spec.channels])
    fm, fs = stats(list(spec.forcing_names))
    extra = {}
    if model.normaliser.anomaly:  # climatology = the channel centre everywhere
        extra["state_clim"] = np.broadcast_to(sm[None, :, None, None], (12, len(sm), *spec.shape))
        sm = np.zeros_like(sm)
    if model.normaliser.forcing_anomaly:
        extra["forcing_clim"] = np.broadcast_to(fm[None, :, None, None], (12, len(fm), *spec.shape))
        extra["forcing_anom_std"] = fs / 10.0
    model.normaliser.set_stats(sm, ss, fm, fs, **extra)
    model = model.to(device).eval()
    h, w = spec.shape
    rng = np.random.default_rng(seed)
    x_n = torch.from_numpy(0.5 * rng.standard_normal((1, len(spec.channels), h, w)).astype(np.float32))
    initial = model.normaliser.denormalise_state(x_n.to(device), torch.tensor([10], device=device)).cpu().numpy()[0]
    lat = np.deg2rad(np.asarray(spec.lat))[:, None]
    tos = np.broadcast_to(271.0 + 30.0 * np.cos(lat), (h, w)).astype(np.float32).copy()
    tos[:, : w // 4] = np.nan  # a "continent"
    ice = np.broadcast_to(np.clip((np.abs(np.rad2deg(lat)) - 60.0) / 20.0, 0.0, 1.0), (h, w)).astype(np.float32)
    forcing = np.stack([tos, ice])[[list(("tos", "siconc")).index(f) for f in spec.forcing_names]]
    return model, initial, forcing


def speed_case(name: str, sampler: str, members: int, months: int, batch: int | None, device: torch.device,
               steps: int | None = None) -> dict:
    model, initial, forcing = random_model(name, device)
    cfg = RolloutConfig(members=members, start=Month(1978, 10), end=Month(1978, 10) + (months - 1),
                        sampler=sampler, steps=steps, model_name="bench")
    with tempfile.TemporaryDirectory() as tmp, PeakRSS() as mem:
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        start, cpu0 = time.perf_counter(), time.process_time()
        state = run_rollout(model, ConstantForcing(forcing, months), initial, cfg, Path(tmp) / "run",
                            {"bench": name}, batch_size=batch, progress=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    used_steps = state.args["steps"]
    row = {"config": name, "grid": f"{model.spec.shape[0]}x{model.spec.shape[1]}", "channels": len(model.channels),
           "params": model.n_parameters(), "sampler": f"{sampler}/{used_steps}", "members": members,
           "batch": batch or members, "months": months, "wall_s": wall,
           "member_months_per_s": members * months / wall, "s_per_member_month": wall / (members * months),
           "cpu_s_per_member_month": cpu / (members * months),
           "peak_rss_gb": mem.peak / 1e9, "output_mb": state.summary["output_bytes"] / 1e6}
    if device.type == "cuda":
        row["cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    return row


def quality(ckpt: str, members: int, months: int, device: torch.device) -> list[dict]:
    """Fair CRPS and RMS time-mean bias (ensemble vs the checkpoint's dataset) per sampler."""
    from diagnostics.io.open import open_dataset
    from diagnostics.metrics.climatology import bias_map, bias_summary
    from diagnostics.metrics.crps import crps_ensemble
    from diagnostics.data.grid import global_mean
    from emulator import checkpoint
    from emulator.forcing import ForcingReader, initial_state

    meta = checkpoint.read_meta(ckpt)
    spec = checkpoint.spec_from_meta(meta)
    data = checkpoint.config_of(meta).data.path
    model = checkpoint.load_model(meta["_dir"], device=device)
    start = Month(1979, 1)
    end = start + (months - 1)
    ref = open_dataset(data)
    rows = []
    for sampler in ("ancestral", "ddim"):
        cfg = RolloutConfig(members=members, start=start, end=end, sampler=sampler, model_name="bench")
        forcing = ForcingReader(data, spec, start, end, 0.0)
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            state = run_rollout(model, forcing, initial_state(data, spec, start), cfg, Path(tmp), {"ckpt": ckpt},
                                progress=False)
            wall = time.perf_counter() - t0
            row = {"sampler": f"{sampler}/{state.args['steps']}", "members": members, "months": months, "wall_s": wall}
            for name in dict.fromkeys(n for n, _ in spec.channels):
                # one variable at a time keeps memory to one field
                e = open_dataset(tmp, variables=[name])[name].isel(time=slice(1, None)).load()
                r = ref[name].sel(time=e["time"]).load()
                if "plev" in e.dims:
                    r = r.sel(plev=e["plev"])
                crps = crps_ensemble(e, r, fair=True)
                row[f"crps_{name}"] = float(global_mean(crps.mean("time")).mean())  # mean over levels, if any
                row[f"bias_rms_{name}"] = float(np.asarray(bias_summary(bias_map(e, r))["rms"]).mean())
        rows.append(row)
    return rows


def _table(rows: list[dict], keys: list[str]) -> str:
    head = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    return head + "\n".join("| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", choices=["demo", "md-1p5", "none"], help="one config only (none: quality only)")
    p.add_argument("--members", type=int, default=10, help="demo members (default 10)")
    p.add_argument("--months", type=int, default=12, help="demo months (default 12)")
    p.add_argument("--ref-members", type=int, default=10,
                   help="md-1p5 members (default 10; the AI-MIP ensemble is 50: use 50 on a GPU)")
    p.add_argument("--ref-months", type=int, default=3, help="md-1p5 months (default 3: encode + 2 steps)")
    p.add_argument("--ref-batch", type=int, default=None, help="md-1p5 members per batch (default all)")
    p.add_argument("--ddim-steps", type=int, default=None, help="DDIM steps (default: the config's, 5)")
    p.add_argument("--quality", metavar="CKPT", help="trained demo checkpoint for the sampler quality comparison")
    p.add_argument("--quality-members", type=int, default=5)
    p.add_argument("--quality-months", type=int, default=24)
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    a = p.parse_args()
    device = torch.device("cuda" if a.device == "auto" and torch.cuda.is_available() else
                          ("cpu" if a.device == "auto" else a.device))
    where = (torch.cuda.get_device_name() if device.type == "cuda"
             else f"{cpu_model_name()}, {torch.get_num_threads()} thread(s)")
    print(f"# bench_rollout on {where}; torch {torch.__version__}")
    rows = []
    for name in ("demo", "md-1p5"):
        if a.only and a.only != name:
            continue
        if name == "demo":
            members, months, batch = a.members, a.months, None
        else:
            members, months, batch = a.ref_members, a.ref_months, a.ref_batch
        for sampler, steps in (("ancestral", None), ("ddim", a.ddim_steps)):
            rows.append(speed_case(name, sampler, members, months, batch, device, steps))
            r = rows[-1]
            print(f"{name:7s} {r['sampler']:12s} {members} members x {months} months: {r['member_months_per_s']:.3g} "
                  f"member-months/s, peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    if rows:
        print()
        print(_table(rows, ["config", "grid", "channels", "params", "sampler", "members", "batch", "months", "wall_s",
                            "member_months_per_s", "s_per_member_month", "cpu_s_per_member_month", "peak_rss_gb",
                            "output_mb"] + (["cuda_peak_gb"] if device.type == "cuda" else [])))
    ref = [r for r in rows if r["config"] == "md-1p5"]
    if ref:
        need = 3 * 555 * 50
        for r in ref:
            print(f"AI-MIP (3 x 555 months x 50 members = {need} member-months) at {r['sampler']}: "
                  f"{need / r['member_months_per_s'] / 3600:.1f} h on this device")
    if a.quality:
        print()
        q = quality(a.quality, a.quality_members, a.quality_months, device)
        print(_table(q, list(q[0].keys())))


if __name__ == "__main__":
    main()
