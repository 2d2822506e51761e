"""Reports as a person sees them: render a small metrics dir, open it in headless Chromium,
rasterise the PDF, and check escaping, offline maps, colouring rules, caching and the CLI."""

from __future__ import annotations

import importlib.util
import json
import math
import re
import shutil
import socket
import subprocess
import warnings
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reports import report_fixtures

from reports import browser, maps, metricsdir, parallel, pdf, scorecard, sections  # noqa: E402
from reports.cli import main as md_report  # noqa: E402
from reports.render import render_report  # noqa: E402

HOSTILE = report_fixtures.HOSTILE


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """One fixture report (two models, a hostile-named third, the noise floor, ANN only) rendered with 2 workers."""
    d = report_fixtures.build(tmp_path_factory.mktemp("metrics"), seasons=("ANN",), hostile=True, noise_floor=True)
    out = render_report(d, formats=("html", "pdf"), jobs=2, progress=False)
    return d, out


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.refs: list[tuple[str, str, str]] = []  # (tag, attribute, value)

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href", "srcset", "data", "action") and v is not None:
                self.refs.append((tag, k, v))


def _figure_count(metrics_dir: Path) -> int:
    md = metricsdir.load(metrics_dir)
    return sum(len(s.figures) for s in sections.build(md, "", "", {}))


def test_render_writes_html_pdf_and_one_png_per_figure(rendered):
    d, out = rendered
    assert out["html"] == d / "report" / "index.html" and out["html"].exists()
    assert out["pdf"] == d / "report" / "report.pdf" and out["pdf"].stat().st_size > 10_000
    text = out["html"].read_text()
    srcs = re.findall(r'<img src="([^"]+)"', text)
    n = _figure_count(d)
    assert len(srcs) == n >= 12  # headline figures; the appendix is listed (test_all_figures_drawn_on_request)
    for s in srcs:
        with Image.open(out["html"].parent / s) as im:
            assert im.format == "PNG" and im.width >= 800
    # each section of the issue is there, with numbered captions saying period and units
    for title in ("Overview", "Climatology and bias", "Zonal-mean bias", "ENSO", "NAO and Z500 modes",
                  "Ensemble skill", "Warming response", "Provenance"):
        assert title in text
    captions = re.findall(r"<figcaption><b>Figure (\d+)\.</b>(.*?)</figcaption>", text, re.S)
    assert [int(c[0]) for c in captions] == list(range(1, n + 1))
    assert all("Units:" in c[1] for c in captions)
    assert "period test (2015-01:2024-12)" in text  # period resolved from the provenance
    assert "mm day-1" in text and not any("kg m-2 s-1" in c[1] for c in captions)  # display units


def test_html_escapes_text_from_input_files(rendered):
    _, out = rendered
    text = out["html"].read_text()
    assert HOSTILE not in text and "<script" not in text.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_html_references_only_local_files(rendered):
    _, out = rendered
    text = out["html"].read_text()
    parser = _Refs()
    parser.feed(text)
    assert parser.refs
    for tag, attr, value in parser.refs:
        assert not re.match(r"^(https?:|//|ftp:)", value), (tag, attr, value)
        if not value.startswith("#"):
            assert (out["html"].parent / value).exists(), value
    assert "url(" not in text and "@import" not in text and "<link" not in text


