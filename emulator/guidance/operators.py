"""Observation operators A: physical state -> observed vector, differentiable in torch.

An operator maps a batch of states ``x [B, C, H, W]`` in catalogue units (channel order
``spec.channels``) to observations ``[B, D]`` in the observed quantity's units. The guided
sampler (:mod:`.sampler`) differentiates through it (vector-Jacobian products for DPS and
MMPS, Jacobian-vector products for MMPS), so it must be built from torch operations only.

* :class:`GlobalMean`: the area-weighted global mean of one channel (dry air mass: ``ps``;
  a warming storyline: ``tas``). Weights are the cell areas of
  :func:`diagnostics.data.grid.area_weights` (sin-difference rows, the project's one home).
* :class:`PointSamples`: the values at given grid cells (station-like sparse observations).
* :class:`GlobalMeanHumidity`: the area-weighted global mean of near-surface specific humidity
  computed from the 2 m dewpoint and the surface pressure channels (a model without ``huss``
  in its state: the humidity-scaling constraint of a warming storyline).
* :class:`Stacked`: several operators side by side (their observations concatenated).
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
import torch

from diagnostics.data.grid import area_weights
from diagnostics.io.levels import R_DRY, R_VAP, TETENS_A1, TETENS_A2, TETENS_A3, TETENS_A4


@runtime_checkable
class ObservationOperator(Protocol):
    """``A(x [B, C, H, W]) -> [B, D]``; ``dim`` is D, ``describe()`` a short label."""

    dim: int

    def __call__(self, x: torch.Tensor) -> torch.Tensor: ...

    def describe(self) -> str: ...


class GlobalMean:
    """Area-weighted global mean of channel ``channel``: ``A(x)_b = sum_jk w_j x_bcjk / sum_jk w_j``.

    Args:
        channel: index into the state's channels.
        lat: latitudes of the grid rows, degrees (any order).
        name: the channel's label (for messages).
    """

    dim = 1

    def __init__(self, channel: int, lat: Sequence[float] | np.ndarray, name: str = ""):
        self.channel, self.name = int(channel), name or f"channel {channel}"
        self._w = torch.as_tensor(area_weights(np.asarray(lat, dtype=float)).values, dtype=torch.float64)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        field = x[:, self.channel]  # [B, H, W]
        w = self._w.to(device=x.device, dtype=x.dtype)
        return ((field * w.view(1, -1, 1)).mean(dim=(-2, -1)) / w.mean()).unsqueeze(-1)

    def describe(self) -> str:
        return f"global mean of {self.name}"


#: The readers derive ``huss`` from ``tdas`` and ``ps`` by the official AI-MIP Tetens formula,
#: :func:`diagnostics.io.levels.huss_from_tdas` (xarray, its home, and of its constants); numpy
#: ufuncs there would drop the autograd graph, so the operator restates it in torch (tested equal).
_EPS = R_DRY / R_VAP


def specific_humidity(dewpoint_k: torch.Tensor, pressure_pa: torch.Tensor) -> torch.Tensor:
    """q = eps e / (p - (1 - eps) e) (kg kg-1), e = 611.21 exp(17.502 (T_d - 273.16) / (T_d - 32.19)) Pa,
    eps = R_d / R_v = 287.0597 / 461.5250 (the AI-MIP / ECMWF constants)."""
    e = TETENS_A1 * torch.exp(TETENS_A3 * (dewpoint_k - TETENS_A2) / (dewpoint_k - TETENS_A4))
    return _EPS * e / (pressure_pa - (1.0 - _EPS) * e)


class GlobalMeanHumidity:
    """Area-weighted global mean of near-surface specific humidity (kg kg-1) from the dewpoint
    channel ``tdas`` (K) and the surface-pressure channel ``ps`` (Pa): ``sum_jk w_j q(Td, p)_jk / sum_jk w_j``
    with q of :func:`specific_humidity` per cell (the humidity of the monthly-mean dewpoint, as
    the readers derive ``huss``)."""

    dim = 1

    def __init__(self, dewpoint_channel: int, pressure_channel: int, lat: Sequence[float] | np.ndarray):
        self.dewpoint_channel, self.pressure_channel = int(dewpoint_channel), int(pressure_channel)
        self._mean = GlobalMean(0, lat, "huss")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        q = specific_humidity(x[:, self.dewpoint_channel], x[:, self.pressure_channel])
        return self._mean(q.unsqueeze(1))

    def describe(self) -> str:
        return "global mean of huss(tdas, ps)"


class PointSamples:
    """Values of channels ``channels`` at grid cells ``(rows[i], cols[i])``: ``[B, len(channels) * P]``
    (channel-major: all points of the first channel, then the next)."""

    def __init__(self, channels: Sequence[int], rows: Sequence[int] | np.ndarray, cols: Sequence[int] | np.ndarray,
                 shape: tuple[int, int], names: Sequence[str] = ()):
        rows, cols = np.asarray(rows, dtype=np.int64), np.asarray(cols, dtype=np.int64)
        if rows.shape != cols.shape or rows.ndim != 1 or rows.size == 0:
            raise ValueError("rows and cols must be equal-length non-empty 1-D index arrays")
        h, w = shape
        if rows.min() < 0 or rows.max() >= h or cols.min() < 0 or cols.max() >= w:
            raise ValueError(f"point indices outside the {h} x {w} grid")
        self.channels, self.names = [int(c) for c in channels], list(names)
        self.rows, self.cols = rows, cols
        self._flat = torch.as_tensor(rows * w + cols)
        self.dim = len(self.channels) * rows.size

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        sel = x[:, self.channels].flatten(-2).index_select(-1, self._flat.to(x.device))  # [B, C', P]
        return sel.flatten(1)

    def describe(self) -> str:
        what = ", ".join(self.names) if self.names else f"{len(self.channels)} channel(s)"
        return f"{self.rows.size} point samples of {what}"


class Stacked:
    """Several operators' observations concatenated: ``[B, sum D_i]``."""

    def __init__(self, operators: Sequence[ObservationOperator]):
        if not operators:
            raise ValueError("Stacked needs at least one operator")
        self.operators = list(operators)
        self.dim = sum(op.dim for op in self.operators)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([op(x) for op in self.operators], dim=-1)

    def describe(self) -> str:
        return " + ".join(op.describe() for op in self.operators)
