"""Benchmark: how far the one-month-ahead forecasts are from the best possible one, on a synthetic climate.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_oracle.py --data /tmp/synth \
        [--run outputs/demo-train --members 10 --period 2015-01:2024-12]

The synthetic climate (diagnostics.synth, truth.nc beside the dataset) is, at every point,

    anomaly(t) = T(t) + E(t) + A(t) + r(t),   r(t) = phi r(t-1) + noise

with T the planted trend, E = beta (N(t) - mean) the response to the relative Nino-3.4 index of
the prescribed SST, A the winter NAO (one amplitude per December-February) and r AR(1) noise of
lag-1 correlation phi (``<v>_lag1``). "Anomaly" is relative to the training years' calendar-month
means, and T, E, A are centred the same way. Knowing the state of month t-1 and the forcing of
month t, the best (Bayes) forecast of month t's mean is

    oracle(t) = T(t) + E(t) + A*(t) + phi r(t-1)

(A*(t) = A(t-1) in January and February, else 0), the persistence part PERSIST = phi r(t-1).
This prints, per channel, the area-weighted RMSE of the oracle and of the AR(1) baseline's mean
(diagnostics.metrics.baselines.ar1_mean: per point and calendar month, training years): their
ratio is the most any forecast can gain over AR(1) here. With ``--run``, the emulator's
ensemble-mean forecasts (same one-month protocol as bench_skill.py) are regressed on the four
components, pooled over space and time (area-weighted): a coefficient of 1 means that part of
the signal is forecast at full strength, below 1 damped. ``pr`` is multiplicative in the
synthetic climate, so its components hold only to first order. This is a script, not a test.
"""

from __future__ import annotations

import argparse
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import xarray as xr

from diagnostics.data.grid import area_weights
from diagnostics.data.timeaxis import Period, month_index
from diagnostics.metrics.baselines import ar1_mean, fit_ar1
from diagnostics.metrics.nino34 import nino34_index
from emulator import checkpoint
from emulator.data import _channel, load_split, open_prepared_dataset, parse_channels

DEFAULT_CHANNELS = ["tas", "pr", "psl", "zg500", "ta850", "ua850"]
NAO_PATTERN = {"psl": "nao_psl_pattern", "zg500": "nao_z500_pattern"}


