"""The embedded default dataset: a synthetic monthly climate with planted statistics (md-synth).

Entry point: :func:`diagnostics.synth.climate.synthesize`; the truth file is described in
:mod:`diagnostics.synth.truth` and docs/synthetic-climate.md.
"""
