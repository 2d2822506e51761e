"""Provenance: what produced an output, and the identity a rerun compares against to resume.

One home for the three things every command records: the package versions
(:func:`versions`), a digest of the arguments that determine an output (:func:`digest`,
the ``fingerprint`` of md-prepare, md-synth, md-diagnose and emulator-run) and the
identity of input files (:func:`file_identity`: path, size and modification time, so a
source replaced in place with other data is noticed without reading terabytes).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import platform
from collections.abc import Iterable
from typing import Any

#: Distributions recorded by default: the project and the libraries its numbers depend on.
DEFAULT_PACKAGES: tuple[str, ...] = ("monthly-diffusion", "numpy", "xarray", "dask", "distributed", "netCDF4",
                                     "zarr", "eofs", "torch", "torch-harmonics", "matplotlib", "cartopy")


def versions(packages: Iterable[str] = DEFAULT_PACKAGES) -> dict[str, str]:
    """``{"python": "3.11.7", distribution: version, ...}``; absent distributions are left out."""
    out = {"python": platform.python_version()}
    for dist in packages:
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def digest(doc: Any) -> str:
    """SHA-256 (16 hex digits) of the canonical JSON of ``doc`` (keys sorted, non-JSON values as str)."""
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def file_identity(paths: Iterable[str | os.PathLike]) -> list[tuple[str, int, int]]:
    """``(real path, size in bytes, mtime in ns)`` of each file, sorted; a missing file is ``(path, -1, -1)``.

    Directories (zarr stores) are walked: their identity is that of every file inside, so a store
    rewritten in place changes it.
    """
    out: list[tuple[str, int, int]] = []
    for path in paths:
        real = os.path.realpath(path)
        if os.path.isdir(real):
            for root, _, names in os.walk(real):
                out.extend(_stat(os.path.join(root, n)) for n in names)
        else:
            out.append(_stat(real))
    return sorted(out)


def _stat(path: str) -> tuple[str, int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return (path, -1, -1)
    return (path, st.st_size, st.st_mtime_ns)
