"""Per-epoch validation: reconstruction RMSE and one-month-ahead ensemble skill, physical units.

* reconstruction RMSE per channel: decode(posterior mean of x_t) vs x_t, area-weighted over
  the sphere, root of the mean over months;
* one-month-ahead ensemble: each member encodes x_t (its own posterior sample), takes one
  diffusion step with the forcing and month of t and decodes with those of t+1; scored against
  x_{t+1} with the ensemble CRPS (diagnostics.metrics.crps.crps_ensemble, standard form) and
  the spread-skill ratio (diagnostics.metrics.spread_skill, uncorrected as WeatherBench 2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from diagnostics.data.grid import global_mean

from . import diffusion
from .data import PairTensors
from .latent_lim_fit import fit_latent_lim
from .config import ValidationConfig
from .model import MonthlyDiffusion
from .seeding import member_generators, member_seed
from .stepper import DiffusionStepper


def pair_ids(n_pairs: int, max_samples: int) -> np.ndarray:
    """Evenly spaced pair indices (all pairs when ``max_samples`` <= 0 or >= n_pairs)."""
    if max_samples <= 0 or max_samples >= n_pairs:
        return np.arange(n_pairs)
    return np.unique(np.linspace(0, n_pairs - 1, max_samples).round().astype(int))


def _field(values: np.ndarray, dims: tuple[str, ...], model: MonthlyDiffusion, labels: list[str]) -> xr.DataArray:
    coords = {"channel": labels, "lat": np.asarray(model.spec.lat), "lon": np.asarray(model.spec.lon)}
    return xr.DataArray(values, dims=dims, coords={k: v for k, v in coords.items() if k in dims})


def _draws(stepper: DiffusionStepper, data: PairTensors, ids: np.ndarray, members: int, seed: int,
           device: torch.device, chunk: int):
    """Chunks of (member, pair) jobs: ``(generators, data.batch(...), encoder noise, step noise)``.

    Member m of pair i uses the generator of ``member_seed(seed, m, i)`` for all its noise, so
    results do not depend on ``chunk``.
    """
    model = stepper.model
    jobs = [(int(i), m) for i in ids for m in range(members)]
    for start in range(0, len(jobs), chunk):
        part = jobs[start:start + chunk]
        batch = data.batch(torch.as_tensor([i for i, _ in part]), device)
        gens = [torch.Generator().manual_seed(member_seed(seed, m, i)) for i, m in part]
        z_noise = torch.cat([torch.randn((1, *model.latent_shape_full()), generator=g) for g in gens]).to(device)
        yield gens, batch, z_noise, stepper.noise_for_step(len(part), gens)


@torch.no_grad()
def ensemble_forecast(model: MonthlyDiffusion, data: PairTensors, ids: np.ndarray, members: int,
                      seed: int, sampler: str, steps: int | None, device: torch.device,
                      chunk: int = 32, normalised: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """One-month-ahead forecasts ``[N, M, C, H, W]`` and truth ``[N, C, H, W]``, physical units
    (the model's normalised units with ``normalised=True``).

    Member m of pair i uses the generator of ``member_seed(seed, m, i)`` for both its encoder sample and
    its diffusion noise, so results do not depend on ``chunk``.
    """
    stepper = DiffusionStepper(model, sampler, steps)
    out = []
    for gens, (x_t, _, f_t, f_t1, mo_t, mo_t1), z_noise, step_noise in _draws(
            stepper, data, ids, members, seed, device, chunk):
        res_noise = None
        if model.cfg.residual_noise:
            res_noise = diffusion.draw_noise(1, model.residual_noise_shape(len(gens)), gens, device)[0]
        cond_t, cond_t1 = stepper.condition_normalised(f_t, mo_t), stepper.condition_normalised(f_t1, mo_t1)
        z = stepper.encode_normalised(x_t, cond_t, z_noise)
        z1 = stepper.step_normalised(z, cond_t, cond_t1, step_noise)
        x1 = stepper.decode_normalised(z1, cond_t1, res_noise)
        out.append((x1.float() if normalised else model.normaliser.denormalise_state(x1.float(), mo_t1)).cpu())
    fc = torch.cat(out).view(len(ids), members, *out[0].shape[1:]).numpy()
    nxt = torch.as_tensor(ids) + 1
    truth = data.state[nxt].to(device)
    if not normalised:
        truth = model.normaliser.denormalise_state(truth, data.month[nxt])
    return fc, truth.cpu().numpy()


@torch.no_grad()
def reconstruction_rmse(model: MonthlyDiffusion, data: PairTensors, ids: np.ndarray, device: torch.device,
                        chunk: int = 32) -> np.ndarray:
    """Area-weighted RMSE per channel of decode(encode-mean(x)) vs x, physical units -> ``[C]``."""
    sq, stepper = [], DiffusionStepper(model)
    w = model.area_data.to(device).view(1, 1, -1, 1)
    for start in range(0, len(ids), chunk):
        sel = torch.as_tensor(ids[start:start + chunk])
        x_t, _, f_t, _, mo_t, _ = data.batch(sel, device)
        cond = stepper.condition_normalised(f_t, mo_t)
        rec = stepper.decode_normalised(stepper.encode_normalised(x_t, cond, None), cond)
        a = model.normaliser.denormalise_state(rec.float(), mo_t)
        b = model.normaliser.denormalise_state(x_t, mo_t)
        sq.append((((a - b) ** 2) * w).mean(dim=(2, 3)).cpu())
    return torch.cat(sq).mean(dim=0).sqrt().numpy()


@torch.no_grad()
def residual_power(model: MonthlyDiffusion, data: PairTensors, ids: np.ndarray, device: torch.device,
                   chunk: int = 32) -> torch.Tensor:
    """Per-coefficient power E|c_lm|^2 ``[C, L, L]`` of x - decode(encode-mean(x)) on held-out months.

    The training-time estimate comes from months the CVAE has fitted and so under-states the
    error on new months; the trainer replaces the EMA model's estimate by this one.
    """
    total, count, stepper = None, 0, DiffusionStepper(model)
    for start in range(0, len(ids), chunk):
        sel = torch.as_tensor(ids[start:start + chunk])
        x_t, _, f_t, _, mo_t, _ = data.batch(sel, device)
        cond = stepper.condition_normalised(f_t, mo_t)
        rec = stepper.decode_normalised(stepper.encode_normalised(x_t, cond, None), cond)
        power = model.data_sht((x_t - rec.float()).float()).abs().pow(2).sum(dim=0)
        total = power if total is None else total + power
        count += len(sel)
    return total / count


@torch.no_grad()
def latent_fit_inputs(model: MonthlyDiffusion, data: PairTensors, device: torch.device,
                      chunk: int = 32) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The standardised posterior-mean latents ``zn [T, Z, h, w]`` of every month of ``data``
    and the skip path's prediction of every month t+1 from t ``[T - 1, Z, h, w]`` (None
    without a skip path), on the CPU: what the latent LIM is fitted on."""
    stepper, zs, conds = DiffusionStepper(model), [], []
    for start in range(0, data.state.shape[0], chunk):
        x = data.state[start:start + chunk].to(device)
        mo = data.month[start:start + chunk].to(device)
        cond = stepper.condition_normalised(data.forcing[start:start + chunk], mo)
        zs.append(model.standardise(stepper.encode_normalised(x, cond, None).float()).cpu())
        conds.append(cond.latent.float().cpu())
    zn, cl = torch.cat(zs), torch.cat(conds)
    skip_prediction = None
    if model.skip is not None:
        cl_step = model.step_conditioning(cl[:-1].to(device), cl[1:].to(device))
        skip_prediction = model.skip(zn[:-1].to(device), cl_step).float().cpu()
    return zn, skip_prediction


@torch.no_grad()
def fit_latent_linear(model: MonthlyDiffusion, data: PairTensors, device: torch.device,
                      chunk: int = 32) -> dict[str, float]:
    """Fit ``model.latent_linear`` (step.type latent_lim) on the standardised posterior-mean
    latents of every month of ``data`` (the training record: T months, T - 1 pairs); returns
    the fit statistics of :func:`emulator.latent_lim_fit.fit_latent_lim`."""
    zn, skip_prediction = latent_fit_inputs(model, data, device, chunk)
    step = model.cfg.step
    skip_mean = skip_prediction if step.mean == "skip" else None  # the skip path is the step's mean
    model.latent_linear.to("cpu")
    try:
        return fit_latent_lim(model.latent_linear, zn, data.forcing, data.month, skip_mean,
                              basis=step.basis, skip_prediction=skip_prediction)
    finally:
        model.latent_linear.to(device)


@torch.no_grad()
def diffusion_offset(model: MonthlyDiffusion, data: PairTensors, ids: np.ndarray, draws: int, seed: int,
                     sampler: str, steps: int | None, device: torch.device, chunk: int = 64) -> torch.Tensor:
    """Mean ``[Z, h, w]`` of the diffusion's samples of the skip residual (``model.diffusion_offset``).

    offset = (1 / (N D)) sum_i sum_d r_{i,d}, r = the sampler's output (standardised residual
    (z_{t+1} - mu) / skip_std) for pair i and draw d, the previous latent sampled from the
    encoder. The skip path is a least-squares fit, so the true residual has zero mean; the
    sampled one did not (0.05-0.14 of its std per latent channel on the demo, bending the
    ensemble mean: docs/emulator.md), and the step subtracts this estimate. Its sampling noise
    is about 1/sqrt(N D) of the residual std per latent point.
    """
    stepper = DiffusionStepper(model, sampler, steps)
    total, count = torch.zeros(model.latent_shape_full(), dtype=torch.float64), 0
    for gens, (x_t, _, f_t, f_t1, mo_t, mo_t1), z_noise, step_noise in _draws(
            stepper, data, ids, draws, seed, device, chunk):
        cond_t, cond_t1 = stepper.condition_normalised(f_t, mo_t), stepper.condition_normalised(f_t1, mo_t1)
        z = stepper.encode_normalised(x_t, cond_t, z_noise)
        r = stepper.residual_draws(z, cond_t, cond_t1, step_noise)
        total += r.double().sum(0).cpu()
        count += len(gens)
    return (total / count).float()


@torch.no_grad()
def spread_scale(model: MonthlyDiffusion, data: PairTensors, ids: np.ndarray, members: int, seed: int,
                 sampler: str, steps: int | None, device: torch.device, max_scale: float = 100.0) -> torch.Tensor:
    """Factor ``k [C, nlat]`` for the variance of the residual samples (``model.residual_scale``)
    that makes the one-month-ahead ensemble spread match its error on held-out months, per
    channel and latitude (normalised units; means over months and longitudes).

    For an M-member ensemble whose members and truth are exchangeable,
    E[(mean - truth)^2] = (1 + 1/M) E[s^2] (s^2 the unbiased member variance). Adding independent
    residual noise of variance v to every member adds v to s^2 and v/M to the squared error, so
    the variance still missing is ``v = mse - (1 + 1/M) s^2``; with r the variance of the
    current residual samples, ``k = 1 + v / r`` (clipped to [0, max_scale]; k < 1 shrinks an
    over-dispersed ensemble's residual). Per latitude because the error variance of a field
    z-scored per channel varies strongly with latitude (psl, pr) while the residual samples are
    statistically the same at every latitude. The diffusion's own spread is left as it is (its
    15-step sampler under-disperses by construction, docs/emulator.md).
    """
    fc, truth = ensemble_forecast(model, data, ids, members, seed, sampler, steps, device, normalised=True)
    mse = ((fc.mean(axis=1) - truth) ** 2).mean(axis=(0, 3))
    var = fc.var(axis=1, ddof=1).mean(axis=(0, 3))
    missing = mse - (1.0 + 1.0 / members) * var
    noise = torch.randn(model.residual_noise_shape(64), generator=torch.Generator().manual_seed(seed))
    res = model.residual_sample(noise.to(device)).float().cpu().numpy()
    r = np.maximum((res ** 2).mean(axis=(0, 3)), 1e-12)
    return torch.as_tensor(np.clip(1.0 + missing / r, 0.0, max_scale), dtype=torch.float32)


def ensemble_scores(forecast: np.ndarray, truth: np.ndarray, model: MonthlyDiffusion) -> dict[str, np.ndarray]:
    """CRPS (area-weighted global and sample mean) and spread-skill ratio per channel."""
    from diagnostics.metrics.crps import crps_ensemble
    from diagnostics.metrics.spread_skill import spread_skill_ratio

    labels = model.spec.labels
    fc = _field(forecast, ("sample", "member", "channel", "lat", "lon"), model, labels)
    ob = _field(truth, ("sample", "channel", "lat", "lon"), model, labels)
    crps = crps_ensemble(fc, ob, member_dim="member", fair=False)
    if "lat" in crps.dims:
        crps = global_mean(crps)
    crps = crps.mean([d for d in crps.dims if d != "channel"])
    ssr = spread_skill_ratio(fc, ob, dims=("sample", "lat", "lon"), member_dim="member", corrected=False)
    ssr = ssr.mean([d for d in ssr.dims if d != "channel"])
    return {"crps": crps.values.astype(float), "ssr": ssr.values.astype(float)}


def validate(model: MonthlyDiffusion, data: PairTensors, cfg: ValidationConfig, seed: int,
             device: torch.device) -> dict[str, dict[str, float]]:
    """Metrics per channel label: ``{"rmse_rec": {...}, "crps": {...}, "ssr": {...}}``."""
    ids = pair_ids(len(data), cfg.max_samples)
    labels = model.spec.labels
    out = {"rmse_rec": dict(zip(labels, reconstruction_rmse(model, data, ids, device).tolist()))}
    fc, truth = ensemble_forecast(model, data, ids, cfg.members, seed, cfg.sampler, cfg.steps or None, device)
    for name, values in ensemble_scores(fc, truth, model).items():
        out[name] = dict(zip(labels, np.asarray(values).tolist()))
    err = np.sqrt((((fc.mean(axis=1) - truth) ** 2) * model.area_data.cpu().numpy()[:, None]).mean(axis=(0, 2, 3)))
    out["rmse_ensmean"] = dict(zip(labels, err.tolist()))
    return out


# --------------------------------------------------------------------------- free-run validation
#: Per-channel free-run statistics (the keys of ``free_run_validation(...)["free_run"]``).
FREE_RUN_CHANNEL_STATS = ("lag1_ratio", "std_ratio", "nino34_pattern_corr", "nino34_amplitude_ratio", "drift")
#: DJF modes scored when their channel is emulated: (key, channel, diagnostics.metrics.modes function).
FREE_RUN_MODES = (("nao_psl", "psl", "nao"), ("nao_z500", "zg500", "nao"))
#: Fewest complete DJF winters of the free run for its modes to be scored (an EOF of fewer is noise).
MIN_WINTERS = 8


@dataclass(frozen=True)
class FreeRunData:
    """Consecutive months the free-run validation rolls over and scores against: ``state``
    ``[T, C, H, W]`` and ``forcing`` in the model's normalised units (what :class:`PairTensors`
    holds), calendar ``month [T]``, ``index [T]`` (year * 12 + month - 1) and the relative
    Niño-3.4 index ``nino34 [T]`` in K of the prescribed SST (None without ``tos``)."""

    state: torch.Tensor
    forcing: torch.Tensor
    month: torch.Tensor
    index: np.ndarray
    nino34: np.ndarray | None

    def __len__(self) -> int:
        return int(self.state.shape[0])


def free_run_data(parts: list[PairTensors], nino34: dict[int, float] | None, months: int) -> FreeRunData:
    """The first ``months`` consecutive months of ``parts`` (e.g. the validation and training
    periods) in time order: from the earliest month up to the first gap (fewer when the
    record is shorter). ``nino34`` maps month index -> index value (K)."""
    idx = np.concatenate([p.index for p in parts])
    order = np.argsort(idx, kind="stable")
    idx = idx[order]
    gap = np.flatnonzero(np.diff(idx) != 1)
    n = min(months, int(gap[0]) + 1 if gap.size else idx.size)
    keep = torch.as_tensor(order[:n])

    def cat(name: str) -> torch.Tensor:
        return torch.cat([getattr(p, name) for p in parts])[keep]

    index = idx[:n]
    nino = None if nino34 is None else np.array([nino34.get(int(i), np.nan) for i in index], dtype=float)
    return FreeRunData(cat("state"), cat("forcing"), cat("month"), index, nino)


@torch.no_grad()
def free_run(model: MonthlyDiffusion, data: FreeRunData, members: int, seed: int, sampler: str,
             steps: int | None, device: torch.device) -> np.ndarray:
    """A free-running ensemble ``[M, T, C, H, W]`` in physical units over the months of ``data``.

    Exactly what ``emulator-run`` computes (:func:`emulator.rollout.run_rollout`, no initial
    perturbation): month 0 is the reference state of the first month for every member, encoded
    to a posterior sample; then ``z_k = step(z_{k-1}, c_{k-1}, c_k)``, ``x_k = decode(z_k, c_k)``
    with the real :class:`DiffusionStepper`, member m (1..M) drawing month k's noise from
    ``member_generators(seed, [m], k)``. Only the prescribed forcing comes from ``data``.
    """
    stepper = DiffusionStepper(model, sampler, steps)
    ids = list(range(1, members + 1))
    out = np.empty((members, len(data), *data.state.shape[1:]), dtype=np.float32)
    cond_prev, z = None, None
    for k in range(len(data)):
        gens = member_generators(seed, ids, k, device)
        mk = data.month[k:k + 1].expand(members).to(device)
        cond = stepper.condition_normalised(data.forcing[k:k + 1].expand(members, -1, -1, -1).to(device), mk)
        if k == 0:
            x = model.normaliser.denormalise_state(data.state[:1].to(device), mk[:1]).expand(members, -1, -1, -1)
            z = stepper.init(x.contiguous(), cond, gens)
        else:
            z = stepper.step(z, cond_prev, cond, gens)
            x = stepper.decode(z, cond, gens)
        if not bool(torch.isfinite(x).all()):  # scored as the worst run rather than crashing training
            out[:, k:] = np.nan
            break
        out[:, k] = x.float().cpu().numpy()
        cond_prev = cond
    return out


def _monthly(values: np.ndarray, dims: tuple[str, ...], index: np.ndarray, lat, lon, name: str,
             units: str) -> xr.DataArray:
    from diagnostics.data.timeaxis import Month, monthly_axis

    axis = monthly_axis(Month.from_index(int(index[0])), Month.from_index(int(index[-1])))
    coords = {"time": axis["time"], "lat": np.asarray(lat), "lon": np.asarray(lon)}
    coords = {k: v for k, v in coords.items() if k in dims}
    if "member" in dims:
        coords["member"] = np.arange(1, values.shape[0] + 1)
    return xr.DataArray(values, dims=dims, coords=coords, name=name, attrs={"units": units})


def free_run_statistics(run: np.ndarray, reference: np.ndarray, index: np.ndarray, labels: list[str],
                        units: list[str], lat, lon, nino34: np.ndarray | None) -> dict:
    """Issue-13 statistics of a free run ``[M, T, C, H, W]`` against the reference ``[T, C, H, W]``
    of the same months, with md-diagnose's kernels (anomalies about each one's own monthly
    climatology over these months):

    * ``lag1_ratio``, ``std_ratio``: :func:`diagnostics.metrics.variability.variability_ratio`
      (ratios of the area-weighted global means of the lag-1 / std maps; dimensionless);
    * ``nino34_pattern_corr``, ``nino34_amplitude_ratio``: regression maps on the Niño-3.4 index
      (members pooled) compared by :func:`diagnostics.metrics.nino34.compare_patterns`;
    * ``drift`` (channel units per decade): trend of the ensemble-mean global mean minus the
      reference's (:func:`diagnostics.metrics.trends.global_mean_trend`);
    * ``modes``: NAO of psl / zg500 (DJF, members pooled, :mod:`diagnostics.metrics.modes`):
      ``pattern_corr`` and ``pc_std_ratio``, when the run holds >= :data:`MIN_WINTERS` winters.

    Returns ``{"free_run": {stat: {label: value}}, "modes": {mode: {stat: value}}, "drift_scale":
    {label: value}}``; ``drift_scale`` is the reference's std of global-mean monthly anomalies
    (channel units), which :func:`free_run_score` divides the accumulated drift by.
    """
    from diagnostics.data.grid import global_mean
    from diagnostics.metrics import modes, nino34 as nino, trends
    from diagnostics.metrics.climatology import monthly_anomalies
    from diagnostics.metrics.variability import variability_ratio

    stats: dict[str, dict[str, float]] = {k: {} for k in FREE_RUN_CHANNEL_STATS}
    scale: dict[str, float] = {}
    idx_da = None
    if nino34 is not None and np.isfinite(nino34).sum() >= 3:
        idx_da = _monthly(nino34, ("time",), index, lat, lon, "nino34", "K")
    model_das, ref_das = {}, {}
    for c, (label, unit) in enumerate(zip(labels, units)):
        m = _monthly(run[:, :, c], ("member", "time", "lat", "lon"), index, lat, lon, label, unit)
        r = _monthly(reference[:, c], ("time", "lat", "lon"), index, lat, lon, label, unit)
        model_das[label], ref_das[label] = m, r
        if not np.isfinite(run[:, :, c]).all():
            for key in stats:
                stats[key][label] = float("nan")
            scale[label] = float("nan")
            continue
        v = variability_ratio(m, r)
        stats["lag1_ratio"][label] = float(v["lag1_ratio_global"])
        stats["std_ratio"][label] = float(v["std_ratio_global"])
        if idx_da is not None:
            cmp = nino.compare_patterns(nino.regression_map(m, idx_da, dims=("member", "time")),
                                        nino.regression_map(r, idx_da))
            stats["nino34_pattern_corr"][label] = float(cmp["pattern_corr"])
            stats["nino34_amplitude_ratio"][label] = float(cmp["amplitude_ratio"])
        else:
            stats["nino34_pattern_corr"][label] = stats["nino34_amplitude_ratio"][label] = float("nan")
        stats["drift"][label] = float(trends.global_mean_trend(m.mean("member")) - trends.global_mean_trend(r))
        scale[label] = float(global_mean(monthly_anomalies(r)).std("time", ddof=1))
    out_modes: dict[str, dict[str, float]] = {}
    from diagnostics.metrics.climatology import seasonal_mean

    for mode, channel, fn in FREE_RUN_MODES:
        if channel not in ref_das or not np.isfinite(run[:, :, labels.index(channel)]).all():
            continue
        try:
            winters = seasonal_mean(ref_das[channel].isel(lat=[0], lon=[0]), "DJF").sizes["time"]
        except ValueError:
            winters = 0
        if winters < MIN_WINTERS:
            continue
        ref_mode = getattr(modes, fn)(ref_das[channel])
        got = modes.compare_modes(getattr(modes, fn)(model_das[channel], pooled=True), ref_mode)
        out_modes[mode] = {"pattern_corr": float(got["pattern_corr"]), "pc_std_ratio": float(got["pc_std_ratio"])}
    return {"free_run": stats, "modes": out_modes, "drift_scale": scale}


def free_run_score(stats: dict, months: int) -> float:
    """The scalar the checkpoint selection minimises (0 = the reference's statistics), the mean of

    * per channel: |lag1_ratio - 1|, |std_ratio - 1|, 1 - nino34_pattern_corr, |nino34_amplitude_ratio - 1|
      and the drift accumulated over the run in units of the reference's global-mean monthly
      anomaly std, |drift| * (months / 120) / drift_scale;
    * per scored mode: 1 - pattern_corr and |pc_std_ratio - 1|.

    NaN terms (no Niño-3.4 index) are left out; a run that went non-finite scores +inf.
    """
    fr, terms = stats["free_run"], []
    for label in fr["lag1_ratio"]:
        values = {k: fr[k][label] for k in FREE_RUN_CHANNEL_STATS}
        if not np.isfinite(values["lag1_ratio"]):
            return float("inf")
        terms += [abs(values["lag1_ratio"] - 1.0), abs(values["std_ratio"] - 1.0),
                  1.0 - values["nino34_pattern_corr"], abs(values["nino34_amplitude_ratio"] - 1.0),
                  abs(values["drift"]) * (months / 120.0) / max(stats["drift_scale"][label], 1e-30)]
    for mode in stats["modes"].values():
        terms += [1.0 - mode["pattern_corr"], abs(mode["pc_std_ratio"] - 1.0)]
    terms = [t for t in terms if np.isfinite(t)]
    return float(np.mean(terms)) if terms else float("inf")


def free_run_validation(model: MonthlyDiffusion, data: FreeRunData, cfg: ValidationConfig, seed: int,
                        device: torch.device, units: list[str]) -> dict:
    """Roll ``model`` freely over ``data`` (:func:`free_run`, ``cfg.free_run_members`` members,
    the validation sampler) and score it (:func:`free_run_statistics`, :func:`free_run_score`).

    Returns ``{"free_run": {stat: {label: value}}, "free_run_modes": {mode: {stat: value}},
    "free_run_score": float, "free_run_months": T, "free_run_start": "YYYY-MM"}``.
    """
    from diagnostics.data.timeaxis import Month

    run = free_run(model, data, cfg.free_run_members, seed, cfg.sampler, cfg.steps or None, device)
    month = data.month.to(device)
    ref = model.normaliser.denormalise_state(data.state.to(device), month).float().cpu().numpy()
    stats = free_run_statistics(run, ref, data.index, list(model.spec.labels), units, model.spec.lat,
                                model.spec.lon, data.nino34)
    return {"free_run": stats["free_run"], "free_run_modes": stats["modes"],
            "free_run_score": free_run_score(stats, len(data)), "free_run_months": len(data),
            "free_run_start": str(Month.from_index(int(data.index[0])))}


def select_best(history: list[dict]) -> dict | None:
    """The epoch of the lowest ``free_run_score`` in a training history (the first of equal
    ones; None when no epoch has one): ``{"epoch", "score"}``."""
    best = None
    for row in history:
        score = row.get("free_run_score")
        if score is not None and np.isfinite(score) and (best is None or score < best["score"]):
            best = {"epoch": int(row["epoch"]), "score": float(score)}
    return best
