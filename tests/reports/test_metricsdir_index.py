"""MetricsDir's attribute index (postings) and field cache against the plain scan they replace."""

import itertools
from pathlib import Path

import numpy as np
import xarray as xr

from diagnostics.schema import MetricKey
from reports.metricsdir import MetricsDir, canonical_dims


def _metrics_dir() -> MetricsDir:
    rng = np.random.default_rng(0)
    lat, lon = np.linspace(-60, 60, 4), np.arange(0.0, 360.0, 60.0)
    fields = {}
    for i, (diag, model, channel, season) in enumerate(itertools.product(
            ("bias", "std", "nao"), ("MD", "LIM", "reference"), ("tas", "psl"), ("ANN", "DJF", None))):
        attrs = {"diagnostic": diag, "model": model, "channel": channel}
        if season is not None:  # some fields lack the attribute: select reads it as ""
            attrs["season"] = season
        dims = ("lat_reference", "lon") if model == "reference" else ("lat", "lon")
        fields[f"f{i}"] = xr.DataArray(rng.normal(size=(4, 6)), dims=dims, attrs=attrs)
    ds = xr.Dataset(fields, coords={"lat": lat, "lat_reference": lat, "lon": lon})
    scalars = {MetricKey(m, c, k): 1.0 for m in ("MD", "LIM") for c in ("tas", "psl") for k in ("rmse", "crps")}
    return MetricsDir(path=Path("."), info={}, fields=ds, scalars=scalars)


def _scan(md: MetricsDir, attrs: dict) -> list[str]:
    return [str(n) for n in md.fields.data_vars
            if all(str(md.fields[n].attrs.get(k, "")) == v for k, v in attrs.items())]


def test_indexed_selection_equals_the_scan_for_every_query():
    md = _metrics_dir()
    choices = {"diagnostic": ["bias", "nao", "none"], "model": ["MD", "reference"], "season": ["ANN", ""],
               "scenario": ["", "p2k"]}  # scenario: an attribute no field has
    queries = [{}]
    for r in (1, 2, 3):
        for keys in itertools.combinations(choices, r):
            queries += [dict(zip(keys, values)) for values in itertools.product(*(choices[k] for k in keys))]
    for q in queries:
        want = _scan(md, q)
        assert [n for n, _ in md.attrs_index(**q)] == want, q
        assert [da.name for da in md.select(**q)] == want, q
        assert md.values("channel", **q) == list(dict.fromkeys(
            str(md.fields[n].attrs.get("channel", "")) for n in want)), q


def test_cached_fields_are_the_dataset_fields_with_canonical_dims():
    md = _metrics_dir()
    for name in md.fields.data_vars:
        xr.testing.assert_identical(md.field(str(name)), canonical_dims(md.fields[name]))
        assert md.field(str(name)) is md.field(str(name))


def test_indexed_keys_equal_the_scan():
    md = _metrics_dir()
    for model, channel, metric in itertools.product((None, "MD", "X"), (None, "psl"), (None, "crps")):
        want = [k for k in md.scalars if (model is None or k.model == model)
                and (channel is None or k.channel == channel) and (metric is None or k.metric == metric)]
        assert md.keys_for(model, channel, metric) == want
