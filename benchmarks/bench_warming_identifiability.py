"""Benchmark: is the synthetic climate's warming response identifiable from its historical data?

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_warming_identifiability.py \
        [--seeds 0 1 2] [--grid 5.625]

Issue 13 asks for the emulators' warming per K (AI-MIP +2K / +4K: SST + dT where defined, sea ice
unchanged) within 10 % of the synthetic climate's ``<v>_warming_per_K``. The emulators learn from
historical months only, where dT = 0. Three pieces of evidence, for the default climate and for
``md-synth --forced-trend`` side by side (the demo's world: 1978-10..2024-12, channels of
configs/demo.yaml, fitted on its training years 1985-01..2014-12):

1. **Invariance** (the closed form): the historical data are generated once with the planted
   warming maps gamma_c and once with gamma_c replaced by random maps; the largest difference of
   any value is printed. 0 means the historical data do not depend on gamma at all, so any
   estimator fitted to them gives the same +2K answer for every gamma: at most one of them can be
   right. (With ``--forced-trend`` the trend is tied to gamma, so changing gamma changes the data.)
2. **What the historical data do say**: the forced signal in the atmosphere is trend_c y/10 while
   the SST warms by 0.15 K/decade in the tropics (exactly uniform within 25S-25N) and by
   ``tos_trend_global`` over the whole ocean. A predictor that attributes the trend to the SST
   warming extrapolates trend_c / rate per K of uniform SST warming: printed for both rates beside
   gamma_c (area-weighted global means) with the pattern correlation of the trend and gamma maps.
3. **Oracles**: the best linear predictors of each channel, per grid cell, from the forcing of the
   same month (least squares with 12 calendar-month intercepts, fitted on the training months of
   one realisation), applied to the +2K and +4K forcings (the linear predictor's response per K is
   the same for both): (a) the ocean-mean SST; (b) the tropical (20S-20N) ocean-mean SST and the
   relative Nino-3.4 index N (the two SST quantities the atmosphere responds to, ENSO-free);
   (c) the LIM's predictors (configs/lim.yaml): the 8 leading area-weighted EOFs of the SST and
   sea-ice anomalies and the ocean-mean SST; (d) the tropical SST's warming signal (its
   least-squares line over the training months, so the SST noise does not attenuate the slope)
   and N: the empirical version of 2. (a)-(c) are the best linear predictors in the mean-square
   sense, but their slopes on the SST are attenuated by the SST noise the atmosphere does not
   respond to (errors in variables) and mixed with ENSO (the ENSO SST pattern has a nonzero
   ocean mean; a uniform offset projects on the SST EOFs). Global-mean response per K (mean +- sd over the
   climate seeds) and its pattern correlation with gamma_c.

The data are the real generator's (:mod:`diagnostics.synth.model`), the +K forcing its own
``sst_offset``. This is a script, not a test (tests/diagnostics/test_synth_forced_trend.py checks the
closed forms).
"""

from __future__ import annotations

import argparse
import platform
import time
import warnings

import numpy as np

from diagnostics.data import catalogue
from diagnostics.data.grid import area_weights, equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.synth import patterns
from diagnostics.synth.model import Model, Run, make_run
from diagnostics.synth.truth import _for_variable

START, END = Month(1978, 10), Month(2024, 12)
TRAIN = (Month(1985, 1), Month(2014, 12))
CHANNELS = (("tas", None), ("pr", None), ("psl", None), ("zg500", None), ("ta", 850), ("ua", 850))
OFFSETS = (2.0, 4.0)
FORCING_MODES = 8


def label(name: str, level: int | None) -> str:
    return catalogue.channel_label(name, level)


def channel_map(run: Run, kind: str, name: str, level: int | None) -> np.ndarray:
    """Planted ``trend`` or ``warming`` map of one channel in its own units (as truth.nc has it)."""
    out = _for_variable(run, kind, name)
    return out[list(catalogue.variable(name).levels).index(level)] if level is not None else out


def channel_series(run: Run, name: str, level: int | None) -> np.ndarray:
    """(time, ny, nx) float64 of one channel over the whole run (member 0)."""
    blocks = [run.variable_chunk(0, k, name) for k in range(len(run.chunks))]
    out = np.concatenate(blocks, axis=0).astype(np.float64)
    return out[:, list(catalogue.variable(name).levels).index(level)] if level is not None else out


def weighted(values: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(values * w) / np.sum(w))


