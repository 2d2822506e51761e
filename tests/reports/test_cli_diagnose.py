"""``md-diagnose`` as a command (reports.cli_diagnose): the metrics step, then the report, composed at
the command layer; diagnostics itself never imports reports."""

from __future__ import annotations

import json
import subprocess
import sys
import types

import pytest

from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.io.writer import write_aimip, write_prepared
from diagnostics.synth.climate import synthesize
from reports.cli_diagnose import main

GRID = equiangular(22.5)  # 9 x 16: the smallest grid the metrics take
PERIODS = ["--train-period", "2012-01:2013-12", "--test-period", "2014-01:2014-12"]


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_diagnose")
    ens, _ = synthesize(GRID, Month(2012, 1), Month(2014, 12), seed=1, members=2)
    ref, _ = synthesize(GRID, Month(2012, 1), Month(2014, 12), seed=2, members=1)
    write_aimip(ens[["tas", "time_bnds"]], root / "ens", "ENS", "aimip")
    write_prepared(ref[["tas", "time_bnds"]], root / "ref", {"fingerprint": "r"})
    return root


def _args(dirs, out, report="html"):
    return ["--ensemble", str(dirs / "ens"), "--reference", str(dirs / "ref"), "--out", str(out), *PERIODS,
            "--report", report, "--no-progress", "--no-baselines", "--no-spectra"]


def test_md_diagnose_writes_the_metrics_then_renders_their_report(dirs, tmp_path, capsys):
    """The report of a md-metrics/2 directory takes the model climatology and the bias mean / RMS in
    the map titles from the metrics files (it derives neither)."""
    from reports import metricsdir, sections

    out = tmp_path / "out"
    assert main(_args(dirs, out)) == 0, capsys.readouterr().err
    assert (out / "metrics.json").exists() and (out / "report" / "index.html").exists()
    md = metricsdir.load(out)
    assert md.schema == "md-metrics/2" and md.ensembles == ["ENS"] and md.baselines == []
    assert md.select(diagnostic="climatology", model="ENS", channel="tas", period="test", season="ANN")
    g = {"channel": "tas", "period": "test", "season": "ANN", "scenario": ""}
    rows, _, _ = sections.map_rows(md, "climatology", g, "bias", False)
    mean, rms = md.scalar("ENS", "tas", "bias_mean", ("test", "ANN")), md.scalar("ENS", "tas", "bias_rms", ("test", "ANN"))
    assert rows[0][2].title == sections.diff_title("ENS", rows[0][2].data, "K", (mean, rms))
    assert f"{rms:.2g}" in rows[0][2].title


def test_report_failure_keeps_the_metrics(dirs, tmp_path, capsys, monkeypatch):
    calls = []

    def broken(metrics_dir, formats=("html", "pdf"), jobs=None):
        calls.append((metrics_dir, formats))
        raise RuntimeError("renderer exploded")

    fake = types.ModuleType("reports.render")
    fake.render_report = broken
    monkeypatch.setitem(sys.modules, "reports.render", fake)
    out = tmp_path / "out"
    code = main(_args(dirs, out, "html,pdf"))
    err = capsys.readouterr().err
    assert code == 1
    assert calls and calls[0][1] == ("html", "pdf")
    assert "report rendering failed" in err and "renderer exploded" in err
    assert (out / "metrics.json").exists() and (out / "metrics.nc").exists()


def test_the_previous_report_is_moved_aside_and_the_figure_cache_kept(dirs, tmp_path, capsys):
    out = tmp_path / "out"
    (out / "report" / "figures").mkdir(parents=True)
    for name in ("report/index.html", "report/report.pdf", "report/figures/cached.png", "metrics.json"):
        (out / name).write_text("old")
    assert main(_args(dirs, out, "none")) == 0
    err = capsys.readouterr().err
    assert "moved the previous run's metrics.json, report/index.html, report/report.pdf aside" in err
    previous = out / ".md-diagnose-previous"
    assert (previous / "report" / "index.html").read_text() == "old"
    assert not (out / "report" / "index.html").exists() and (out / "report" / "figures" / "cached.png").exists()
    assert json.loads((out / "metrics.json").read_text())["schema"] == "md-metrics/2"


