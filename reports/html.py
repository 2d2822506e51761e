"""The HTML report: one self-contained ``index.html`` beside a ``figures/`` folder of PNGs.

Jinja2 with autoescape on: every text from the input files (model names, attributes,
paths, captions) is escaped. The style sheet is inlined; the page loads nothing but its
own PNGs (no fonts, scripts or network), so it reads from ``file://`` without a server.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import jinja2
from markupsafe import Markup

from diagnostics.io.writer import atomic_path

from . import __version__
from .sections import Section

TEMPLATE = "report.html.j2"


def environment() -> jinja2.Environment:
    """The report's Jinja2 environment (autoescape always on)."""
    return jinja2.Environment(loader=jinja2.PackageLoader("reports", "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=False, lstrip_blocks=False)


def style_sheet() -> Markup:
    """Our own CSS, trusted (it is package data, not input), so not escaped."""
    return Markup(resources.files("reports").joinpath("static/report.css").read_text(encoding="utf-8"))


def write(sections: list[Section], out: Path, title: str, subtitle: str, created: str,
          errors: dict[str, str], pdf_name: str | None) -> Path:
    """Render ``sections`` into ``out`` (index.html) atomically; returns ``out``."""
    html = environment().get_template(TEMPLATE).render(
        sections=sections, title=title, subtitle=subtitle, created=created, css=style_sheet(),
        errors=errors, pdf_name=pdf_name, version=__version__)
    with atomic_path(out) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out