def pattern_corr(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> float:
    """Area-weighted centred pattern correlation of two maps (nan when one is constant)."""
    da, db = a - weighted(a, w), b - weighted(b, w)
    den = np.sqrt(weighted(da * da, w) * weighted(db * db, w))
    return float(weighted(da * db, w) / den) if den > 0 else float("nan")


def with_random_warming(model: Model, rng: np.random.Generator) -> Model:
    """The same climate with every warming map gamma_c replaced by a random map (N(0, 10^2) per
    cell); with ``forced_trend`` the trends follow the new gamma, as the option defines them."""
    maps = {kind: dict(m) for kind, m in model.maps.items()}
    maps["warming"] = {lab: rng.normal(0.0, 10.0, g.shape) for lab, g in maps["warming"].items()}
    if model.forced_trend:
        maps["trend"] = patterns.forced_trends(maps["warming"])
    return Model(grid=model.grid, slope=model.slope, statics=model.statics, clim=model.clim, maps=maps,
                 noise=model.noise, forced_trend=model.forced_trend)


def invariance(model: Model, seed: int) -> float:
    """Largest |difference| of the historical data (first 24 months, every variable) between the
    planted warming maps and random ones: 0 when the data do not depend on gamma."""
    other = with_random_warming(model, np.random.default_rng(1))
    runs = [make_run(m, START, Month(1980, 9), seed) for m in (model, other)]
    stores = [catalogue.variable(n).store_name for n in catalogue.STATE_VARIABLES]
    return max(float(np.nanmax(np.abs(runs[0].variable_chunk(0, k, s) - runs[1].variable_chunk(0, k, s))))
               for s in stores for k in range(len(runs[0].chunks)))


def ocean_mean(tos: np.ndarray, w: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """Area-weighted mean over defined (ocean) cells, optionally of some latitude rows, per month."""
    valid = np.isfinite(tos)
    ww = np.where(valid, w, 0.0)
    if rows is not None:
        ww = ww * rows[:, None]
    return np.sum(np.where(valid, tos, 0.0) * ww, axis=(1, 2)) / np.sum(ww, axis=(1, 2))


def predictor_sets(base: Run, warm: dict[float, Run], sel: np.ndarray, w: np.ndarray,
                   lat: np.ndarray) -> dict[str, tuple[np.ndarray, dict[float, np.ndarray]]]:
    """Predictors (time, P) of the historical forcing and of each +K forcing, per oracle.

    EOFs (oracle c) are those of the training months of the historical forcing; the +K fields are
    projected on the same EOFs with the same historical climatology (what a fitted model does).
    """
    tropics = (np.abs(lat) <= patterns.TROPICS_LAT[1]).astype(float)
    moy = base.months % 12

    def clim_of(field: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # land cells of tos are NaN in every month
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.stack([np.nanmean(field[sel & (moy == m)], axis=0) for m in range(12)])

    sst_clim, ice_clim = clim_of(base.forcing.tos), clim_of(base.forcing.siconc)
    sqrt_w = np.sqrt(w / w.mean())

    def anomalies(f) -> np.ndarray:
        sst = np.nan_to_num(f.tos - sst_clim[moy]) * sqrt_w
        ice = (f.siconc - ice_clim[moy]) * sqrt_w
        return np.concatenate([sst.reshape(len(moy), -1), ice.reshape(len(moy), -1)], axis=1)

    a0 = anomalies(base.forcing)
    # SST and sea ice standardised as blocks so neither dominates the EOFs (the LIM does the same)
    half = a0.shape[1] // 2
    scale = np.concatenate([np.full(half, a0[sel, :half].std()), np.full(half, max(a0[sel, half:].std(), 1e-12))])
    _, _, vt = np.linalg.svd(a0[sel] / scale, full_matrices=False)
    eofs = vt[:FORCING_MODES].T

    def build(f) -> dict[str, np.ndarray]:
        g = ocean_mean(f.tos.astype(np.float64), w)
        g_trop = ocean_mean(f.tos.astype(np.float64), w, tropics)
        pcs = (anomalies(f) / scale) @ eofs
        line = np.polyval(np.polyfit(base.months[sel], g_trop[sel], 1), base.months)
        return {"a ocean-mean SST": g[:, None],
                "b tropical SST + N": np.column_stack([g_trop, f.nino34]),
                "c LIM predictors (8 EOFs + ocean mean)": np.column_stack([pcs, g]),
                "d tropical SST warming signal (its training-years linear fit) + N": np.column_stack([line, f.nino34])}

    b0 = build(base.forcing)
    bw = {dt: build(r.forcing) for dt, r in warm.items()}
    return {k: (b0[k], {dt: bw[dt][k] for dt in warm}) for k in b0}


def oracle_responses(model: Model, seed: int) -> tuple[dict, dict]:
    """({oracle: {channel: (global mean per K at +2K, at +4K, pattern corr)}}, planted gamma means)."""
    base = make_run(model, START, END, seed)
    warm = {dt: make_run(model, START, END, seed, sst_offset=dt) for dt in OFFSETS}
    lat = np.asarray(model.grid.lat)
    w = area_weights(lat).values[:, None] * np.ones(model.grid.lon.size)[None, :]
    idx = base.months
    sel = (idx >= TRAIN[0].index) & (idx <= TRAIN[1].index)
    sets = predictor_sets(base, warm, sel, w, lat)
    dummies = np.eye(12)[base.months % 12]
    out: dict[str, dict[str, tuple[float, ...]]] = {k: {} for k in sets}
    for name, level in CHANNELS:
        y = channel_series(base, name, level)
        yf = y[sel].reshape(int(sel.sum()), -1)
        gamma = channel_map(base, "warming", name, level)
        for key, (x0, xw) in sets.items():
            design = np.column_stack([x0, dummies])
            coef = np.linalg.lstsq(design[sel], yf, rcond=None)[0][: x0.shape[1]]
            per_k = [((xw[dt] - x0).mean(axis=0) @ coef).reshape(gamma.shape) / dt for dt in OFFSETS]
            out[key][label(name, level)] = (*(weighted(r, w) for r in per_k), pattern_corr(per_k[0], gamma, w))
    return out, {label(n, lv): weighted(channel_map(base, "warming", n, lv), w) for n, lv in CHANNELS}


def closed_form(model: Model) -> list[tuple]:
    """Rows (channel, trend gm, gamma gm, trend/0.15, trend/ocean rate, trend-gamma pattern corr)."""
    run = make_run(model, START, Month(1979, 9), 0)
    lat = np.asarray(model.grid.lat)
    w = area_weights(lat).values[:, None] * np.ones(model.grid.lon.size)[None, :]
    ocean = model.statics.ocean
    ocean_rate = weighted(np.where(ocean, patterns.tos_trend(model.statics), 0.0), w * ocean)
    rows = []
    for name, level in CHANNELS:
        tr, ga = channel_map(run, "trend", name, level), channel_map(run, "warming", name, level)
        t, g = weighted(tr, w), weighted(ga, w)
        rows.append((label(name, level), t, g, t / patterns.TOS_TREND_TROPICS, t / ocean_rate, pattern_corr(tr, ga, w)))
    return rows, ocean_rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="climate seeds of the oracle fits")
    p.add_argument("--grid", type=float, default=5.625)
    args = p.parse_args()
    t0 = time.process_time()
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}; grid {args.grid} deg, "
          f"{START}..{END}, oracles fitted on {TRAIN[0]}..{TRAIN[1]}, climate seeds {args.seeds}")
    for forced in (False, True):
        model = Model.build(equiangular(args.grid), forced_trend=forced)
        title = "md-synth --forced-trend" if forced else "default climate"
        print(f"\n=== {title} ===")
        print(f"1. historical data with the planted gamma vs random gamma maps: max |difference| = "
              f"{invariance(model, args.seeds[0]):.3g}")
        rows, ocean_rate = closed_form(model)
        print(f"2. what the historical trend implies (SST trend: tropics {patterns.TOS_TREND_TROPICS} K/decade, "
              f"ocean mean {ocean_rate:.4f}); global means, units per decade / per K")
        print(f"{'channel':<8} {'trend':>10} {'gamma':>10} {'trend/0.15':>11} {'trend/ocean':>12} {'ratio':>6} "
              f"{'corr(trend,gamma)':>18}")
        for lab, t, g, i1, i2, c in rows:
            ratio = i1 / g if g else float("nan")
            print(f"{lab:<8} {t:>10.4g} {g:>10.4g} {i1:>11.4g} {i2:>12.4g} {ratio:>6.2f} {c:>18.2f}")
        per_seed = [oracle_responses(model, s) for s in args.seeds]
        gammas = per_seed[0][1]
        print("3. oracle linear predictors from the forcing, response per K (+2K / +4K, mean +- sd over seeds; "
              "ratio to gamma; pattern corr. with gamma at +2K)")
        for key in per_seed[0][0]:
            print(f"  {key}")
            for lab, g in gammas.items():
                vals = np.array([ps[0][key][lab] for ps in per_seed])
                m, s = vals.mean(axis=0), vals.std(axis=0)
                print(f"    {lab:<8} {m[0]:>10.4g} +- {s[0]:<9.2g} / {m[1]:>10.4g}   truth {g:>10.4g}   "
                      f"ratio {m[0] / g:>6.2f}   corr {m[2]:>5.2f}")
    print(f"\nCPU time {time.process_time() - t0:.1f} s")


if __name__ == "__main__":
    main()
