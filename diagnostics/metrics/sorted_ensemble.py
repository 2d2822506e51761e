"""One sort of the members per point, shared by the standard CRPS, the fair CRPS and the rank.

Kernel for ``crps.py`` and ``rank_histogram.py``. With the valid (non-NaN) members of a
point sorted, x_(1) <= ... <= x_(m), m = M_p, and d_(i) = x_(i) - y (float64),

    skill  = sum_i |d_(i)|                      = sum_i |x_i - y|
    spread = sum_i (2i - m - 1) d_(i)           = (1/2) sum_ij |x_i - x_j|
    CRPS      = skill / m - spread / m^2        (standard, properscoring / xskillscore)
    CRPS_fair = skill / m - spread / (m (m-1))  (fair, Ferro 2014 / WeatherBench 2)

(the weights 2i - m - 1 sum to zero, so subtracting y changes nothing but keeps the sum
well conditioned: no cancellation of M^2 x 290 K terms). The same sorted members give the
observation's rank counts #{x_i < y} and #{x_i == y}.

Layout: the members stay on the leading axis, as ``md-diagnose`` stores them
(member, time, lat, lon): no member-last transpose copy. Two implementations, same
arithmetic in the same order, so they give bit-identical results (tested; up to the sign of
an exact zero):

* numba (``numba`` importable): points are taken in blocks of B contiguous points; the block's M
  x B members are copied into a buffer with NaN as +inf (a NaN compares false with everything,
  so a network would leave it anywhere; +inf sorts last), sorted by a Batcher odd-even merge
  network whose compare-exchanges run as vector min/max across the B points, then the sums
  above accumulate member by member, again across the points. The network has O(M log^2 M)
  comparators (403 for M = 50); measured faster than the numpy path up to M = 2048 (2-core
  Xeon, float32: 0.12-0.15x its time at M = 50-64, 0.5x at 2048), so above
  ``NETWORK_MAX_MEMBERS`` = 1024 the numpy path runs instead. Compiled on first use with
  ``cache=True``; ``nogil`` so dask threads run it in parallel.
* numpy: ``np.sort`` along the member axis (NaN sorted last), then the same member-by-member
  accumulation over all points at once.

``NUMBA`` says which one runs; set ``MD_NO_NUMBA=1`` before import to force the numpy path.
numba is imported, and the kernel compiled, on the first call that uses it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

# optional: the numpy path gives identical numbers, only slower. Imported and compiled on the
# first kernel call, so importing diagnostics costs nothing when no CRPS is computed.
NUMBA = importlib.util.find_spec("numba") is not None and not os.environ.get("MD_NO_NUMBA")
NETWORK_MAX_MEMBERS = 1024   # above: the numpy path (the network, built in Python, grows as M log^2 M)
L1_BYTES = 32 * 1024         # the block buffer (M x B values) is sized to stay in L1


@dataclass(frozen=True)
class SortedScores:
    """Per-point results of one pass, all with the points' shape.

    ``crps``, ``crps_fair``: float64, field units (NaN where undefined: NaN observation, no
    valid member, fair with fewer than two). ``below``, ``ties``: int64 counts of members
    < y and == y (over all members). ``complete``: bool, observation and every member valid.
    """

    crps: np.ndarray
    crps_fair: np.ndarray
    below: np.ndarray
    ties: np.ndarray
    complete: np.ndarray


def batcher_network(n: int) -> np.ndarray:
    """Comparator pairs (i, j), i < j, of Batcher's odd-even merge sort on ``n`` wires, (K, 2) int64.

    Built for the next power of two and restricted to the first ``n`` wires: the missing
    wires act as +inf, which a compare-exchange (min to the lower wire) never moves, so
    every dropped comparator was a no-op. Knuth, TAOCP vol. 3, 5.3.4, algorithm M.
    """
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


def block_size(members: int, itemsize: int) -> int:
    """Points per block: M x B values of ``itemsize`` bytes within L1, a multiple of 16, >= 16."""
    return max(16, (L1_BYTES // max(1, members * itemsize)) // 16 * 16)


# --------------------------------------------------------------------------- numba kernel
def _accumulate(buf, m, y, skill, spread, below, ties, n_members, width, rank):  # pragma: no cover (jit)
    """Add member i's term for every point of the block (buf rows sorted, NaN as +inf)."""
    for i in range(n_members):
        row = buf[i]
        w = 2.0 * (i + 1) - 1.0
        for p in range(width):
            x = row[p]
            valid = i < m[p]
            d = np.float64(x) - y[p]
            skill[p] += abs(d) if valid else 0.0
            spread[p] += (w - m[p]) * d if valid else 0.0
            if rank:
                below[p] += x < y[p]
                ties[p] += x == y[p]


