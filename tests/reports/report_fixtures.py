"""A small md-diagnose output directory (schema md-metrics/1, the older one the report still reads) for the report tests.

Written by hand from docs/metrics-schema.md, on a coarse 33 x 64 grid: two ensembles and
the three baselines, fields of every diagnostic kind the report knows, and scalar metrics
whose values are planted so the scorecard colours are predictable (model ``MD-1p5`` is
good, ``ACE2`` is worse). ``hostile=True`` puts ``<script>`` markup in a model name and a
description to test HTML escaping.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import xarray as xr

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month, monthly_axis
from diagnostics.schema import NOISE_FLOOR

HOSTILE = "<script>alert(1)</script>"
#: per-channel factor of the planted AI-MIP medians (so the portrait columns are not all alike)
AIMIP_WIGGLE = {"tas": 0.0, "pr": 1.0, "zg500": -1.0, "ta850": 2.0}
PERIODS = {"train": "1979-01:2014-12", "test": "2015-01:2024-12"}


def _grid(res: float = 5.625):
    g = equiangular(res)
    return np.asarray(g.lat), np.asarray(g.lon)


def _attrs(diagnostic, model, channel, units, description, period="", season="", scenario="", long_name=""):
    return {"diagnostic": diagnostic, "model": model, "channel": channel, "period": period, "season": season,
            "scenario": scenario, "units": units, "long_name": long_name or f"{channel} {diagnostic}",
            "description": description}


def build(out: Path, models: tuple[str, ...] = ("MD-1p5", "ACE2"), seasons: tuple[str, ...] = ("ANN", "DJF", "JJA"),
          hostile: bool = False, members: int = 5, seed: int = 0, noise_floor: bool = False) -> Path:
    """Write ``metrics.json`` and ``metrics.nc`` into ``out`` and return ``out``.

    With ``noise_floor`` a last ensemble ``noise-floor`` (the perfect model) is added, with planted
    scalars better than every model's (bias 0.05 / RMS 0.2 of the scale, CRPS 0.7 x climatology,
    pattern correlations 0.95 / 0.98, ratios 1.0 / 0.97)."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lat, lon = _grid()
    la, lo = np.meshgrid(np.deg2rad(lat), np.deg2rad(lon), indexing="ij")
    models = tuple(models) + ((HOSTILE,) if hostile else ()) + ((NOISE_FLOOR,) if noise_floor else ())
    axis = monthly_axis(Month(2015, 1), Month(2024, 12))
    time = axis["time"].values
    years = np.arange(1979, 2025)
    plev = np.array([100000, 85000, 70000, 50000, 25000, 10000, 5000], dtype=float)
    coords = {"lat": ("lat", lat, {"units": "degrees_north"}), "lon": ("lon", lon, {"units": "degrees_east"}),
              "plev": ("plev", plev, {"units": "Pa"}), "time": ("time", time), "year": ("year", years),
              "l": ("l", np.arange(33)), "bin": ("bin", np.arange(1, members + 2))}
    data: dict[str, xr.DataArray] = {}
    desc = (HOSTILE + " ") if hostile else ""

    def put(name, dims, values, attrs):
        # netCDF names cannot hold '/' (the hostile model name has one); attributes keep the real name
        safe = lambda s: re.sub(r"[^A-Za-z0-9_.+-]", "_", s)  # noqa: E731
        data[safe(name)] = xr.DataArray(np.asarray(values, dtype=np.float32), dims=tuple(map(safe, dims)),
                                        attrs=attrs)

    seasonal = {"ANN": 0.0, "DJF": 1.0, "MAM": 0.0, "JJA": -1.0, "SON": 0.0}
    base = {
        "tas": (lambda s: 300 - 45 * np.sin(la) ** 2 + 12 * s * np.sin(la) * np.cos(lo) ** 2 - 20 * np.cos(la) * (np.sin(2 * lo) > 0.5), "K"),
        "pr": (lambda s: 1e-5 * (1 + 6 * np.exp(-((la - 0.1 * s) / 0.15) ** 2) * (1 + 0.5 * np.cos(2 * lo))), "kg m-2 s-1"),
        "zg500": (lambda s: 5800 - 500 * np.sin(la) ** 2 - 100 * s * np.sin(la) + 40 * np.sin(3 * lo) * np.sin(2 * la), "m"),
    }
    for ch, (f, units) in base.items():
        for season in seasons:
            ref = f(seasonal[season])
            put(f"climatology__reference__{ch}__test__{season}", ("lat", "lon"), ref,
                _attrs("climatology", "reference", ch, units, desc + f"Time-mean {ch} of the reference.", "test", season))
            for k, m in enumerate(models):
                err = (0.3 + 0.5 * k) * np.std(ref) * 0.1 * (np.sin(2 * la) * np.cos(lo + k) + 0.3 * rng.standard_normal(la.shape))
                put(f"climatology__{m}__{ch}__test__{season}", ("lat", "lon"), ref + err,
                    _attrs("climatology", m, ch, units, desc + f"Time-mean {ch} of the ensemble mean.", "test", season))
                put(f"bias__{m}__{ch}__test__{season}", ("lat", "lon"), err,
                    _attrs("bias", m, ch, units, f"Ensemble-mean minus reference time-mean {ch}.", "test", season))
    for k, m in enumerate(models):
        pl, lt = np.meshgrid(plev, lat, indexing="ij")
        put(f"zonal_bias__{m}__ta__test__ANN", ("plev", "lat"), (1 + k) * np.cos(np.deg2rad(lt)) * np.log(pl / 5000) / 3,
            _attrs("zonal_bias", m, "ta", "K", "Zonal-mean ensemble-mean minus reference air temperature.", "test", "ANN"))
    enso = np.exp(-(la / 0.3) ** 2) * np.exp(-((lo - np.deg2rad(210)) / 0.8) ** 2)
    for ch, units, amp in (("pr", "kg m-2 s-1 K-1", 2e-5), ("zg500", "m K-1", 15.0), ("tas", "K K-1", 1.0)):
        put(f"nino34_regression__reference__{ch}__test", ("lat", "lon"), amp * enso,
            _attrs("nino34_regression", "reference", ch, units, "Regression of monthly anomalies on the Nino-3.4 index.", "test"))
        for k, m in enumerate(models):
            put(f"nino34_regression__{m}__{ch}__test", ("lat", "lon"), amp * (0.8 - 0.2 * k) * np.roll(enso, 2 * k, axis=1),
                _attrs("nino34_regression", m, ch, units, "Regression of monthly anomalies on the Nino-3.4 index.", "test"))
    phase = 2 * np.pi * np.arange(time.size) / 45.0
    put("nino34_index__reference__nino34__test", ("time",), 1.2 * np.sin(phase),
        _attrs("nino34_index", "reference", "nino34", "K", "Relative Nino-3.4 index, 3-month running mean.", "test"))
    for k, m in enumerate(models):
        put(f"nino34_index__{m}__nino34__test", (f"member_{m}", "time"),
            1.2 * np.sin(phase)[None] + 0.5 * rng.standard_normal((members, time.size)),
            _attrs("nino34_index", m, "nino34", "K", "Relative Nino-3.4 index of each member.", "test"))
    box = (np.deg2rad(lat)[:, None] >= np.deg2rad(20)) & (np.deg2rad(lat)[:, None] <= np.deg2rad(80)) & \
          ((lon[None] >= 270) | (lon[None] <= 40))
    nao = np.where(box, -80 * np.exp(-((la - 1.1) / 0.25) ** 2) + 60 * np.exp(-((la - 0.7) / 0.2) ** 2), np.nan)
    for k, m in enumerate(("reference",) + models):
        put(f"eof_pattern__{m}__nao_z500__DJF", ("lat", "lon"), nao * (1 - 0.15 * k),
            _attrs("eof_pattern", m, "nao_z500", "m", "NAO: leading EOF of DJF Z500 over 20-80N, 90W-40E, "
                   "as regression on the standardised PC.", "", "DJF"))
        put(f"eof_pc__{m}__nao_z500__DJF", ("year",), rng.standard_normal(years.size),
            _attrs("eof_pc", m, "nao_z500", "1", "Standardised NAO principal component (DJF means).", "", "DJF"))
    ref_gm = 287.5 + 0.02 * np.arange(time.size) / 12 + 0.3 * np.sin(phase)
    put("global_mean_series__reference__tas", ("time",), ref_gm,
        _attrs("global_mean_series", "reference", "tas", "K", "Area-weighted global-mean monthly anomaly."))
    l = np.arange(33)
    put("sh_spectrum__reference__zg500__test", ("l",), 1e4 * (1 + l) ** -3.0,
        _attrs("sh_spectrum", "reference", "zg500", "m2", "Spherical-harmonic power per total wavenumber.", "test"))
    for k, m in enumerate(models):
        for scen, dt in (("", 0.0), ("p2k", 2.4), ("p4k", 4.9)):
            if scen and k > 0:
                continue
            put(f"global_mean_series__{m}__tas" + (f"__{scen}" if scen else ""), (f"member_{m}", "time"),
                ref_gm[None] + dt + 0.2 * k + 0.15 * rng.standard_normal((members, time.size)),
                _attrs("global_mean_series", m, "tas", "K", "Area-weighted global mean of each member.", scenario=scen))
        put(f"crps_map__{m}__tas__test", ("lat", "lon"), (0.4 + 0.2 * k) * (1 + np.abs(np.sin(la))),
            _attrs("crps_map", m, "tas", "K", "Time-mean CRPS of the ensemble against the reference.", "test"))
        put(f"rank_histogram__{m}__tas__test", ("bin",),
            np.full(members + 1, 1 / (members + 1)) + (0.02 * k) * np.linspace(1, -1, members + 1),
            _attrs("rank_histogram", m, "tas", "1", "Frequency of the reference's rank among the members.", "test"))
        put(f"sh_spectrum__{m}__zg500__test", ("l",), 1e4 * (1 + l) ** -(3.0 + 0.3 * k),
            _attrs("sh_spectrum", m, "zg500", "m2", "Spherical-harmonic power per total wavenumber.", "test"))
        if k == 0:
            for scen, dt in (("p2k", 2.0), ("p4k", 4.0)):
                put(f"warming_response__{m}__tas__{scen}", ("lat", "lon"), (1 + 0.8 * np.sin(la) ** 2) * (1 + 0.2 * np.cos(lo)),
                    _attrs("warming_response", m, "tas", "K K-1", "Scenario minus historical time-mean, per K of SST warming.",
                           scenario=scen))
    ds = xr.Dataset(data, coords={k: v for k, v in coords.items()})
    ds.attrs = {"schema": "md-metrics/1", "title": "fixture"}
    ds.to_netcdf(out / "metrics.nc")

    metrics: dict[str, float | None] = {}
    all_models = list(models) + ["baseline-climatology", "baseline-persistence", "baseline-ar1"]
    for ch, scale in (("tas", 0.5), ("pr", 4e-6), ("zg500", 20.0), ("ta850", 0.8)):
        metrics[f"reference.{ch}.std_global.all"] = scale
        metrics[f"baseline-climatology.{ch}.crps.test"] = 0.5 * scale
        metrics[f"baseline-persistence.{ch}.crps.test"] = 0.6 * scale
        metrics[f"baseline-ar1.{ch}.crps.test"] = 0.45 * scale
        for k, m in enumerate(models):
            q = 1 + 1.5 * k  # larger = worse
            metrics[f"{m}.{ch}.bias_mean.test.ANN"] = 0.1 * q * scale
            metrics[f"{m}.{ch}.bias_rms.test.ANN"] = 0.4 * q * scale
            metrics[f"{m}.{ch}.crps.test"] = 0.5 * scale * (0.8 + 0.3 * k)
            metrics[f"{m}.{ch}.spread_skill.test"] = 0.9 - 0.3 * k
            metrics[f"{m}.{ch}.spread_skill_corrected.test"] = (0.9 - 0.3 * k) * np.sqrt(6 / 5)
            metrics[f"{m}.{ch}.std_ratio.all"] = 1.05 + 0.5 * k
            if ch != "ta850":
                metrics[f"{m}.{ch}.nino34_pattern_corr.all"] = 0.9 - 0.35 * k
            # the AI-MIP member statistics (E1 everywhere, E2 on three channels, E3 on tas), planted
            for stem, f in (("aimip_rmsb", 0.4), ("aimip_trend_bias_rms", 0.1 if ch != "ta850" else None),
                            ("aimip_enso_rmse", 0.2 if ch == "tas" else None)):
                if f is not None:
                    median = f * q * scale * (1 + 0.1 * AIMIP_WIGGLE[ch])
                    metrics[f"{m}.{ch}.{stem}_median.test"] = median
                    metrics[f"{m}.{ch}.{stem}_min.test"] = 0.8 * median
                    metrics[f"{m}.{ch}.{stem}_max.test"] = 1.3 * median
    if noise_floor:
        for ch, scale in (("tas", 0.5), ("pr", 4e-6), ("zg500", 20.0), ("ta850", 0.8)):
            metrics[f"{NOISE_FLOOR}.{ch}.bias_mean.test.ANN"] = 0.05 * scale
            metrics[f"{NOISE_FLOOR}.{ch}.bias_rms.test.ANN"] = 0.2 * scale
            metrics[f"{NOISE_FLOOR}.{ch}.crps.test"] = 0.7 * 0.5 * scale
            metrics[f"{NOISE_FLOOR}.{ch}.spread_skill.test"] = np.sqrt(5 / 6)
            metrics[f"{NOISE_FLOOR}.{ch}.spread_skill_corrected.test"] = 1.0
            metrics[f"{NOISE_FLOOR}.{ch}.std_ratio.all"] = 1.0
            if ch != "ta850":
                metrics[f"{NOISE_FLOOR}.{ch}.nino34_pattern_corr.all"] = 0.95
            for stat, f in (("median", 0.2), ("min", 0.15), ("max", 0.25)):
                metrics[f"{NOISE_FLOOR}.{ch}.aimip_rmsb_{stat}.test"] = f * scale
    metrics["reference.nao_z500.variance_fraction"] = 0.41
    for k, m in enumerate(models):
        metrics[f"{m}.nao_z500.variance_fraction_model"] = 0.36 - 0.05 * k
        metrics[f"{m}.nao_z500.pattern_corr"] = 0.95 - 0.3 * k
        metrics[f"{m}.nao_z500.pc_std_ratio"] = 0.95 - 0.3 * k
        metrics[f"{m}.nao_z500.pattern_corr.member1"] = 0.1  # per-member keys are not headline numbers
        metrics[f"{m}.tas.warming_per_K_global.p2k"] = 1.2 if k == 0 else None
    if noise_floor:
        metrics[f"{NOISE_FLOOR}.nao_z500.pattern_corr"] = 0.98
        metrics[f"{NOISE_FLOOR}.nao_z500.pc_std_ratio"] = 0.97
    metrics["reference.nino34.index_std.all"] = 0.93
    info = {
        "schema": "md-metrics/1",
        "provenance": {
            "command": "md-diagnose --ensemble MD-1p5=runs/md --ensemble ACE2=runs/ace --reference era5 --out fixture",
            "created": "2026-11-21T22:50:00Z",
            "versions": {"diagnostics": "0.1.0", "xarray": xr.__version__, "numpy": np.__version__},
            "inputs": {"ensembles": {m: [f"runs/{m}/tas_Amon_{m}_aimip_r1i1p1f1_gn_197810-202412.nc"] for m in models},
                       "reference": ["era5/tas_era5.nc"],
                       "scenarios": {models[0]: {"p2k": ["runs/p2k"], "p4k": ["runs/p4k"]}}},
            "periods": PERIODS,
            "members": {m: members for m in models},
            "spread_skill_correction": "spread_skill is uncorrected (WeatherBench 2); spread_skill_corrected "
                                       "multiplies the spread by sqrt((M+1)/M) (Fortin et al. 2014)",
        },
        "models": all_models,
        "channels": ["tas", "pr", "zg500", "ta850"],
        **({"noise_floor": NOISE_FLOOR} if noise_floor else {}),
        "skipped": [{"what": "nao_psl", "why": "psl not in ensemble " + models[0]}],
        "metrics": metrics,
    }
    (out / "metrics.json").write_text(json.dumps(info, indent=1))
    return out