@pytest.mark.skipif(browser.find_chromium() is None, reason="chromium not installed (make system-deps)")
@pytest.mark.skipif(importlib.util.find_spec("websocket") is None, reason="websocket-client not installed (test extra)")
def test_headless_chromium_sees_every_figure_and_nothing_else(rendered, tmp_path):
    d, out = rendered
    seen = browser.check_page(out["html"], width=1280, height=900)
    assert seen.title == "AI-MIP evaluation report"
    assert len(seen.images) == _figure_count(d)
    assert seen.broken_images == []
    assert seen.console_errors == []  # also catches a CSP violation from unescaped <script>
    assert seen.non_file_requests == []
    assert any(u.endswith("index.html") for u in seen.requests)
    shot = tmp_path / "shot.png"
    shot.write_bytes(seen.screenshot)
    with Image.open(shot) as im:
        assert im.size == (1280, 900)
        grey = np.asarray(im.convert("L"), dtype=float)
    assert grey.std() > 10  # text and coloured scorecard, not a blank page
    assert seen.page_height > 5 * 900  # the whole report is on one page


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="pdftoppm not installed (poppler-utils)")
def test_pdf_pages_are_numbered_and_not_blank(rendered, tmp_path):
    d, out = rendered
    md = metricsdir.load(d)
    secs = sections.build(md, "", "", {})
    body, n_toc = pdf._plan(secs)
    expected = 1 + n_toc + len(body)
    subprocess.run(["pdftoppm", "-r", "20", "-png", str(out["pdf"]), str(tmp_path / "p")], check=True)
    pages = sorted(tmp_path.glob("p-*.png"))
    assert len(pages) == expected
    assert sum(1 for _, item, _ in body if isinstance(item, sections.Figure)) == _figure_count(d)
    for p in pages:
        with Image.open(p) as im:
            assert np.asarray(im.convert("L"), dtype=float).std() > 3, p.name
    if shutil.which("pdftotext"):
        def page(n):
            return subprocess.run(["pdftotext", "-f", str(n), "-l", str(n), str(out["pdf"]), "-"],
                                  capture_output=True, text=True).stdout
        assert "Table 1. Scorecard" in page(2)  # the scorecard right after the title page
        toc = page(2 + pdf.front_pages(body))
        assert "Contents" in toc and "Figure 1." in toc


def test_maps_are_drawn_offline_from_the_shipped_coastlines(rendered, tmp_path, monkeypatch):
    import cartopy
    import cartopy.feature

    from reports import figures

    attempts = []

    def no_network(*args, **kwargs):
        attempts.append(args)
        raise OSError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    d, _ = rendered
    md = metricsdir.load(d)
    spec = next(f.spec for s in sections.build(md, "", "", {}) for f in s.figures if f.spec.kind == "maps")
    cache = getattr(cartopy.feature, "_NATURAL_EARTH_GEOM_CACHE", {})
    cache.clear()  # force reading the coastline file in this process
    maps._COASTLINES.clear()  # and projecting it (maps caches the projected lines per process)
    png = figures.render(spec, tmp_path / "map.png")
    assert png.exists() and attempts == []
    assert Path(cartopy.config["pre_existing_data_dir"]) == maps.natural_earth_root()
    # negative control: without the shipped files cartopy tries to download, and the guard sees it
    empty = tmp_path / "empty"
    empty.mkdir()

    def unconfigured():
        cartopy.config["pre_existing_data_dir"] = str(empty)
        cartopy.config["data_dir"] = str(empty)

    monkeypatch.setattr(maps, "configure_cartopy", unconfigured)
    cache.clear()
    maps._COASTLINES.clear()
    with pytest.raises(Exception), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cartopy's DownloadWarning is the expected attempt
        figures.render(spec, tmp_path / "map2.png")
    assert attempts, "the socket guard saw no download attempt: the test could not fail"


def test_scorecard_colours_follow_the_stated_rules(rendered, tmp_path):
    d, _ = rendered
    md = metricsdir.load(report_fixtures.build(tmp_path, seasons=("ANN",)))  # no noise floor: absolute rules
    sc = scorecard.build(md, ["MD-1p5", "ACE2"])
    # planted (tests/report_fixtures.py): tas scale s = 0.5, baseline-climatology CRPS 0.25
    s, q_ace = 0.5, 2.5
    cases = {
        ("bias_rms", "ACE2"): min(1.0, 0.4 * q_ace * s / s),          # RMS / std = 1.0 -> red
        ("bias_rms", "MD-1p5"): 0.4,
        ("bias", "MD-1p5"): 0.1,
        ("crps", "ACE2"): 0.5 * s * 1.1 / (0.5 * s) - 0.5,             # 1.1 x climatology
        ("spread_skill", "ACE2"): abs(math.log(0.6 * math.sqrt(1.2))) / math.log(2),  # corrected, ideal 1
        ("nino34_corr", "ACE2"): 1 - 0.55,
        ("variability", "ACE2"): abs(math.log(1.55)) / math.log(2),
    }
    for (col, model), b in cases.items():
        assert sc.cell("tas", col, model).colour == scorecard.badness_colour(b), (col, model)
    assert sc.cell("nao_z500", "nao_corr", "ACE2").text == "0.65"  # mode rows; per-member keys ignored
    assert sc.units["pr"] == "mm day-1" and sc.cell("pr", "bias", "MD-1p5").text == f"{0.1 * 4e-6 * 86400:.3g}"
    assert sc.cell("tas", "crps", "ACE2").text == "1.1"  # CRPS shown as the ratio it is coloured by
    # green / red ends of the scale
    assert scorecard.badness_colour(0.0) != scorecard.badness_colour(1.0)
    html = (d / "report" / "index.html").read_text()
    assert f'background: {scorecard.badness_colour(1.0)}' in html


