"""Resumable staging of a long lazy computation into a zarr store, block by block in time.

Preparing decades of 0.25-degree ERA5 takes hours, so md-prepare computes the lazy dataset
in blocks of ``block`` months written with ``to_zarr(region=...)`` into a hidden staging
store and records each finished block in ``<store>.progress.json`` beside it. Rerun after
an interruption, it skips the finished blocks. The staged store is then handed to the one writer
(:func:`diagnostics.io.writer.write_prepared`) and deleted.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import xarray as xr
from tqdm.auto import tqdm

from ..data.timeaxis import TIME_UNITS, calendar_of
from .writer import write_json

_CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)


def _encoding(ds: xr.Dataset, block: int) -> dict:
    enc: dict[str, dict] = {}
    for name, da in ds.data_vars.items():
        if name != "time_bnds" and np.issubdtype(da.dtype, np.floating):
            enc[name] = {"dtype": "float32", "_FillValue": np.float32(1e20)}
    for name in ("time", "time_bnds"):
        if name in ds.variables:
            enc[name] = {"units": TIME_UNITS, "calendar": calendar_of(ds), "dtype": "float64"}
    if "time_bnds" in ds.variables:  # written eagerly: stored in the blocks the data use, so that
        # rechunking the staged store by blocks does not split a stored chunk (xarray warns)
        enc["time_bnds"]["chunks"] = (min(block, ds.sizes["time"]), ds["time_bnds"].shape[1])
    return enc


def progress_path(path: Path) -> Path:
    """The progress record of a staging store (beside it: zarr warns about foreign files inside)."""
    return path.with_name(path.name + ".progress.json")


def _done_blocks(path: Path, key: str, nblocks: int) -> set[int] | None:
    """Finished blocks of a staging store made for the same ``key``, or None to start afresh."""
    if not path.is_dir():
        return None
    try:
        progress = json.loads(progress_path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if progress.get("key") != key or progress.get("blocks") != nblocks:
        return None
    return set(progress.get("done", []))


def stage(ds: xr.Dataset, path: str | Path, key: str, block: int = 12, desc: str = "staging",
          progress: bool = True) -> xr.Dataset:
    """Compute ``ds`` into the zarr store ``path`` in time blocks, resuming finished ones.

    ``progress``: a tqdm bar on stderr (callers disable it when stderr is not a terminal).
    ``key`` identifies the computation (e.g. the manifest fingerprint): a store left by a
    different computation is discarded. Returns the staged dataset, opened lazily.
    """
    path = Path(path)
    nt = ds.sizes["time"]
    nblocks = -(-nt // block)
    ds = ds.copy()
    for name in ds.variables:
        for k in ("chunks", "preferred_chunks", "compressor", "filters"):
            ds[name].encoding.pop(k, None)
    ds = ds.chunk({"time": block})
    # small variables are written eagerly with the template: statics (2-D on the target grid),
    # time bounds and labels such as member_label (chunk() made them lazy)
    small = [str(n) for n in ds.data_vars if "time" not in ds[n].dims or n == "time_bnds"]
    for name in small:
        ds[name] = ds[name].compute()
    for name in ds.coords:
        if name not in ds.indexes:
            ds.coords[name] = ds[name].compute()
    done = _done_blocks(path, key, nblocks)
    if done is None:
        shutil.rmtree(path, ignore_errors=True)
        ds.to_zarr(path, mode="w", compute=False, encoding=_encoding(ds, block), zarr_format=2, consolidated=True)
        done = set()
        write_json({"key": key, "blocks": nblocks, "done": []}, progress_path(path))
    timed = [str(n) for n in ds.data_vars if n not in small]
    with tqdm(total=nblocks, initial=len(done), desc=desc, unit="block", disable=not progress) as bar:
        for k in range(nblocks):
            if k in done:
                continue
            region = slice(k * block, min(nt, (k + 1) * block))
            part = ds[timed].isel(time=region)
            part = part.drop_vars([c for c in part.coords if "time" not in part[c].dims])
            part.to_zarr(path, region={"time": region}, zarr_format=2)
            done.add(k)
            write_json({"key": key, "blocks": nblocks, "done": sorted(done)}, progress_path(path))
            bar.update(1)
    return xr.open_zarr(path, decode_times=_CFTIME, consolidated=False)
