"""Scoring monthly climate ensembles against a reference (AI-MIP diagnostics).

The data contract (variable catalogue, grids, time axis, validator, readers and the
writer) lives in :mod:`diagnostics.data` and :mod:`diagnostics.io`; metrics live in
:mod:`diagnostics.metrics`. Nothing here imports the neural network code.
"""

__version__ = "0.1.0"
