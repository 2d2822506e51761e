"""Per-model caching of md-diagnose (diagnostics/cache.py).

Counted, not assumed: every group build of the pipeline goes through ``pipeline._guard`` with
``what = SUBJECT.channel.group``, so wrapping it records which subjects a run scored. The cached
numbers are checked against a fresh run of the same inputs (equal, key by key).
"""

from __future__ import annotations

import json
import os

import pytest

from diagnostics import cache, pipeline
from diagnostics.cli.diagnose import main
from diagnostics.data.grid import equiangular
from diagnostics.data.timeaxis import Month
from diagnostics.io.writer import write_aimip, write_prepared
from diagnostics.synth.climate import synthesize

GRID = equiangular(11.25)  # 17 x 32
START, END = Month(2012, 1), Month(2014, 12)
TRAIN, TEST = "2012-01:2013-12", "2014-01:2014-12"
KEEP = ["tas", "tos", "time_bnds"]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    for i, name in enumerate(("A", "B", "C")):
        ens, _ = synthesize(GRID, START, END, seed=1 + i, members=2)
        write_aimip(ens[KEEP], root / name, name, "aimip")
    ref, _ = synthesize(GRID, START, END, seed=7, members=1)
    write_prepared(ref[["tas", "tos", "time_bnds"]], root / "ref", {"fingerprint": "ref"})
    return root


@pytest.fixture
def scored(monkeypatch):
    """The subject names whose groups a run built (reference, baselines, ensembles)."""
    names: set[str] = set()
    real = pipeline._guard

    def counting(res, what, fn, *args, **kwargs):
        names.add(what.split(".", 1)[0])
        return real(res, what, fn, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_guard", counting)
    return names


def _run(root, out, models, floor: str | None = None) -> dict:
    args = []
    for m in models:
        args += ["--ensemble", f"{m}={root / m}"]
    if floor is not None:
        args += ["--noise-floor", str(root / floor)]
    code = main([*args, "--reference", str(root / "ref"), "--out", str(out), "--train-period", TRAIN,
                 "--test-period", TEST, "--variables", "tas", "--no-spectra", "--report", "none", "--no-progress"])
    assert code == 0
    return json.loads((out / "metrics.json").read_text())["metrics"]


def test_per_model_cache(archive, tmp_path, scored, capsys, monkeypatch):
    """One sequence (each run costs seconds): add a model, change a file, corrupt an entry, new code."""
    out = tmp_path / "out"
    first = _run(archive, out, ["A", "B"])
    assert {"reference", "A", "B", "baseline-ar1"} <= scored

    # a third model: only it is scored; the cached numbers equal the first run's and a fresh run's
    scored.clear()
    second = _run(archive, out, ["A", "B", "C"])
    assert scored == {"C"}, "only the added model may be scored"
    assert "reusing cached results of reference, A, B" in capsys.readouterr().err
    assert {k: v for k, v in second.items() if not k.startswith("C.")} == first
    assert any(k.startswith("C.") for k in second)
    scored.clear()
    fresh = _run(archive, tmp_path / "fresh", ["A", "B", "C"])  # nothing cached there
    assert {"reference", "A", "B", "C"} <= scored
    assert fresh.keys() == second.keys()
    for k, v in fresh.items():
        assert v == pytest.approx(second[k], rel=1e-12, abs=1e-15, nan_ok=True), k

    # one file of B touched (same name, new identity) and A's entry corrupted: those two re-scored
    one_file = sorted((archive / "B").glob("*.nc"))[0]
    st = os.stat(one_file)
    os.utime(one_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    (entry,) = (out / cache.CACHE_DIR).rglob("A/*.json")
    entry.write_text("{not json")
    scored.clear()
    capsys.readouterr()
    third = _run(archive, out, ["A", "B", "C"])
    assert scored == {"A", "B"}, "a stale (B) or unreadable (A) entry is never used"
    assert "the cached results of A cannot be read" in capsys.readouterr().err
    assert third == second  # the touched file holds the same numbers
    entries = sorted(p.name for p in (out / cache.CACHE_DIR).rglob("B/*.json"))
    assert len(entries) == 1, f"only B's current entry is kept: {entries}"

    # new scoring code: every entry re-scored
    monkeypatch.setattr(cache, "code_version", lambda: "another-version")
    scored.clear()
    _run(archive, out, ["A", "B", "C"])
    assert {"reference", "A", "B", "C", "baseline-ar1"} <= scored


def test_noise_floor_comparisons_are_never_stale(archive, tmp_path, scored):
    """Each ensemble's comparisons with the noise floor live in its own entry: another floor
    re-scores every model, and a model added beside a cached floor is scored with the floor."""
    out = tmp_path / "out"
    _run(archive, out, ["A"], floor="C")
    scored.clear()
    _run(archive, out, ["A", "B"], floor="C")
    assert scored == {"B", "noise-floor"}, "the new model and the floor it is compared with"
    scored.clear()
    _run(archive, out, ["A", "B"], floor="C")
    assert scored == set(), "nothing changed: everything cached"
    one_file = sorted((archive / "C").glob("*.nc"))[0]
    st = os.stat(one_file)
    os.utime(one_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    scored.clear()
    _run(archive, out, ["A", "B"], floor="C")
    assert {"A", "B", "noise-floor"} <= scored, "a changed floor invalidates every comparison with it"


def test_every_input_of_an_entry_is_in_its_fingerprint(archive, tmp_path):
    """The reference's files, the options and the Nino-3.4 index change every fingerprint."""
    cfg = pipeline.Config(ensembles=[f"A={archive / 'A'}"], reference=str(archive / "ref"), out=tmp_path,
                          train=pipeline.Period.parse(TRAIN), test=pipeline.Period.parse(TEST), variables=["tas"])
    inputs = pipeline.load_inputs(cfg, pipeline.Results())
    base = cache.shared_identity(cfg, inputs, None)
    fp = cache.model_fingerprint(base, inputs, "A")
    changed = [dict(base, reference=[("/elsewhere", 1, 1)]), dict(base, options=dict(base["options"], seed=1)),
               dict(base, nino34_index="0123"), dict(base, window="other"), dict(base, code="x")]
    assert all(cache.model_fingerprint(c, inputs, "A") != fp for c in changed)
    assert cache.model_fingerprint(base, inputs, "A") == fp


def test_a_run_with_a_failed_batch_is_not_cached(tmp_path, capsys):
    """A failed batch leaves numbers missing: caching them would keep them missing for good."""
    from diagnostics.outputs import Results
    from diagnostics.schema import key

    def results(failed: bool) -> Results:
        res = Results()
        res.add(key("A", "tas", "bias_rms", period="test", season="ANN"), 1.5)
        res.add(key("reference", "tas", "std_global", period="all"), 2.0)
        if failed:
            res.skip("*.tas", "scoring failed (ZeroDivisionError: planted)")
        return res

    store = cache.ModelCache(tmp_path / "c", {"reference": "f0", "A": "f1"})
    store.save(results(failed=True))
    assert not (tmp_path / "c").exists()
    assert "not caching this run's results: scoring failed for *.tas" in capsys.readouterr().err
    store.save(results(failed=False))
    reread = cache.ModelCache(tmp_path / "c", {"reference": "f0", "A": "f1"})
    got = {n: cache.load_partial(reread.root, n, fp) for n, fp in reread.fingerprints.items()}
    assert got["A"].metrics == {"A.tas.bias_rms.test.ANN": 1.5}
    assert got["reference"].metrics == {"reference.tas.std_global.all": 2.0}
