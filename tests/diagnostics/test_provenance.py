"""Provenance: versions, argument digests and file identity (the one home of fingerprints)."""

import os

from diagnostics.data.provenance import digest, file_identity, versions


def test_digest_is_canonical_and_sensitive():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": 2}) and len(digest({})) == 16


def test_file_identity_changes_when_a_file_is_rewritten_in_place(tmp_path):
    f = tmp_path / "src.nc"
    f.write_bytes(b"x" * 10)
    os.utime(f, ns=(1_000_000_000, 1_000_000_000))
    before = file_identity([f])
    f.write_bytes(b"y" * 10)  # same size, other content, new mtime
    os.utime(f, ns=(2_000_000_000, 2_000_000_000))
    assert file_identity([f]) != before
    store = tmp_path / "d.zarr"
    (store / "tas").mkdir(parents=True)
    (store / "tas" / "0").write_bytes(b"1")
    assert [p for p, _, _ in file_identity([store])] == [str((store / "tas" / "0").resolve())]
    assert file_identity([tmp_path / "missing"])[0][1:] == (-1, -1)


def test_versions_name_python_and_installed_packages():
    v = versions(("numpy", "no-such-distribution"))
    assert "python" in v and "numpy" in v and "no-such-distribution" not in v
