"""Benchmark: how far a linear model is from the ceiling on the planted nonlinear synthetic climate.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_nonlinear_truth.py [--grid 5.625] [--members 6]

Generates the demo's world (md-synth's default climate, 1978-10..2024-12, seed 0, ``--members``
realisations) twice: nonlinear (the default) and ``--linear``, with the generator itself
(diagnostics.synth.model), so the exact noise states are known. Two parts:

1. One-month-ahead forecasts of 2015-01..2024-12 (120 months x members), area-weighted RMSE:
   * Bayes: the exact conditional mean given the true state of month t-1 and the forcing of t
     (the ceiling). Additive channels: clim + trend + beta n(N_t) + nao E[a_t | a_{t-1}] + sigma phi xi_{t-1},
     n(N) = N + A (|N| - E|N|); E[a_Jan | a_Dec] = a_Dec s_Jan / s_Dec (the NAO scale per month).
     pr, hus: clim f(d_t) exp(sigma phi xi_{t-1} - sigma^2 phi^2 / 2) exp(c phi_T xi_T,t-1 - c^2 phi_T^2 / 2),
     c = cc sigma_T (the conditional mean of the two log-normal AR(1) factors).
   * linear fit: per grid point, least squares of the anomaly (w.r.t. the training years'
     calendar-month means) on [anomaly_{t-1}, N_t, N_{t-1}, years, 1], fitted on 1985-2014 targets:
     what a linear stochastic (AR(1) + forcing regression) model's mean can do.
   * linear oracle: the Bayes forecast with the nonlinear terms of the mean left out (N instead
     of n(N), no CC factor, the NAO persisting unscaled), using the true state: the best a linear
     model with perfectly known components can do.
   Printed: RMSE / RMSE(Bayes) per channel (> 1: that far from the ceiling).
2. Free-running statistics a linear-Gaussian model cannot have (it gives 1 for both ratios):
   El Nino / La Nina slope ratio of the tas teleconnection (tas anomalies projected on the planted
   map, regressed on max(N, 0), min(N, 0) and time) and the La Nina / El Nino ratio of the DJF-mean
   NAO std (psl projected on the planted pattern in the NAO domain, winters split by December's N),
   per realisation of the 46-year demo period: mean and spread over members, planted truth.

This is a script, not a test; it prints the machine and the timing.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from diagnostics.data.grid import area_weights, equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.synth import patterns
from diagnostics.synth.forcing import nino34_relative
from diagnostics.synth.model import FACTOR_FLOOR, Model, Run, make_run

CHANNELS = ("tas", "pr", "psl", "zg500", "hus850", "ta850")
START, END = Month(1978, 10), Month(2024, 12)
TRAIN, TEST = (Month(1985, 1), Month(2014, 12)), (Month(2015, 1), Month(2024, 12))


def _store(label: str) -> tuple[str, int | None]:
    for var in ("hus", "ta", "ua", "va"):
        if label.startswith(var) and label[len(var):].isdigit():
            return var, [1000, 850, 700, 500, 250, 100, 50].index(int(label[len(var):]))
    return label, None


def realisation(run: Run, member: int) -> dict[str, dict[str, np.ndarray]]:
    """Per channel: the data (time, ny, nx) and its unit noise xi (and xi_T of pr / hus)."""
    m = run.model
    out: dict[str, dict[str, np.ndarray]] = {}
    for label in CHANNELS:
        store, lev = _store(label)
        i = m.labels.index(label)
        data, xi, xi_t = [], [], []
        for k in range(len(run.chunks)):
            v = run.variable_chunk(member, k, store)
            data.append(v if lev is None else v[:, lev])
            xi.append(run._noise(member, k, [i])[:, 0])  # the generator's own noise fields
            if m.mult[i]:
                xi_t.append(run._noise(member, k, [int(m.cc_row[i])])[:, 0])
        out[label] = {"data": np.concatenate(data).astype(float), "xi": np.concatenate(xi)}
        if xi_t:
            out[label]["xi_t"] = np.concatenate(xi_t)
    return out


def bayes(run: Run, member: int, label: str, fields: dict[str, np.ndarray], nonlinear: bool = True) -> np.ndarray:
    """Exact one-month-ahead conditional mean of every month t >= 1 (index 0 is NaN).

    ``nonlinear=False``: the same with the planted nonlinear terms of the mean left out (N for
    n(N), no CC factor, the NAO persisting at full strength): the linear oracle.
    """
    nonlinear = nonlinear and run.nonlinear
    m = run.model
    i = m.labels.index(label)
    moy = run.months % 12
    n = run.forcing.nino34
    a_sym = patterns.ENSO_ASYMMETRY if nonlinear else 0.0
    n_eff = (n + a_sym * (np.abs(n) - m.nino34_abs_mean))[:, None, None]
    y10 = (run.forcing.years / 10.0)[:, None, None]
    clim = m.clim[label][moy]
    drivers = m.trend[i] * y10 + m.beta[i] * n_eff + m.warming[i] * run.sst_offset
    phi, sigma = m.lag1(label), m.sigma[i]
    xi_prev = np.roll(fields["xi"], 1, axis=0)
    if m.mult[i]:
        pred = clim * np.maximum(1 + drivers, FACTOR_FLOOR) * np.exp(sigma * phi * xi_prev - 0.5 * (sigma * phi) ** 2)
        if nonlinear:
            j = int(m.cc_row[i])
            c, phi_t = patterns.CC_RATE * m.sigma[j], m.phi[np.flatnonzero(m.mixing[j])[0]]
            pred = pred * np.exp(c * phi_t * np.roll(fields["xi_t"], 1, axis=0) - 0.5 * (c * phi_t) ** 2)
    else:
        a = run.nao_amplitude[member]
        month = moy + 1
        scale = {mo: (patterns.NAO_MONTH_SCALE[mo] if nonlinear else 1.0) for mo in (12, 1, 2)}
        a_pred = np.where(month == 1, np.roll(a, 1) * scale[1] / scale[12],
                          np.where(month == 2, np.roll(a, 1) * scale[2] / scale[1], 0.0))
        pred = clim + drivers + m.nao[i] * a_pred[:, None, None] + sigma * phi * xi_prev
    pred[0] = np.nan
    return pred


def linear_fit(run: Run, x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per-point least squares of the anomaly on [anomaly_{t-1}, N_t, N_{t-1}, years, 1] over the
    training targets; returns the forecast of every month's value (index 0 NaN)."""
    moy = run.months % 12
    clim = np.stack([x[train & (moy == mo)].mean(0) for mo in range(12)])[moy]
    anom = x - clim
    n = run.forcing.nino34
    t = slice(1, None)
    feats = np.stack([np.roll(anom, 1, axis=0)[t],
                      *(np.broadcast_to(f[t][:, None, None], anom[t].shape) for f in (n, np.roll(n, 1), run.forcing.years)),
                      np.ones_like(anom[t])], axis=-1)  # (T-1, ny, nx, 5)
    sel = train[t]
    g = np.einsum("tyxf,tyxg->yxfg", feats[sel], feats[sel])
    b = np.einsum("tyxf,tyx->yxf", feats[sel], anom[t][sel])
    coef = np.linalg.solve(g, b[..., None])[..., 0]
    pred = np.full_like(x, np.nan)
    pred[t] = clim[t] + np.einsum("tyxf,yxf->tyx", feats, coef)
    return pred


