"""Reading an ``md-diagnose`` output directory (schema ``md-metrics/1``) for rendering.

A metrics directory holds ``metrics.json`` (flat scalar metrics + provenance) and
``metrics.nc`` (one field per data variable, described by the attributes ``diagnostic``,
``model``, ``channel``, ``period``, ``season``, ``scenario``, ``units``, ``description``).
Fields are selected by those attributes, never by parsing variable names.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import xarray as xr

from diagnostics.data.errors import InputError

SCHEMA = "md-metrics/1"
JSON_NAME = "metrics.json"
NC_NAME = "metrics.nc"
REFERENCE = "reference"
BASELINE_PREFIX = "baseline-"
FIELD_ATTRS = ("diagnostic", "model", "channel", "period", "season", "scenario")
PERIODS = ("train", "test", "all")
#: dims md-diagnose may rename to ``<dim>_<model>[_<channel>]`` when fields clash in one file
CANONICAL_DIMS = ("lat", "lon", "plev", "time", "year", "member", "bin", "l", "k")
SEASONS = ("ANN", "DJF", "MAM", "JJA", "SON")


@dataclass(frozen=True)
class MetricKey:
    """One parsed key ``<model>.<channel>.<metric>[.<qualifier>...]`` of metrics.json."""

    model: str
    channel: str
    metric: str
    qualifiers: tuple[str, ...] = ()

    @property
    def period(self) -> str:
        return next((q for q in self.qualifiers if q in PERIODS), "")

    @property
    def season(self) -> str:
        return next((q for q in self.qualifiers if q in SEASONS), "")

    @property
    def other(self) -> tuple[str, ...]:
        """Qualifiers that are neither a period nor a season (e.g. a scenario ``p2k``)."""
        return tuple(q for q in self.qualifiers if q not in PERIODS and q not in SEASONS)


def parse_key(key: str) -> MetricKey | None:
    """Split a metrics.json key; ``None`` when it has fewer than three parts."""
    parts = key.split(".")
    if len(parts) < 3:
        return None
    return MetricKey(parts[0], parts[1], parts[2], tuple(parts[3:]))


@dataclass
class MetricsDir:
    """The content of one metrics directory, loaded into memory."""

    path: Path
    info: dict
    fields: xr.Dataset
    scalars: dict[MetricKey, float] = field(default_factory=dict)

    @property
    def provenance(self) -> dict:
        return self.info.get("provenance", {}) or {}

    @property
    def models(self) -> list[str]:
        """All model names of metrics.json (ensembles first, then baselines), as listed."""
        return [str(m) for m in self.info.get("models", [])]

    @property
    def ensembles(self) -> list[str]:
        """Evaluated ensembles: models that are neither the reference nor a baseline."""
        return [m for m in self.models if m != REFERENCE and not m.startswith(BASELINE_PREFIX)]

    @property
    def baselines(self) -> list[str]:
        return [m for m in self.models if m.startswith(BASELINE_PREFIX)]

    @property
    def channels(self) -> list[str]:
        return [str(c) for c in self.info.get("channels", [])]

    def period_label(self, period: str) -> str:
        """``test (2015-01:2024-12)`` from provenance periods; the bare name otherwise."""
        span = (self.provenance.get("periods") or {}).get(period)
        return f"{period} ({span})" if span and period else (period or "")

    def __post_init__(self) -> None:
        # attribute index built once: selecting by attributes is the report's inner loop
        self._index = [(str(name), {k: str(v) for k, v in self.fields[name].attrs.items()})
                       for name in self.fields.data_vars]

    def select(self, **attrs: str) -> list[xr.DataArray]:
        """Fields whose attributes equal every given value (missing attribute = ""), in file order,
        with their dims under canonical names (see :func:`canonical_dims`)."""
        want = {k: str(v) for k, v in attrs.items()}
        return [canonical_dims(self.fields[name]) for name, a in self._index
                if all(a.get(k, "") == v for k, v in want.items())]

    def values(self, attr: str, **attrs: str) -> list[str]:
        """Distinct values of one attribute among the fields matching ``attrs``, in file order."""
        seen: dict[str, None] = {}
        for da in self.select(**attrs):
            seen.setdefault(str(da.attrs.get(attr, "")), None)
        return list(seen)

    def scalar(self, model: str, channel: str, metric: str, qualifiers: tuple[str, ...] = ()) -> float | None:
        """One metric value, or None when absent, null or not finite."""
        value = self.scalars.get(MetricKey(model, channel, metric, tuple(qualifiers)))
        return value if value is not None and math.isfinite(value) else None

    def keys_for(self, model: str | None = None, channel: str | None = None,
                 metric: str | None = None) -> list[MetricKey]:
        return [k for k in self.scalars if (model is None or k.model == model)
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
    if schema != SCHEMA:
        raise InputError(f"schema is {schema!r}; this version of reports reads {SCHEMA!r}", path)
    return info


def _scalars(info: dict, path: Path) -> dict[MetricKey, float]:
    out: dict[MetricKey, float] = {}
    for key, value in info.get("metrics", {}).items():
        parsed = parse_key(str(key))
        if parsed is None:
            continue  # not a <model>.<channel>.<metric> key: nothing a report can place
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
            with xr.open_dataset(nc, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
                fields = ds.load()
        except Exception as exc:  # netCDF4/h5netcdf raise assorted types for corrupt files
            raise InputError(f"cannot read as netCDF ({type(exc).__name__}: {exc}); "
                             f"expected the md-diagnose {NC_NAME}", nc) from None
    else:
        fields = xr.Dataset()
    return MetricsDir(path=path, info=info, fields=fields, scalars=_scalars(info, path / JSON_NAME))
