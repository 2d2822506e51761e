"""Sparse observations: ``emulator-reconstruct`` from 1 % / 5 % of the grid cells of a reference,
scored against the reference beside a nearest-neighbour baseline and the unguided prior.

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_reconstruct.py --checkpoint /tmp/wind/train \\
        --reference /tmp/wind/synth --start 2015-01 --months 6 --members 4 --variables tas

Observations: station-like samples (:func:`emulator.cli.reconstruct.make_obs`, area-weighted
cells, fixed over the months) of the observed channels of the reference (the checkpoint's
own synthetic dataset, test period). Scores per channel, over the months and the whole grid
(area-weighted, :mod:`diagnostics.metrics`): RMSE of the ensemble mean and fair CRPS; the
nearest-neighbour baseline fills every cell from the nearest station by great-circle
distance (deterministic: its CRPS is its MAE). Unobserved channels are scored too (what the
prior carries from the observed ones through the latent).

Power spectra (:func:`diagnostics.metrics.spectra.sh_power_spectrum`, spherical-harmonic power per
total wavenumber l, and :func:`~diagnostics.metrics.spectra.band_ratio`): the power of each
member's map, averaged over members and months, over the reference's averaged over the months,
summed in the bands ``--bands`` (default l 1-5 and 6+; a 33 x 64 grid resolves l <= 16). 1: the
reference's variance at those scales; < 1 too smooth (an ensemble mean would be), > 1 too noisy.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import xarray as xr

from diagnostics.data.grid import global_mean
from diagnostics.data.timeaxis import Month
from diagnostics.metrics.crps import crps_ensemble
from diagnostics.metrics.spectra import band_ratio, sh_power_spectrum
from emulator import checkpoint
from emulator.cli.reconstruct import make_obs, read_obs, reconstruct
from emulator.data import _channel, open_prepared_dataset


def nearest_neighbour(obs: np.ndarray, rows, cols, lat, lon) -> np.ndarray:
    """``[T, H, W]`` from station values ``obs [T, P]``: each cell the value of its nearest station."""
    la, lo = np.deg2rad(lat)[:, None], np.deg2rad(lon)[None, :]
    cell = np.stack(np.broadcast_arrays(np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la) + 0 * lo), -1)
    st = cell[rows, cols]  # [P, 3]
    nearest = np.argmax(cell.reshape(-1, 3) @ st.T, axis=1)  # largest cosine = smallest angle
    return obs[:, nearest].reshape(obs.shape[0], lat.size, lon.size)


def parse_bands(text: str) -> tuple[tuple[int, int | None], ...]:
    """``"1-6,6+"`` -> ((1, 6), (6, None)): wavenumber bands low <= l < high (``high+``: to the end)."""
    out = []
    for part in text.split(","):
        low, _, high = part.partition("-")
        out.append((int(low.rstrip("+")), None) if part.endswith("+") else (int(low), int(high)))
    return tuple(out)


def spectral_ratios(field: xr.DataArray, ref: xr.DataArray, bands) -> dict[str, float]:
    """Band ratios of the mean SH power of ``field``'s maps (over member and time, if present) to the
    mean power of the reference's maps (over time)."""
    power = sh_power_spectrum(field)
    power = power.mean([d for d in ("member", "time") if d in power.dims])
    return {k: float(v) for k, v in band_ratio(power, sh_power_spectrum(ref).mean("time"), bands, dim="l").items()}


def _score(ens: xr.DataArray, ref: xr.DataArray, bands) -> dict:
    err = ens.mean("member") - ref
    rmse = float(np.sqrt(global_mean(err ** 2).mean()))
    crps = float(global_mean(crps_ensemble(ens, ref, fair=ens.sizes["member"] > 1)).mean()) if "member" in ens.dims else None
    return {"rmse": rmse, "crps": crps, "spectral_ratio": spectral_ratios(ens, ref, bands)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--reference", required=True)
    p.add_argument("--start", default="2015-01")
    p.add_argument("--months", type=int, default=6)
    p.add_argument("--members", type=int, default=4)
    p.add_argument("--variables", default="tas")
    p.add_argument("--fractions", default="0.01,0.05")
    p.add_argument("--score", default="tas,psl,zg500")
    p.add_argument("--bands", default="1-6,6+", help="SH total-wavenumber bands of the spectral ratios")
    p.add_argument("--json")
    args = p.parse_args()
    bands = parse_bands(args.bands)
    meta = checkpoint.read_meta(args.checkpoint)
    cfg = checkpoint.config_of(meta)
    model = checkpoint.load_model(meta["_dir"], device="cpu")
    spec, labels = model.spec, list(model.spec.labels)
    start = Month.parse(args.start)
    end = start + (args.months - 1)
    ds = open_prepared_dataset(args.reference)
    results = {}
    prior = None
    for frac in map(float, args.fractions.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            path = make_obs(args.reference, args.variables.split(","), frac, start, end, 0, Path(tmp) / "obs.nc")
            months, obs, rows, cols = read_obs(str(path), spec)
            t0 = time.perf_counter()
            ens = reconstruct(model, cfg.data.path, cfg.data.train_period, months, obs, rows, cols, args.members, 0,
                              0.1, "mmps", 5)
            wall = time.perf_counter() - t0
            if prior is None:
                prior = reconstruct(model, cfg.data.path, cfg.data.train_period, months, obs, rows, cols,
                                    args.members, 0, 0.1, "mmps", 5, guided=False)
        sub = ds.sel(time=slice(f"{start.year:04d}-{start.month:02d}", f"{end.year:04d}-{end.month:02d}"))
        res = {"stations": int(rows.size), "wall_s": round(wall, 1)}
        for label in args.score.split(","):
            name, level = spec.channels[labels.index(label)]
            ref = _channel(sub, name, level, args.reference).transpose("time", "lat", "lon").load()
            ref = ref.drop_vars([c for c in ref.coords if c not in ("time", "lat", "lon")])
            c = labels.index(label)
            guided = xr.DataArray(ens[:, :, c], dims=("member", "time", "lat", "lon"), coords=ref.coords)
            unguided = xr.DataArray(prior[:, :, c], dims=("member", "time", "lat", "lon"), coords=ref.coords)
            row = {"guided": _score(guided, ref, bands), "prior": _score(unguided, ref, bands)}
            if label in obs:
                nn = xr.DataArray(nearest_neighbour(obs[label], rows, cols, np.asarray(spec.lat), np.asarray(spec.lon)),
                                  dims=("time", "lat", "lon"), coords=ref.coords)
                row["nearest"] = {"rmse": float(np.sqrt(global_mean((nn - ref) ** 2).mean())),
                                  "crps": float(global_mean(abs(nn - ref)).mean()),
                                  "spectral_ratio": spectral_ratios(nn, ref, bands)}
            res[label] = row
            print(f"{frac:5.0%} ({rows.size:3d} stations) {label:6s} " + "  ".join(
                f"{k} rmse {v['rmse']:.4g} crps {v['crps']:.4g} spectral ratio "
                + "/".join(f"{r:.2f}" for r in v["spectral_ratio"].values()) for k, v in row.items()), flush=True)
        results[f"{frac:g}"] = res
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
