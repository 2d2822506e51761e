"""Fit a residual model on a training ensemble and write its checkpoint.

    emulator-train --config configs/around.yaml --data data/synth-train-members --out runs/around

1. Every member's state of ``data.train_period`` is encoded (posterior mean) by the frozen
   encoder of the Monthly Diffusion checkpoint ``encoder`` (its decoder is the one that decodes
   the ensembles; the latent space is the emulator's, so residuals decode like its members).
2. Residuals of every ordered pair of members (target j, conditioning c, j != c):
   ``r = z_j - z_c``; the pointwise linear mean step (:mod:`.model`) is fitted by least squares
   (ridge 1e-6 relative) over all pairs and months.
3. The standardised innovations are learnt by a small conditional diffusion model (v-prediction,
   Adam, ``train.iterations`` minibatches), the published recipe of arXiv 2407.02070 in
   autoregressive form; then the sampler's spread is calibrated (:func:`calibrate_spread`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Period

from .. import checkpoint as md_checkpoint
from .. import diffusion
from ..checkpoint import CHECKPOINT_DIR
from ..data import load_split, open_prepared_dataset
from ..stepper import DiffusionStepper
from . import checkpoint
from .config import AroundConfig
from .model import ResidualModel, sqrt_area_weights

RIDGE = 1e-6


@torch.no_grad()
def encode_states(stepper: DiffusionStepper, state: np.ndarray, forcing: np.ndarray, month: np.ndarray,
                  chunk: int = 64) -> torch.Tensor:
    """Posterior-mean latents ``[T, Z, h, w]`` of physical states ``[T, C, H, W]``."""
    out = []
    for i in range(0, len(month), chunk):
        m = torch.as_tensor(month[i:i + chunk])
        cond = stepper.condition(torch.from_numpy(forcing[i:i + chunk]), m)
        out.append(stepper.init(torch.from_numpy(state[i:i + chunk]), cond, None, sample=False).cpu())
    return torch.cat(out)


@torch.no_grad()
def decoder_noise_scale(stepper: DiffusionStepper, state: np.ndarray, forcing: np.ndarray, month: np.ndarray,
                        z: torch.Tensor, samples: int = 64, seed: int = 0, chunk: int = 64) -> torch.Tensor:
    """Per channel ``[C]``: std of what the decoder misses of real states, ``x_n - D_n(E(x))``
    (normalised units, area-weighted over the grid and months), over the std of the emulator's own
    residual noise sample (``residual_sample``: its decoder-residual power times the forecast spread
    calibration ``residual_scale``). The residual members add noise at the first size (what the
    latent does not carry of a month), not at the forecast-calibrated one (docs/residual.md, measured).
    """
    m = stepper.model
    w = m.area_data.double().cpu().view(1, -1, 1)  # [1, H, 1], mean 1
    total = sq = None
    for i in range(0, len(month), chunk):
        mo = torch.as_tensor(month[i:i + chunk])
        cond = stepper.condition(torch.from_numpy(forcing[i:i + chunk]), mo)
        x_n = m.normaliser.normalise_state(torch.from_numpy(state[i:i + chunk]).to(stepper.device), cond.month)
        miss = (x_n - stepper.decode_normalised(z[i:i + chunk].to(stepper.device), cond).float()).double().cpu()
        total = miss.sum(0) if total is None else total + miss.sum(0)
        sq = (miss ** 2).sum(0) if sq is None else sq + (miss ** 2).sum(0)
    var_miss = sq / len(month) - (total / len(month)) ** 2  # per point about its time mean (the decoder's bias)
    gen = torch.Generator().manual_seed(seed)
    sample = m.residual_sample(torch.randn(m.residual_noise_shape(samples), generator=gen).to(stepper.device))
    var_own = (sample.double().cpu() ** 2).mean(0)  # zero-mean by construction
    ratio = (var_miss * w).mean(dim=(1, 2)) / (var_own * w).mean(dim=(1, 2)).clamp_min(1e-30)
    return torch.sqrt(ratio).float()


def tos_eofs(tos: np.ndarray, month: np.ndarray, sqrt_w: np.ndarray, modes: int):
    """(monthly climatology ``[12, H, W]`` (0 over land), area-weighted EOFs ``[H*W, modes]``,
    PCs ``[T, modes]``) of SST ``[T, H, W]`` in K."""
    tos = np.asarray(tos, np.float64)
    ok = np.isfinite(tos)
    filled = np.where(ok, tos, 0.0)
    clim = np.stack([filled[month == m].sum(0) / np.maximum(ok[month == m].sum(0), 1) for m in range(1, 13)])
    anom = np.nan_to_num(tos - clim[month - 1], nan=0.0) * sqrt_w
    flat = anom.reshape(len(month), -1)
    _, _, vt = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    eofs = vt[:modes].T
    return clim, eofs, flat @ eofs


def fit_mean_step(model: ResidualModel, z: torch.Tensor, month: np.ndarray, u: torch.Tensor, chunk: int = 96):
    """Least-squares coefficients of the mean step over every ordered pair; returns the
    standardised innovations ``[N, Z, h, w]``, their previous residuals and months (for the diffusion)."""
    n_mem = z.shape[0]
    m_next, m_prev = torch.as_tensor(month[1:]), torch.as_tensor(month[:-1])
    p = model.coef.shape[-1]
    xtx = torch.zeros((*model.latent_shape, p, p), dtype=torch.float64)
    xty = torch.zeros((*model.latent_shape, p), dtype=torch.float64)
    pairs = [(j, c) for j in range(n_mem) for c in range(n_mem) if j != c]
    n_t = len(month) - 1
    for j, c in pairs:
        r = model.standardise(z[j] - z[c])
        for s in range(0, n_t, chunk):  # in time chunks: the design of a mixing step is P ~ 30 wide
            t = slice(s, min(s + chunk, n_t))
            t1 = slice(s + 1, min(s + chunk, n_t) + 1)
            x = model.design(r[t], z[c][t1], m_next[t], z[c][t], m_prev[t], u[t1], u[t]).double()
            xtx += torch.einsum("tzhwp,tzhwq->zhwpq", x, x)
            xty += torch.einsum("tzhwp,tzhw->zhwp", x, r[t1].double())
    scale = torch.diagonal(xtx, dim1=-2, dim2=-1).mean(-1, keepdim=True).unsqueeze(-1)
    coef = torch.linalg.solve(xtx + RIDGE * scale * torch.eye(p, dtype=torch.float64), xty.unsqueeze(-1))
    model.coef.copy_(coef.squeeze(-1).float())
    innov, prev, months = [], [], []
    for j, c in pairs:
        r = model.standardise(z[j] - z[c])
        innov.append(r[1:] - model.mean_step(r[:-1], z[c][1:], m_next, z[c][:-1], m_prev, u[1:], u[:-1]))
        prev.append(r[:-1])
        months.append(m_next)
    innov, prev, months = torch.cat(innov), torch.cat(prev), torch.cat(months)
    model.e_std.copy_(innov.transpose(0, 1).reshape(innov.shape[1], -1).std(dim=1).clamp_min(1e-6))
    return innov / model.e_std.view(1, -1, 1, 1), prev, months


def train_diffusion(model: ResidualModel, e: torch.Tensor, prev: torch.Tensor, months: torch.Tensor,
                    iterations: int, batch: int, lr: float, seed: int) -> list[float]:
    """v-prediction training of the innovation denoiser; returns the loss of every 100 iterations."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.denoiser.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    history, running = [], 0.0
    model.denoiser.train()
    for it in range(iterations):
        idx = torch.randint(0, e.shape[0], (batch,), generator=gen)
        s = torch.rand(batch, generator=gen)
        eps = torch.randn(e[idx].shape, generator=gen)
        z_s, v = diffusion.q_sample(e[idx], eps, s)
        loss = ((model.denoiser(z_s, prev[idx], months[idx], s) - v) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach())
        if (it + 1) % 100 == 0:
            history.append(round(running / 100, 5))
            running = 0.0
    model.denoiser.eval()
    return history


