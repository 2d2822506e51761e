"""The report section for ensembles around a trajectory and guided runs (reports/section_ensembles.py):
the report fixture plus what md-diagnose's ``conditioning`` group writes (metrics.json keys and
``global_anomaly_series`` fields, names and dims as diagnostics/groups/conditioning.py files them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from diagnostics.schema import NOISE_FLOOR
from reports import metricsdir, scorecard, section_ensembles, sections
from reports.render import render_report
from tests.reports import report_fixtures

MODELS = ("MD-1p5", "ACE2")
#: planted values per (model, channel): distance_forced at / at twice its sampling value
PLANTED = {("MD-1p5", "tas"): {"distance_reference": 1.6, "distance_forced": 0.5, "distance_forced_sampling": 0.5,
                               "spread_ratio_noise_floor": 1.0, "weather_corr_reference": 0.41,
                               "weather_corr_reference_sampling": 0.39, "global_anomaly_mean": 0.02,
                               "global_anomaly_rms": 0.2},
           ("MD-1p5", "psl"): {"distance_reference": 210.0, "distance_forced": 80.0, "distance_forced_sampling": 80.0,
                               "spread_ratio_noise_floor": 1.02},
           ("ACE2", "tas"): {"distance_reference": 2.0, "distance_forced": 1.8, "distance_forced_sampling": 0.9,
                             "spread_ratio_noise_floor": 0.5, "weather_corr_reference": 0.95,
                             "weather_corr_reference_sampling": 0.35, "global_anomaly_mean": 2.1,
                             "global_anomaly_rms": 2.2},
           ("reference", "tas"): {"distance_forced": 1.7, "distance_forced_sampling": 1.6,
                                  "global_anomaly_mean": 0.0, "global_anomaly_rms": 0.18}}


def _with_conditioning(out: Path, members: int = 5) -> Path:
    """Add the conditioning group's keys and series fields to a report fixture directory."""
    d = report_fixtures.build(out, models=MODELS, seasons=("ANN",), noise_floor=True, members=members)
    info = json.loads((d / "metrics.json").read_text())
    for (model, ch), values in PLANTED.items():
        for metric, v in values.items():
            info["metrics"][f"{model}.{ch}.{metric}.all"] = v
    (d / "metrics.json").write_text(json.dumps(info, indent=1))
    with xr.open_dataset(d / "metrics.nc", decode_times=False) as ds:
        fixture = ds.load()
    time = fixture["time"]  # the fixture's own (encoded) axis, 2015-2024
    rng = np.random.default_rng(0)
    new = {}
    for model in (*MODELS, NOISE_FLOOR, "reference"):
        for ch, units in (("tas", "K"), ("psl", "Pa")):
            scale = 0.2 if ch == "tas" else 20.0
            offset = 2.0 if model == "ACE2" and ch == "tas" else 0.0  # a guided +2 K run
            if model == "reference":
                values, dims = scale * rng.standard_normal(time.size), ("time",)
            else:
                values, dims = offset + scale * rng.standard_normal((members, time.size)), (f"member_{model}", "time")
            new[f"global_anomaly_series__{model.replace('-', '_')}__{ch}__all"] = xr.DataArray(
                values.astype(np.float32), dims=dims, coords={"time": time.values},
                attrs={"diagnostic": "global_anomaly_series", "model": model, "channel": ch, "period": "all",
                       "season": "", "scenario": "", "units": units, "long_name": "global-mean anomaly",
                       "description": "area-weighted global mean of each member minus the reference's climatology"})
    merged = xr.merge([fixture, xr.Dataset(new).assign_coords(time=time)], compat="override", join="outer")
    (d / "metrics.nc").unlink()
    merged.to_netcdf(d / "metrics.nc")
    return d


def _section(md) -> sections.Section:
    return next(s for s in sections.build(md, "", "", {}) if s.id == section_ensembles.ID)


def test_section_has_one_series_figure_per_channel_and_the_table_of_metrics_json(tmp_path):
    md = metricsdir.load(_with_conditioning(tmp_path / "m"))
    sec = _section(md)
    assert [f.spec.name for f in sec.figures] == ["ensembles-global-anomaly-tas", "ensembles-global-anomaly-psl"]
    tas = sec.figures[0].spec
    # every member of each ensemble (thin), each ensemble mean (thick), the reference (black)
    assert sum(1 for ln in tas.lines if ln.width < 1) == 5 * (len(MODELS) + 1)
    assert [ln.label for ln in tas.lines if ln.color == "black"] == ["reference"]
    ace_mean = next(ln for ln in tas.lines if ln.label == "ACE2 ensemble mean")
    assert float(np.mean(ace_mean.y)) == pytest.approx(2.0, abs=0.1)  # the imposed offset shows
    (table,) = sec.tables
    rows = dict(table.rows)
    header = table.header
    for (model, ch), values in PLANTED.items():
        label = next(r for r in rows if r.startswith(f"{'reference' if model == 'reference' else model} — ")
                     and (("hPa" in r) == (ch == "psl")))
        for metric, v in values.items():
            col = [c[0] for c in section_ensembles.COLUMNS].index(metric)
            shown = v / 100 if ch == "psl" and metric.startswith(("distance", "global")) else v
            assert rows[label][col].text == f"{shown:.3g}", (model, ch, metric, header[col])
            assert rows[label][col].title == f"{model}.{ch}.{metric}.all"
    good = rows[next(r for r in rows if r.startswith("MD-1p5 — ") and "hPa" not in r)]
    bad = rows[next(r for r in rows if r.startswith("ACE2 — "))]
    col = [c[0] for c in section_ensembles.COLUMNS].index("distance_forced")
    assert good[col].colour == scorecard.badness_colour(0.0) and bad[col].colour == scorecard.badness_colour(1.0)
    col = [c[0] for c in section_ensembles.COLUMNS].index("spread_ratio_noise_floor")
    assert good[col].colour == scorecard.badness_colour(0.0) and bad[col].colour == scorecard.badness_colour(1.0)


def test_section_renders_and_is_absent_without_the_conditioning_metrics(tmp_path):
    d = _with_conditioning(tmp_path / "m")
    out = render_report(d, formats=("html",), jobs=1, progress=False)
    text = out["html"].read_text()
    assert section_ensembles.TITLE in text
    for name in ("ensembles-global-anomaly-tas", "ensembles-global-anomaly-psl"):
        assert (out["html"].parent / "figures" / f"{name}.png").stat().st_size > 5000
        assert f"figures/{name}.png" in text
    assert "global_anomaly_series" not in text.split("All metrics")[0]  # drawn by its section, not "Other fields"
    plain = metricsdir.load(report_fixtures.build(tmp_path / "plain", models=MODELS, seasons=("ANN",)))
    assert section_ensembles.ID not in [s.id for s in sections.build(plain, "", "", {})]
