"""The AI-MIP experiments: one table, used by the synthetic climate, the rollout, the demo,
the warming metrics and md-diagnose's scenario parsing.

AI-MIP (REFERENCE.md section 2) runs one historical experiment and two warming experiments in
which a uniform offset is added to the prescribed SST. The experiment ids of the Phase-1
archive come in two spellings (``aimip-p2k`` and MD-1.5's own ``aimip-2k``); both map here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Experiment:
    """One AI-MIP experiment: our short name, its AI-MIP experiment id, the SST offset in K."""

    name: str
    experiment_id: str
    sst_offset_k: float
    aliases: tuple[str, ...] = ()


#: Our short name -> experiment, in the order runs and reports list them.
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("historical", "aimip", 0.0),
    Experiment("p2k", "aimip-p2k", 2.0, aliases=("aimip-2k",)),
    Experiment("p4k", "aimip-p4k", 4.0, aliases=("aimip-4k",)),
)}

#: The warming scenarios (experiments with an SST offset), by short name.
SCENARIOS: tuple[str, ...] = tuple(n for n, e in EXPERIMENTS.items() if e.sst_offset_k)


def experiment(name: str) -> Experiment:
    """The experiment a short name, an AI-MIP id or an alias names; ValueError otherwise."""
    for e in EXPERIMENTS.values():
        if name in (e.name, e.experiment_id, *e.aliases):
            return e
    known = ", ".join(f"{e.name} ({e.experiment_id})" for e in EXPERIMENTS.values())
    raise ValueError(f"unknown experiment {name!r}; expected one of {known}")


def sst_offset_k(name: str) -> float:
    """Uniform SST offset in K of an experiment (``p2k``, ``aimip-p2k`` or ``aimip-2k`` -> 2.0)."""
    return experiment(name).sst_offset_k