def synthetic_diagnose(out: Path, report: str = "none", scenario: bool = True,
                       variables: tuple[str, ...] = ("tas", "pr", "zg"), extra: tuple[str, ...] = ()) -> Path:
    """Run md-synth (reference + 3-member ensemble [+ p2k run]) and md-diagnose on a tiny
    synthetic climate (5.625 degrees, 2010-2017); returns md-diagnose's output directory."""
    from reports.cli_diagnose import main as diagnose
    from diagnostics.cli.synth import main as synth

    out = Path(out)
    common = ["--grid", "5.625", "--start", "2010-01", "--end", "2017-12"]
    runs = [("ref", ["--seed", "1"]), ("ens", ["--seed", "2", "--members", "3"])]
    if scenario:
        runs.append(("p2k", ["--seed", "3", "--members", "3", "--scenario", "p2k"]))
    for name, synth_args in runs:
        if not (out / name / "manifest.json").exists():
            assert synth(["--out", str(out / name), *common, *synth_args]) == 0, f"md-synth {name} failed"
    args = ["--ensemble", f"SYN={out / 'ens'}", "--reference", str(out / "ref"), "--out", str(out / "metrics"),
            "--train-period", "2010-01:2014-12", "--test-period", "2015-01:2017-12",
            "--variables", *variables, "--report", report, "--no-progress", *extra]
    if scenario:
        args += ["--scenario", f"SYN:p2k={out / 'p2k'}"]
    code = diagnose(args)
    if code != 0:
        raise RuntimeError(f"md-diagnose exited with {code}")
    return out / "metrics"


