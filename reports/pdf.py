"""The PDF report: the same sections paginated (A4 landscape) with a table of contents.

Written with matplotlib's PdfPages: a title page with what was compared, the scorecard
(page 2), the contents (sections, figures and tables with page numbers), then one page per
figure (the PNG of the HTML report, with its number and caption) or table; the "All figures"
appendix comes after the main sections (when its figures are only listed, not drawn, one page gives their
number per section and the command that draws them; the HTML lists their titles). The long "All metrics"
table is left to the HTML report.
"""

from __future__ import annotations

import datetime as dt
import math
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.backends.backend_pdf import PdfPages  # noqa: E402
from PIL import Image  # noqa: E402

from diagnostics.io.writer import atomic_path  # noqa: E402

from .sections import Figure, Omitted, Section, Table  # noqa: E402

PAGE = (11.69, 8.27)  # A4 landscape, inches
TABLE_ROWS_PER_PAGE = 22
TOC_LINES_PER_PAGE = 38
HTML_ONLY = {"metrics"}


def _wrap(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(" ".join(str(text).split()), width)) or ""


def _page(title: str, number: int, heading: str = ""):
    fig = plt.figure(figsize=PAGE)
    fig.text(0.04, 0.965, heading, fontsize=9, color="0.35", va="top")
    fig.text(0.96, 0.025, f"{title} — page {number}", fontsize=8, color="0.35", ha="right")
    return fig


def _table_chunks(table: Table) -> list[list]:
    n = max(1, math.ceil(len(table.rows) / TABLE_ROWS_PER_PAGE))
    return [table.rows[i * TABLE_ROWS_PER_PAGE:(i + 1) * TABLE_ROWS_PER_PAGE] for i in range(n)]


def _plan(sections: list[Section]) -> tuple[list[tuple[Section, object, int]], int]:
    """(section, item or None, chunk) per body page, and the number of contents pages."""
    body = []
    for sec in sections:
        if sec.id in HTML_ONLY:
            continue
        if sec.id == "overview":
            items = sec.items
        else:
            items = sec.items
            if not items or sec.facts or sec.notes:
                body.append((sec, None, 0))
        for item in items:
            if isinstance(item, Omitted):
                continue  # listed on the section page (item None), not drawn
            if isinstance(item, Table):
                body += [(sec, item, k) for k in range(len(_table_chunks(item)))]
            else:
                body.append((sec, item, 0))
    lines = sum(1 + len(s.items) - len(s.omitted) for s in sections if s.id not in HTML_ONLY)
    return body, max(1, math.ceil(lines / TOC_LINES_PER_PAGE))


def _title_page(pdf, sections, title, subtitle, created):
    fig = plt.figure(figsize=PAGE)
    fig.text(0.06, 0.86, title, fontsize=22, weight="bold")
    fig.text(0.06, 0.81, _wrap(subtitle, 120), fontsize=11, color="0.3", va="top")
    overview = next((s for s in sections if s.id == "overview"), None)
    y = 0.70
    for k, v in (overview.facts if overview else []):
        text = _wrap(v, 100)
        fig.text(0.06, y, k, fontsize=10, weight="bold", va="top")
        fig.text(0.27, y, text, fontsize=10, va="top")
        y -= 0.035 * (text.count("\n") + 1) + 0.012
    for note in (overview.notes if overview else []):
        text = _wrap(note, 130)
        fig.text(0.06, y, text, fontsize=9, color="#8a6d00", va="top")
        y -= 0.03 * (text.count("\n") + 1) + 0.01
    fig.text(0.06, 0.05, f"Rendered {created}", fontsize=8, color="0.4")
    pdf.savefig(fig)
    plt.close(fig)


def front_pages(body) -> int:
    """How many leading body pages are the overview's (the scorecard), printed before the contents."""
    return next((i for i, (sec, _, _) in enumerate(body) if sec.id != "overview"), len(body))


