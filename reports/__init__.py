"""HTML and PDF figure reports of ``md-diagnose`` output (``metrics.json`` + ``metrics.nc``).

Entry points: :func:`reports.render.render_report` and the ``md-report`` command.
Reports read only the two files of the schema ``md-metrics/1`` (docs/metrics-schema.md)
and select fields by their netCDF attributes, never by parsing variable names.
"""

__version__ = "0.1.0"