def free_run_ratios(run: Run, tas: np.ndarray, psl: np.ndarray) -> tuple[float, float]:
    """(El Nino / La Nina slope ratio of tas, La Nina / El Nino DJF-mean NAO std ratio) of one realisation."""
    m, g = run.model, run.model.grid
    moy = run.months % 12
    raw = nino34_relative(run.forcing.tos.astype(float), g.lat, g.lon)
    n = raw - np.array([raw[moy == mo].mean() for mo in range(12)])[moy]

    def anomaly(x: np.ndarray) -> np.ndarray:
        return x - np.stack([x[moy == mo].mean(0) for mo in range(12)])[moy]

    beta = m.beta[m.labels.index("tas")]
    w = area_weights(g.lat).values[:, None] * beta
    proj = np.einsum("tij,ij->t", anomaly(tas), w) / np.sum(w * beta)
    pos, neg, yrs = np.maximum(n, 0), np.minimum(n, 0), run.forcing.years
    design = np.stack([pos - pos.mean(), neg - neg.mean(), yrs - yrs.mean()], axis=1)
    b = np.linalg.lstsq(design, proj - proj.mean(), rcond=None)[0]
    pat = np.where(patterns.in_nao_domain(m.statics.lat, m.statics.lon), m.nao[m.labels.index("psl")], 0.0)
    pw = pat * area_weights(g.lat).values[:, None]
    pc = np.einsum("tij,ij->t", anomaly(psl), pw) / np.sum(pw * pat)
    dec = np.flatnonzero(moy == 11)
    dec = dec[dec + 2 < pc.size]
    djf = (pc[dec] + pc[dec + 1] + pc[dec + 2]) / 3
    la = n[dec] < 0
    return float(b[0] / b[1]), float(djf[la].std() / djf[~la].std())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", type=float, default=5.625)
    p.add_argument("--members", type=int, default=6)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    t0 = time.perf_counter()
    model = Model.build(equiangular(args.grid))
    w = area_weights(model.grid.lat).values[:, None]
    w = w / w.mean()
    print(f"bench_nonlinear_truth: {args.grid} deg, {START}..{END}, seed {args.seed}, {args.members} realisations; "
          f"{platform.processor() or platform.machine()}")
    rows: dict[str, dict[str, list[float]]] = {}
    ratios: dict[str, list[tuple[float, float]]] = {}
    for case in ("nonlinear", "linear"):
        run = make_run(model, START, END, args.seed, args.members, nonlinear=case == "nonlinear")
        idx = run.months
        train = (idx >= TRAIN[0].index) & (idx <= TRAIN[1].index)
        test = (idx >= TEST[0].index) & (idx <= TEST[1].index)
        for member in range(args.members):
            fields = realisation(run, member)
            for label in CHANNELS:
                x = fields[label]["data"]
                err_b = bayes(run, member, label, fields[label])[test] - x[test]
                err_l = linear_fit(run, x, train)[test] - x[test]
                err_o = bayes(run, member, label, fields[label], nonlinear=False)[test] - x[test]
                mse = [float(((e**2).mean(0) * w).mean()) for e in (err_b, err_l, err_o)]
                rows.setdefault(label, {}).setdefault(case, []).append(np.sqrt(mse[1] / mse[0]))
                rows[label].setdefault(case + "-oracle", []).append(np.sqrt(mse[2] / mse[0]))
            ratios.setdefault(case, []).append(free_run_ratios(run, fields["tas"]["data"], fields["psl"]["data"]))
    print("\n1. one-month-ahead forecasts of 2015-01..2024-12, RMSE / RMSE(Bayes), mean over realisations: "
          "the fitted linear model on the nonlinear and the linear climate, and the linear oracle (the Bayes "
          "forecast without the nonlinear terms of the mean) on the nonlinear climate")
    print(f"{'channel':<8} {'fit, nonlinear':>14} {'fit, linear':>11} {'linear oracle':>13}")
    for label, r in rows.items():
        print(f"{label:<8} {np.mean(r['nonlinear']):>14.4f} {np.mean(r['linear']):>11.4f} "
              f"{np.mean(r['nonlinear-oracle']):>13.4f}")
    a = patterns.ENSO_ASYMMETRY
    truth = {"nonlinear": ((1 + a) / (1 - a), np.sqrt(patterns.NAO_PHASE_VARIANCE["la_nina"] / patterns.NAO_PHASE_VARIANCE["el_nino"])),
             "linear": (1.0, 1.0)}
    print("\n2. free-running statistics per 46-year realisation (a linear-Gaussian model gives 1): mean +- std over "
          "realisations [planted truth]")
    for case, vals in ratios.items():
        v = np.array(vals)
        print(f"{case:<9}: tas El Nino / La Nina slope ratio {v[:, 0].mean():.2f} +- {v[:, 0].std(ddof=1):.2f} "
              f"[{truth[case][0]:.2f}];  NAO DJF std La Nina / El Nino {v[:, 1].mean():.2f} +- {v[:, 1].std(ddof=1):.2f} "
              f"[{truth[case][1]:.2f}]")
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
