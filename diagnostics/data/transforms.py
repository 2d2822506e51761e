"""Per-variable transforms applied before z-scoring (catalogue ``transform`` field).

``sqrt`` for humidity and precipitation (their distributions are skewed and bounded
at zero); ``logit`` for fractions (sea ice), after clamping to [eps, 1 - eps] with
eps = 1e-3. Works on numpy arrays, xarray objects and torch tensors alike, without
importing torch.
"""

from __future__ import annotations

import numpy as np

from .catalogue import LOGIT_EPS, Transform


def _call(x, method: str, ufunc):
    """Use the tensor's own method (torch) or the numpy ufunc (numpy, xarray)."""
    return getattr(x, method)() if type(x).__module__.startswith("torch") else ufunc(x)


def forward(x, transform: Transform):
    """Physical units -> transformed space.

    sqrt:  y = sqrt(max(x, 0))
    logit: y = log(p / (1 - p)),  p = clip(x, eps, 1 - eps)
    """
    if transform == "none":
        return x
    if transform == "sqrt":
        return _call(x.clip(0.0, None) if not type(x).__module__.startswith("torch") else x.clamp(min=0.0),
                     "sqrt", np.sqrt)
    if transform == "logit":
        p = x.clip(LOGIT_EPS, 1.0 - LOGIT_EPS)
        return _call(p / (1.0 - p), "log", np.log)
    raise ValueError(f"unknown transform {transform!r}")


def inverse(y, transform: Transform):
    """Transformed space -> physical units (sqrt -> y**2, logit -> sigmoid(y))."""
    if transform == "none":
        return y
    if transform == "sqrt":
        return y * y
    if transform == "logit":
        return 1.0 / (1.0 + _call(-y, "exp", np.exp))
    raise ValueError(f"unknown transform {transform!r}")
