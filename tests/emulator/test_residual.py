"""Residual ensembles (emulator/residual): the fitted step against the closed form of a planted
AR(1) ensemble, generated members against the planted truth, and the commands' refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from diagnostics.io.writer import write_prepared
from emulator.cli.run import main as run_main
from emulator.cli.train import main as train_main
from emulator.residual.model import ResidualModel
from emulator.residual.stepper import AroundConditioning, ResidualStepper
from emulator.residual.train import calibrate_spread, fit_mean_step, train_diffusion
from tests.emulator.toy_data import make_toy_dataset

PHI, SIGMA_EPS, GAIN = 0.6, 1.0, 2.0


def _planted(members: int, months: int, seed: int, shape=(2, 3, 4)):
    """z_j(t) = GAIN u(t) + n_j(t), n_j AR(1) (PHI, innovation std SIGMA_EPS) independent per member
    and point, u(t) a shared AR(1) 'forcing' (the members' forced signal)."""
    rng = np.random.default_rng(seed)
    u = np.zeros(months)
    n = np.zeros((members, months, *shape))
    for t in range(1, months):
        u[t] = 0.9 * u[t - 1] + 0.5 * rng.standard_normal()
        n[:, t] = PHI * n[:, t - 1] + SIGMA_EPS * rng.standard_normal((members, *shape))
    z = GAIN * u[None, :, None, None, None] + n
    month = np.arange(months) % 12 + 1
    return torch.tensor(z, dtype=torch.float32), month, torch.tensor(u, dtype=torch.float32)[:, None]


def _model(shape=(2, 3, 4)) -> ResidualModel:
    m = ResidualModel(shape, (3, 4), forcing_modes=1, hidden=16, depth=3)
    m.z_std.fill_(1.0)
    m.r_std.fill_(1.0)
    m.u_std.fill_(1.0)
    return m


def test_mean_step_recovers_the_closed_form_of_a_planted_ensemble():
    """For r = z_j - z_c of independent AR(1) members n around a shared forced signal GAIN u:
    r_{t+1} = PHI r_t - n_c(t+1) + PHI n_c(t) + eps, n_c = z_c - GAIN u; so the coefficients on
    (r_t, z_c(t+1), z_c(t), u(t+1), u(t)) are (PHI, -1, PHI, GAIN, -PHI GAIN) and the innovation
    variance SIGMA_EPS^2 (z_std = 1 here, so standardised and raw units agree)."""
    z, month, u = _planted(6, 600, seed=1)
    model = _model()
    with torch.no_grad():
        e, prev, _ = fit_mean_step(model, z, month, u)
    coef = model.coef.numpy()
    np.testing.assert_allclose(coef[..., 0].mean(), PHI, atol=0.02)
    np.testing.assert_allclose(coef[..., 1].mean(), -1.0, atol=0.02)
    np.testing.assert_allclose(coef[..., 2].mean(), PHI, atol=0.02)
    np.testing.assert_allclose(coef[..., 3].mean(), GAIN, atol=0.05)
    np.testing.assert_allclose(coef[..., 4].mean(), -PHI * GAIN, atol=0.05)
    np.testing.assert_allclose((model.e_std ** 2).numpy(), SIGMA_EPS ** 2, rtol=0.06)
    assert e.shape[0] == 30 * 599 and abs(float(e.std()) - 1) < 0.01


def test_generated_members_have_the_planted_spread_memory_and_forced_mean():
    """Members generated around one planted member (ResidualStepper.step, the diffusion trained
    briefly) against the planted truth: std about the forced signal sigma = SIGMA_EPS / sqrt(1 - PHI^2),
    lag-1 autocorrelation PHI, ensemble mean on the forced signal GAIN u, not on the conditioning run."""
    torch.manual_seed(0)
    z, month, u = _planted(6, 480, seed=2)
    model = _model()
    with torch.no_grad():
        e, prev, months = fit_mean_step(model, z, month, u)
    train_diffusion(model, e, prev, months, iterations=300, batch=64, lr=3e-3, seed=0)
    raw = calibrate_spread(model, prev, months, steps=4)
    assert (raw < 0.95).all()  # the few-step sampler under-disperses before calibration
    stepper = ResidualStepper.__new__(ResidualStepper)
    stepper.model, stepper.steps = model, 4
    stepper.md = type("Cpu", (), {"device": torch.device("cpu")})()
    zc, mem = _planted(1, 480, seed=3)[0][0], 64  # a new conditioning run with its own noise...
    zc = zc - GAIN * _planted(1, 480, seed=3)[2][:, :, None, None] + GAIN * u[:, :, None, None]  # ...on u's signal
    r = torch.zeros((mem, *model.latent_shape))
    out = []
    gens = [torch.Generator().manual_seed(i) for i in range(mem)]
    for t in range(1, 480):
        c0 = AroundConditioning(None, None, zc[t - 1].expand(mem, -1, -1, -1), None, u[t - 1].expand(mem, 1),
                                torch.full((mem,), int(month[t - 1])))
        c1 = AroundConditioning(None, None, zc[t].expand(mem, -1, -1, -1), None, u[t].expand(mem, 1),
                                torch.full((mem,), int(month[t])))
        r = stepper.step(r, c0, c1, gens)
        out.append(zc[t] + r)
    members = torch.stack(out[40:], dim=1).numpy()  # [mem, T, Z, h, w], spin-up dropped
    forced = (GAIN * u[41:480]).numpy()[None, :, :, None, None]
    anom = members - forced
    sigma = SIGMA_EPS / np.sqrt(1 - PHI ** 2)
    assert abs(anom.std() / sigma - 1) < 0.1, anom.std()
    lag1 = (anom[:, 1:] * anom[:, :-1]).mean() / (anom ** 2).mean()
    assert abs(lag1 - PHI) < 0.08, lag1
    cond_noise = (zc[41:480].numpy() - forced[0])
    mean_err = members.mean(0) - forced[0]
    # the ensemble mean follows the forced signal: its error is the sampling noise of 64 members,
    # far below the conditioning run's own noise (which a model ignoring z_c would keep)
    assert mean_err.std() < 0.25 * cond_noise.std()
    assert abs(np.corrcoef(mean_err.ravel(), cond_noise.ravel())[0, 1]) < 0.15
