"""Per-model result cache of ``md-diagnose``: adding a ninth model re-scores only that model.

Scoring several submissions against one reference, each model's numbers, fields and skips are
kept under ``OUT/.md-diagnose-cache/`` keyed by a fingerprint (:func:`diagnostics.data.provenance.digest`)
of everything they depend on:

* the model's own input files (ensemble, its daily files where E4 reads them, its scenario runs) by identity
  (:func:`~diagnostics.data.provenance.file_identity`: real path, size, mtime), and its member count;
* the reference's files by identity;
* what alignment made of all inputs together: the scored window and train/test periods, the
  common grid and the pressure levels of every scored variable (a ninth model on a coarser grid
  or a shorter period changes them, hence every model's scores);
* the Niño-3.4 index actually used (its values: it may come from another model's forcing);
* the noise floor's files by identity (every ensemble's comparisons with it are in its own entry);
* the options (variables, members, baselines, spectra, seed, Niño-3.4 convention);
* the code version: the ``monthly-diffusion`` version and a SHA-256 of the ``diagnostics`` sources.

The reference's own results and the baselines (built from the reference) form one more entry,
``reference``, whose fingerprint adds the baselines' member count (the largest ensemble's). The
first ensemble's groups also write the reference's side (spectra, variability, Niño-3.4), so when
the ``reference`` entry misses, the first ensemble is re-scored too; and the noise floor is
re-scored whenever any other ensemble is (its groups compare it with the ensembles scored beside it).

A cached entry is used only when its fingerprint equals the one of this run (it is looked up by
that name, so a stale entry is never read); a model's older entries are deleted when it is
stored again. An entry that cannot be read is said in one line and that model re-scored.
"""

from __future__ import annotations

import functools
import hashlib
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data.provenance import digest, file_identity, versions
from .io.names import daily_files_beside
from .outputs import CorruptPartial, Results, load_partial, partial_dir, save_partial
from .schema import NOISE_FLOOR, REFERENCE

if TYPE_CHECKING:
    import xarray as xr

# The pipeline imports this module, so its types (pipeline.Config, .Inputs, .Plan) are not
# imported here (no cycles between the package's modules): they are named in the docstrings.
Config = Inputs = Plan = Any

#: Directory of the cache under ``--out``.
CACHE_DIR = ".md-diagnose-cache"
#: Name of the entry holding the reference's own results and the baselines.
REFERENCE_ENTRY = REFERENCE
#: How :func:`diagnostics.pipeline._compute` words a batch that failed (such a run is not cached).
FAILED = "scoring failed"


def _say(text: str) -> None:
    print(f"md-diagnose: {text}", file=sys.stderr)


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """``monthly-diffusion`` version + SHA-256 (16 hex) of every ``diagnostics/**/*.py`` source:
    any change to the scoring code invalidates every cached entry."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return f"{versions(('monthly-diffusion',)).get('monthly-diffusion', '?')}+{h.hexdigest()[:16]}"


def _flat(obj) -> list[str]:
    """Every path string in a nested dict/list of paths."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [p for v in obj.values() for p in _flat(v)]
    return [p for v in obj for p in _flat(v)]


def daily_beside(files: list[str]) -> list[str]:
    """The ``day``-table files E4 reads beside monthly ``files`` (they are not in the provenance's
    input lists, so they are added to the identity here)."""
    return [str(f) for f in daily_files_beside([f for f in files if str(f).endswith(".nc")]).files]


def shared_identity(cfg: Config, inputs: Inputs, index: "xr.DataArray | None") -> dict:
    """What every entry's results depend on besides the model's own files (see the module doc)."""
    ref = inputs.reference
    layout = {v: {"sizes": {str(d): int(n) for d, n in ref[v].sizes.items()},
                  "plev": np.asarray(ref[v]["plev"].values).round(3).tolist() if "plev" in ref[v].dims else None}
              for v in inputs.variables}
    index_digest = None if index is None else hashlib.sha256(
        np.ascontiguousarray(np.asarray(index.values, dtype="float64")).tobytes()).hexdigest()[:16]
    ref_files = _flat(inputs.paths["reference"])
    floor = inputs.paths["ensembles"].get(NOISE_FLOOR)
    return {"reference": file_identity(ref_files + daily_beside(ref_files)), "window": str(inputs.window),
            # every ensemble's comparisons with the noise floor (and the reference's) are filed
            # under its own entry: another floor (or none) invalidates them all
            "noise_floor": None if floor is None else file_identity(_flat(floor)),
            "grid": inputs.grid_note, "layout": layout, "variables": inputs.variables, "nino34_index": index_digest,
            "options": {"members_max": cfg.members_max, "baselines": cfg.baselines, "spectra": cfg.spectra,
                        "seed": cfg.seed, "nino34": cfg.nino34},
            "code": code_version()}


def model_fingerprint(shared: dict, inputs: Inputs, name: str) -> str:
    """Fingerprint of one ensemble's entry: the shared identity + its files, scenarios and members."""
    monthly = _flat(inputs.paths["ensembles"][name])
    files = monthly + daily_beside(monthly) + _flat(inputs.paths["scenarios"].get(name, {}))
    scenarios = sorted(inputs.scenarios.get(name, {}))
    return digest({"shared": shared, "model": name, "files": file_identity(files), "scenarios": scenarios,
                   "members": int(inputs.ensembles[name].sizes["member"])})


