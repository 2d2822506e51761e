"""Drawing all figures of a report in worker processes, skipping those already drawn.

Each figure is keyed by a content hash of its spec (data values, coordinates, titles,
colour options) and of the drawing code; ``figures/.render-cache.json`` maps PNG names
to hashes, so re-rendering a report after a change redraws only the figures that changed.
Workers are forked on Linux (they inherit the imported matplotlib and cartopy, and unlike
forkserver/spawn they do not re-import the caller's ``__main__``, so a plain script calling
:func:`reports.render.render_report` works); the pool is started before the progress bar's
thread exists.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import sys
from pathlib import Path

import cartopy
import matplotlib
import numpy as np
from tqdm import tqdm

from diagnostics.io.writer import write_json

from . import figures
from .figures import FigureSpec

CACHE_NAME = ".render-cache.json"
_CODE_FILES = ("figures.py", "maps.py")


def default_jobs() -> int:
    """min(4, CPUs available to this process)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _code_version() -> bytes:
    here = Path(__file__).parent
    text = b"".join((here / f).read_bytes() for f in _CODE_FILES)
    return text + matplotlib.__version__.encode() + cartopy.__version__.encode()


def _feed(h, obj) -> None:
    """Hash data by value: arrays by dtype, shape and bytes; containers recursively."""
    if isinstance(obj, np.ndarray):
        h.update(f"{obj.dtype}{obj.shape}".encode())
        h.update(np.ascontiguousarray(obj).tobytes() if obj.dtype != object else repr(obj.tolist()).encode())
    elif hasattr(obj, "dims") and hasattr(obj, "values"):  # xarray.DataArray
        h.update(repr(tuple(map(str, obj.dims))).encode())
        _feed(h, np.asarray(obj.values))
        for c in sorted(map(str, obj.coords)):
            h.update(c.encode())
            _feed(h, np.asarray(obj[c].values))
    elif isinstance(obj, dict):
        for k in sorted(obj, key=str):
            h.update(str(k).encode())
            _feed(h, obj[k])
    elif isinstance(obj, (list, tuple)):
        h.update(f"[{len(obj)}".encode())
        for x in obj:
            _feed(h, x)
    elif hasattr(obj, "__dataclass_fields__"):
        h.update(type(obj).__name__.encode())
        for name in obj.__dataclass_fields__:
            if name != "caption":  # captions live in HTML/PDF text, not in the PNG
                h.update(name.encode())
                _feed(h, getattr(obj, name))
    else:
        h.update(repr(obj).encode())


def spec_hash(spec: FigureSpec) -> str:
    """SHA-256 of the figure's content and of the drawing code (hex)."""
    h = hashlib.sha256(_code_version())
    _feed(h, spec)
    return h.hexdigest()


def _draw(spec: FigureSpec, path: str) -> str:
    figures.render(spec, path)
    return path


def _pool(workers: int) -> cf.ProcessPoolExecutor:
    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    return cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)


def draw_all(specs: list[FigureSpec], fig_dir: Path, jobs: int | None = None,
             progress: bool = True, keep: set[str] = frozenset()) -> tuple[dict[str, str], int]:
    """Draw every spec to ``fig_dir/<name>.png`` unless an up-to-date copy exists.

    Returns ({name: error message} for figures that failed, number actually drawn).
    PNGs in ``fig_dir`` that belong to no spec and are not named in ``keep`` are removed; ``keep``
    (the listed, undrawn appendix figures) keep their PNG and cache entry, so a later
    ``--all-figures`` render finds them up to date (their hash decides, as for any figure).
    """
    fig_dir.mkdir(parents=True, exist_ok=True)
    cache_file = fig_dir / CACHE_NAME
    try:
        cache = json.loads(cache_file.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        cache = {}
    hashes = {s.name: spec_hash(s) for s in specs}
    todo = [s for s in specs if not ((fig_dir / f"{s.name}.png").exists() and cache.get(s.name) == hashes[s.name])]
    errors: dict[str, str] = {}
    jobs = default_jobs() if jobs is None else max(1, int(jobs))
    done_ok: set[str] = set()

    def progress_bar():
        return tqdm(total=len(todo), desc="report figures", unit="fig", disable=not progress or None)

    try:
        if jobs == 1 or len(todo) <= 1:
            with progress_bar() as bar:
                for s in todo:
                    try:
                        _draw(s, str(fig_dir / f"{s.name}.png"))
                        done_ok.add(s.name)
                    except Exception as exc:  # one broken figure must not lose the whole report
                        errors[s.name] = f"{type(exc).__name__}: {exc}"
                    bar.update()
        else:
            with _pool(min(jobs, len(todo))) as pool:
                futures = {pool.submit(_draw, s, str(fig_dir / f"{s.name}.png")): s.name for s in todo}
                with progress_bar() as bar:  # after the workers are forked: no tqdm thread in them
                    for fut in cf.as_completed(futures):
                        name = futures[fut]
                        try:
                            fut.result()
                            done_ok.add(name)
                        except Exception as exc:
                            errors[name] = f"{type(exc).__name__}: {exc}"
                        bar.update()
    finally:
        entries = {n: h for n, h in hashes.items() if n in done_ok or (n not in errors and cache.get(n) == h)}
        entries.update({n: cache[n] for n in keep if n in cache and n not in hashes})
        write_json(entries, cache_file)
    wanted = {f"{s.name}.png" for s in specs} | {f"{n}.png" for n in keep}
    for png in fig_dir.glob("*.png"):
        if png.name not in wanted:
            png.unlink()
    return errors, len(done_ok)