def page_of(i: int, n_front: int, n_toc: int) -> int:
    """Page number of body page i: the front pages follow the title page, the rest the contents."""
    return 2 + i if i < n_front else 2 + n_toc + i


def _contents(pdf, sections, body, n_front, n_toc, title):
    entries: list[tuple[str, int, bool]] = []
    seen = set()
    for i, (sec, item, chunk) in enumerate(body):
        page = page_of(i, n_front, n_toc)
        if sec.id not in seen:
            seen.add(sec.id)
            entries.append((sec.title, page, True))
        if item is not None and chunk == 0:
            label = (f"Figure {item.number}. {item.spec.title}" if isinstance(item, Figure)
                     else f"Table {item.number}. {item.title}")
            entries.append((label, page, False))
    entries += [(f"{s.title} (HTML report only)", 0, True) for s in sections if s.id in HTML_ONLY]
    for p in range(n_toc):
        fig = _page(title, 2 + n_front + p, "Contents")
        fig.text(0.06, 0.92, "Contents" if p == 0 else "Contents (continued)", fontsize=16, weight="bold", va="top")
        y = 0.86
        for label, page, top in entries[p * TOC_LINES_PER_PAGE:(p + 1) * TOC_LINES_PER_PAGE]:
            x = 0.06 if top else 0.09
            fig.text(x, y, label[:130], fontsize=10 if top else 9, weight="bold" if top else "normal", va="top")
            if page:
                fig.text(0.94, y, str(page), fontsize=9, ha="right", va="top")
            y -= 0.021
        pdf.savefig(fig)
        plt.close(fig)


def _figure_page(fig, item: Figure, png: Path, error: str | None):
    caption = _wrap(f"Figure {item.number}. {item.spec.caption}", 175)
    n_lines = caption.count("\n") + 1
    bottom = 0.06 + 0.022 * n_lines
    if error or not png.exists():
        fig.text(0.5, 0.5, f"Figure {item.number} could not be drawn: {error or 'missing PNG'}", ha="center",
                 color="#c62828", wrap=True)
    else:
        with Image.open(png) as im:
            img = np.asarray(im.convert("RGB"))
        ax = fig.add_axes([0.03, bottom + 0.01, 0.94, 0.93 - bottom - 0.01])
        ax.imshow(img, interpolation="none")  # embedded at native resolution, scaled by the PDF
        ax.set_axis_off()
    fig.text(0.04, bottom - 0.005, caption, fontsize=8, va="top")


def _table_page(fig, table: Table, rows: list, chunk: int):
    """A table as a matplotlib table: first column the row labels, header wrapped, cells coloured."""
    head = [""] + [_wrap(h, 10 if table.groups else 12) for h in table.header]
    text = [[_wrap(label, 22)] + [c.text for c in cells] for label, cells in rows]
    colours = [["#f3f5f9"] + [c.colour or "white" for c in cells] for _, cells in rows]
    ncol = len(head)
    label_w = 0.16
    widths = [label_w] + [(1 - label_w) / max(1, ncol - 1)] * (ncol - 1)
    head_lines = max((h.count("\n") + 1 for h in head), default=1)
    height = min(0.66, 0.042 * len(rows) + 0.03 * head_lines)
    ax = fig.add_axes([0.04, 0.87 - height, 0.92, height])
    ax.set_axis_off()
    fig.text(0.04, 0.93, f"Table {table.number}. {table.title}" + (" (continued)" if chunk else ""), fontsize=13,
             weight="bold", va="top")
    tab = ax.table(cellText=text, cellColours=colours, colLabels=head, colWidths=widths, cellLoc="center",
                   bbox=[0, 0, 1, 1])
    tab.auto_set_font_size(False)
    size = 7 if ncol > 10 else 8
    shade = [k % 2 for k, (_, span) in enumerate(table.groups) for _ in range(span)]  # alternate groups
    for (i, j), cell in tab.get_celld().items():
        cell.get_text().set_fontsize(size - 1 if i == 0 else size)
        if i == 0:
            cell.set_facecolor("#dde3ee" if j > 0 and shade and shade[j - 1] else "#f3f5f9")
        if j == 0 and i > 0:
            cell.get_text().set_horizontalalignment("left")
            cell.PAD = 0.03
    start = 0
    for label, span in table.groups:  # the group labels (metrics) above their columns
        x0 = 0.04 + 0.92 * (widths[0] + start * widths[-1])
        fig.text(x0 + 0.92 * span * widths[-1] / 2, 0.873, _wrap(label, max(6, int(5.5 * span))), fontsize=7,
                 weight="bold", ha="center", va="bottom")
        start += span
    legend = "\n".join(f"{k}: {v}" for k, v in table.legend)
    fig.text(0.04, 0.84 - height, _wrap(table.caption, 190) + ("\n" + legend if legend else ""), fontsize=8,
             va="top")


