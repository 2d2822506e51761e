"""Reference-built baselines, returned as ensembles (dims member, time, ...) so they are
scored by exactly the same metric code as a model ensemble.

- ``climatology_ensemble``: for a target month, the members are the reference values of
  the same calendar month in each training year (or ``n_members`` of those years). It
  knows only the season: the fair baseline for a free-running SST-forced ensemble, which
  is not initialised from the reference and cannot track its weather.
- ``persistence``: the reference's previous month, a one-member "ensemble"; its CRPS is
  the mean absolute error of "next month = this month".
- ``ar1_ensemble``: damped persistence with stochastic members, per grid point and
  calendar month fitted on the training period (``fit_ar1``); ``ar1_mean`` its expectation.

"One-month-ahead" means: the forecast for month t is made from the reference at month
t-1 (known at the end of month t-1) and verified against the reference at month t.
Persistence and AR(1) are such forecasts; they measure what the reference's own memory
gives for free, and the emulator's one-step (one-month) skill from reference initial
states must beat them. For multi-decade free runs the comparison is the climatology
baseline, not these (they would be unfairly good, being re-initialised every month).

Targets: every month of ``like`` (a model ensemble or the reference over the scoring
period) or, by default, every month of ``reference``. Months are matched by month index
(``diagnostics.data.timeaxis.month_index``), so calendars may differ; a target whose
needed reference month is missing gets NaN. For targets inside the training period the
climatology members include the verifying year itself, so score baselines on the test
period (2015-2024 in AI-MIP) for an out-of-sample comparison.
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from diagnostics.data.timeaxis import Period, month_index, select_period


def _period(period: Period | str) -> Period:
    return period if isinstance(period, Period) else Period.parse(period)


def _target_time(reference: xr.DataArray, like: xr.DataArray | xr.Dataset | None) -> xr.DataArray:
    return (reference if like is None else like)["time"]


def _take(source: xr.DataArray, positions: np.ndarray, dims: tuple[str, ...]) -> xr.DataArray:
    """``source.isel(time=positions)`` with ``positions`` of shape ``dims``; -1 gives NaN."""
    index = xr.DataArray(np.where(positions < 0, 0, positions), dims=dims)
    taken = source.drop_vars("time").isel(time=index)
    return taken.where(xr.DataArray(positions >= 0, dims=dims))


def _ensemble(values: xr.DataArray, time: xr.DataArray, reference: xr.DataArray, kind: str) -> xr.DataArray:
    """Contract layout (member, time, ...), target time coordinate, the reference's attrs."""
    out = values.assign_coords(time=time.values, member=np.arange(values.sizes["member"]))
    out["time"].attrs.update(time.attrs)
    out = out.transpose("member", "time", ...)
    out.attrs = dict(reference.attrs, baseline=kind)
    return out.rename(reference.name)


def climatology_ensemble(reference: xr.DataArray, train_period: Period | str,
                         like: xr.DataArray | xr.Dataset | None = None,
                         n_members: int | None = None) -> xr.DataArray:
    """Members = the reference in the target's calendar month of each training year.

    Member k is training year k (coordinate ``source_year``). ``n_members`` keeps that
    many years spread evenly over the training period (first and last included).
    Units: those of the reference.
    """
    period = _period(train_period)
    train = select_period(reference, period)
    years = np.arange(period.start.year, period.end.year + 1)
    if n_members is not None:
        if not 1 <= n_members <= years.size:
            raise ValueError(f"n_members must be 1..{years.size} (training years), got {n_members}")
        years = years[np.round(np.linspace(0, years.size - 1, n_members)).astype(int)]
    position = {int(i): p for p, i in enumerate(month_index(train["time"]))}
    # (member = year, month) table of the training data, then one gather along calendar
    # month: on dask this keeps the target's time chunks (a direct (member, time) gather
    # made one tiny chunk per member and was 5x slower)
    table = _take(train, np.array([[position.get(int(y * 12 + c), -1) for c in range(12)] for y in years]),
                  ("member", "month"))
    if table.chunks is not None:
        table = table.chunk({"member": -1, "month": -1})
    time = _target_time(reference, like)
    values = table.isel(month=xr.DataArray(month_index(time) % 12, dims="time"))
    return _ensemble(values.assign_coords(source_year=("member", years)), time, reference, "climatology")