def reference_fingerprint(shared: dict, inputs: Inputs) -> str:
    """Fingerprint of the reference's entry: the shared identity + the baselines' member count."""
    members = max(int(d.sizes["member"]) for d in inputs.ensembles.values())
    return digest({"shared": shared, "entry": REFERENCE_ENTRY, "baseline_members": max(2, members)})


def owner(model: str, ensembles: set[str]) -> str:
    """The entry a result of ``model`` belongs to: the ensemble itself, else the reference's."""
    return model if model in ensembles else REFERENCE_ENTRY


def split(res: Results, ensembles: set[str]) -> dict[str, Results]:
    """``res`` divided by entry: each ensemble's metrics, fields and skips (``what`` starting with
    ``NAME.``), and everything else (reference, baselines, run-wide skips) under ``reference``."""
    parts: dict[str, Results] = {}

    def part(name: str) -> Results:
        return parts.setdefault(name, Results())

    for k, mk in res.keys.items():
        p = part(owner(mk.model, ensembles))
        p.metrics[k], p.keys[k] = res.metrics[k], mk
    for name, da in res.fields.items():
        part(owner(str(da.attrs.get("model", "")), ensembles)).fields[name] = da
    for s in res.skipped:
        head = s["what"].split(".", 1)[0]
        part(owner(head, ensembles)).skipped.append(s)
    return parts


@dataclass
class ModelCache:
    """The cache of one ``md-diagnose`` run: which entries hit (their results loaded) and which
    must be scored; :meth:`prune` removes the hits from the plans, :meth:`save` stores the rest."""

    root: Path
    fingerprints: dict[str, str]  # entry name -> fingerprint of this run
    hits: dict[str, Results] = field(default_factory=dict)

    @classmethod
    def open(cls, out: Path, cfg: Config, inputs: Inputs, index: "xr.DataArray | None") -> "ModelCache":
        """Fingerprint every entry and load those cached with the same fingerprint."""
        shared = shared_identity(cfg, inputs, index)
        fps = {REFERENCE_ENTRY: reference_fingerprint(shared, inputs)}
        fps.update({n: model_fingerprint(shared, inputs, n) for n in inputs.ensembles})
        cache = cls(Path(out) / CACHE_DIR, fps)
        for name, fp in fps.items():
            try:
                got = load_partial(cache.root, name, fp)
            except CorruptPartial as exc:
                _say(f"the cached results of {name} cannot be read ({exc}); re-scoring {name}")
                got = None
            if got is not None:
                cache.hits[name] = got
        first = next(iter(inputs.ensembles))
        if REFERENCE_ENTRY not in cache.hits:  # the first ensemble writes part of the reference's side
            cache.hits.pop(first, None)
        if any(n not in cache.hits for n in inputs.ensembles if n != NOISE_FLOOR):
            # the floor's groups compare it with the ensembles scored in this run: a new or changed
            # model gets its noise-floor comparisons only if the floor is scored beside it
            cache.hits.pop(NOISE_FLOOR, None)
        if cache.hits:
            _say(f"reusing cached results of {', '.join(cache.hits)} ({cache.root}); scoring "
                 f"{', '.join(n for n in fps if n not in cache.hits) or 'nothing else'}")
        return cache

    @property
    def ensembles(self) -> set[str]:
        return set(self.fingerprints) - {REFERENCE_ENTRY}

    def prune(self, plan: Plan) -> None:
        """Drop the cached entries' subjects and tasks from one variable's plan (the reference
        subject stays: the other subjects are scored against it)."""
        skip = {n for n in self.hits if n != REFERENCE_ENTRY}
        ref_hit = REFERENCE_ENTRY in self.hits

        def dropped(subject) -> bool:
            if subject.kind == "ensemble":
                return subject.name in skip
            return ref_hit  # the reference's own groups and the baselines

        plan.tasks = {stage: [(g, s) for g, s in tasks if not dropped(s)] for stage, tasks in plan.tasks.items()}
        plan.subjects = [s for s in plan.subjects if s.kind == "reference" or not dropped(s)]
        if ref_hit and not any(s.kind == "ensemble" for s in plan.subjects):
            plan.eager = []  # the EOF modes would only rewrite the reference's cached ones

    def save(self, res: Results) -> None:
        """Store each scored entry's part of ``res`` (replacing its older entries) and add the
        cached entries' results to ``res``. Nothing is stored when a batch failed: its numbers
        would be cached as missing."""
        failed = [s["what"] for s in res.skipped if s["why"].startswith(FAILED)]
        if failed:
            _say(f"not caching this run's results: scoring failed for {', '.join(failed)}")
        else:
            parts = split(res, self.ensembles)
            for name in self.fingerprints:
                if name not in self.hits:  # an entry with no result at all is stored empty
                    self._store(name, parts.get(name, Results()))
        for got in self.hits.values():
            res.update(got)

    def _store(self, name: str, part: Results) -> None:
        fp = self.fingerprints[name]
        entry_dir = partial_dir(self.root, name)
        if entry_dir.is_dir():  # only this run's fingerprint is kept
            for old in entry_dir.iterdir():
                if old.stem != fp:
                    old.unlink() if old.is_file() else shutil.rmtree(old)
        save_partial(self.root, name, fp, part)