def _section_page(fig, sec: Section):
    fig.text(0.06, 0.88, sec.title, fontsize=18, weight="bold", va="top")
    y = 0.82
    if sec.intro:
        intro = _wrap(sec.intro, 130)
        fig.text(0.06, y, intro, fontsize=10, color="0.3", va="top")
        y -= 0.022 * (intro.count("\n") + 1) + 0.028
    for k, v in (sec.facts if sec.id != "overview" else []):
        lines = _wrap(v, 110).split("\n")
        text = "\n".join(lines[:3]) + (" …" if len(lines) > 3 else "")  # long input lists: see the HTML
        if y - 0.024 * min(len(lines), 3) < 0.08:
            fig.text(0.06, y, "… continued in the HTML report (Provenance section).", fontsize=8, style="italic",
                     va="top")
            break
        fig.text(0.06, y, k, fontsize=8, weight="bold", va="top")
        fig.text(0.28, y, text, fontsize=8, va="top")
        y -= 0.024 * min(len(lines), 3) + 0.006
    for note in sec.notes:
        text = _wrap(note, 140)
        fig.text(0.06, y, text, fontsize=9, color="#8a6d00", va="top")
        y -= 0.028 * (text.count("\n") + 1) + 0.01
    counts: dict[str, int] = {}
    for item in sec.omitted:
        counts[item.origin] = counts.get(item.origin, 0) + 1
    for origin, n in counts.items():  # listed, not drawn: how many per section (titles in the HTML)
        if y < 0.08:
            break
        fig.text(0.08, y, f"{origin}: {n} figure{'s' if n > 1 else ''}", fontsize=9, va="top")
        y -= 0.026


def write(sections: list[Section], out: Path, fig_dir: Path, title: str, subtitle: str, created: str,
          errors: dict[str, str]) -> Path:
    """Write the paginated PDF atomically; returns ``out``."""
    body, n_toc = _plan(sections)
    n_front = front_pages(body)
    with atomic_path(out) as tmp, PdfPages(tmp, metadata={
            "Title": title, "Creator": "md-report", "CreationDate": dt.datetime.now(dt.timezone.utc)}) as pdf:
        _title_page(pdf, sections, title, subtitle, created)
        for i, (sec, item, chunk) in enumerate(body):
            if i == n_front:
                _contents(pdf, sections, body, n_front, n_toc, title)
            fig = _page(title, page_of(i, n_front, n_toc), sec.title)
            if item is None:
                _section_page(fig, sec)
            elif isinstance(item, Table):
                _table_page(fig, item, _table_chunks(item)[chunk], chunk)
            else:
                _figure_page(fig, item, fig_dir / f"{item.spec.name}.png", errors.get(item.spec.name))
            pdf.savefig(fig)
            plt.close(fig)
        if n_front == len(body):
            _contents(pdf, sections, body, n_front, n_toc, title)
    return out