def test_uncorrected_spread_skill_is_judged_against_sqrt_m_over_m_plus_1(tmp_path):
    info = {"schema": "md-metrics/1", "provenance": {"members": {"A": 5}}, "models": ["A"], "channels": ["tas"],
            "metrics": {"A.tas.spread_skill.test": math.sqrt(5 / 6), "A.tas.crps.test": 1.0}}
    (tmp_path / "metrics.json").write_text(json.dumps(info))
    sc = scorecard.build(metricsdir.load(tmp_path))
    assert sc.cell("tas", "spread_skill", "A").colour == scorecard.badness_colour(0.0)
    assert sc.cell("tas", "crps", "A").colour is None  # no baseline-climatology: uncoloured, not guessed


def test_figures_are_cached_by_content(rendered, tmp_path):
    d, _ = rendered
    md = metricsdir.load(d)
    specs = [f.spec for s in sections.build(md, "", "", {}) for f in s.figures]
    fig_dir = tmp_path / "figures"  # a copy: the shared rendered report must keep the PNGs of the real specs
    shutil.copytree(d / "report" / "figures", fig_dir)
    errors, drawn = parallel.draw_all(specs, fig_dir, jobs=1, progress=False)
    assert errors == {} and drawn == 0
    line_spec = next(s for s in specs if s.kind == "lines")
    line_spec.lines[0].y = line_spec.lines[0].y + 1.0
    errors, drawn = parallel.draw_all(specs, fig_dir, jobs=1, progress=False)
    assert errors == {} and drawn == 1


def test_all_figures_drawn_on_request(rendered, tmp_path, capsys):
    """Default: the appendix figures are listed by title with the command that draws them, not drawn;
    ``md-report --all-figures`` draws only those (the headline PNGs are cached), and a default render after
    it keeps their PNGs for the next ``--all-figures``."""
    d, out = rendered
    md = metricsdir.load(d)
    full = [f for s in sections.build(md, "", "", {}, all_figures=True) if s.id == "appendix" for f in s.figures]
    assert len(full) >= 5
    text = out["html"].read_text()
    listed = re.findall(r'<ul class="omitted">(.*?)</ul>', text, re.S)
    assert sum(x.count("<li>") for x in listed) == len(full)
    assert "--all-figures" in text and f"{len(full)} more figures" in text
    assert not any((out["figures"] / f"{f.spec.name}.png").exists() for f in full)
    copy = tmp_path / "m"
    shutil.copytree(d, copy)
    assert md_report([str(copy), "--all-figures", "--format", "html", "--jobs", "1"]) == 0
    assert f"{len(full)} drawn" in capsys.readouterr().err  # the appendix only: the headline PNGs are cached
    html = (copy / "report" / "index.html").read_text()
    assert html.count("<img ") == _figure_count(d) + len(full) and '<ul class="omitted">' not in html
    assert all((copy / "report" / "figures" / f"{f.spec.name}.png").exists() for f in full)
    render_report(copy, formats=("html",), jobs=1, progress=False)  # default again: keeps the appendix PNGs
    assert all((copy / "report" / "figures" / f"{f.spec.name}.png").exists() for f in full)
    specs = [f.spec for s in sections.build(md, "", "", {}, all_figures=True) for f in s.figures]
    assert parallel.draw_all(specs, copy / "report" / "figures", jobs=1, progress=False) == ({}, 0)