def _network_kernel(flat, row_stride, n_members, n_points, y, pairs, block, rank,
                    skill_out, spread_out, m_out, below, ties):  # pragma: no cover (jit)
    """Blocks of ``block`` points: copy (NaN -> +inf, count valid), network sort, accumulate.

    Member i's points are ``flat[i * row_stride : i * row_stride + n_points]`` (a 1-D
    contiguous view: unit-stride loads vectorise, which a strided 2-D array would not).
    """
    buf = np.empty((n_members, block), dtype=flat.dtype)
    m = np.empty(block, dtype=np.float64)
    inf = flat.dtype.type(np.inf)
    for start in range(0, n_points, block):
        width = min(block, n_points - start)
        for p in range(width):
            m[p] = 0.0
        for i in range(n_members):
            src = flat[i * row_stride + start:i * row_stride + start + width]
            row = buf[i]
            for p in range(width):
                v = src[p]
                nan = v != v
                row[p] = inf if nan else v
                m[p] += 0.0 if nan else 1.0
        for q in range(pairs.shape[0]):
            lo_row = buf[pairs[q, 0]]
            hi_row = buf[pairs[q, 1]]
            for p in range(width):
                a = lo_row[p]
                b = hi_row[p]
                lo_row[p] = b if b < a else a
                hi_row[p] = a if b < a else b
        _accumulate_jit(buf, m, y[start:start + width], skill_out[start:start + width],
                        spread_out[start:start + width], below[start:start + width],
                        ties[start:start + width], n_members, width, rank)
        for p in range(width):
            m_out[start + p] = m[p]


_KERNEL: list[Any] = []  # [the jitted network kernel], filled on first use
_log = logging.getLogger(__name__)


def _network_kernel_jit() -> Any:
    """The jitted kernel: numba imported and the functions wrapped on first use.

    ``cache=True`` writes the compiled code beside this module (``__pycache__``) or to
    numba's user-wide cache (``NUMBA_CACHE_DIR``); where neither is writable numba refuses
    caching, and the kernel is compiled per process instead.
    """
    global _accumulate_jit
    if not _KERNEL:
        import numba

        try:
            jit = numba.njit(cache=True, nogil=True)
            _accumulate_jit = jit(_accumulate)
            kernel = jit(_network_kernel)
        except RuntimeError as err:  # "cannot cache function ...: no locator available"
            _log.info("numba cache unavailable (%s): compiling per process", err)
            jit = numba.njit(nogil=True)
            _accumulate_jit = jit(_accumulate)
            kernel = jit(_network_kernel)
        _KERNEL.append(kernel)
    return _KERNEL[0]


_accumulate_jit: Any = _accumulate  # the jitted version replaces it (the kernel calls it by name)


def _sums_numba(x: np.ndarray, y: np.ndarray, rank: bool) -> tuple[np.ndarray, ...]:
    n_members, n_points = x.shape
    skill, spread, m = (np.zeros(n_points) for _ in range(3))
    below, ties = np.zeros(n_points, np.int64), np.zeros(n_points, np.int64)
    flat, row_stride = _rows_view(x)
    _network_kernel_jit()(flat, row_stride, n_members, n_points, y, _network(n_members),
                          block_size(n_members, x.itemsize), rank, skill, spread, m, below, ties)
    return skill, spread, m, below, ties


def _rows_view(x: np.ndarray) -> tuple[np.ndarray, int]:
    """(1-D contiguous view spanning all rows of ``x``, row stride in elements); rows contiguous."""
    n_members, n_points = x.shape
    if x.flags.c_contiguous:
        return x.reshape(-1), n_points
    row_stride = x.strides[0] // x.itemsize if n_members > 1 else n_points
    if n_members == 0 or n_points == 0 or x.strides[0] % x.itemsize or row_stride < n_points:
        x = np.ascontiguousarray(x)
        row_stride = n_points
    length = (n_members - 1) * row_stride + n_points if n_members else 0
    return np.lib.stride_tricks.as_strided(x, shape=(length,), strides=(x.itemsize,), writeable=False), row_stride


