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