def persistence(reference: xr.DataArray, like: xr.DataArray | xr.Dataset | None = None) -> xr.DataArray:
    """One-member ensemble: forecast for month t = reference at month t-1 (reference units)."""
    position = {int(i): p for p, i in enumerate(month_index(reference["time"]))}
    time = _target_time(reference, like)
    positions = np.array([[position.get(int(i) - 1, -1) for i in month_index(time)]])
    return _ensemble(_take(reference, positions, ("member", "time")), time, reference, "persistence")


def _fit_ar1_core(x: np.ndarray, month: np.ndarray, previous: np.ndarray) -> tuple[np.ndarray, ...]:
    """(..., time) series -> climatology, sigma, phi with a last axis of 12 calendar months."""
    # time contiguous (apply_ufunc hands a transposed view): the per-month selections and
    # reductions along the last axis run ~1.5x faster, with the same values
    x = np.ascontiguousarray(x, dtype=np.float64)
    groups = [month == c for c in range(1, 13)]
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN points (land for tos)
        clim = np.stack([np.nanmean(x[..., g], axis=-1) for g in groups], axis=-1)
        anom = x - clim[..., month - 1]
        sigma = np.stack([np.nanstd(anom[..., g], axis=-1, ddof=1) for g in groups], axis=-1)
        z = anom / sigma[..., month - 1]
        z_prev = np.where(previous >= 0, z[..., np.maximum(previous, 0)], np.nan)
        both = ~(np.isnan(z) | np.isnan(z_prev))
        z, z_prev = np.where(both, z, 0.0), np.where(both, z_prev, 0.0)
        phi = np.stack([(z_prev[..., g] * z[..., g]).sum(-1)
                        / np.sqrt((z_prev[..., g] ** 2).sum(-1) * (z[..., g] ** 2).sum(-1)) for g in groups], -1)
    return clim, sigma, np.clip(phi, -1.0, 1.0)


#: Largest float64 block (bytes) of whole training series that one ``fit_ar1`` task holds.
FIT_CHUNK_BYTES = 32 * 2**20


