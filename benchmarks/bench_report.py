"""Benchmark: rendering the report of a metrics directory, step by step, optionally against another checkout.

    python -m benchmarks.bench_report /tmp/report/demo                       # this checkout
    python -m benchmarks.bench_report /tmp/report/demo --baseline-code /tmp/base --jobs 2

For each code version (``--baseline-code DIR``, e.g. ``git archive main`` unpacked in DIR, then
this checkout) a fresh subprocess (that checkout first on ``PYTHONPATH``) copies ``metrics.json``
and ``metrics.nc`` into an empty work directory (so no figure cache) and times the steps of
``reports.render.render_report``: the plan (``sections.build``), drawing every figure
(``parallel.draw_all`` with ``--jobs`` workers), the HTML and the PDF. Each step gets its wall
time and its CPU seconds (this process plus its finished worker processes, ``getrusage``): on a
shared machine the wall time waits for other people's jobs, the CPU time much less so.

Printed: figures drawn, PDF pages, the times side by side with the ratio after / before, and a
content check of the two sets of PNGs (same names; per figure the fraction of pixels that differ
by more than 48 of 255 in any colour channel, after matching sizes), the guard that a speed-up
kept the figures. ``--repeat N`` runs each version N times, alternating, and keeps the fastest.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

#: Runs inside the subprocess: ``argv[1]`` metrics dir (copied), ``argv[2]`` work dir, ``argv[3]`` jobs,
#: ``argv[4]`` "all" to draw the All figures appendix (code without the option always draws it).
CHILD = r"""
import inspect, json, resource, shutil, sys, time
from pathlib import Path

def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

src, work, jobs, everything = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "all"
work.mkdir(parents=True, exist_ok=True)
for name in ("metrics.json", "metrics.nc"):
    shutil.copy2(src / name, work / name)
t_import, c_import = time.perf_counter(), cpu()
from reports import html, parallel, pdf, render, sections
from reports.layout import FIGURES_DIR, HTML_NAME, PDF_NAME, REPORT_DIR
from reports.metricsdir import load
steps = {"import": (time.perf_counter() - t_import, cpu() - c_import)}

def step(name, fn):
    t, c = time.perf_counter(), cpu()
    out = fn()
    steps[name] = (time.perf_counter() - t, cpu() - c)
    return out

out_dir = work / REPORT_DIR
fig_dir = out_dir / FIGURES_DIR
md = step("load", lambda: load(work))
opts = {"all_figures": everything} if "all_figures" in inspect.signature(sections.build).parameters else {}
secs = step("plan", lambda: sections.build(md, "bench_report", "2000-01-01T00:00:00Z", render._versions(), **opts))
specs = [f.spec for s in secs for f in s.figures]
errors, drawn = step("draw", lambda: parallel.draw_all(specs, fig_dir, jobs=jobs, progress=False))
step("html", lambda: html.write(secs, out_dir / HTML_NAME, "t", "s", "c", errors, PDF_NAME))
step("pdf", lambda: pdf.write(secs, out_dir / PDF_NAME, fig_dir, "t", "s", "c", errors))
print("BENCH " + json.dumps({"figures": len(specs), "drawn": drawn, "errors": len(errors),
                             "listed": sum(len(getattr(s, "omitted", [])) for s in secs),
                             "steps": steps, "fig_dir": str(fig_dir), "pdf": str(out_dir / PDF_NAME)}))
