"""What ``md-diagnose`` writes: the flat metric dict, the fields, the skip list (docs/metrics-schema.md).

:class:`Results` collects numbers (``metrics.json`` ``metrics``, filed under
:class:`~diagnostics.schema.MetricKey`), fields (``metrics.nc`` variables) and skipped
diagnostics while the pipeline runs; :func:`write_outputs` writes both files atomically through
:mod:`diagnostics.io.writer`. Keys, attributes and the schema version live in
:mod:`diagnostics.schema`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import xarray as xr

from .io.writer import write_json, write_netcdf
from .schema import NOISE_FLOOR, QUALIFIERS, SCHEMA, MetricKey, field_name, is_baseline, vocabulary

SPREAD_SKILL_NOTE = ("spread_skill is uncorrected (WeatherBench 2); spread_skill_corrected multiplies "
                     "the spread by sqrt((M+1)/M) (Fortin et al. 2014)")

def as_float(value) -> float | None:
    """A JSON number: float, or None for NaN/inf/missing."""
    if value is None:
        return None
    v = float(np.asarray(value))
    return v if math.isfinite(v) else None


@dataclass
class Results:
    """Numbers, fields and skips gathered by the pipeline."""

    metrics: dict[str, float | None] = field(default_factory=dict)
    fields: dict[str, xr.DataArray] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    keys: dict[str, MetricKey] = field(default_factory=dict)
    #: prints a skip line; None = quiet. The pipeline passes one that says each line once per run.
    say: Callable[[str], None] | None = None

    def add(self, key: MetricKey, value) -> None:
        self.metrics[str(key)] = as_float(value)
        self.keys[str(key)] = key

    def add_field(self, da: xr.DataArray, diagnostic: str, model: str, channel: str, *,
                  period: str = "", season: str = "", scenario: str = "", units: str | None = None,
                  long_name: str = "", description: str = "") -> str:
        """Store a computed field with the schema's attributes; returns its variable name."""
        name = field_name(diagnostic, model, channel, period, season, scenario)
        out = da.rename({"member": f"member_{model}"}) if "member" in da.dims else da.copy()
        out = out.drop_vars([c for c in out.coords if c not in out.dims])  # e.g. member_label, source_year
        out.attrs = {
            "diagnostic": diagnostic, "model": model, "channel": channel, "period": period,
            "season": season, "scenario": scenario,
            "units": units if units is not None else str(da.attrs.get("units", "")),
            "long_name": long_name or str(da.attrs.get("long_name", diagnostic)),
            "description": description,
        }
        out.name = name
        self.fields[name] = out
        return name

    def skip(self, what: str, why: str) -> None:
        """Record (and print, one line) a diagnostic that the inputs do not allow."""
        entry = {"what": what, "why": why}
        if entry not in self.skipped:
            self.skipped.append(entry)
            if self.say is not None:
                self.say(f"skipped {what}: {why}")

    def update(self, other: "Results") -> None:
        self.metrics.update(other.metrics)
        self.keys.update(other.keys)
        self.fields.update(other.fields)
        for s in other.skipped:
            if s not in self.skipped:
                self.skipped.append(s)


def _rename_conflicting_dims(fields: dict[str, xr.DataArray]) -> dict[str, xr.DataArray]:
    """Give a field's dim a private name (``bin_<model>``, ``time_<model>``) when another field
    already uses that dim name with other coordinates or size, so all fit in one Dataset."""
    seen: dict[str, tuple] = {}
    out: dict[str, xr.DataArray] = {}
    for name, da in fields.items():
        renames = {}
        for dim in da.dims:
            sig = (da.sizes[dim], tuple(np.asarray(da[dim].values).tolist()) if dim in da.coords else None)
            candidates = [dim, f"{dim}_{da.attrs.get('model', '')}",
                          f"{dim}_{da.attrs.get('model', '')}_{da.attrs.get('channel', '')}", f"{dim}_{name}"]
            for cand in candidates:
                if cand not in seen or seen[cand] == sig:
                    seen[cand] = sig
                    if cand != dim:
                        renames[dim] = cand
                    break
        out[name] = da.rename(renames) if renames else da
    return out


def fields_dataset(fields: dict[str, xr.DataArray], attrs: dict | None = None) -> xr.Dataset:
    """All fields as one Dataset (dims renamed where they would clash)."""
    fixed = _rename_conflicting_dims(fields)
    return xr.Dataset({k: v.drop_vars([c for c in v.coords if c not in v.dims]) for k, v in fixed.items()},
                      attrs=attrs or {})


