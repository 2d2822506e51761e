"""The metric groups of ``md-diagnose``, one module per group (see :mod:`.base` for the interface).

Importing this package fills :data:`REGISTRY` in the order md-diagnose runs the groups. Metric
formulas live in :mod:`diagnostics.metrics`; groups only say which formulas run on which inputs
and under which keys (:mod:`diagnostics.schema`, docs/metrics-schema.md).
"""

from __future__ import annotations

# registration order = run order within a stage: keep these imports in this order
from . import climatology  # noqa: F401, I001
from . import probabilistic  # noqa: F401
from . import spectra  # noqa: F401
from . import warming  # noqa: F401
from . import trends  # noqa: F401
from . import variability  # noqa: F401
from . import nino34  # noqa: F401
from . import modes  # noqa: F401
from . import aimip  # noqa: F401
from . import coverage  # noqa: F401
from . import conditioning  # noqa: F401
from .base import (REGISTRY, STAGES, Batch, Channel, Context, EagerGroup, Group, Subject, each_channel,
                   label_of, of_stage, register)
from .modes import northern_subset

__all__ = ["REGISTRY", "STAGES", "Batch", "Channel", "Context", "EagerGroup", "Group", "Subject", "each_channel",
           "label_of", "northern_subset", "of_stage", "register"]


def eager_groups() -> list[EagerGroup]:
    """The ``eof`` stage's groups (the modes), in registry order."""
    return [g for g in REGISTRY.values() if isinstance(g, EagerGroup)]