"""

STEPS = ("load", "plan", "draw", "html", "pdf")


def run_version(metrics_dir: Path, work: Path, jobs: int, code_dir: Path | None, all_figures: bool = False) -> dict:
    """One timed render in a subprocess running ``code_dir``'s checkout (default: this one); ``all_figures``
    draws the All figures appendix where the code can leave it out (older code always draws it)."""
    code = (code_dir or Path(__file__).resolve().parents[1]).resolve()
    env = {**os.environ, "PYTHONPATH": str(code), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    shutil.rmtree(work, ignore_errors=True)
    proc = subprocess.run([sys.executable, "-c", CHILD, str(metrics_dir.resolve()), str(work), str(jobs),
                           "all" if all_figures else "headline"],
                          cwd=code, env=env, capture_output=True, text=True)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("BENCH ")), None)
    if proc.returncode != 0 or line is None:
        sys.exit(f"bench_report: the render with code {code} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    result = json.loads(line[len("BENCH "):])
    result["pdf_pages"] = pdf_pages(Path(result["pdf"]))
    result["png_MB"] = sum(p.stat().st_size for p in Path(result["fig_dir"]).glob("*.png")) / 1e6
    return result


def pdf_pages(path: Path) -> int | None:
    """Page count of a PDF via ``pdfinfo`` (poppler), None when it is not installed."""
    try:
        out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return next((int(x.split()[-1]) for x in out.splitlines() if x.startswith("Pages:")), None)


def png_difference(a: Path, b: Path, threshold: int = 48) -> float:
    """Fraction of pixels whose colour differs by more than ``threshold`` (0-255) in any channel;
    1.0 when the images differ in size (a layout change, not a redraw of the same figure)."""
    with Image.open(a) as ia, Image.open(b) as ib:
        x, y = np.asarray(ia.convert("RGB"), dtype=np.int16), np.asarray(ib.convert("RGB"), dtype=np.int16)
    if x.shape != y.shape:
        return 1.0
    return float((np.abs(x - y).max(axis=-1) > threshold).mean())


def compare_figures(before: Path, after: Path) -> str:
    """One line: PNG names only in one set, and the largest / median pixel difference of the common ones."""
    na, nb = {p.name for p in before.glob("*.png")}, {p.name for p in after.glob("*.png")}
    diffs = sorted((png_difference(before / n, after / n), n) for n in na & nb)
    if not diffs:
        return "no common figures"
    worst = diffs[-1]
    sizes_differ = sum(d == 1.0 for d, _ in diffs)
    return (f"{len(na & nb)} common PNGs, {len(na - nb)} only before, {len(nb - na)} only after; pixels differing "
            f"(>48/255): median {np.median([d for d, _ in diffs]):.2%}, worst {worst[0]:.2%} ({worst[1]}); "
            f"{sizes_differ} with another size")


def table(runs: dict[str, dict]) -> str:
    """Markdown: one row per version, wall / CPU seconds of each step, and after / before ratios."""
    head = "| code | figures (+ listed) | PDF pages | " + " | ".join(f"{s} wall / CPU" for s in STEPS) + " | total wall / CPU |"
    lines = [head, "|" + "---|" * (len(STEPS) + 4)]
    for label, r in runs.items():
        st = r["steps"]
        total = [sum(st[s][k] for s in STEPS) for k in (0, 1)]
        listed = f" (+ {r['listed']})" if r.get("listed") else ""
        lines.append(f"| {label} | {r['drawn']}{listed} | {r['pdf_pages']} | "
                     + " | ".join(f"{st[s][0]:.1f} / {st[s][1]:.1f} s" for s in STEPS)
                     + f" | {total[0]:.1f} / {total[1]:.1f} s |")
    if len(runs) == 2:
        (_, a), (_, b) = runs.items()
        ratio = [(b["steps"][s][0] / max(a["steps"][s][0], 1e-9), b["steps"][s][1] / max(a["steps"][s][1], 1e-9))
                 for s in STEPS]
        ta = [sum(a["steps"][s][k] for s in STEPS) for k in (0, 1)]
        tb = [sum(b["steps"][s][k] for s in STEPS) for k in (0, 1)]
        lines.append("| after / before | | | " + " | ".join(f"{w:.2f} / {c:.2f}" for w, c in ratio)
                     + f" | {tb[0] / ta[0]:.2f} / {tb[1] / ta[1]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("metrics_dir", type=Path, help="an md-diagnose output (metrics.json + metrics.nc); read only")
    p.add_argument("--baseline-code", type=Path, default=None, help="another checkout to render with first (before)")
    p.add_argument("--jobs", type=int, default=2, help="figure worker processes (default 2)")
    p.add_argument("--all-figures", action="store_true",
                   help="this checkout draws the All figures appendix too (md-report --all-figures)")
    p.add_argument("--repeat", type=int, default=1, help="runs per version, alternating; the fastest is kept")
    p.add_argument("--work", type=Path, default=None, help="work directory (kept; default: a temp dir, removed)")
    args = p.parse_args(argv)
    for name in ("metrics.json", "metrics.nc"):
        if not (args.metrics_dir / name).is_file():
            sys.exit(f"bench_report: {args.metrics_dir / name}: missing; expected an md-diagnose output directory")
    work = args.work or Path(tempfile.mkdtemp(prefix="bench_report_"))
    versions = ([("before", args.baseline_code)] if args.baseline_code else []) + [("after", None)]
    best: dict[str, dict] = {}
    for k in range(args.repeat):
        for label, code in versions:
            r = run_version(args.metrics_dir, work / label, args.jobs, code, args.all_figures)
            total = sum(r["steps"][s][0] for s in STEPS)
            print(f"{label} run {k + 1}: {r['drawn']} figures, draw {r['steps']['draw'][0]:.1f} s wall "
                  f"{r['steps']['draw'][1]:.1f} s CPU, total {total:.1f} s wall", flush=True)
            if label not in best or total < sum(best[label]["steps"][s][0] for s in STEPS):
                best[label] = r
                if args.repeat > 1:  # keep the fastest run's figures for the comparison
                    shutil.rmtree(work / f"{label}-best", ignore_errors=True)
                    shutil.copytree(Path(r["fig_dir"]), work / f"{label}-best")
                    r["fig_dir"] = str(work / f"{label}-best")
    print(f"\n{args.metrics_dir}: jobs {args.jobs}, os.cpu_count() {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} at the end\n")
    print(table(best))
    if len(best) == 2:
        print("\nfigures: " + compare_figures(Path(best["before"]["fig_dir"]), Path(best["after"]["fig_dir"])))
    print(json.dumps({label: {"figures": r["drawn"], "listed": r.get("listed", 0), "pdf_pages": r["pdf_pages"], "png_MB": round(r["png_MB"], 2),
                              **{f"{s}_wall_s": round(r["steps"][s][0], 2) for s in STEPS},
                              **{f"{s}_cpu_s": round(r["steps"][s][1], 2) for s in STEPS}}
                      for label, r in best.items()}))
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