_NETWORKS: dict[int, np.ndarray] = {}


def _network(n: int) -> np.ndarray:
    if n not in _NETWORKS:
        _NETWORKS[n] = batcher_network(n)
    return _NETWORKS[n]


# --------------------------------------------------------------------------- numpy path
def _sums_numpy(x: np.ndarray, y: np.ndarray, rank: bool) -> tuple[np.ndarray, ...]:
    """The kernel's arithmetic, member by member over all points at once (same order)."""
    n_members, n_points = x.shape
    xs = np.sort(x, axis=0)  # NaN last; sorting is exact, so the kernel's order is reproduced
    m = (n_members - np.isnan(xs).sum(axis=0)).astype(np.float64)
    skill, spread = np.zeros(n_points), np.zeros(n_points)
    below, ties = np.zeros(n_points, np.int64), np.zeros(n_points, np.int64)
    for i in range(n_members):
        valid = i < m
        d = xs[i].astype(np.float64) - y
        skill += np.where(valid, np.abs(d), 0.0)
        spread += np.where(valid, (2.0 * (i + 1) - 1.0 - m) * d, 0.0)
        if rank:
            below += xs[i] < y
            ties += xs[i] == y
    return skill, spread, m, below, ties


# --------------------------------------------------------------------------- entry point
def sorted_scores(forecast: np.ndarray, observation: np.ndarray, member_axis: int = 0,
                  rank: bool = True, use_numba: bool | None = None) -> SortedScores:
    """Standard and fair CRPS and the rank counts of ``observation`` among ``forecast``'s members.

    ``forecast`` has the members on ``member_axis``; ``observation`` broadcasts against the
    other axes. ``rank=False`` skips the counts (returned as zeros). ``use_numba=None``: numba
    when importable. A forecast whose members lead and whose points are C-contiguous
    (``md-diagnose``'s (member, time, lat, lon), also a time slice of it) is read in place;
    any other layout is copied once. float32 / float64 are sorted in their own dtype, others as float64.
    """
    x = np.moveaxis(np.asarray(forecast), member_axis, 0)
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    shape = np.broadcast_shapes(x.shape[1:], np.shape(observation))
    n_members = x.shape[0]
    x = np.broadcast_to(x, (n_members, *shape)).reshape(n_members, int(np.prod(shape)))  # a view if contiguous
    if x.strides[1] != x.itemsize:  # each member's points must be contiguous; the rows may be apart
        x = np.ascontiguousarray(x)
    y = np.ascontiguousarray(np.broadcast_to(np.asarray(observation, dtype=np.float64), shape).reshape(-1))
    numba_path = (NUMBA if use_numba is None else (use_numba and NUMBA)) and n_members <= NETWORK_MAX_MEMBERS
    skill, spread, m, below, ties = (_sums_numba if numba_path else _sums_numpy)(x, y, rank)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_abs = skill / m
        crps = mean_abs - spread / (m * m)
        fair = mean_abs - spread / (m * (m - 1.0))
    no_obs = np.isnan(y)
    crps[no_obs | (m < 1)] = np.nan
    fair[no_obs | (m < 2)] = np.nan
    complete = ~no_obs & (m == n_members)
    return SortedScores(*(a.reshape(shape) for a in (crps, fair, below, ties, complete)))


def tie_broken_rank(below: np.ndarray, ties: np.ndarray, complete: np.ndarray, seed: int) -> np.ndarray:
    """Rank 1 + below + U, U uniform on 0..ties from ``default_rng(seed)``; 0 where not complete.

    U = floor((ties + 1) u), u in [0, 1) drawn for every point (the same draws as before the
    shared sort, so ranks are unchanged for a given seed and chunk shape).
    """
    rng = np.random.default_rng(seed)
    extra = np.floor((ties + 1) * rng.random(below.shape)).astype(np.int64)
    return np.where(complete, 1 + below + extra, 0)


# --------------------------------------------------------------------------- xarray / dask shell
OUTPUTS = ("crps", "crps_fair", "rank")


