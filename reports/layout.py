"""Where a report lives inside a metrics directory (read by the renderer and the md-diagnose command)."""

REPORT_DIR = "report"
HTML_NAME = "index.html"
PDF_NAME = "report.pdf"
FIGURES_DIR = "figures"
#: The report's final files (the figure cache under ``report/figures`` is not one).
FINAL_FILES = (f"{REPORT_DIR}/{HTML_NAME}", f"{REPORT_DIR}/{PDF_NAME}")