def test_diagnostics_never_imports_reports_or_emulator():
    """The layering the command layer exists for: importing md-diagnose's metrics step (and running
    its parser) loads no module of reports or emulator."""
    code = ("import sys, diagnostics.pipeline, diagnostics.cli.diagnose as d, diagnostics.groups\n"
            "d.parser().parse_args(['--ensemble', 'e', '--reference', 'r', '--out', 'o'])\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('reports', 'emulator'))\n"
            "print(bad); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


# ------------------------------------------------------------------ the portrait at 37 channels

ARCHIVE_MODELS = ("ACE2", "NeuralGCM", "cBottle", "DLESyM", "ArchesWeather", "Aurora", "LUCIE", "MD-1p5", "GFDL-CM4")


def _archive_metrics(tmp_path):
    """metrics.json of nine models on the 37 AI-MIP channels (E1 for all, E2 for all but ta1000,
    E3 for tas, pr, zg500 only), planted member medians that differ per model and channel."""
    import numpy as np

    from diagnostics.data import catalogue
    from tests.reports import report_fixtures

    d = report_fixtures.build(tmp_path / "m", seasons=("ANN",), models=ARCHIVE_MODELS[:2])
    info = json.loads((d / "metrics.json").read_text())
    channels = [catalogue.channel_label(n, lev) for n, lev in catalogue.channels()]
    assert len(channels) == 37
    rng = np.random.default_rng(3)
    for stem in ("aimip_rmsb", "aimip_trend_bias_rms", "aimip_enso_rmse"):
        for ch in channels:
            if (stem == "aimip_trend_bias_rms" and ch == "ta1000") or (
                    stem == "aimip_enso_rmse" and ch not in ("tas", "pr", "zg500")):
                continue
            for m in ARCHIVE_MODELS:
                med = float(rng.uniform(0.5, 2.0))
                info["metrics"].update({f"{m}.{ch}.{stem}_median.test": med, f"{m}.{ch}.{stem}_min.test": 0.8 * med,
                                        f"{m}.{ch}.{stem}_max.test": 1.2 * med})
    info["channels"] = channels
    info["ensembles"] = list(ARCHIVE_MODELS)
    (d / "metrics.json").write_text(json.dumps(info))
    return d, channels


def test_portrait_at_37_channels_one_panel_per_error_family(tmp_path):
    """Variables x models, one panel per error (E1, E2, E3), every panel on the same 37 rows; each cell
    recomputed here from the raw metrics.json keys (model median / median over the nine models - 1);
    the drawn figure keeps the page width and grows in height with the rows."""
    import math

    import numpy as np
    from PIL import Image

    from reports import comparison, figures, labels, metricsdir, sections

    d, channels = _archive_metrics(tmp_path)
    raw = json.loads((d / "metrics.json").read_text())["metrics"]
    md = metricsdir.load(d)
    panels = dict(comparison.portrait_panels(md))
    assert list(panels) == ["E1 RMSB", "E2 trend", "E3 ENSO"]
    for (stem, short) in (("aimip_rmsb", "E1 RMSB"), ("aimip_trend_bias_rms", "E2 trend"), ("aimip_enso_rmse", "E3 ENSO")):
        da = panels[short]
        assert list(da["variable"].values) == [labels.channel(ch) for ch in channels]  # same rows in each
        assert list(da["model"].values) == [labels.model(m) for m in ARCHIVE_MODELS]
        for ch in channels:
            vals = [raw.get(f"{m}.{ch}.{stem}_median.test") for m in ARCHIVE_MODELS]
            typical = sorted(vals)[4] if vals[0] is not None else None  # median of nine
            for m, v in zip(ARCHIVE_MODELS, vals):
                got = float(da.sel(variable=labels.channel(ch), model=labels.model(m)))
                if v is None:
                    assert math.isnan(got), (short, ch)
                else:
                    assert got == pytest.approx(v / typical - 1, rel=1e-12), (short, ch, m)
    assert int(np.isfinite(panels["E3 ENSO"].values).all(axis=1).sum()) == 3
    fig = sections.comparison_portrait(md)
    png = figures.render(fig.spec, tmp_path / "portrait.png")
    with Image.open(png) as im:
        w, h = im.size
    assert w <= figures.WIDTH_IN * figures.DPI + 1
    # 37 rows of square cells of the width that fits 27 columns: taller than wide
    assert h > 37 * (w * 0.6 / 27)