def write_outputs(out_dir: str | os.PathLike, results: Results, provenance: dict, models: list[str],
                  channels: list[str]) -> tuple[Path, Path]:
    """Write ``metrics.json`` and ``metrics.nc`` atomically into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ds = fields_dataset(results.fields, attrs={
        "Conventions": "CF-1.8", "schema": SCHEMA, "title": "md-diagnose fields",
        "command": provenance.get("command", ""), "created": provenance.get("created", "")})
    nc = write_netcdf(ds, out_dir / "metrics.nc")
    doc = {"schema": SCHEMA, "provenance": provenance, "models": models,
           "ensembles": [m for m in models if not is_baseline(m)], "baselines": [m for m in models if is_baseline(m)],
           "noise_floor": NOISE_FLOOR if NOISE_FLOOR in models else None,
           "channels": channels, "qualifiers": vocabulary(results.keys.values()),
           "skipped": results.skipped, "metrics": dict(sorted(results.metrics.items()))}
    js = write_json(doc, out_dir / "metrics.json")
    return js, nc


# --------------------------------------------------------------------------- stale outputs and resume
#: The final files md-diagnose writes into its output directory.
OUTPUT_NAMES = ("metrics.json", "metrics.nc")
#: Where the previous run's final files go while a new run is under way.
PREVIOUS_DIR = ".md-diagnose-previous"
PARTIAL_DIR = ".md-diagnose-partial"


def retire_previous(out_dir: str | os.PathLike, names: tuple[str, ...] = OUTPUT_NAMES) -> list[str]:
    """Move the previous run's final files (``names``, relative to ``out_dir``) into
    ``out_dir/.md-diagnose-previous/`` (replacing what an older run left there), so a new run
    that is killed half-way never leaves finished-looking results. Returns the names moved."""
    out_dir = Path(out_dir)
    moved = [n for n in names if (out_dir / n).exists()]
    if not moved:
        return []
    previous = out_dir / PREVIOUS_DIR
    for name in moved:
        target = previous / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            shutil.rmtree(target)
        os.replace(out_dir / name, target)
    return moved


def partial_dir(out_dir: str | os.PathLike, fingerprint: str) -> Path:
    """Where finished variables of an interrupted run are kept (removed after the final write)."""
    return Path(out_dir) / PARTIAL_DIR / fingerprint


def save_partial(out_dir: str | os.PathLike, fingerprint: str, variable: str, results: Results) -> None:
    """Keep one finished variable's numbers, fields and skips, atomically, for a rerun to reuse."""
    d = partial_dir(out_dir, fingerprint)
    d.mkdir(parents=True, exist_ok=True)
    if results.fields:
        write_netcdf(fields_dataset(results.fields), d / f"{variable}.nc")
    write_json({"metrics": results.metrics, "skipped": results.skipped, "fields": sorted(results.fields),
                "keys": {k: [getattr(v, q) for q in ("model", "channel", "metric", *QUALIFIERS)]
                         for k, v in results.keys.items()}}, d / f"{variable}.json")


class CorruptPartial(Exception):
    """A saved partial result that cannot be read back (the variable is then recomputed)."""


def load_partial(out_dir: str | os.PathLike, fingerprint: str, variable: str) -> Results | None:
    """The results an interrupted run with the same fingerprint saved for ``variable``; None when
    there are none. :class:`CorruptPartial` (one line: the file and what is wrong) when they exist
    but cannot be read: truncated or edited JSON, a missing or unreadable fields file."""
    d = partial_dir(out_dir, fingerprint)
    meta = d / f"{variable}.json"
    if not meta.exists():
        return None
    try:
        doc = json.loads(meta.read_text())
        res = Results(metrics=dict(doc["metrics"]), skipped=list(doc["skipped"]),
                      keys={k: MetricKey(*parts) for k, parts in doc["keys"].items()})
        if set(res.keys) != set(res.metrics):
            raise ValueError("its metrics and keys differ")
        names = list(doc["fields"])
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        raise CorruptPartial(f"{meta}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if names:
        nc = d / f"{variable}.nc"
        try:
            with xr.open_dataset(nc, engine="netcdf4", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
                for name in names:
                    res.fields[name] = ds[name].load()
        except Exception as exc:  # noqa: BLE001 - netCDF4/h5netcdf raise assorted types for broken files
            raise CorruptPartial(f"{nc}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") \
                from None
    return res
