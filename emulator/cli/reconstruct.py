"""``emulator-reconstruct``: full monthly fields from sparse point observations, as an ensemble,
by guided posterior sampling of a frozen checkpoint (MMPS through the decoder; docs/guidance.md).

    emulator-reconstruct --make-obs /tmp/synth --variables tas,ps --fraction 0.01 \\
        --start 2015-01 --end 2015-12 --obs /tmp/obs1.nc          # station-like samples of a reference
    emulator-reconstruct --checkpoint outputs/demo-train --obs /tmp/obs1.nc --members 8 --out runs/rec1

The observation file (netCDF, CF ``featureType = timeSeries``): dims ``(time, station)``,
``lat(station)`` / ``lon(station)`` in degrees at cell centres of the checkpoint's grid, one
variable per observed state channel (named by its label, e.g. ``tas``, ``zg500``) with NaN
where a station has no value. Each month is one guided step of the emulator from the
previous month's reconstruction (the first from the training-period climatology of the month
before), with the dataset's prescribed forcing. Writes ``reconstruction.nc`` (every state
channel, ``(member, time, lat, lon)``) through a temporary name.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from diagnostics.data.errors import InputError, add_debug_flag, cli_entry, ensure_output_dir
from diagnostics.data.timeaxis import Month

_TOL_DEG = 1e-3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="emulator-reconstruct", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", help="training run directory or its checkpoint/ folder")
    p.add_argument("--obs", required=True, metavar="FILE", help="observation file (read; written with --make-obs)")
    p.add_argument("--out", help="output directory (reconstruction.nc)")
    p.add_argument("--members", type=int, default=8, help="ensemble members (default 8)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--obs-sigma", type=float, default=0.1, metavar="F",
                   help="observation error std as a fraction of each channel's normalisation std (default 0.1)")
    p.add_argument("--guide-method", default="mmps", choices=["mmps", "dps"])
    p.add_argument("--guide-cg", type=int, default=5, help="MMPS conjugate-gradient steps (default 5)")
    p.add_argument("--unguided", action="store_true", help="the prior ensemble: the same run without guidance")
    p.add_argument("--forcing", metavar="DIR", help="prepared dataset with the forcing (default the checkpoint's)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--make-obs", metavar="REF", help="write --obs from the prepared dataset REF and exit")
    p.add_argument("--variables", default="tas", help="--make-obs: channels to sample, comma-separated")
    p.add_argument("--fraction", type=float, default=0.01, help="--make-obs: fraction of grid cells (default 0.01)")
    p.add_argument("--start", help="--make-obs: first month YYYY-MM")
    p.add_argument("--end", help="--make-obs: last month YYYY-MM")
    add_debug_flag(p)
    return p


def make_obs(reference: str, labels: list[str], fraction: float, start: Month, end: Month, seed: int,
             path: str | os.PathLike) -> Path:
    """Station-like samples of ``reference``: ``round(fraction * cells)`` (at least 1) grid cells
    drawn without replacement, area-weighted (so stations are not crowded at the poles), the same
    every month; written to ``path`` via a temporary name."""
    import xarray as xr

    from diagnostics.data.grid import area_weights
    from diagnostics.data.timeaxis import Period, select_period

    from ..data import _channel, open_prepared_dataset, parse_channels

    if not 0 < fraction <= 1:
        raise InputError(f"--fraction must be in (0, 1], got {fraction}")
    ds = select_period(open_prepared_dataset(reference), Period(start, end))
    lat, lon = ds["lat"].values, ds["lon"].values
    w = np.repeat(area_weights(lat).values[:, None], lon.size, axis=1).ravel()
    n = max(1, int(round(fraction * w.size)))
    cells = np.sort(np.random.default_rng(seed).choice(w.size, n, replace=False, p=w / w.sum()))
    rows, cols = np.divmod(cells, lon.size)
    out = xr.Dataset(coords={"time": ds["time"], "lat": ("station", lat[rows]), "lon": ("station", lon[cols])})
    channels = parse_channels(labels, "--variables")
    if len(channels) != len(labels):
        raise InputError(f"--variables {','.join(labels)}: give single channels (ta850, not ta)")
    for label, (name, level) in zip(labels, channels):
        da = _channel(ds, name, level, reference).transpose("time", "lat", "lon")
        out[label] = (("time", "station"), da.values[:, rows, cols].astype(np.float32), dict(da.attrs))
    out.attrs.update(featureType="timeSeries", source=f"point samples of {os.path.abspath(reference)}",
                     fraction=float(fraction), seed=int(seed))
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    out.to_netcdf(tmp)
    os.replace(tmp, path)
    return path


def read_obs(path: str, spec) -> tuple[list[Month], dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """(months, label -> values [T, P], rows [P], cols [P]) with one-line errors for bad files."""
    import xarray as xr

    from diagnostics.data.timeaxis import month_index

    if not Path(path).is_file():
        raise InputError("observation file not found", path)
    try:
        ds = xr.open_dataset(path, engine="netcdf4", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the observation file ({exc})", path) from None
    for need in ("time", "lat", "lon"):
        if need not in ds.variables:
            raise InputError(f"observation file has no {need!r} (expected dims time, station; lat/lon(station))", path)
    labels = list(spec.labels)
    names = [v for v in ds.data_vars if ds[v].dims == ("time", "station")]
    unknown = [v for v in names if v not in labels]
    if unknown or not names:
        raise InputError(f"observation variable(s) {unknown or '(none)'} are not channels of the model "
                         f"(expected some of {', '.join(labels)})", path)
    lat_grid, lon_grid = np.asarray(spec.lat), np.asarray(spec.lon)
    slat, slon = ds["lat"].values.astype(float), ds["lon"].values.astype(float) % 360.0
    rows = np.abs(slat[:, None] - lat_grid[None]).argmin(1)
    cols = np.abs(((slon[:, None] - lon_grid[None] % 360.0) + 180.0) % 360.0 - 180.0).argmin(1)
    off = np.maximum(np.abs(lat_grid[rows] - slat), np.abs(((lon_grid[cols] - slon) + 180) % 360 - 180))
    if off.max() > _TOL_DEG:
        i = int(off.argmax())
        raise InputError(f"observation file is on another grid: station {i} at ({slat[i]:g}, {slon[i]:g}) is not a "
                         f"cell centre of the checkpoint's {lat_grid.size} x {lon_grid.size} grid", path)
    idx = month_index(ds["time"])
    if idx.size == 0 or np.any(np.diff(idx) != 1):
        raise InputError("observation months must be consecutive (one value per month, no gaps)", path)
    months = [Month(int(i) // 12, int(i) % 12 + 1) for i in idx]
    return months, {v: ds[v].values.astype(np.float64) for v in names}, rows, cols


class _MonthGuide:
    """Point observations of the current month (set by the loop): a Guide for GuidedStepper."""

    def __init__(self, spec, obs: dict[str, np.ndarray], rows, cols, sigma: dict[str, float]):
        self.spec, self.obs, self.rows, self.cols, self.sigma = spec, obs, rows, cols, sigma
        self.k = 0

    def target(self, cond_t1, batch: int):
        import torch

        from ..guidance.operators import PointSamples, Stacked
        from ..guidance.stepper import Target

        labels = list(self.spec.labels)
        ops, ys, sig = [], [], []
        for name, values in self.obs.items():
            keep = np.isfinite(values[self.k])
            if not keep.any():
                continue
            ops.append(PointSamples([labels.index(name)], self.rows[keep], self.cols[keep], self.spec.shape, [name]))
            ys.append(values[self.k][keep])
            sig.append(np.full(int(keep.sum()), self.sigma[name]))
        if not ops:
            return None
        y = torch.as_tensor(np.concatenate(ys), dtype=torch.float32)
        return Target(Stacked(ops), y, torch.as_tensor(np.concatenate(sig), dtype=torch.float32))

    def describe(self) -> str:
        return f"point observations of {', '.join(self.obs)}"


def reconstruct(model, forcing_dir: str, train_period: str, months: list[Month], obs, rows, cols,
                members: int, seed: int, sigma_frac: float, method: str, cg_iters: int, guided: bool = True):
    """The ensemble ``[members, T, C, H, W]`` (physical units) reconstructed from the observations."""
    import torch

    from diagnostics.data.timeaxis import Period, month_index, select_period

    from ..data import _channel, open_prepared_dataset
    from ..forcing import ForcingReader
    from ..guidance.sampler import GuidanceConfig
    from ..guidance.stepper import GuidedStepper
    from ..rollout import member_generators
    from ..stepper import DiffusionStepper

    spec = model.spec
    labels = list(spec.labels)
    std = model.normaliser.state_std.detach().cpu().numpy()
    sigma = {n: sigma_frac * float(std[labels.index(n)]) for n in obs}
    guide = _MonthGuide(spec, obs, rows, cols, sigma)
    base = DiffusionStepper(model)
    stepper = GuidedStepper(DiffusionStepper(model), guide, GuidanceConfig(method, cg_iters=cg_iters)) if guided else base
    before = months[0] + (-1)
    forcing = ForcingReader(forcing_dir, spec, before, months[-1], 0.0)
    # the start: the training-period climatology of the month before the first observation
    sub = select_period(open_prepared_dataset(forcing_dir), Period.parse(train_period))
    sel = (month_index(sub["time"]) % 12 + 1) == before.month
    x0 = np.stack([_channel(sub, n, lev, forcing_dir).isel(time=np.flatnonzero(sel)).mean("time")
                   .transpose("lat", "lon").values for n, lev in spec.channels]).astype(np.float32)
    ids = list(range(1, members + 1))

    def cond_of(k: int):
        f = torch.from_numpy(forcing.month(k).copy()).unsqueeze(0).expand(members, -1, -1, -1)
        return stepper.condition(f, torch.full((members,), forcing.calendar_month(k)))

    cond = cond_of(0)
    z = stepper.init(torch.from_numpy(x0).unsqueeze(0).expand(members, -1, -1, -1).contiguous(), cond,
                     member_generators(seed, ids, 0, stepper.device))
    out = np.empty((members, len(months), len(labels), *spec.shape), dtype=np.float32)
    for k in range(1, len(months) + 1):
        guide.k = k - 1
        c1 = cond_of(k)
        gens = member_generators(seed, ids, k, stepper.device)
        z = stepper.step(z, cond, c1, gens)
        x = stepper.decode(z, c1, gens)
        if not torch.isfinite(x).all():
            raise InputError(f"the reconstruction became non-finite at {months[k - 1]}: the observations are out of "
                             "the model's reach (loosen --obs-sigma)")
        out[:, k - 1] = x.float().cpu().numpy()
        cond = c1
    return out


def _write(path: Path, ens: np.ndarray, months: list[Month], spec, attrs: dict) -> None:
    import xarray as xr

    from diagnostics.data.timeaxis import monthly_axis

    axis = monthly_axis(months[0], months[-1])
    ds = xr.Dataset(coords={"member": np.arange(1, ens.shape[0] + 1), "time": axis["time"],
                            "lat": np.asarray(spec.lat), "lon": np.asarray(spec.lon)})
    for c, label in enumerate(spec.labels):
        ds[label] = (("member", "time", "lat", "lon"), ens[:, :, c])
    ds.attrs.update(attrs)
    tmp = path.with_name(f".{path.name}.tmp")
    ds.to_netcdf(tmp)
    os.replace(tmp, path)


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.make_obs:
        if not (args.start and args.end):
            raise InputError("--make-obs needs --start and --end")
        from ..data import parse_channels

        labels = [v for v in args.variables.split(",") if v]
        parse_channels(labels, "--variables")
        path = make_obs(args.make_obs, labels, args.fraction, Month.parse(args.start), Month.parse(args.end),
                        args.seed, args.obs)
        print(f"emulator-reconstruct: wrote {path} ({args.fraction:g} of the cells, {', '.join(labels)})")
        return 0
    if not args.checkpoint or not args.out:
        raise InputError("give --checkpoint and --out (or --make-obs REF to write an observation file)")
    if args.members < 1:
        raise InputError(f"--members must be >= 1, got {args.members}")
    if not args.obs_sigma > 0:
        raise InputError(f"--obs-sigma must be > 0, got {args.obs_sigma}")
    from .. import checkpoint
    from ..train import resolve_device

    meta = checkpoint.read_meta(args.checkpoint)
    spec = checkpoint.spec_from_meta(meta)
    months, obs, rows, cols = read_obs(args.obs, spec)
    out = ensure_output_dir(args.out, "--out")
    cfg = checkpoint.config_of(meta)
    forcing_dir = args.forcing or cfg.data.path
    if not forcing_dir or not Path(forcing_dir).exists():
        raise InputError("forcing dataset not found (give --forcing DIR)", forcing_dir or args.checkpoint)
    model = checkpoint.load_model(meta["_dir"], device=resolve_device(args.device))
    ens = reconstruct(model, forcing_dir, cfg.data.train_period, months, obs, rows, cols, args.members, args.seed,
                      args.obs_sigma, args.guide_method, args.guide_cg, guided=not args.unguided)
    _write(out / "reconstruction.nc", ens, months, spec,
           {"title": "Monthly Diffusion reconstruction from point observations" + (" (unguided prior)" if args.unguided else ""),
            "observations": os.path.abspath(args.obs), "stations": int(rows.size),
            "guidance": "none" if args.unguided else f"{args.guide_method}-cg{args.guide_cg}",
            "obs_sigma_fraction": args.obs_sigma, "seed": args.seed})
    print(f"emulator-reconstruct: {args.members} member(s) x {len(months)} months from {rows.size} stations "
          f"({', '.join(obs)}) in {out / 'reconstruction.nc'}")
    return 0


main = cli_entry(_main)

if __name__ == "__main__":
    raise SystemExit(main())