def test_missing_fields_give_notes_not_errors(tmp_path):
    info = {"schema": "md-metrics/1", "provenance": {}, "models": ["A"], "channels": ["tas"], "metrics": {},
            "skipped": [{"what": "nao_psl", "why": "psl not in ensemble A"}]}
    (tmp_path / "metrics.json").write_text(json.dumps(info))
    out = render_report(tmp_path, formats=("html", "pdf"), jobs=1, progress=False)
    text = out["html"].read_text()
    assert "<img" not in text
    assert text.count("section skipped") >= 5
    assert "psl not in ensemble A" in text
    assert out["pdf"].exists()


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert md_report([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nope" in err and "md-diagnose" in err
    (tmp_path / "metrics.json").write_text("{not json")
    assert md_report([str(tmp_path)]) == 2
    assert "metrics.json" in capsys.readouterr().err
    (tmp_path / "metrics.json").write_text(json.dumps({"schema": "other/9", "metrics": {}}))
    assert md_report([str(tmp_path)]) == 2
    assert "md-metrics/1" in capsys.readouterr().err
    (tmp_path / "metrics.json").write_text(json.dumps({"schema": "md-metrics/1", "metrics": {}}))
    assert md_report([str(tmp_path), "--format", "docx"]) == 2
    assert "docx" in capsys.readouterr().err


@pytest.mark.slow
def test_report_of_real_md_diagnose_output(tmp_path):
    """md-synth + md-diagnose on a tiny synthetic climate (two variables, no spectra), then the report."""
    metrics = report_fixtures.synthetic_diagnose(tmp_path, scenario=False, variables=("tas", "zg"),
                                                 extra=("--no-spectra", "--no-baselines"))
    out = render_report(metrics, formats=("html", "pdf"), jobs=2, progress=False, all_figures=True)
    text = out["html"].read_text()
    md = metricsdir.load(metrics)
    n = sum(len(s.figures) for s in sections.build(md, "", "", {}, all_figures=True))
    assert n >= 10 and text.count("<img ") == n
    assert "could not be drawn" not in text  # every real field is drawable
    for needed in ("climatology", "nino34_regression", "eof_pattern", "global_mean_series"):
        assert md.select(diagnostic=needed), needed
    sc = scorecard.build(md)
    assert sc.cell("tas", "bias", "SYN").text != "–" and sc.cell("tas", "bias", "SYN").colour
    assert "Other fields" not in text  # every diagnostic md-diagnose writes has its section
    # the comparison section from md-diagnose's own E1 keys (one model: bars and map grid, no portrait)
    compare = next(s for s in sections.build(md, "", "", {}) if s.id == "comparison")
    assert compare.figures[0].spec.name == "compare-aimip-rmsb-test"
    bar = compare.figures[0].spec.panels[0][0].data.sel(model="SYN", stat="median")
    assert float(bar) == pytest.approx(md.scalar("SYN", "tas", "aimip_rmsb_median", ("test",)), rel=1e-6)
    assert "compare-portrait" not in [f.spec.name for f in compare.figures]
    # the mean / RMS printed over a bias map agree with md-diagnose's own bias_mean / bias_rms
    bias = md.select(diagnostic="bias", model="SYN", channel="tas", period="test", season="ANN")[0]
    title = sections.diff_title("SYN", bias, "K")
    assert f"mean {md.scalar('SYN', 'tas', 'bias_mean', ('test', 'ANN')):.2g}," in title
    assert f"RMS {md.scalar('SYN', 'tas', 'bias_rms', ('test', 'ANN')):.2g} K" in title


def test_a_broken_field_becomes_a_note_and_the_rest_renders(tmp_path, capsys):
    import xarray as xr

    info = {"schema": "md-metrics/1", "provenance": {}, "models": ["A"], "channels": ["tas"], "metrics": {}}
    (tmp_path / "metrics.json").write_text(json.dumps(info))
    attrs = {"diagnostic": "climatology", "model": "A", "channel": "tas", "period": "test", "season": "ANN",
             "units": "K", "description": "a map without longitudes"}
    series = {"diagnostic": "nino34_index", "model": "reference", "channel": "nino34", "period": "test",
              "units": "K", "description": "index"}
    xr.Dataset({"broken": xr.DataArray(np.ones(5), dims=["lat"], coords={"lat": np.linspace(-80, 80, 5)},
                                       attrs=attrs),
                "index": xr.DataArray(np.sin(np.arange(24.0)), dims=["year"],
                                      coords={"year": np.arange(2000, 2024)}, attrs=series)}
               ).to_netcdf(tmp_path / "metrics.nc")
    out = render_report(tmp_path, formats=("html",), jobs=1, progress=False, all_figures=True)  # the index: appendix
    text = out["html"].read_text()
    assert "Figure 1 could not be drawn" in text and text.count("<img ") == 1
    assert "warning: figure" in capsys.readouterr().err


def test_scorecard_has_the_noise_floor_column_and_the_baselines(rendered):
    d, out = rendered
    sc = scorecard.build(metricsdir.load(d))
    assert sc.floor == "noise-floor" and "noise-floor" not in sc.models
    for col in sc.columns:  # the floor is a column of every metric, after the models
        assert sc.models_of(col.key)[:len(sc.models)] == sc.models and "noise-floor" in sc.models_of(col.key)
    assert sc.models_of("crps")[-2:] == ["baseline-persistence", "baseline-ar1"]
    assert sc.cell("tas", "crps", "noise-floor").colour == scorecard.FLOOR_COLOUR
    assert sc.cell("tas", "crps", "baseline-persistence").text == "1.2"  # 0.6 / 0.5 of climatology
    # planted: models coloured by their distance from the floor (docs/reports.md)
    cases = {("crps", "MD-1p5"): 0.5 * (0.8 - 0.7) / (1 - 0.7),
             ("nino34_corr", "ACE2"): (0.95 - 0.55) / 0.2,
             ("bias_rms", "MD-1p5"): 0.4 - 0.2,
             ("variability", "MD-1p5"): math.log(1.05) / (2 * math.log(1.1))}
    for (col, model), b in cases.items():
        assert sc.cell("tas", col, model).colour == scorecard.badness_colour(b), (col, model)
    assert sc.cell("nao_z500", "nao_corr", "ACE2").colour == scorecard.badness_colour((0.98 - 0.65) / 0.2)
    text = out["html"].read_text()
    head = text[:text.index("</table>")]
    assert head.count("noise floor (perfect model)</th>") == len(sc.columns)
    assert "<th>AR(1)</th>" in head and "<th>persistence</th>" in head


class _Visible(HTMLParser):
    """The text a reader sees (tag attributes such as tooltips and alt texts excluded)."""

    def __init__(self):
        super().__init__()
        self.chunks: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("style", "script")

    def handle_endtag(self, tag):
        self._skip -= tag in ("style", "script")

    def handle_data(self, data):
        if not self._skip:
            self.chunks.append(data)


def test_no_raw_metric_keys_in_the_visible_text(rendered):
    d, out = rendered
    parser = _Visible()
    html = out["html"].read_text()
    # the provenance quotes file paths and commands verbatim; every other section (tables, the All metrics
    # lookup, captions, notes) is checked
    html = re.sub(r'<section id="provenance">.*?</section>', "", html, flags=re.S)
    assert "All metrics" in html and "All figures" in html
    parser.feed(html)
    text = re.sub(r"\S*/\S*", " ", " ".join(parser.chunks))  # file paths are quoted as they are
    dotted = re.findall(r"\b[A-Za-z][\w-]*\.[a-z][a-z0-9_]*\.[a-z][A-Za-z0-9_]*\b", text)
    assert dotted == [], dotted[:5]
    snake = set(re.findall(r"\b[a-z]+[0-9]*_[a-z0-9_]+\b", text))
    assert snake == set(), sorted(snake)[:10]
    for raw in ("baseline-ar1", "baseline-climatology", "noise-floor"):
        assert raw not in text
    assert "NAO (Z500)" in text and "noise floor (perfect model)" in text


def test_figure_budget_headlines_per_section_the_rest_in_the_appendix(tmp_path):
    d = report_fixtures.build(tmp_path, noise_floor=True)  # ANN, DJF and JJA maps
    secs = sections.build(metricsdir.load(d), "", "", {}, all_figures=True)
    ids = [s.id for s in secs]
    assert ids.index("appendix") == ids.index("provenance") - 1  # after the main sections
    main = [s for s in secs if s.id != "appendix"]
    assert all(len(s.figures) <= sections.HEADLINE_PER_SECTION for s in main)
    headline = sum(len(s.figures) for s in main)
    appendix = secs[ids.index("appendix")].figures
    # 11 before the "Models side by side" section, which adds 3 (E1 bars, portrait, bias map grid)
    assert headline <= 14 and len(appendix) >= headline
    clim = secs[ids.index("climatology")]
    # one headline per variable, the bias maps (one panel per model), not model | reference | bias
    assert [f.spec.name for f in clim.figures] == ["bias-tas-test-ann", "bias-pr-test-ann", "bias-zg500-test-ann"]
    assert all(len(row) <= 3 and all(p.scale == "diff" for p in row) for f in clim.figures for row in f.spec.panels)
    # the model climatology once per variable (in the appendix)
    assert sorted(f.spec.name for f in appendix if f.spec.name.startswith("climatology")) == [
        "climatology-pr-test-ann", "climatology-tas-test-ann", "climatology-zg500-test-ann"]
    # the seasonal biases of each variable in one figure: rows models, columns DJF | JJA
    seasonal = next(f for f in appendix if f.spec.name == "bias-tas-test-djf-test-jja")
    assert [len(r) for r in seasonal.spec.panels] == [2] * 3
    numbers = [f.number for s in secs for f in s.figures]
    assert numbers == list(range(1, len(numbers) + 1))
    assert all(len(f.spec.caption) < 260 for s in secs for f in s.figures)  # one-line captions
    # the default plan: the same headline figures, the appendix's figures listed (title, name), not drawn
    listed = sections.build(metricsdir.load(d), "", "", {})
    assert [[f.spec.name for f in s.figures] for s in listed if s.id != "appendix"] == [
        [f.spec.name for f in s.figures] for s in main]
    app = next(s for s in listed if s.id == "appendix")
    assert app.figures == [] and [(o.name, o.title) for o in app.omitted] == [(f.spec.name, f.spec.title)
                                                                              for f in appendix]
    assert sections.ALL_FIGURES_HOW in app.intro and str(len(appendix)) in app.intro


def test_a_variable_only_the_noise_floor_has_is_left_out(tmp_path):
    d = report_fixtures.build(tmp_path, seasons=("ANN",), noise_floor=True)
    info = json.loads((d / "metrics.json").read_text())
    info["channels"].append("psl")  # the reference's realisations have psl, no model does
    info["metrics"]["noise-floor.psl.bias_mean.test.ANN"] = 10.0
    (d / "metrics.json").write_text(json.dumps(info))
    import xarray as xr
    with xr.open_dataset(d / "metrics.nc") as ds:
        ds = ds.load()
    ds["bias__noise-floor__psl__test__ANN"] = ds["bias__noise-floor__tas__test__ANN"].assign_attrs(channel="psl")
    ds.to_netcdf(d / "metrics2.nc")
    (d / "metrics2.nc").replace(d / "metrics.nc")
    md = metricsdir.load(d)
    assert "psl" not in scorecard.build(md).rows and "tas" in scorecard.build(md).rows
    names = [f.spec.name for s in sections.build(md, "", "", {}) for f in s.figures]
    assert "bias-tas-test-ann" in names and not any("psl" in n for n in names)
    info["metrics"].update({f"noise-floor.psl.aimip_rmsb_{s}.test": 1.0 for s in ("median", "min", "max")})
    (d / "metrics.json").write_text(json.dumps(info))
    bars = sections.comparison_bars(metricsdir.load(d), "aimip_rmsb", "E1")
    assert "Sea-level pressure" not in [p.title.split(" (")[0] for row in bars.spec.panels for p in row]


def test_comparison_portrait_equals_an_independent_computation_from_metrics_json(tmp_path):
    """Portrait cell = model median / median over the models (noise floor excluded) - 1, recomputed
    here from the raw metrics.json keys; the bars show the planted median, min and max."""
    from reports import comparison, labels

    d = report_fixtures.build(tmp_path, seasons=("ANN",), noise_floor=True)
    raw = json.loads((d / "metrics.json").read_text())["metrics"]
    md = metricsdir.load(d)
    table = comparison.portrait_table(md)
    models = ["MD-1p5", "ACE2", report_fixtures.NOISE_FLOOR]
    assert list(table["model"].values) == [labels.model(m) for m in models]
    expected_cols = 0
    for stem, short in (("aimip_rmsb", "E1 RMSB"), ("aimip_trend_bias_rms", "E2 trend"), ("aimip_enso_rmse", "E3 ENSO")):
        for ch in ("tas", "pr", "zg500", "ta850"):
            vals = {m: raw.get(f"{m}.{ch}.{stem}_median.test") for m in models}
            if vals["MD-1p5"] is None:
                continue
            expected_cols += 1
            peers = sorted(v for m, v in vals.items() if m != report_fixtures.NOISE_FLOOR)
            typical = (peers[0] + peers[1]) / 2  # median of two
            col = f"{short}\n{labels.channel(ch)}"
            for m in models:
                got = float(table.sel(model=labels.model(m), column=col))
                want = vals[m] / typical - 1 if vals[m] is not None else math.nan
                assert got == pytest.approx(want, rel=1e-12, nan_ok=True), (m, col)
    assert table.sizes["column"] == expected_cols == 4 + 3 + 1
    # the model with the planted smaller errors is blue everywhere, the worse one red
    assert (table.sel(model="MD-1p5") < 0).all() and (table.sel(model="ACE2") > 0).all()

    sec = sections.comparison(md)
    bars = next(f for f in sec.figures if f.spec.name == "compare-aimip-rmsb-test")
    tas = bars.spec.panels[0][0].data
    for m in models:
        for stat in ("median", "min", "max"):
            assert float(tas.sel(model=labels.model(m), stat=stat)) == pytest.approx(
                raw[f"{m}.tas.aimip_rmsb_{stat}.test"], rel=1e-6)
    grid = next(f for f in sec.figures if f.spec.name.startswith("compare-bias-grid"))
    assert [len(r) for r in grid.spec.panels] == [3, 3, 3]  # models x variables (tas, pr, zg500)
    assert [s.id for s in sections.build(md, "", "", {})][:2] == ["overview", "comparison"]  # scorecard first


def test_comparison_figures_are_in_the_rendered_report(rendered):
    d, out = rendered
    text = out["html"].read_text()
    assert text.index("Table 1. Scorecard") < text.index('<section id="comparison">') < text.index(
        '<section id="climatology">')
    for name in ("compare-aimip-rmsb-test", "compare-portrait"):
        png = out["figures"] / f"{name}.png"
        with Image.open(png) as im:
            assert np.asarray(im.convert("L"), dtype=float).std() > 10, name
        assert f"figures/{name}.png" in text


@pytest.mark.parametrize("extent", [(-180.0, 180.0, -90.0, 90.0), (-90.0, 40.0, 20.0, 80.0)])
def test_cached_coastlines_draw_what_cartopy_draws(tmp_path, extent):
    """The per-process projected coastline path (maps.add_coastlines) looks like cartopy's own
    ax.coastlines() on a global (Robinson) and a regional (Lambert) map: the two renders differ in
    under 0.3 % of the pixels (antialiasing), while leaving the coastlines out differs in more."""
    import matplotlib.pyplot as plt

    maps.configure_cartopy()
    proj = maps.choose_projection(extent)

    def render(how: str) -> np.ndarray:
        fig = plt.figure(figsize=(4, 3), dpi=100)
        ax = fig.add_axes([0.02, 0.02, 0.96, 0.96], projection=proj)
        (ax.set_global() if extent[1] - extent[0] >= 350 else ax.set_extent(list(extent), crs=maps.PLATE))
        if how == "cartopy":
            ax.coastlines(resolution="110m", linewidth=0.5, color="0.15")
        elif how == "cached":
            maps.add_coastlines(ax)
        fig.canvas.draw()
        img = np.asarray(fig.canvas.buffer_rgba())[..., :3].astype(int)
        plt.close(fig)
        return img

    ours, theirs, none = render("cached"), render("cartopy"), render("none")
    differ = lambda a, b: float((np.abs(a - b).max(axis=-1) > 48).mean())  # noqa: E731
    assert differ(ours, theirs) < 0.003
    assert differ(none, theirs) > 0.01  # the comparison can fail: coastlines are visible
