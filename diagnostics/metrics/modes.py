"""Modes of variability from EOFs of seasonal-mean anomalies: the NAO and the leading
Northern-Hemisphere Z500 EOF.

EOFs are computed by the ``eofs`` library (``eofs.xarray.Eof``) with weights
sqrt(relative cell area) from :func:`diagnostics.data.grid.area_weights`, so the analysed
covariance is area-weighted. Patterns are returned as the regression of the (unweighted)
anomalies on the standardised PC, ``eofsAsCovariance(pcscaling=1)``: field units per
standard deviation of the PC. The input of an EOF analysis is a seasonal mean on a
regional domain (tens of years x a few hundred cells), so it is computed eagerly.

Ensembles: with a ``member`` dim, ``pooled=False`` (default) analyses each member on its
own (outputs gain ``member``: per-member values whose mean or spread the caller reports);
``pooled=True`` concatenates the members' anomalies (each about its own time mean) along
time and returns one ensemble EOF analysis whose PC has dims (member, time).
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from eofs.xarray import Eof

from ..data.grid import area_weights, global_mean
from .climatology import seasonal_mean
from .pattern import pattern_correlation, weighted_rms

__all__ = ["NAO_LAT", "NAO_LON", "NH_LAT", "seasonal_mean", "select_domain", "leading_eofs", "nao",
           "nh_eof1", "compare_modes"]

#: NAO domain: 20-80N, 90W-40E (lon 270..360 and 0..40 on a 0..360 grid).
NAO_LAT: tuple[float, float] = (20.0, 80.0)
NAO_LON: tuple[float, float] = (-90.0, 40.0)
#: Bands of the NAO sign rule (inside the domain): positive NAO has low pressure near Iceland
#: and high pressure near the Azores, i.e. the pattern's mean over the northern band minus its
#: mean over the southern band is negative (a dipole, as station indices define the NAO: a
#: pattern with a domain-wide offset cannot flip it).
NAO_SIGN_LAT: tuple[tuple[float, float], tuple[float, float]] = ((55.0, 80.0), (20.0, 45.0))
#: Northern Hemisphere domain of the leading Z500 EOF, and its sign rule: polar cap (60-90N)
#: minus mid-latitudes (30-55N) negative (low heights over the pole: positive annular mode).
NH_LAT: tuple[float, float] = (0.0, 90.0)
NH_SIGN_LAT: tuple[tuple[float, float], tuple[float, float]] = ((60.0, 90.0), (30.0, 55.0))


def select_domain(field: xr.DataArray, lat: tuple[float, float],
                  lon: tuple[float, float] | None = None) -> xr.DataArray:
    """Cells whose centres lie in the closed box ``lat`` x ``lon``, longitude contiguous.

    ``lon`` = (west, east) in degrees east, any convention (-90 == 270), input grid in any
    convention too. The box comes back with ascending longitudes west .. east: in 0..360
    when it does not cross 0E, else re-labelled -180..180 (e.g. -90 .. 40) so it is one
    contiguous block. ``None`` keeps all longitudes unchanged.
    """
    in_lat = (field["lat"].values >= lat[0]) & (field["lat"].values <= lat[1])
    out = field.isel(lat=np.flatnonzero(in_lat))
    if lon is not None:
        width = (lon[1] - lon[0]) % 360.0 or 360.0
        west = lon[0] % 360.0
        if west + width > 360.0:  # crosses 0E: label west of Greenwich negative (-90 .. 40)
            west -= 360.0
        offset = (out["lon"].values - west) % 360.0
        keep = np.flatnonzero(offset <= width + 1e-9)
        out = out.isel(lon=keep)
        out = out.assign_coords(lon=("lon", west + offset[keep], out["lon"].attrs)).sortby("lon")
    if out.sizes["lat"] == 0 or out.sizes["lon"] == 0:
        raise ValueError(f"no grid cell of {field.name!r} lies in lat {lat}, lon {lon}")
    return out


def _eof_input(anomalies: xr.DataArray) -> xr.DataArray:
    """A clean numpy-backed (time, lat, lon) DataArray as eofs.xarray wants it (time first,
    no stray coordinates). A cell missing some months (a below-ground mask that comes and goes)
    is left out whole: eofs 2.0 does the same (measured), made explicit here so the rule does not
    hang on the eofs version."""
    da = anomalies.transpose("time", "lat", "lon")
    da = da.drop_vars([c for c in da.coords if c not in ("time", "lat", "lon")])
    da = da.astype("float64").compute()
    return da.where(da.notnull().all("time"))


def leading_eofs(anomalies: xr.DataArray, n: int = 3, ddof: int = 1,
                 domain: tuple[tuple[float, float], tuple[float, float] | None] | None = None) -> xr.Dataset:
    """Leading ``n`` EOFs of (time, lat, lon) anomalies, weights sqrt(relative cell area).

    Returns ``pattern`` (mode, lat, lon): regression on the standardised PC (field units);
    ``pc`` (time, mode): standardised PCs (unit variance, ddof=1); ``variance_fraction``
    (mode): eigenvalue / total weighted variance (dimensionless); ``pc_std`` (mode): std of
    the unscaled PC = sqrt(eigenvalue), eigenvalue = variance of the weighted anomalies
    projected on the mode, summed over the domain's cells (field units; weights have mean
    1), so comparable only between analyses on the same grid and domain. Signs are as eofs returns
    them; :func:`nao` and :func:`nh_eof1` fix the sign of the leading mode. ``ddof``: the
    covariance divisor is n_time - ddof (pooled members pass the number of members, each
    having had its own mean removed). ``domain`` = (lat range, lon range or None) restricts
    the analysis with :func:`select_domain` first.
    """
    if domain is not None:
        anomalies = select_domain(anomalies, *domain)
    data = _eof_input(anomalies)
    w = np.sqrt(area_weights(data["lat"]).values)[:, None] * np.ones(data.sizes["lon"])
    solver = Eof(data, weights=w, center=True, ddof=ddof)
    n = min(n, solver.neofs)
    pattern = solver.eofsAsCovariance(neofs=n, pcscaling=1)
    pc = solver.pcs(pcscaling=1, npcs=n)
    vf = solver.varianceFraction(neigs=n)
    eig = solver.eigenvalues(neigs=n)
    units = anomalies.attrs.get("units", "")
    out = xr.Dataset({
        "pattern": pattern.rename("pattern").assign_attrs(
            units=units, long_name="regression of anomalies on the standardised PC"),
        "pc": pc.rename("pc").assign_attrs(units="1", long_name="standardised principal component"),
        "variance_fraction": vf.rename("variance_fraction").assign_attrs(units="1"),
        "pc_std": np.sqrt(eig).rename("pc_std").assign_attrs(
            units=units, long_name="std of the unscaled PC (sqrt of eigenvalue)"),
    })
    return out


def _band_mean(pattern: xr.DataArray, lat: tuple[float, float]) -> float:
    """Area-weighted mean of ``pattern`` (lat, lon) over the latitudes ``lat[0]..lat[1]``."""
    rows = np.flatnonzero((pattern["lat"].values >= lat[0]) & (pattern["lat"].values <= lat[1]))
    return float(global_mean(pattern.isel(lat=rows)))


def _orient(result: xr.Dataset, sign_lat: tuple[tuple[float, float], tuple[float, float]]) -> xr.Dataset:
    """Flip the leading mode so that its pattern's area-weighted mean over the northern band
    ``sign_lat[0]`` minus that over the southern band ``sign_lat[1]`` is negative."""
    pattern = result["pattern"].isel(mode=0)
    if _band_mean(pattern, sign_lat[0]) - _band_mean(pattern, sign_lat[1]) > 0:
        sign = xr.ones_like(result["mode"], dtype=float)
        sign[0] = -1.0
        result = result.assign(pattern=result["pattern"] * sign, pc=result["pc"] * sign)
    return result


def _season_anomalies(field: xr.DataArray, season: str, lat: tuple[float, float],
                      lon: tuple[float, float] | None) -> xr.DataArray:
    seasonal = seasonal_mean(select_domain(field, lat, lon), season)
    anom = seasonal - seasonal.mean("time")
    anom.attrs = dict(field.attrs)
    return anom


def _modes(field: xr.DataArray, season: str, lat: tuple[float, float], lon: tuple[float, float] | None,
           n: int, sign_lat: tuple[tuple[float, float], tuple[float, float]], member_dim: str,
           pooled: bool) -> xr.Dataset:
    anom = _season_anomalies(field, season, lat, lon)
    if member_dim not in anom.dims:
        return _orient(leading_eofs(anom, n), sign_lat)
    if not pooled:
        per_member = [_orient(leading_eofs(anom.isel({member_dim: i}), n), sign_lat)
                      for i in range(anom.sizes[member_dim])]
        return xr.concat(per_member, dim=anom[member_dim])
    members = anom[member_dim]
    ntime = anom.sizes["time"]
    stacked = anom.transpose(member_dim, "time", "lat", "lon").compute()
    flat = xr.DataArray(stacked.values.reshape(-1, stacked.sizes["lat"], stacked.sizes["lon"]),
                        dims=("time", "lat", "lon"),
                        coords={"time": np.arange(members.size * ntime), "lat": stacked["lat"],
                                "lon": stacked["lon"]}, attrs=anom.attrs)
    result = _orient(leading_eofs(flat, n, ddof=members.size), sign_lat)
    pc = xr.DataArray(result["pc"].transpose("time", "mode").values.reshape(members.size, ntime, -1),
                      dims=(member_dim, "time", "mode"),
                      coords={member_dim: members, "time": anom["time"], "mode": result["mode"]},
                      attrs=result["pc"].attrs)
    return result.drop_vars("pc").drop_dims("time").assign(pc=pc)


def nao(field: xr.DataArray, season: str = "DJF", n: int = 1, member_dim: str = "member",
        pooled: bool = False) -> xr.Dataset:
    """North Atlantic Oscillation: leading EOFs of seasonal-mean anomalies of monthly Z500 or
    sea-level pressure over 20-80N, 90W-40E (default DJF; see :func:`leading_eofs`).

    Sign rule: positive NAO = low pressure near Iceland and high near the Azores, i.e. mode 0
    is flipped when the area-weighted mean of its pattern over 55-80N minus that over 20-45N
    (inside the domain) is positive. Modes
    beyond the first keep the sign eofs gives. Anomalies are about the time mean of the
    seasonal means; ``field`` is monthly with ``time``, ``lat``, ``lon`` (+ ``member``).
    """
    return _modes(field, season, NAO_LAT, NAO_LON, n, NAO_SIGN_LAT, member_dim, pooled)


def nh_eof1(field: xr.DataArray, season: str = "DJF", member_dim: str = "member",
            pooled: bool = False) -> xr.Dataset:
    """Leading EOF of seasonal-mean Z500 anomalies over 0-90N, all longitudes (default DJF).

    Sign rule (annular-mode convention, like the NAO's): the pattern's area-weighted mean
    over the polar cap 60-90N minus that over 30-55N is negative (low heights over the pole,
    positive phase).
    """
    return _modes(field, season, NH_LAT, None, 1, NH_SIGN_LAT, member_dim, pooled)


def compare_modes(model: xr.Dataset, reference: xr.Dataset, mode: int = 0) -> dict[str, xr.DataArray]:
    """Compare one mode of two analyses (outputs of :func:`nao`/:func:`nh_eof1` on the same
    grid and domain): ``pattern_corr`` (area-weighted, centred), ``rms`` (area-weighted RMS
    difference of the patterns, field units), ``variance_fraction_model``,
    ``variance_fraction_ref`` and ``pc_std_ratio`` (ratio of unscaled-PC stds = sqrt of the
    eigenvalue ratio: the mode's amplitude in the model relative to the reference).
    A ``member`` dim in ``model`` gives per-member values.
    """
    m, r = model.isel(mode=mode), reference.isel(mode=mode)
    return {"pattern_corr": pattern_correlation(m["pattern"], r["pattern"]),
            "rms": weighted_rms(m["pattern"], r["pattern"]),
            "variance_fraction_model": m["variance_fraction"],
            "variance_fraction_ref": r["variance_fraction"],
            "pc_std_ratio": m["pc_std"] / r["pc_std"]}
