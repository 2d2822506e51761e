"""The latent linear inverse model (``model.step.type: latent_lim``): planted truth, and the
trainer's calibration and checkpoint with it."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from emulator import checkpoint
from emulator import config as config_mod
from emulator.latent_lim import LatentLinearModel
from emulator.latent_lim_fit import fit_latent_lim
from emulator.lim.operator import leading_eofs
from emulator.stepper import DiffusionStepper
from emulator.train import Trainer
from tests.emulator.test_emulator_training import TINY, toy_dir  # noqa: F401 (fixture)

LATENT, DATA, F, K = (2, 4, 6), (5, 8), 2, 3


def _planted(t_len: int = 6000, seed: int = 0):
    """A latent record from x_{t+1} = A x_t + b g_{t+1} + c_m + N(0, Q) in a known K-dim subspace
    of y = sqrt(w) zn, plus white noise of std ``perp`` outside it; g = global mean of forcing-anomaly 0."""
    rng = np.random.default_rng(seed)
    z, h, w = LATENT
    area_l = torch.linspace(0.5, 1.5, h)
    area_l = area_l / area_l.mean()
    area_d = torch.ones(DATA[0])
    e_true, _ = np.linalg.qr(rng.normal(size=(z * h * w, K)))
    a_true = np.array([[0.8, 0.1, 0.0], [-0.1, 0.6, 0.0], [0.0, 0.0, 0.3]])
    b_true = np.array([0.5, 0.0, -0.3])
    q_true = np.array([[1.0, 0.3, 0.0], [0.3, 0.5, 0.0], [0.0, 0.0, 0.2]])
    c_true = 0.2 * rng.normal(size=(12, K))
    month = (np.arange(t_len) % 12) + 1
    g = np.cumsum(rng.normal(size=t_len)) * 0.05  # a slow forcing (global-mean anomaly)
    forcing = np.zeros((t_len, 2 * F + 1, *DATA), np.float32)
    forcing[:, -F] = g[:, None, None] + 0.1 * rng.normal(size=(t_len, *DATA))
    forcing[:, -1] = rng.normal(size=(t_len, *DATA))
    g_obs = forcing[:, -F].mean(axis=(1, 2))
    chol = np.linalg.cholesky(q_true)
    x = np.zeros((t_len, K))
    for t in range(1, t_len):
        x[t] = a_true @ x[t - 1] + b_true * g_obs[t] + c_true[month[t] - 1] + chol @ rng.normal(size=K)
    perp_std = 0.05
    y = x @ e_true.T
    noise = rng.normal(size=y.shape) * perp_std
    y = y + noise - (noise @ e_true) @ e_true.T
    sqrt_w = area_l.sqrt().numpy().reshape(1, 1, h, 1)
    zn = torch.as_tensor(y.reshape(t_len, z, h, w) / sqrt_w, dtype=torch.float32)
    truth = dict(e=e_true, A=a_true, b=b_true, Q=q_true, c=c_true, g=g_obs, perp=perp_std)
    return zn, torch.as_tensor(forcing), torch.as_tensor(month), area_l, area_d, truth


def test_latent_lim_recovers_a_planted_linear_model():
    zn, forcing, month, area_l, area_d, truth = _planted()
    lim = LatentLinearModel(LATENT, DATA, F, K, 1, area_l, area_d, noise="constant")
    fit = fit_latent_lim(lim, zn, forcing, month)
    assert fit["explained"] > 0.98  # the planted subspace holds all but the small perp noise
    e = lim.eofs.double().numpy()
    rot = e.T @ truth["e"]  # fitted basis -> planted basis (orthogonal when the spans agree)
    np.testing.assert_allclose(rot @ rot.T, np.eye(K), atol=0.02)
    # the step's mean (xi = 0) against the planted mean, for held-out states
    rng = np.random.default_rng(5)
    x_prev = rng.normal(size=(8, K))
    y_prev = x_prev @ truth["e"].T
    sqrt_w = area_l.sqrt().numpy().reshape(1, 1, -1, 1)
    z_prev = torch.as_tensor(y_prev.reshape(8, *LATENT) / sqrt_w, dtype=torch.float32)
    f_next, m_next = forcing[100:108], month[100:108]
    got = lim.step(z_prev, f_next, m_next, torch.zeros(8, *LATENT))
    x_got = lim.reduce(got).double().numpy() @ truth["e"]
    x_want = (x_prev @ truth["A"].T + np.outer(truth["g"][100:108], truth["b"])
              + truth["c"][m_next.numpy() - 1])
    np.testing.assert_allclose(x_got, x_want, atol=0.08)
    # the noise: covariance of (sample - mean) in the planted basis = Q; outside it, std ~ perp
    n = 8000
    xi = torch.randn(n, *LATENT, generator=torch.Generator().manual_seed(1))
    zp = z_prev[:1].expand(n, -1, -1, -1)
    draws = lim.step(zp, f_next[:1].expand(n, -1, -1, -1), m_next[:1].expand(n), xi) - got[:1]
    xd = lim.reduce(draws).double().numpy() @ truth["e"]
    q_fit = rot.T @ lim.chol[0].double().numpy() @ lim.chol[0].double().numpy().T @ rot
    np.testing.assert_allclose(q_fit, truth["Q"], atol=0.06)  # estimation error ~ sqrt(2 / T) Q
    np.testing.assert_allclose(np.cov(xd.T), q_fit, atol=0.05)  # sampling error ~ sqrt(2 / n) Q
    perp = lim.reduce(draws).double().numpy() - xd @ truth["e"].T
    assert abs(perp.std() - truth["perp"]) < 0.2 * truth["perp"]


def test_unfitted_latent_lim_refuses_to_step():
    lim = LatentLinearModel(LATENT, DATA, F, K, 1, torch.ones(4), torch.ones(5))
    with pytest.raises(RuntimeError, match="not fitted"):
        lim.step(torch.zeros(1, *LATENT), torch.zeros(1, 2 * F + 1, *DATA), torch.ones(1), torch.zeros(1, *LATENT))


def _latent_lim_cfg(toy_dir, mean: str = "lim"):
    data = json.loads(json.dumps(TINY))
    data["data"]["path"] = str(toy_dir)
    data["model"].update({"forcing_anomaly": True, "normalisation": "anomaly",
                          "step": {"type": "latent_lim", "next_forcing": True, "modes": 4, "forcing_modes": 1,
                                   "noise": "constant", "mean": mean}})
    data["train"]["epochs"] = 1
    return config_mod.from_dict(data)


def test_latent_lim_config_needs_forcing_anomalies(toy_dir):  # noqa: F811
    cfg = _latent_lim_cfg(toy_dir)
    assert cfg.model.latent_lim and cfg.model.latent_skip
    assert config_mod.from_dict(json.loads(json.dumps(config_mod.to_dict(cfg)))).model.step == cfg.model.step
    from emulator.model import MonthlyDiffusion
    from emulator.train import prepare_data

    cfg.model.forcing_anomaly = False
    data = prepare_data(cfg, toy_dir, with_valid=False)
    with pytest.raises(ValueError, match="forcing_anomaly"):
        MonthlyDiffusion(cfg.model, data.spec)


@pytest.mark.parametrize("mean", ["lim", "skip"])
def test_trainer_fits_the_latent_lim_and_the_checkpoint_steps_with_it(toy_dir, tmp_path, mean):  # noqa: F811
    cfg = _latent_lim_cfg(toy_dir, mean)
    trainer = Trainer(cfg, tmp_path / "run", device="cpu", progress=False, verbose=False)
    history = trainer.run()
    assert bool(trainer.ema.model.latent_linear.fitted)
    assert all(np.isfinite(v) for v in history[-1]["valid"]["crps"].values())
    model = checkpoint.load_model(tmp_path / "run" / "checkpoint")
    saved = model.latent_linear
    assert bool(saved.fitted) and torch.equal(saved.A, trainer.ema.model.latent_linear.A)
    # the checkpoint's step is the latent LIM: with zero noise, E (A x + B u + c_m) / sqrt(w)
    stepper = DiffusionStepper(model)
    batch = trainer.data.valid.batch(torch.arange(2), torch.device("cpu"))
    x_t, _, f_t, f_t1, mo_t, mo_t1 = batch
    c_t, c_t1 = stepper.condition_normalised(f_t, mo_t), stepper.condition_normalised(f_t1, mo_t1)
    z = stepper.encode_normalised(x_t, c_t, None)
    noise = torch.zeros(1, 2, *model.latent_shape_full())
    got = model.standardise(stepper.step_normalised(z, c_t, c_t1, noise))
    if mean == "skip":  # the skip path's mean (zero noise adds nothing)
        want = model.skip(model.standardise(z), model.step_conditioning(c_t.latent, c_t1.latent))
    else:
        x = saved.reduce(model.standardise(z)) @ saved.eofs
        u = saved.predictors(f_t1)
        x1 = x @ saved.A.T + u @ saved.B.T + saved.c[mo_t1.long() - 1]
        want = (x1 @ saved.eofs.T).view_as(got) / saved.sqrt_w
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)
    # with noise: the draws differ from the mean by the fitted Gaussian (finite, not zero)
    noisy = model.standardise(stepper.step_normalised(z, c_t, c_t1, torch.randn(1, 2, *model.latent_shape_full())))
    assert torch.isfinite(noisy).all() and float((noisy - got).detach().std()) > 0


def test_anomaly_basis_finds_the_internal_mode_under_a_cycle_and_a_forced_trend():
    """basis_samples: with a large seasonal cycle and a forced trend in other directions, the
    EOF1 of the raw latents is the cycle, that of the anomalies the planted internal mode."""
    from emulator.latent_lim_fit import basis_samples

    rng = np.random.default_rng(3)
    t_len, p = 600, 40
    month = (np.arange(t_len) % 12) + 1
    q, _ = np.linalg.qr(rng.normal(size=(p, 3)))
    cycle_dir, forced_dir, internal_dir = q.T
    g = np.linspace(-1.0, 1.0, t_len) + 0.1 * rng.normal(size=t_len)  # the forcing predictor
    y = (5.0 * np.cos(2 * np.pi * month / 12)[:, None] * cycle_dir + 3.0 * g[:, None] * forced_dir
         + rng.normal(size=t_len)[:, None] * internal_dir + 0.05 * rng.normal(size=(t_len, p)))
    u = ((g - g.mean()) / g.std())[:, None]
    sets = basis_samples(y, u, month)
    assert set(sets) == {"latents", "anomalies"}  # no skip residuals given
    e_raw, _ = leading_eofs(sets["latents"], 1)
    e_anom, _ = leading_eofs(sets["anomalies"], 1)
    assert abs(e_raw[:, 0] @ cycle_dir) > 0.99
    assert abs(e_anom[:, 0] @ internal_dir) > 0.99
    anom = sets["anomalies"]
    for m in range(1, 13):  # no calendar-month mean left, and nothing linear in the forcing
        np.testing.assert_allclose(anom[month == m].mean(axis=0), 0.0, atol=0.05)
    np.testing.assert_allclose(u[:, 0] @ anom / t_len, 0.0, atol=1e-10)
    resid = rng.normal(size=(t_len - 1, p))
    np.testing.assert_allclose(basis_samples(y, u, month, resid)["residuals"].mean(axis=0), 0.0, atol=1e-12)


def test_fit_on_the_anomaly_basis_recovers_the_planted_model_and_residuals_need_the_skip_path():
    zn, forcing, month, area_l, area_d, truth = _planted(t_len=3000)
    lim = LatentLinearModel(LATENT, DATA, F, K, 1, area_l, area_d, noise="constant")
    fit_latent_lim(lim, zn, forcing, month, basis="anomalies")
    rot = lim.eofs.double().numpy().T @ truth["e"]
    np.testing.assert_allclose(rot @ rot.T, np.eye(K), atol=0.02)  # the same span as the planted one
    with pytest.raises(ValueError, match="skip path"):
        fit_latent_lim(lim, zn, forcing, month, basis="residuals")
    with pytest.raises(ValueError, match="basis must be one of"):
        fit_latent_lim(lim, zn, forcing, month, basis="pcs")


def test_calibrate_checkpoint_refits_a_trained_skip_run_as_latent_lim(toy_dir, tmp_path):  # noqa: F811
    """emulator.train.calibrate_checkpoint: the networks of a trained skip run, the latent_lim
    Gaussian fitted anew (as a latent_lim training run's calibration fits it); other keys refused."""
    from diagnostics.data.errors import InputError
    from emulator.train import calibrate_checkpoint

    cfg_ll = _latent_lim_cfg(toy_dir, "skip")
    raw = config_mod.to_dict(cfg_ll)
    raw["model"]["step"] = {"type": "skip", "next_forcing": True}
    Trainer(config_mod.from_dict(raw), tmp_path / "skip", device="cpu", progress=False, verbose=False).run()
    raw_ll = config_mod.to_dict(cfg_ll)
    raw_ll["model"]["step"].update({"basis": "residuals", "max_residual_scale": 1.0})
    cfg_ll = config_mod.from_dict(raw_ll)
    calibrate_checkpoint(tmp_path / "skip", cfg_ll, tmp_path / "ll", toy_dir, device="cpu")
    src = checkpoint.load_model(tmp_path / "skip" / "checkpoint")
    got = checkpoint.load_model(tmp_path / "ll" / "checkpoint")
    assert got.cfg.step.type == "latent_lim" and bool(got.latent_linear.fitted)
    for name, value in src.state_dict().items():  # the trained networks and statistics are the source's
        if not name.startswith("residual_scale"):
            torch.testing.assert_close(got.state_dict()[name], value, msg=name)
    assert float(got.residual_scale.max()) <= 1.0 + 1e-6  # recalibrated with the cap of the new step
    # the fit equals fitting the same latents directly (one home for the fit)
    from emulator.train import prepare_data
    from emulator.validation import latent_fit_inputs

    data = prepare_data(cfg_ll, toy_dir)
    zn, pred = latent_fit_inputs(got, data.train, torch.device("cpu"))
    direct = LatentLinearModel(got.latent_shape_full(), data.spec.shape, len(data.spec.forcing_names), 4, 1,
                               got.area_latent, got.area_data, noise="constant")
    fit_latent_lim(direct, zn, data.train.forcing, data.train.month, pred, basis="residuals", skip_prediction=pred)
    torch.testing.assert_close(direct.chol, got.latent_linear.chol, atol=1e-5, rtol=1e-4)
    # a latent_lim run re-calibrated with other modes, or back to skip: its own fitted step is not carried over
    raw_3 = config_mod.to_dict(cfg_ll)
    raw_3["model"]["step"]["modes"] = 3
    calibrate_checkpoint(tmp_path / "ll", config_mod.from_dict(raw_3), tmp_path / "ll3", toy_dir, device="cpu")
    assert checkpoint.load_model(tmp_path / "ll3" / "checkpoint").latent_linear.eofs.shape[1] == 3
    calibrate_checkpoint(tmp_path / "ll", config_mod.from_dict(raw), tmp_path / "skip2", toy_dir, device="cpu")
    raw_bad = config_mod.to_dict(cfg_ll)
    raw_bad["train"]["epochs"] = 7
    with pytest.raises(InputError, match="beyond model.step"):
        calibrate_checkpoint(tmp_path / "skip", config_mod.from_dict(raw_bad), tmp_path / "bad", toy_dir)


def test_seasonal_gain_recovers_a_planted_month_dependent_persistence():
    """fit_seasonal_gain on x_{t+1} = A_m x_t + eps (a stationary mean of zero, December's
    noise larger on mode 0: a new winter's NAO): G_m = A_m, and its leave-one-out residuals
    have the planted noise variance (slightly above: LOO)."""
    from emulator.latent_lim_fit import fit_seasonal_gain

    rng = np.random.default_rng(7)
    k, years = 3, 1600
    month = (np.arange(12 * years) % 12) + 1
    a = np.zeros((12, k, k))
    a[0] = np.diag([1.2, 0.0, 0.0])  # Jan from Dec: a winter mode that grows (the NAO's 0.8 -> 1.2)
    a[1] = np.diag([0.8, 0.5, 0.0])
    a[6] = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.7], [0.0, 0.0, 0.0]])
    x = np.zeros((12 * years, k))
    noise_std = np.full((12, k), 0.5)
    noise_std[11, 0] = 1.0  # December's shock is mostly mode 0
    for t in range(1, len(x)):
        x[t] = a[month[t] - 1] @ x[t - 1] + noise_std[month[t] - 1] * rng.normal(size=k)
    gain, centre, r_loo = fit_seasonal_gain(x[:-1], x[1:], month[1:], modes=k)
    np.testing.assert_allclose(gain, a, atol=0.1)  # 1600 pairs a month: error std 0.5 / (0.5 sqrt(1600)) = 0.025, 108 entries
    np.testing.assert_allclose(centre, 0.0, atol=0.1)
    want = (noise_std ** 2)[month[1:] - 1].mean()
    assert abs(r_loo.var() - want) / want < 0.03  # sampling error 0.6 %; the LOO inflation 1 + J / n is 0.2 %
    # J = 1: only the direction of the previous month's leading shock carries a gain (Jan: mode 0)
    gain1, _, _ = fit_seasonal_gain(x[:-1], x[1:], month[1:], modes=1)
    np.testing.assert_allclose(gain1[0], a[0], atol=0.1)