def _bands(train: xr.DataArray) -> dict[str, int]:
    """Chunk sizes that cut ``train`` (time in one chunk) into latitude bands whose float64
    series are at most :data:`FIT_CHUNK_BYTES`; {} without a ``lat`` dim or when it fits."""
    if "lat" not in train.dims:
        return {}
    per_lat = 8 * train.size // train.sizes["lat"]
    rows = max(1, FIT_CHUNK_BYTES // max(per_lat, 1))
    return {"lat": int(rows)} if rows < train.sizes["lat"] else {}


def fit_ar1(reference: xr.DataArray, train_period: Period | str) -> xr.Dataset:
    """Per grid point and calendar month, fit on the training period:

    - ``climatology`` mu_c: mean of month c (reference units);
    - ``sigma`` s_c: std (ddof=1) of the anomalies a_t = x_t - mu_c(t) in month c;
    - ``phi`` phi_c: lag-1 correlation of standardised anomalies z = a / s into month c,
      phi_c = sum z_{t-1} z_t / sqrt(sum z_{t-1}^2 sum z_t^2) over training months t of
      calendar month c whose previous month is also in the training period.

    All have dim ``month`` (1..12) in place of ``time``. NaN values are skipped; lazy on
    dask (time merged into one chunk: each point needs its whole series).
    """
    train = select_period(reference, _period(train_period))
    space_chunks: dict[str, tuple[int, ...]] = {}
    if train.chunks is not None:
        # whole series per point, in latitude bands of at most FIT_CHUNK_BYTES of float64:
        # one global chunk made _fit_ar1_core's ~8 float64 temporaries of the whole field
        # (~2 GB at 1 deg x 432 months); each point's fit does not depend on the band, and
        # the outputs get the reference's spatial chunks back (the AR(1) draws follow them)
        space_chunks = {d: c for d, c in train.chunksizes.items() if d != "time"}
        train = train.chunk({"time": -1, **_bands(train)})
    index = month_index(train["time"])
    position = {int(i): p for p, i in enumerate(index)}
    previous = np.array([position.get(int(i) - 1, -1) for i in index])
    clim, sigma, phi = xr.apply_ufunc(
        _fit_ar1_core, train.drop_vars("time"), input_core_dims=[["time"]],
        output_core_dims=[["month"]] * 3, kwargs={"month": index % 12 + 1, "previous": previous},
        dask="parallelized", output_dtypes=[np.float64] * 3,
        dask_gufunc_kwargs={"output_sizes": {"month": 12}})
    if space_chunks:
        clim, sigma, phi = (v.chunk(space_chunks) for v in (clim, sigma, phi))
    units = reference.attrs.get("units", "")
    return xr.Dataset({
        "climatology": clim.assign_attrs(units=units, long_name="monthly climatology"),
        "sigma": sigma.assign_attrs(units=units, long_name="anomaly standard deviation (ddof=1)"),
        "phi": phi.assign_attrs(units="1", long_name="lag-1 correlation of standardised anomalies"),
    }).assign_coords(month=np.arange(1, 13)).transpose("month", ...)


def _ar1_moments(reference: xr.DataArray, params: xr.Dataset,
                 time: xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Conditional mean ``mu_c + s_c phi_c z_{t-1}`` and std ``s_c sqrt(1 - phi_c^2)`` of every
    target month (see :func:`ar1_ensemble`); a target without its previous month gets NaN."""
    index = month_index(time)
    position = {int(i): p for p, i in enumerate(month_index(reference["time"]))}
    previous = _take(reference, np.array([[position.get(int(i) - 1, -1) for i in index]]),
                     ("one", "time")).isel(one=0)
    this_month = xr.DataArray(index % 12 + 1, dims="time")
    last_month = xr.DataArray((index - 1) % 12 + 1, dims="time")
    mu_c, s_c, phi_c = (params[v].sel(month=this_month).drop_vars("month") for v in ("climatology", "sigma", "phi"))
    mu_p, s_p = (params[v].sel(month=last_month).drop_vars("month") for v in ("climatology", "sigma"))
    # constant points (sigma 0, e.g. sea ice in the tropics) have no defined phi: forecast mu_c
    phi_c = phi_c.fillna(0.0)
    z_prev = ((previous - mu_p) / s_p).where(s_p > 0, 0.0)
    return mu_c + s_c * phi_c * z_prev, s_c * np.sqrt(1.0 - phi_c**2)


def ar1_mean(reference: xr.DataArray, train_period: Period | str,
             like: xr.DataArray | xr.Dataset | None = None, fit: xr.Dataset | None = None) -> xr.DataArray:
    """The AR(1) ensemble's expectation, ``mu_c + s_c phi_c (x_{t-1} - mu_p) / s_p`` (reference
    units, dims time, ...): the damped-persistence forecast without its noise."""
    params = fit_ar1(reference, train_period) if fit is None else fit
    time = _target_time(reference, like)
    mean, _ = _ar1_moments(reference, params, time)
    out = mean.assign_coords(time=time.values).transpose("time", ...)
    out.attrs = dict(reference.attrs, baseline="ar1-mean")
    return out.rename(reference.name)


def ar1_ensemble(reference: xr.DataArray, train_period: Period | str, n_members: int = 50, seed: int = 0,
                 like: xr.DataArray | xr.Dataset | None = None, fit: xr.Dataset | None = None) -> xr.DataArray:
    """One-month-ahead damped-persistence AR(1) stochastic ensemble (reference units).

    With the ``fit_ar1`` parameters, c = calendar month of the target t, p = that of t-1:

        z_{t-1} = (x_{t-1} - mu_p) / s_p
        x_t     = mu_c + s_c (phi_c z_{t-1} + sqrt(1 - phi_c^2) eps),  eps ~ N(0, 1) iid

    i.e. anomaly_t = phi anomaly_{t-1} + sigma sqrt(1 - phi^2) eps when s_c = s_p = sigma.
    Members differ only in eps, drawn from ``numpy.random.default_rng(seed)`` (or dask's
    generator when the reference is dask-backed): reproducible for a given seed. Points
    constant in the training period (s = 0) get mu_c. No clipping: bounded variables
    (``siconc``, ``pr``) can leave their range, as any Gaussian AR(1) does.
    ``fit`` reuses parameters from ``fit_ar1`` (e.g. across periods).
    """
    params = fit_ar1(reference, train_period) if fit is None else fit
    time = _target_time(reference, like)
    mean, scale = _ar1_moments(reference, params, time)
    template = mean.expand_dims(member=n_members).transpose("member", "time", ...)
    # float32 draws for float32 references: the generator is most of the cost
    dtype = np.float32 if reference.dtype == np.float32 else np.float64
    if template.chunks is not None:
        import dask.array

        eps = dask.array.random.default_rng(seed).standard_normal(template.shape, chunks=template.data.chunks,
                                                                   dtype=dtype)
    else:
        eps = np.random.default_rng(seed).standard_normal(template.shape, dtype=dtype)
    noise = template.copy(data=eps)
    values = (mean + scale * noise).astype(reference.dtype)
    return _ensemble(values, time, reference, "ar1")
