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

``forcing_anomaly`` (ours) appends, per forcing, its anomaly from the training-period monthly
climatology at every point (transformed space), divided by ONE scalar per forcing (the
area-weighted std of those anomalies). In the z-scored forcing an ENSO event or a +2 K offset is
a few percent of the channel's range, which is dominated by the pole-to-equator gradient; in the
anomaly channel it is O(1), and a uniform SST offset stays uniform (one scalar divisor).
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
                 shape: tuple[int, int] | None = None, anomaly: bool = False, forcing_anomaly: bool = False):
        super().__init__()
        self.anomaly, self.forcing_anomaly = anomaly, forcing_anomaly
        if (anomaly or forcing_anomaly) and shape is None:
            raise ValueError("anomaly normalisation needs the grid shape")
        if anomaly:
            self.register_buffer("state_clim", torch.zeros(12, len(state_names), *shape))
        if forcing_anomaly:
            self.register_buffer("forcing_clim", torch.zeros(12, len(forcing_names), *shape))
            self.register_buffer("forcing_anom_std", torch.ones(len(forcing_names)))
        self.state_transforms = [transform_of(n) for n in state_names]
        self.forcing_transforms = [transform_of(n) for n in forcing_names]
        self.register_buffer("state_mean", torch.zeros(len(state_names)))
        self.register_buffer("state_std", torch.ones(len(state_names)))
        self.register_buffer("forcing_mean", torch.zeros(len(forcing_names)))
        self.register_buffer("forcing_std", torch.ones(len(forcing_names)))

    @property
    def n_forcing_channels(self) -> int:
        """Channels :meth:`normalise_forcing` returns: forcings, mask, forcing anomalies (option)."""
        n = len(self.forcing_transforms)
        return 2 * n + 1 if self.forcing_anomaly else n + 1

    def set_stats(self, state_mean, state_std, forcing_mean, forcing_std, state_clim=None,
                  forcing_clim=None, forcing_anom_std=None) -> None:
        for flag, name, value in ((self.anomaly, "state_clim", state_clim),
                                  (self.forcing_anomaly, "forcing_clim", forcing_clim),
                                  (self.forcing_anomaly, "forcing_anom_std", forcing_anom_std)):
            if not flag:
                continue
            if value is None:
                raise ValueError(f"anomaly normalisation needs {name}")
            getattr(self, name).copy_(torch.as_tensor(np.asarray(value), dtype=torch.float32))
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

    def normalise_forcing(self, f: torch.Tensor, month: torch.Tensor | None = None) -> torch.Tensor:
        """Physical forcings ``[B, F, H, W]`` (NaN over land allowed) -> ``[B, n_forcing_channels, H, W]``.

        Channels: the F z-scored forcings, the mask (1 where all forcings are finite) and, with
        ``forcing_anomaly`` (calendar ``month [B]`` needed), the F scaled monthly anomalies.
        """
        f = f.float()
        finite = torch.isfinite(f)
        t = self._transform(torch.where(finite, f, torch.zeros_like(f)), self.forcing_transforms, inverse=False)
        y = (t - self.forcing_mean.view(1, -1, 1, 1)) / self.forcing_std.view(1, -1, 1, 1)
        y = torch.where(finite, y, torch.zeros_like(y))
        mask = finite.all(dim=1, keepdim=True).to(y.dtype)
        if not self.forcing_anomaly:
            return torch.cat([y, mask], dim=1)
        if month is None:
            raise ValueError("forcing anomalies need the calendar month of every sample")
        clim = self.forcing_clim[month.to(self.forcing_clim.device).long() - 1]
        a = (t - clim) / self.forcing_anom_std.view(1, -1, 1, 1)
        a = torch.where(finite, a, torch.zeros_like(a))
        return torch.cat([y, mask, a], dim=1)
