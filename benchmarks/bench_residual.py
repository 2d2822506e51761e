"""Residual ensembles against the noise floor, without estimating the forced signal first.

    OMP_NUM_THREADS=1 python benchmarks/bench_residual.py --around runs/around-hist \
        --members data/synth-members --conditioning 1

For two independent realisations i, j of one climate the difference x_i - x_j holds no forced
signal, var(x_i - x_j) = 2 sigma^2 and its lag-1 autocorrelation is the members' own (for AR(1)
noise). So the internal variability of generated members is checked with pairs of them, pairs
of (generated, conditioning run) and pairs of the independent realisations (the noise floor),
against the planted truth (``truth.nc``: ``<var>_noise_std``, ``<var>_lag1``). The ensemble mean
is checked against the forced signal estimated from the other realisations (those not
conditioned on): its error should be sampling noise, not the conditioning run's own anomaly.
Area-weighted means over the grid, monthly anomalies (the 12-month climatology removed).
"""

from __future__ import annotations

import argparse
import itertools
import json

import numpy as np
import xarray as xr

from diagnostics.data.grid import area_weights
from diagnostics.io.open import open_dataset


def _anom(x: np.ndarray) -> np.ndarray:
    """Remove each calendar month's mean (time axis 0, starting at any month: positions mod 12)."""
    out = x.astype(np.float64).copy()
    for k in range(12):
        out[k::12] -= out[k::12].mean(axis=0)
    return out


def pair_stats(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> tuple[float, float]:
    """(sigma = std(a - b) / sqrt 2, lag-1 autocorrelation of a - b), area-weighted over [T, H, W]."""
    d = _anom(a - b)
    var = (d ** 2).mean(axis=0)
    lag = (d[1:] * d[:-1]).mean(axis=0) / np.maximum(var, 1e-30)
    return float(np.sqrt((w * var).sum() / w.sum() / 2)), float((w * lag).sum() / w.sum())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--around", required=True, help="the generated ensemble (AI-MIP files)")
    p.add_argument("--members", required=True, help="the realisations (md-synth --members), with truth.nc")
    p.add_argument("--conditioning", type=int, default=1, help="member conditioned on")
    p.add_argument("--variables", default="tas,psl,zg500")
    p.add_argument("--json")
    args = p.parse_args()
    gen = open_dataset(args.around)
    real = xr.open_zarr(f"{args.members}/dataset.zarr")
    truth = xr.open_dataset(f"{args.members}/truth.nc")
    w = np.broadcast_to(area_weights(real["lat"].values).values[:, None], (real.sizes["lat"], real.sizes["lon"]))
    rows = {}
    for var in args.variables.split(","):
        g_name = var if var in gen else "zg"
        g = gen[g_name]
        if "plev" in g.dims:
            g = g.sel(plev=50000.0)
        g = g.transpose("member", "time", "lat", "lon").values[:, 1:]  # month 0 is the conditioning state
        r = real[var].transpose("member", "time", "lat", "lon").values[:, 1:]
        ids = [int(m) for m in real["member"].values]
        c = r[ids.index(args.conditioning)]
        others = [r[i] for i, m in enumerate(ids) if m != args.conditioning]
        gg = [pair_stats(g[i], g[j], w) for i, j in itertools.combinations(range(len(g)), 2)]
        gc = [pair_stats(g[i], c, w) for i in range(len(g))]
        nf = [pair_stats(a, b, w) for a, b in itertools.combinations(others, 2)]
        nc = [pair_stats(a, c, w) for a in others]
        forced = np.mean(others, axis=0)  # forced-signal estimate from the realisations not conditioned on
        err_mean = _anom(g.mean(axis=0) - forced)
        err_cond = _anom(c - forced)
        rms = lambda e: float(np.sqrt((w * (e ** 2).mean(axis=0)).sum() / w.sum()))  # noqa: E731
        corr = float(np.corrcoef(err_mean.ravel(), err_cond.ravel())[0, 1])
        planted_sigma = float(np.sqrt((w * truth[f"{var}_noise_std"].values ** 2).sum() / w.sum())) \
            if f"{var}_noise_std" in truth and truth[f"{var}_noise_std"].ndim == 2 else None
        lag = truth[f"{var}_lag1"].values if f"{var}_lag1" in truth else None
        planted_lag1 = None if lag is None else float(lag) if lag.ndim == 0 else float((w * lag).sum() / w.sum())
        rows[var] = {
            "sigma": {"generated pairs": np.mean([s for s, _ in gg]), "generated vs conditioning": np.mean([s for s, _ in gc]),
                      "noise floor pairs": np.mean([s for s, _ in nf]), "noise floor vs conditioning": np.mean([s for s, _ in nc]),
                      "planted": planted_sigma},
            "lag1": {"generated pairs": np.mean([v for _, v in gg]), "generated vs conditioning": np.mean([v for _, v in gc]),
                     "noise floor pairs": np.mean([v for _, v in nf]), "planted": planted_lag1},
            "ensemble mean": {"rms(mean - forced)": rms(err_mean), "rms(conditioning - forced)": rms(err_cond),
                              "corr with conditioning anomaly": corr, "members": len(g), "forced from": len(others)}}
    text = json.dumps(rows, indent=1, default=float)
    print(text)
    if args.json:
        open(args.json, "w").write(text)


if __name__ == "__main__":
    main()
