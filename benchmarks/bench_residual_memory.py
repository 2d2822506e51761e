"""Where residual members lose month-to-month memory (docs/residual.md, "Month-to-month memory").

    OMP_NUM_THREADS=1 python benchmarks/bench_residual_memory.py --checkpoint runs/around \
        --members data/synth-members --conditioning 1 --months 120 [--decoder-noise reconstruction]

Generates a few members around one realisation with the residual stepper month by month (seeds
100.. per member) and keeps every stage: the latent residual r, the decode without the decoder's
noise and with it. The independent realisations (the other members of ``--members``) are encoded
and decoded too: D(E(x)) and what the decoder misses, x - D(E(x)). Each stage is scored as
bench_residual.py scores members: pairs of members, sigma = std(a - b) / sqrt 2 and the lag-1
autocorrelation of a - b, area-weighted over the grid, monthly anomalies; plus the std of the
pairs' global-mean difference. Latent pairs: unweighted over (channel, point).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
import types

import numpy as np
import torch

from diagnostics.data.grid import area_weights
from diagnostics.data.timeaxis import Month
from emulator.residual.cli import prepare_run
from emulator.residual.stepper import read_conditioning_run
from emulator.stepper import Conditioning


def _anom(x: np.ndarray) -> np.ndarray:
    """Remove each calendar month's mean (time axis 0)."""
    out = x.astype(np.float64).copy()
    for k in range(12):
        out[k::12] -= out[k::12].mean(axis=0)
    return out


def pair_stats(series: list[np.ndarray], w: np.ndarray) -> dict[str, float]:
    """Mean over pairs of (sigma, lag-1, global-mean sigma) of fields ``[T, H, W]`` (see the docstring)."""
    sig, lag, glob = [], [], []
    for a, b in itertools.combinations(series, 2):
        d = _anom(a - b)
        var = (d ** 2).mean(axis=0)
        sig.append(np.sqrt((w * var).sum() / w.sum() / 2))
        lag.append((w * (d[1:] * d[:-1]).mean(axis=0) / np.maximum(var, 1e-30)).sum() / w.sum())
        glob.append(np.std((w * d).sum(axis=(-2, -1)) / w.sum()) / np.sqrt(2))
    return {"sigma": float(np.mean(sig)), "lag1": float(np.mean(lag)), "global_mean_sigma": float(np.mean(glob))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True, help="residual-ensemble checkpoint (emulator-train, type: around)")
    p.add_argument("--members", required=True, help="the realisations (md-synth --members)")
    p.add_argument("--conditioning", type=int, default=1)
    p.add_argument("--months", type=int, default=120)
    p.add_argument("--generate", type=int, default=6, help="members generated")
    p.add_argument("--decoder-noise", choices=("checkpoint", "emulator", "reconstruction"), default="checkpoint",
                   help="override the checkpoint's model.decoder_noise")
    p.add_argument("--variables", default="tas,psl,zg500")
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(1)
    start = Month(1978, 10)
    run_args = types.SimpleNamespace(checkpoint=args.checkpoint, around=args.members, around_member=args.conditioning,
                                     forcing=None, device="cpu", steps=None)
    cfg = types.SimpleNamespace(start=start, end=start + (args.months - 1), offset=0.0)
    st, forcing, initial, _ = prepare_run(run_args, cfg)
    if args.decoder_noise != "checkpoint":
        meta = json.load(open(f"{args.checkpoint.rstrip('/')}/checkpoint/meta.json"))
        scale = meta["fit"].get("decoder_noise_scale")
        st.noise_scale = torch.tensor(scale) if args.decoder_noise == "reconstruction" else None
    import xarray as xr

    ids = [int(m) for m in xr.open_zarr(f"{args.members}/dataset.zarr")["member"].values]
    others = [m for m in ids if m != args.conditioning]
    real = np.stack([read_conditioning_run(args.members, st.spec, cfg.start, cfg.end, m)[0] for m in others])
    b, n_real = args.generate, len(others)
    gens = [torch.Generator().manual_seed(100 + i) for i in range(b)]

    def cond(k: int):
        f = torch.from_numpy(np.repeat(forcing.month(k)[None], b, 0)).float()
        return st.condition(f, torch.full((b,), forcing.calendar_month(k), dtype=torch.long))

    c0 = cond(0)
    r = st.init(torch.from_numpy(np.repeat(initial[None], b, 0)).float(), c0, gens)
    stages = {k: [] for k in ("latent", "noise", "clean", "real_latent", "real_decoded")}
    t0 = time.perf_counter()
    for k in range(1, args.months):
        c1 = cond(k)
        r = st.step(r, c0, c1, gens)
        stages["latent"].append(r.numpy().copy())
        stages["noise"].append(st.decode(r, c1, gens).numpy())
        stages["clean"].append(st.decode(r, c1, None).numpy())
        md_c = Conditioning(c1.md.data[:1].expand(n_real, -1, -1, -1), c1.md.latent[:1].expand(n_real, -1, -1, -1),
                            c1.md.month[:1].expand(n_real))
        z = st.md.init(torch.from_numpy(real[:, k]).float(), md_c, None, sample=False)
        stages["real_latent"].append(z.numpy())
        stages["real_decoded"].append(st.md.decode(z, md_c, None).numpy())
        c0 = c1
    wall = time.perf_counter() - t0
    s = {k: np.stack(v, axis=1) for k, v in stages.items()}  # [members, T - 1, ...]
    w = area_weights(np.asarray(st.spec.lat)).values[:, None] * np.ones((1, len(st.spec.lon)))
    out = {"seconds_per_member_month": wall / (args.months - 1) / b, "members_generated": b, "months": args.months}
    for lab in args.variables.split(","):
        c = st.spec.labels.index(lab)
        x = real[:, 1:, c]
        out[lab] = {
            "realisations": pair_stats(list(x), w),
            "realisations decoded D(E(x))": pair_stats(list(s["real_decoded"][:, :, c]), w),
            "decoder miss x - D(E(x))": pair_stats(list(x - s["real_decoded"][:, :, c]), w),
            "generated, no decoder noise": pair_stats(list(s["clean"][:, :, c]), w),
            "generated": pair_stats(list(s["noise"][:, :, c]), w)}
    ones = np.ones(s["latent"].shape[-2:])
    lat = lambda a: [pair_stats([m[:, z] for m in a], ones) for z in range(a.shape[2])]  # noqa: E731
    for name, key in (("latent generated", "latent"), ("latent realisations", "real_latent")):
        per = lat(s[key])
        out[name] = {k: float(np.mean([d[k] for d in per])) for k in ("sigma", "lag1")}
    text = json.dumps(out, indent=1)
    print(text)
    if args.json:
        open(args.json, "w").write(text)


if __name__ == "__main__":
    main()
