"""Per-channel normalisation of state and forcings, held as registered buffers.

Physical value -> catalogue transform (``sqrt`` for hus/huss/pr, ``logit`` for siconc,
none otherwise; :mod:`diagnostics.data.transforms`) -> z-score with the training-period,
area-weighted mean and standard deviation of that channel (one per variable and level).

``anomaly`` mode (an option of ours, not in the published model) first subtracts the
training-period monthly climatology of the transformed field at every grid point and then
z-scores the anomalies per channel: the network then spends its capacity on anomalies (a few
percent of the total variance of e.g. tas, which is dominated by the pole-to-equator
gradient) instead of re-learning the mean seasonal cycle. The climatology is a buffer too.
Forcings: NaN (SST over land) is filled with 0 *after* normalisation and one extra mask
channel is 1 where every forcing is defined (ocean) and 0 elsewhere.
The statistics are buffers, so they travel with every checkpoint.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from diagnostics.data import catalogue, transforms
from diagnostics.data.grid import area_weights


def transform_of(name: str) -> str:
    """Catalogue transform of a store name (``hus`` -> ``sqrt``)."""
    return catalogue.variable(name).transform


def weighted_stats(values: np.ndarray, lat: np.ndarray) -> tuple[float, float]:
    """Area-weighted mean and standard deviation of ``values [..., lat, lon]`` ignoring NaN.

    mean = sum w x / sum w, std = sqrt(sum w (x - mean)^2 / sum w), w = area weight of the row.
    """
    w = np.broadcast_to(area_weights(lat).values[:, None], values.shape[-2:])
    w = np.broadcast_to(w, values.shape).astype(np.float64)
    ok = np.isfinite(values)
    wsum = w[ok].sum()
    if wsum == 0:
        raise ValueError("no finite values to compute statistics from")
    x = values[ok].astype(np.float64)
    mean = float((w[ok] * x).sum() / wsum)
    std = float(np.sqrt((w[ok] * (x - mean) ** 2).sum() / wsum))
    return mean, max(std, 1e-8)


class Normaliser(nn.Module):
    """Normalises state channels and forcings; statistics are buffers set by :meth:`set_stats`."""

    def __init__(self, state_names: list[str], forcing_names: list[str],
                 shape: tuple[int, int] | None = None, anomaly: bool = False):
        super().__init__()
        self.anomaly = anomaly
        if anomaly:
            if shape is None:
                raise ValueError("anomaly normalisation needs the grid shape")
            self.register_buffer("state_clim", torch.zeros(12, len(state_names), *shape))
        self.state_transforms = [transform_of(n) for n in state_names]
        self.forcing_transforms = [transform_of(n) for n in forcing_names]
        self.register_buffer("state_mean", torch.zeros(len(state_names)))
        self.register_buffer("state_std", torch.ones(len(state_names)))
        self.register_buffer("forcing_mean", torch.zeros(len(forcing_names)))
        self.register_buffer("forcing_std", torch.ones(len(forcing_names)))

    def set_stats(self, state_mean, state_std, forcing_mean, forcing_std, state_clim=None) -> None:
        if self.anomaly:
            if state_clim is None:
                raise ValueError("anomaly normalisation needs the monthly climatology")
            self.state_clim.copy_(torch.as_tensor(np.asarray(state_clim), dtype=torch.float32))
        for name, value in (("state_mean", state_mean), ("state_std", state_std),
                            ("forcing_mean", forcing_mean), ("forcing_std", forcing_std)):
            getattr(self, name).copy_(torch.as_tensor(np.asarray(value), dtype=torch.float32))

    @staticmethod
    def _transform(x: torch.Tensor, kinds: list[str], inverse: bool) -> torch.Tensor:
        fn = transforms.inverse if inverse else transforms.forward
        return torch.stack([fn(x[:, i], k) for i, k in enumerate(kinds)], dim=1)

    def climatology(self, month: torch.Tensor | None) -> torch.Tensor | float:
        """Monthly climatology ``[B, C, H, W]`` of calendar months 1..12 (0 unless anomaly mode)."""
        if not self.anomaly:
            return 0.0
        if month is None:
            raise ValueError("anomaly normalisation needs the calendar month of every sample")
        return self.state_clim[month.to(self.state_clim.device).long() - 1]

    def normalise_state(self, x: torch.Tensor, month: torch.Tensor | None = None) -> torch.Tensor:
        """Physical ``[B, C, H, W]`` (calendar ``month [B]``) -> normalised."""
        y = self._transform(x.float(), self.state_transforms, inverse=False) - self.climatology(month)
        return (y - self.state_mean.view(1, -1, 1, 1)) / self.state_std.view(1, -1, 1, 1)

    def denormalise_state(self, z: torch.Tensor, month: torch.Tensor | None = None) -> torch.Tensor:
        """Normalised ``[B, C, H, W]`` (calendar ``month [B]``) -> physical units of the catalogue."""
        y = z.float() * self.state_std.view(1, -1, 1, 1) + self.state_mean.view(1, -1, 1, 1)
        return self._transform(y + self.climatology(month), self.state_transforms, inverse=True)

    def normalise_forcing(self, f: torch.Tensor) -> torch.Tensor:
        """Physical forcings ``[B, F, H, W]`` (NaN over land allowed) -> ``[B, F + 1, H, W]``.

        The last channel is the mask (1 where all forcings are finite).
        """
        f = f.float()
        finite = torch.isfinite(f)
        y = self._transform(torch.where(finite, f, torch.zeros_like(f)), self.forcing_transforms, inverse=False)
        y = (y - self.forcing_mean.view(1, -1, 1, 1)) / self.forcing_std.view(1, -1, 1, 1)
        y = torch.where(finite, y, torch.zeros_like(y))
        mask = finite.all(dim=1, keepdim=True).to(y.dtype)
        return torch.cat([y, mask], dim=1)