def trim_for_example(metrics: Path, out: Path) -> Path:
    """Copy of an md-diagnose output keeping a few pages: test/all periods, annual-mean and DJF
    maps, no zonal spectra (the docs example must stay under 3 MB)."""
    import shutil

    import xarray as xr

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(metrics / "metrics.json", out / "metrics.json")
    with xr.open_dataset(metrics / "metrics.nc", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
        keep = [n for n, v in ds.data_vars.items()
                if v.attrs.get("period") != "train" and v.attrs.get("season") in ("", "ANN", "DJF")
                and v.attrs.get("diagnostic") not in ("zonal_spectrum", "crps_map")
                and not (v.attrs.get("diagnostic") == "rank_histogram" and "baseline" in v.attrs.get("model", ""))]
        ds[keep].load().to_netcdf(out / "metrics.nc")
    return out


def make_example(docs: Path, work: Path, from_diagnose: bool = True, source: Path | None = None) -> None:
    """Regenerate docs/example-report/ and docs/report-screenshot.png (README); ``source``: an existing
    md-diagnose output (e.g. ``make demo``'s outputs/demo/diagnostics) to trim and render instead."""
    import os
    import shutil

    from reports import browser
    from reports.render import render_report

    docs, work = Path(docs).resolve(), Path(work)
    source = Path(source).resolve() if source is not None else None
    here = os.getcwd()
    os.chdir(work)  # relative paths in the example's provenance, not a temp dir
    try:
        if source is not None:
            metrics = trim_for_example(source, Path("demo"))
        elif from_diagnose:
            metrics = trim_for_example(synthetic_diagnose(Path("synthetic")), Path("example"))
        else:
            metrics = build(Path("fixture"), seasons=("ANN",))
        shutil.rmtree(metrics / "report", ignore_errors=True)
        out = render_report(metrics, formats=("html", "pdf"), jobs=None,
                            command=f"md-report {metrics.name}")
        target = docs / "example-report"
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(out["html"].parent, target, ignore=shutil.ignore_patterns(".render-cache.json"))
        seen = browser.check_page(target / "index.html", width=1280, height=900)
        assert not seen.broken_images and not seen.console_errors and not seen.non_file_requests, seen
        (docs / "report-screenshot.png").write_bytes(seen.screenshot)
        size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
        print(f"example report: {target} ({size / 1e6:.2f} MB), screenshot {docs / 'report-screenshot.png'}")
    finally:
        os.chdir(here)


if __name__ == "__main__":  # python -m tests.reports.report_fixtures docs/ [--fixture | --from METRICS_DIR]
    import sys
    import tempfile

    args = sys.argv[1:]
    src = Path(args[args.index("--from") + 1]) if "--from" in args else None
    with tempfile.TemporaryDirectory() as tmp:
        make_example(Path(args[0] if args else "docs"), Path(tmp), from_diagnose="--fixture" not in args,
                     source=src)