@torch.no_grad()
def calibrate_spread(model: ResidualModel, prev: torch.Tensor, months: torch.Tensor, steps: int,
                     samples: int = 512, seed: int = 0) -> torch.Tensor:
    """Set ``e_scale`` so that the sampler's innovations have unit std per channel (they are
    standardised: unit variance is their training value); returns the std measured before."""
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, prev.shape[0], (samples,), generator=gen)
    noise = torch.randn((diffusion.n_draws("ancestral", steps), samples, *prev.shape[1:]), generator=gen)
    r, mo = prev[idx], months[idx]
    e = diffusion.sample(lambda z_s, s: model.denoiser(z_s, r, mo, s), noise, steps, "ancestral")
    std = e.transpose(0, 1).reshape(e.shape[1], -1).std(dim=1).clamp_min(1e-3)
    model.e_scale.copy_(1.0 / std)
    return std


def fit_dataset(cfg: AroundConfig, out_dir: str | Path, resume: bool = False) -> tuple[Path, dict]:
    """Fit on the ensemble ``cfg.data.path`` and write ``out_dir/checkpoint``; returns (dir, summary)."""
    torch.manual_seed(cfg.train.seed)
    out = Path(out_dir)
    target = out / CHECKPOINT_DIR
    if target.exists():
        if not resume:
            raise InputError("run directory already holds a checkpoint; choose another --out", out)
        meta = checkpoint.read_meta(target)
        return target, meta["fit"]
    if not cfg.encoder:
        raise InputError("encoder: the config names no Monthly Diffusion checkpoint (its frozen encoder/decoder)")
    if not cfg.data.path:
        raise InputError("no training ensemble: give --data DIR (md-synth --members N)")
    emeta = md_checkpoint.read_meta(cfg.encoder)
    spec = md_checkpoint.spec_from_meta(emeta)
    if "tos" not in spec.forcing_names:
        raise InputError("the encoder checkpoint has no tos forcing (the residual model's predictors are "
                         "EOFs of the SST)", cfg.encoder)
    i_tos = list(spec.forcing_names).index("tos")
    md = DiffusionStepper(md_checkpoint.load_model(emeta["_dir"], weights="ema"))
    source = str(cfg.data.path)
    ds = open_prepared_dataset(source)
    if "member" not in ds.dims or ds.sizes["member"] < 2:
        raise InputError("the training ensemble needs a member dim with at least 2 members "
                         "(make one with md-synth --members N)", source)
    from ..forcing import check_same_grid

    check_same_grid(ds, spec, "training ensemble", source)
    t0 = time.perf_counter()
    period = Period.parse(cfg.data.train_period)
    latents, month, forcing = [], None, None
    for m in ds["member"].values:
        split = load_split(ds.sel(member=m), spec, period, source)
        month, forcing = split.month, split.forcing
        latents.append(encode_states(md, split.state, split.forcing, split.month))
    z = torch.stack(latents)  # [M, T, Z, h, w]
    noise_scale = None
    if md.model.cfg.residual_noise:  # of the last member (one is enough for a per-channel variance)
        noise_scale = decoder_noise_scale(md, split.state, split.forcing, split.month, z[-1], seed=cfg.train.seed)
    t_enc = time.perf_counter() - t0
    mc = cfg.model
    model = ResidualModel(tuple(md.latent_shape), spec.shape, mc.forcing_modes, mc.hidden, mc.depth, mc.mixing)
    sqrt_w = sqrt_area_weights(spec.lat)
    clim, eofs, pcs = tos_eofs(forcing[:, i_tos], month, sqrt_w, mc.forcing_modes)
    model.sqrt_w.copy_(torch.from_numpy(sqrt_w))
    model.tos_clim.copy_(torch.from_numpy(clim).float())
    model.tos_eofs.copy_(torch.from_numpy(eofs).float())
    model.u_std.copy_(torch.from_numpy(pcs.std(axis=0)).float().clamp_min(1e-6))
    u = torch.stack([model.forcing_predictors(forcing[t, i_tos], int(month[t]))
                     for t in range(len(month))])
    z_clim = torch.stack([z[:, torch.as_tensor(month == k)].mean(dim=(0, 1)) for k in range(1, 13)])
    model.z_clim.copy_(z_clim)
    anom = z - z_clim[torch.as_tensor(month - 1)].unsqueeze(0)
    model.z_std.copy_(anom.transpose(0, 2).reshape(z.shape[2], -1).std(dim=1).clamp_min(1e-6))
    r_all = (z[1:] - z[0:1])
    model.r_std.copy_(r_all.transpose(0, 2).reshape(z.shape[2], -1).std(dim=1).clamp_min(1e-6))
    with torch.no_grad():
        e, prev, months = fit_mean_step(model, z, month, u)
    t_fit = time.perf_counter() - t0 - t_enc
    history = train_diffusion(model, e, prev, months, cfg.train.iterations, cfg.train.batch_size,
                              cfg.train.lr, cfg.train.seed)
    raw_std = calibrate_spread(model, prev, months, mc.steps, seed=cfg.train.seed)
    own = model.own_terms()
    info = {"members": int(z.shape[0]), "pairs": int(z.shape[0] * (z.shape[0] - 1)), "months": int(len(month)),
            "train_period": cfg.data.train_period, "encode_s": round(t_enc, 2), "fit_s": round(t_fit, 2),
            "diffusion_s": round(time.perf_counter() - t0 - t_enc - t_fit, 2), "loss_per_100": history,
            "mean_a": float(own["a"].mean()), "mean_b": float(own["b"].mean()), "mean_d": float(own["d"].mean()),
            "mixing": mc.mixing,
            "decoder_noise_scale": None if noise_scale is None else [round(float(v), 4) for v in noise_scale],
            "innovation_fraction": float((model.e_std ** 2).mean()),
            "sampler_std_before_calibration": [round(float(v), 4) for v in raw_std]}
    checkpoint.save(target, model, cfg, emeta, info)
    return target, info