def components(field: xr.DataArray, fit: xr.Dataset, truth: xr.Dataset, label: str, n34: np.ndarray,
               train: Period, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """(calendar-month climatology at the targets, anomaly at the targets, planted components
    ``{persist, enso, trend, nao}`` at the targets), all ``[T, H, W]`` in the variable's units.

    ``fit``: :func:`fit_ar1` of ``field`` (its climatology is the training-years monthly mean);
    ``n34``: the relative Nino-3.4 index of every month of ``field``.
    """
    name, level = parse_channels([label], "bench_oracle")[0]

    def planted(key: str) -> np.ndarray:
        if key not in truth:
            return np.zeros(field.shape[1:])
        da = truth[key]
        return np.nan_to_num(da.sel(plev=level * 100.0).values if level is not None else da.values)

    index = month_index(field["time"])
    month = index % 12
    fit_months = (index >= train.start.index) & (index <= train.end.index)
    clim = fit["climatology"].values[month]
    anomaly = field.values.astype(np.float64) - clim

    def centred(series: np.ndarray) -> np.ndarray:
        means = np.array([series[fit_months & (month == m)].mean() for m in range(12)])
        return (series - means[month])[:, None, None]

    amp = truth["nao_amplitude"].values
    amp = amp if amp.ndim == 1 else amp[:, 0]
    years = (index - 2000 * 12) / 12.0
    trend = planted(f"{name}_trend") * centred(years) / 10.0
    enso = planted(f"{name}_nino34_regression") * centred(n34)
    nao_map = planted(NAO_PATTERN[label]) if label in NAO_PATTERN else np.zeros(field.shape[1:])
    noise = anomaly - trend - enso - nao_map * centred(amp)
    persisting = np.where(np.isin(month, [0, 1]), np.roll(amp, 1), 0.0)  # Jan, Feb keep December's NAO
    parts = {"persist": float(truth[f"{name}_lag1"]) * np.roll(noise, 1, axis=0),
             "enso": enso, "trend": trend, "nao": nao_map * centred(persisting)}
    return clim[targets], anomaly[targets], {k: v[targets] for k, v in parts.items()}


def emulator_mean(run: str, ds: xr.Dataset, data: str, period: Period, members: int) -> tuple[np.ndarray, list[str]]:
    """Ensemble-mean one-month-ahead forecasts ``[T, C, H, W]`` of the period's months (bench_skill protocol)."""
    from bench_skill import emulator_forecast

    model = checkpoint.load_model(run, weights="ema")
    split = load_split(ds, model.spec, Period(period.start + -1, period.end), data)
    with torch.inference_mode():
        return emulator_forecast(model, split, members, 1).mean(axis=0), list(model.spec.labels)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="synthetic dataset directory (md-synth; holds truth.nc)")
    p.add_argument("--run", help="training run directory: also decompose its forecasts")
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--period", default="2015-01:2024-12", help="target months")
    p.add_argument("--train-period", default="1985-01:2014-12")
    args = p.parse_args()

    truth_file = Path(args.data) / "truth.nc"
    if not truth_file.exists():
        print(f"bench_oracle.py: {truth_file}: no planted truth here (expected a dataset written by md-synth)",
              file=sys.stderr)
        raise SystemExit(2)
    ds = open_prepared_dataset(args.data)
    truth = xr.open_dataset(truth_file, engine="netcdf4")
    period, train = Period.parse(args.period), Period.parse(args.train_period)
    index = month_index(ds["time"])
    targets = np.flatnonzero((index >= period.start.index) & (index <= period.end.index))
    n34 = nino34_index(ds["tos"].load(), relative=True, smooth=None).values
    w = area_weights(ds["lat"].values).values[:, None]
    w = w / w.mean()

    def mse(e: np.ndarray) -> float:
        return float(((e ** 2).mean(0) * w).mean())

    labels, fc = DEFAULT_CHANNELS, None
    if args.run:
        fc, labels = emulator_mean(args.run, ds, args.data, period, args.members)
    print(f"one-month-ahead forecasts of {period} ({targets.size} months), {args.data}"
          + (f", run {args.run} ({args.members} members)" if args.run else "")
          + f"; {platform.processor() or platform.machine()}")
    print(f"{'channel':<8} {'oracle/AR1':>10} " + (f"{'emu-bias2':>9}  regression of the emulator's mean anomaly on the components"
                                                   if fc is not None else "(RMSE ratios)"))
    for c, label in enumerate(labels):
        name, level = parse_channels([label], "bench_oracle")[0]
        field = _channel(ds, name, level, args.data).drop_vars("plev", errors="ignore").load()
        fit = fit_ar1(field, train)
        clim, anomaly, parts = components(field, fit, truth, label, n34, train, targets)
        oracle = sum(parts.values())
        ar1 = ar1_mean(field, train, like=field.isel(time=targets), fit=fit).values - clim
        line = f"{label:<8} {np.sqrt(mse(oracle - anomaly) / mse(ar1 - anomaly)):>10.3f} "
        if fc is not None:
            fa = fc[:, c] - clim
            keys = [k for k, v in parts.items() if mse(v) > 0]
            sw = np.sqrt(w)[None]
            design = np.stack([parts[k] * sw for k in keys], -1).reshape(-1, len(keys))
            coef = np.linalg.lstsq(design, (fa * sw).reshape(-1), rcond=None)[0]
            bias2 = float((((fa - anomaly).mean(0)) ** 2 * w).mean()) / mse(ar1 - anomaly)
            line += (f"{bias2:>9.4f}  " + ", ".join(f"{k} {v:.2f}" for k, v in zip(keys, coef)))
        print(line)
    if fc is not None:
        print("oracle/AR1: RMSE of the Bayes forecast over that of the AR(1) mean; emu-bias2: the squared time-mean "
              "error of the emulator's ensemble mean as a fraction of the AR(1) mean's MSE")


if __name__ == "__main__":
    main()