def _block(forecast: np.ndarray, observation: np.ndarray, names: tuple[str, ...], seed: int,
           member_axis: int) -> tuple[np.ndarray, ...]:
    """The requested per-point outputs (``OUTPUTS``) of one block."""
    s = sorted_scores(forecast, observation, member_axis=member_axis, rank="rank" in names)
    out = {"crps": s.crps, "crps_fair": s.crps_fair}
    if "rank" in names:
        out["rank"] = tie_broken_rank(s.below, s.ties, s.complete, seed)
    return tuple(out[n] for n in names)


def _stacked_block(forecast_blocks: list[np.ndarray], observation: np.ndarray, names: tuple[str, ...],
                   seed: int) -> np.ndarray:
    """dask block: members leading, one block along them (concatenate=False: no copy).

    Several outputs are stacked on a new leading axis (float64; ranks are exact in it).
    """
    (forecast,) = forecast_blocks
    out = _block(forecast, observation, names, seed, 0)
    return out[0] if len(out) == 1 else np.stack([a.astype(np.float64, copy=False) for a in out])


def _dask_core(forecast: Any, observation: Any, names: tuple[str, ...], seed: int) -> tuple[Any, ...]:
    """Member-first dask blockwise: ``apply_ufunc``'s member-last view is moved back lazily.

    (With ``dask="parallelized"`` dask would concatenate each block into a new member-last
    array and the kernel would transpose it back: two copies of the ensemble per chunk.)
    """
    import dask.array as dsa

    x = dsa.moveaxis(dsa.asarray(forecast), -1, 0)
    y = dsa.asarray(observation)
    shape = np.broadcast_shapes(x.shape[1:], y.shape)
    if x.shape[1:] != shape:
        x = dsa.broadcast_to(x, (x.shape[0], *shape))
    if y.shape != shape:
        y = dsa.broadcast_to(y, shape)
    if len(x.chunks[0]) > 1:
        x = x.rechunk({0: -1})
    ind = tuple(range(1, len(shape) + 1))
    if len(names) == 1:  # no stacking, no getitem task
        dtype = np.int64 if names[0] == "rank" else np.float64
        return (dsa.blockwise(_stacked_block, ind, x, (-1, *ind), y, ind, concatenate=False, dtype=dtype,
                              meta=np.empty((0,) * len(shape), dtype), names=names, seed=seed),)
    stacked = dsa.blockwise(_stacked_block, (0, *ind), x, (-1, *ind), y, ind, new_axes={0: len(names)},
                            concatenate=False, dtype=np.float64, meta=np.empty((0,) * (len(shape) + 1)),
                            names=names, seed=seed)
    return tuple(stacked[k].astype(np.int64) if n == "rank" else stacked[k] for k, n in enumerate(names))


def _apply_core(forecast: Any, observation: Any, names: tuple[str, ...], seed: int) -> Any:
    if hasattr(forecast, "dask") or hasattr(observation, "dask"):
        out = _dask_core(forecast, observation, names, seed)
    else:
        out = _block(forecast, observation, names, seed, member_axis=-1)  # views, no copy
    return out if len(out) > 1 else out[0]


def apply_sorted(forecast: xr.DataArray, observation: xr.DataArray, member_dim: str,
                 names: tuple[str, ...] = OUTPUTS, seed: int = 0) -> tuple[xr.DataArray, ...]:
    """The ``names`` outputs (of ``OUTPUTS``) per point, from one sort, as DataArrays.

    The member dim is reduced, the others broadcast as ``xr.apply_ufunc`` does. Lazy on dask
    input: one task per chunk for all outputs, members read on their stored axis.
    """
    if member_dim not in forecast.dims:
        raise ValueError(f"forecast has no member dim {member_dim!r} (dims {forecast.dims})")
    unknown = set(names) - set(OUTPUTS)
    if unknown:
        raise ValueError(f"unknown outputs {sorted(unknown)}; expected some of {OUTPUTS}")
    out = xr.apply_ufunc(_apply_core, forecast, observation, input_core_dims=[[member_dim], []],
                         output_core_dims=[[] for _ in names], kwargs={"names": tuple(names), "seed": seed},
                         dask="allowed")
    return out if isinstance(out, tuple) else (out,)


def describe() -> dict[str, Any]:
    """Which implementation runs (for benchmarks and logs)."""
    version = importlib.metadata.version("numba") if NUMBA else None
    return {"numba": NUMBA, "numba_version": version,
            "network_max_members": NETWORK_MAX_MEMBERS}
