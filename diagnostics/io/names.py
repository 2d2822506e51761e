"""AI-MIP / CMIP file names and CMIP DRS directory trees (no data read, no other io import).

File names: ``<var>_<table>_<model>_<experiment>_<member>_<grid>[_<start>-<end>].nc`` with
``<start>``/``<end>`` as ``YYYYMM`` (``197810-202412``) or ``YYYYMMDD`` (``19781016-20241216``);
fixed fields (``sftlf_fx_...``) have no date range. Members ``r<N>i1p1f1`` are indexed by N;
cBottle-style ``r1i1p<N>f1`` (physics variants as members) by N of ``p``.

A CMIP DRS tree (the AI-MIP Phase-1 archive):
``{institute}/{model}/{experiment}/{member}/{table}/{var}/{grid}/[v{YYYYMMDD}/]file.nc``;
:func:`find_drs_files` finds the monthly files below any level of it, the latest version only.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

AIMIP_NAME = re.compile(
    r"^(?P<var>[A-Za-z0-9]+)_(?P<table>[A-Za-z0-9]+)_(?P<model>[A-Za-z0-9.\-]+)_(?P<experiment>[A-Za-z0-9.\-]+)"
    r"_(?P<member>[A-Za-z0-9.\-]+)_(?P<grid>g[A-Za-z0-9]+)(?:_(?P<start>\d{6}(?:\d{2})?)-(?P<end>\d{6}(?:\d{2})?))?\.nc$")
_RIPF = re.compile(r"^r(\d+)i(\d+)p(\d+)f(\d+)$")
_REALISATION = re.compile(r"^r(\d+)")
#: CMIP tables of monthly and fixed fields, the ones a monthly evaluation reads.
MONTHLY_TABLES = ("Amon", "Omon", "SImon", "Lmon", "fx", "Ofx")
#: CMIP tables of daily fields: AI-MIP's ``day`` files (first 15 and last 12 months), read for E4.
DAILY_TABLES = ("day",)
_VERSION = re.compile(r"^v\d{8}$")


@dataclass(frozen=True)
class AimipName:
    """The parts of an AI-MIP / CMIP file name."""

    var: str
    table: str
    model: str
    experiment: str
    member: str
    grid: str
    start: str | None
    end: str | None


def parse_name(path: str | os.PathLike) -> AimipName | None:
    """The parsed file name, or None when it does not follow the AI-MIP pattern."""
    m = AIMIP_NAME.match(os.path.basename(str(path)))
    return AimipName(**m.groupdict()) if m else None


def member_indices(labels: list[str]) -> dict[str, int]:
    """Member label -> integer index: the one of r, i, p, f that tells the members apart.

    ``r<N>i1p1f1`` -> N (realisations); ``r1i1p<N>f1`` -> N (cBottle's five "members" are physics
    variants); otherwise N of ``r<N>`` when unique, else 1..n in natural order (r2 before r10).
    """
    ripf = {lab: _RIPF.match(lab) for lab in labels}
    if all(ripf.values()):
        for group in (1, 3, 2, 4):  # realisation first, then physics, initialisation, forcing
            idx = {lab: int(m.group(group)) for lab, m in ripf.items()}
            if len(set(idx.values())) == len(labels):
                return idx
    found = {lab: _REALISATION.match(lab) for lab in labels}
    idx = {lab: int(m.group(1)) for lab, m in found.items() if m}
    if len(idx) == len(labels) and len(set(idx.values())) == len(labels):
        return idx
    natural = sorted(labels, key=lambda lab: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", lab)])
    return {lab: i + 1 for i, lab in enumerate(natural)}


@dataclass(frozen=True)
class DrsFound:
    """What :func:`find_drs_files` found: the files to read and a summary for the user."""

    files: list[str]
    summary: str


def find_drs_files(directory: str | os.PathLike, tables: tuple[str, ...] = MONTHLY_TABLES) -> DrsFound:
    """The monthly netCDF files of a CMIP DRS tree below ``directory`` (any level of it).

    Files must follow the AI-MIP/CMIP name; tables other than ``tables`` (by default
    :data:`MONTHLY_TABLES`; ``day``, ``6hrPlev``, ... left out) are left out; where a ``v{YYYYMMDD}`` version directory has siblings, only
    the latest version is read. The summary names tables, members, variables and versions.
    """
    root = str(directory)
    latest: dict[tuple[str, ...], str] = {}
    candidates: list[tuple[str, tuple[str, ...], str | None]] = []
    skipped: dict[str, int] = {}
    for base, dirs, files in os.walk(root):
        dirs.sort()
        for f in sorted(files):
            if not f.endswith(".nc"):
                continue
            name = parse_name(f)
            if name is None or name.table not in tables:
                key = "unnamed" if name is None else name.table
                skipped[key] = skipped.get(key, 0) + 1
                continue
            parts = os.path.relpath(base, root).split(os.sep)
            where = next((i for i, part in enumerate(parts) if _VERSION.match(part)), None)
            key, version = (tuple(parts), None) if where is None else (tuple(parts[:where]), parts[where])
            candidates.append((os.path.join(base, f), key, version))
            if version is not None and version > latest.get(key, ""):
                latest[key] = version
    chosen = [p for p, key, version in candidates if version is None or version == latest[key]]
    old = len(candidates) - len(chosen)
    names = [parse_name(p) for p in chosen]
    members = sorted({n.member for n in names})
    variables = sorted({n.var for n in names})
    tables = sorted({n.table for n in names})
    notes = [f"{len(chosen)} files: tables {', '.join(tables) or '-'}; {len(members)} members; "
             f"variables {', '.join(variables) or '-'}"]
    if old:
        notes.append(f"{old} files of older versions left out")
    if skipped:
        notes.append("left out: " + ", ".join(f"{n} {k}" for k, n in sorted(skipped.items())))
    return DrsFound(files=chosen, summary="; ".join(notes))




def find_daily_files(directory: str | os.PathLike) -> DrsFound:
    """The ``day`` table files below ``directory`` (flat or a DRS tree, latest version only)."""
    return find_drs_files(directory, tables=DAILY_TABLES)


def daily_files_beside(monthly_files: list[str]) -> DrsFound:
    """The ``day`` files that belong with a submission's monthly files.

    In a DRS tree the daily files of a member sit beside its ``Amon`` directory
    (``{member}/day/{var}/...``), so each monthly file's member directory (the parent of its
    table directory) is searched; a flat directory of files is searched itself. Only files of
    the monthly files' model and experiment are kept (a shared directory may hold others).
    """
    runs = {(n.model, n.experiment) for n in map(parse_name, monthly_files) if n is not None}
    roots: set[str] = set()
    for path in monthly_files:
        parts = os.path.abspath(str(path)).split(os.sep)
        name = parse_name(path)
        where = [i for i, part in enumerate(parts[:-1]) if name is not None and part == name.table]
        roots.add(os.sep.join(parts[:where[-1]]) if where else os.path.dirname(os.path.abspath(str(path))))
    files, notes = [], []
    for root in sorted(r for r in roots if os.path.isdir(r)):
        found = find_daily_files(root)
        mine = [f for f in found.files if (parse_name(f).model, parse_name(f).experiment) in runs]
        if mine:
            files.extend(mine)
            notes.append(found.summary if len(mine) == len(found.files) else
                         f"{len(mine)} of {found.summary} (the others belong to other models or experiments)")
    files = sorted(set(files))
    return DrsFound(files=files, summary="; ".join(notes) if notes else "no day-table files")
