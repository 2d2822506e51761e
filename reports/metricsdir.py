"""Reading an ``md-diagnose`` output directory (schemas ``md-metrics/2`` and ``md-metrics/1``) for rendering.

A metrics directory holds ``metrics.json`` (flat scalar metrics + provenance) and
``metrics.nc`` (one field per data variable, described by the attributes ``diagnostic``,
``model``, ``channel``, ``period``, ``season``, ``scenario``, ``units``, ``description``).
Fields are selected by those attributes, never by parsing variable names; keys are split with
the qualifier vocabulary the file declares (:mod:`diagnostics.schema`, the one definition of
keys, attributes, periods and seasons that md-diagnose writes with).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from diagnostics.data.errors import InputError
from diagnostics.schema import (BASELINE_PREFIX, CANONICAL_DIMS, FIELD_SELECTORS, PERIODS, READABLE, REFERENCE,
                                SCHEMA, SCHEMA_V1, SEASONS, MetricKey, Vocabulary, is_baseline, legacy_vocabulary,
                                parse_key)

JSON_NAME = "metrics.json"
NC_NAME = "metrics.nc"
FIELD_ATTRS = FIELD_SELECTORS

__all__ = ["BASELINE_PREFIX", "CANONICAL_DIMS", "FIELD_ATTRS", "JSON_NAME", "NC_NAME", "PERIODS", "REFERENCE",
           "SCHEMA", "SCHEMA_V1", "SEASONS", "MetricKey", "MetricsDir", "canonical_dims", "load"]


@dataclass
class MetricsDir:
    """The content of one metrics directory, loaded into memory."""

    path: Path
    info: dict
    fields: xr.Dataset
    scalars: dict[MetricKey, float] = field(default_factory=dict)
    vocabulary: Vocabulary = field(default_factory=dict)

    @property
    def schema(self) -> str:
        return str(self.info.get("schema", ""))

    @property
    def provenance(self) -> dict:
        return self.info.get("provenance", {}) or {}

    @property
    def models(self) -> list[str]:
        """All model names of metrics.json (ensembles first, then baselines), as listed."""
        return [str(m) for m in self.info.get("models", [])]

    @property
    def ensembles(self) -> list[str]:
        """Evaluated ensembles (md-metrics/2 lists them; for /1: models that are not baselines)."""
        if "ensembles" in self.info:
            return [str(m) for m in self.info["ensembles"]]
        return [m for m in self.models if m != REFERENCE and not is_baseline(m)]

    @property
    def baselines(self) -> list[str]:
        if "baselines" in self.info:
            return [str(m) for m in self.info["baselines"]]
        return [m for m in self.models if is_baseline(m)]

    @property
    def scenarios(self) -> list[str]:
        """The warming scenarios the metrics name (``p2k``, ``p4k``)."""
        return list(self.vocabulary.get("scenario", []))

    @property
    def channels(self) -> list[str]:
        return [str(c) for c in self.info.get("channels", [])]

    def period_label(self, period: str) -> str:
        """``test (2015-01:2024-12)`` from provenance periods; the bare name otherwise."""
        span = (self.provenance.get("periods") or {}).get(period)
        return f"{period} ({span})" if span and period else (period or "")

    def __post_init__(self) -> None:
        # attribute index built once: selecting by attributes is the report's inner loop.
        # _index: (field name, its attributes as text), in file order.
        self._index = [(str(name), {k: str(v) for k, v in self.fields[name].attrs.items()})
                       for name in self.fields.data_vars]
        # _postings: attribute -> value -> positions in _index (ascending) of the fields holding it, a field
        # without the attribute counted under "" (select's rule). A query intersects the postings of its
        # attributes instead of testing every field: the 37-channel report asks ~10^4 queries of 3624 fields.
        names = {k for _, a in self._index for k in a}
        self._postings: dict[str, dict[str, list[int]]] = {k: {} for k in names}
        for i, (_, a) in enumerate(self._index):
            for k in names:
                self._postings[k].setdefault(a.get(k, ""), []).append(i)
        self._all = list(range(len(self._index)))
        # canonical_dims(self.fields[name]) built once per field: xarray builds a new DataArray on each
        # ds[name] (about 0.1 ms), and the report selects the same fields many times
        self._canonical: dict[str, xr.DataArray] = {}
        # set of dims -> the file's coordinates on those dims (None: none), shared by the fields' DataArrays
        self._coords: dict[frozenset, xr.Coordinates | None] = {}
        self._by_text = {str(k): k for k in self.scalars}
        # model / channel / metric -> its metrics.json keys in file order (one dict per key part)
        self._keys_by: tuple[dict[str, list[MetricKey]], ...] = ({}, {}, {})
        for k in self.scalars:
            for index, value in zip(self._keys_by, (k.model, k.channel, k.metric)):
                index.setdefault(value, []).append(k)

    def _matching(self, attrs: dict) -> list[int]:
        """Positions in ``_index`` (ascending: file order) of the fields whose attributes equal every
        ``attrs`` value (missing attribute = "")."""
        lists = []
        for k, v in attrs.items():
            v = str(v)
            if k not in self._postings:  # no field has the attribute: all read "", none read anything else
                if v == "":
                    continue
                return []
            hit = self._postings[k].get(v)
            if not hit:
                return []
            lists.append(hit)
        if not lists:
            return self._all
        lists.sort(key=len)
        if len(lists) == 1:
            return lists[0]
        keep = set(lists[0])
        for other in lists[1:]:
            keep.intersection_update(other)
            if not keep:
                return []
        return sorted(keep)

    def field(self, name: str) -> xr.DataArray:
        """The field ``name`` as ``canonical_dims(self.fields[name])``, built once (do not modify it in place).

        Built from the variable and the coordinates on its dims (one ``Coordinates`` object, indexes
        included, per set of dims): ``Dataset.__getitem__`` tests every variable of the file for
        being a coordinate of the field (3661 in the 37-channel metrics.nc: 4 ms a field, 60 % of the
        plan), this takes 0.4 ms; the result is identical (tests/reports)."""
        da = self._canonical.get(name)
        if da is None:
            var = self.fields.variables[name]
            dims = frozenset(var.dims)
            if dims not in self._coords:
                # the variables' dims, not coords.items(): that builds a DataArray per coordinate (4 ms each)
                names = [k for k in self.fields.coords if set(self.fields.variables[k].dims) <= dims]
                self._coords[dims] = self.fields.coords.to_dataset()[names].coords if names else None
            da = self._canonical[name] = canonical_dims(xr.DataArray(var, coords=self._coords[dims], name=name))
        return da

    def attrs_index(self, **attrs: str) -> list[tuple[str, dict[str, str]]]:
        """(field name, its attributes as text) of the fields :meth:`select` would return, in file order,
        without building the fields."""
        return [self._index[i] for i in self._matching(attrs)]

    def select(self, **attrs: str) -> list[xr.DataArray]:
        """Fields whose attributes equal every given value (missing attribute = ""), in file order,
        with their dims under canonical names (see :func:`canonical_dims`).

        The same field is returned as the same DataArray object on every call (built once); callers
        must not modify it in place."""
        return [self.field(self._index[i][0]) for i in self._matching(attrs)]

    def values(self, attr: str, **attrs: str) -> list[str]:
        """Distinct values of one attribute among the fields matching ``attrs``, in file order."""
        # from the attribute index: building the fields themselves (xarray) would cost ~1 ms each
        seen: dict[str, None] = {}
        for i in self._matching(attrs):
            seen.setdefault(self._index[i][1].get(attr, ""), None)
        return list(seen)

    def scalar(self, model: str, channel: str, metric: str, qualifiers: tuple[str, ...] = ()) -> float | None:
        """One metric value (qualifiers in key order, ``("test", "DJF")``), or None when absent,
        null or not finite."""
        k = self._by_text.get(".".join((model, channel, metric, *qualifiers)))
        value = self.scalars.get(k) if k is not None else None
        return value if value is not None and math.isfinite(value) else None

    def keys_for(self, model: str | None = None, channel: str | None = None,
                 metric: str | None = None) -> list[MetricKey]:
        """The metrics.json keys with this model, channel and metric (None: any), in file order."""
        if model is None and channel is None and metric is None:
            return list(self.scalars)
        # the shortest of the given parts' key lists, filtered by the other parts: the scorecard asks
        # ~1700 of these of 10^4 keys in the 37-channel report (a scan each took 5 s in all)
        lists = [index.get(value, []) for index, value in zip(self._keys_by, (model, channel, metric))
                 if value is not None]
        return [k for k in min(lists, key=len) if (model is None or k.model == model)
                and (channel is None or k.channel == channel) and (metric is None or k.metric == metric)]


def canonical_dims(da: xr.DataArray) -> xr.DataArray:
    """Undo md-diagnose's clash renames: ``lat_reference`` -> ``lat``, ``member_MD-1p5`` -> ``member``.

    One field never holds two dims with the same base name, so the rename is unambiguous.
    """
    renames = {}
    for dim in map(str, da.dims):
        base = dim.split("_", 1)[0]
        if base != dim and base in CANONICAL_DIMS and base not in da.dims:
            renames[dim] = base
    return da.rename(renames) if renames else da


def _read_json(path: Path) -> dict:
    try:
        info = json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"no {JSON_NAME}; expected the output directory of md-diagnose "
                         f"(holding {JSON_NAME} and {NC_NAME})", path.parent) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON ({exc}); expected an md-diagnose {JSON_NAME}", path) from None
    if not isinstance(info, dict) or not isinstance(info.get("metrics", {}), dict):
        raise InputError(f"expected a JSON object with a 'metrics' object (schema {SCHEMA})", path)
    schema = info.get("schema")
    if schema not in READABLE:
        raise InputError(f"schema is {schema!r}; this version of reports reads {' or '.join(map(repr, READABLE))}",
                         path)
    if schema != SCHEMA_V1 and not isinstance(info.get("qualifiers"), dict):
        raise InputError(f"schema {schema} needs a 'qualifiers' object (the values of each key qualifier)", path)
    return info


def vocabulary_of(info: dict) -> Vocabulary:
    """The qualifier vocabulary the file declares (md-metrics/2), or the legacy reading of /1."""
    if info.get("schema") == SCHEMA_V1:
        return legacy_vocabulary(info.get("metrics", {}))
    return {str(k): [str(v) for v in vs] for k, vs in info["qualifiers"].items()}


def _scalars(info: dict, vocab: Vocabulary, path: Path) -> dict[MetricKey, float]:
    out: dict[MetricKey, float] = {}
    for key, value in info.get("metrics", {}).items():
        parsed = parse_key(str(key), vocab)
        if parsed is None:
            continue  # not a <model>.<channel>.<metric>[.<qualifier>] key: nothing a report can place
        if value is None:
            out[parsed] = None  # type: ignore[assignment]
            continue
        try:
            out[parsed] = float(value)
        except (TypeError, ValueError):
            raise InputError(f"metric {key!r} is {value!r}; expected a number or null", path) from None
    return out


def load(metrics_dir: str | Path) -> MetricsDir:
    """Read ``metrics.json`` and ``metrics.nc`` of ``metrics_dir`` into memory.

    Raises :class:`InputError` (one line naming the file) when the directory, either file
    or the schema version is missing or unreadable. ``metrics.nc`` may be absent when
    md-diagnose produced no fields (scalar-only report).
    """
    path = Path(metrics_dir)
    if not path.is_dir():
        raise InputError("not a directory; expected the output directory of md-diagnose "
                         f"(holding {JSON_NAME} and {NC_NAME})", path)
    info = _read_json(path / JSON_NAME)
    nc = path / NC_NAME
    if nc.exists():
        try:
            with xr.open_dataset(nc, engine="netcdf4", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
                fields = ds.load()
        except Exception as exc:  # netCDF4/h5netcdf raise assorted types for corrupt files
            raise InputError(f"cannot read as netCDF ({type(exc).__name__}: {exc}); "
                             f"expected the md-diagnose {NC_NAME}", nc) from None
    else:
        fields = xr.Dataset()
    vocab = vocabulary_of(info)
    return MetricsDir(path=path, info=info, fields=fields, scalars=_scalars(info, vocab, path / JSON_NAME),
                      vocabulary=vocab)