def test_seasonal_correction_is_the_formula_and_absent_without_seasonal_modes():
    """LatentLinearModel.seasonal_correction = E G_m (E^T sqrt(w) zn - x̄_m) / sqrt(w), per sample's
    target month; zero (and no buffers) with seasonal_modes 0."""
    area_l = torch.linspace(0.5, 1.5, LATENT[1])
    plain = LatentLinearModel(LATENT, DATA, F, K, 1, area_l, torch.ones(DATA[0]))
    assert "gain" not in dict(plain.named_buffers())
    zn = torch.randn(2, *LATENT, generator=torch.Generator().manual_seed(0))
    assert torch.equal(plain.seasonal_correction(zn, torch.tensor([1, 7])), torch.zeros_like(zn))
    lim = LatentLinearModel(LATENT, DATA, F, K, 1, area_l, torch.ones(DATA[0]), seasonal_modes=2)
    rng = np.random.default_rng(2)
    e, _ = np.linalg.qr(rng.normal(size=(int(np.prod(LATENT)), K)))
    lim.eofs.copy_(torch.as_tensor(e, dtype=torch.float32))
    lim.gain.copy_(torch.as_tensor(rng.normal(size=(12, K, K)), dtype=torch.float32))
    lim.gain_centre.copy_(torch.as_tensor(rng.normal(size=(12, K)), dtype=torch.float32))
    months = torch.tensor([1, 7])
    got = lim.seasonal_correction(zn, months).double().numpy()
    sqrt_w = area_l.sqrt().double().numpy().reshape(1, 1, -1, 1)
    for b, m in enumerate(months.tolist()):
        x = e.T @ (zn[b].double().numpy() * sqrt_w[0]).ravel() - lim.gain_centre[m - 1].double().numpy()
        want = (e @ (lim.gain[m - 1].double().numpy() @ x)).reshape(LATENT) / sqrt_w[0]
        np.testing.assert_allclose(got[b], want, rtol=1e-4, atol=1e-5)
