"""Residual ensembles (emulator/residual): the fitted step against the closed form of a planted
AR(1) ensemble, generated members against the planted truth, and the commands' refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import xarray as xr

from diagnostics.data.timeaxis import Month
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


def test_mixing_mean_step_recovers_a_planted_channel_mixing_var1():
    """Members n(t+1) = A n(t) + eps with A mixing the 2 latent channels of each point (what a
    decoder that mixes channels makes of a field's memory): with ``mixing`` the fitted r_t and
    z_c'(t) blocks are A (closed form r_{t+1} = A r_t + A n_c(t) - n_c(t+1) + eps) and z_c'(t+1)'s is -1;
    the diagonal step cannot hold the cross terms and leaves more innovation variance."""
    a = np.array([[0.5, 0.35], [-0.25, 0.6]])
    rng = np.random.default_rng(4)
    members, months, shape = 5, 500, (2, 3, 4)
    n = np.zeros((members, months, *shape))
    for t in range(1, months):
        n[:, t] = np.einsum("ij,mjhw->mihw", a, n[:, t - 1]) + rng.standard_normal((members, *shape))
    z, month, u = torch.tensor(n, dtype=torch.float32), np.arange(months) % 12 + 1, torch.zeros((months, 1))
    mixing = ResidualModel(shape, (3, 4), forcing_modes=1, hidden=16, depth=3, mixing=True)
    for buf in (mixing.z_std, mixing.r_std, mixing.u_std):
        buf.fill_(1.0)
    diagonal = _model()
    with torch.no_grad():
        fit_mean_step(mixing, z, month, u, chunk=77)  # time chunks that do not divide the months
        fit_mean_step(diagonal, z, month, u)
    coef = mixing.coef.numpy()  # [Z_out, h, w, P]: r_t (2), z_c'(t+1), z_c'(t) (2), u, u, 1
    np.testing.assert_allclose(coef[..., 0:2].mean(axis=(1, 2)), a, atol=0.03)
    np.testing.assert_allclose(coef[..., 3:5].mean(axis=(1, 2)), a, atol=0.03)
    np.testing.assert_allclose(coef[..., 2].mean(), -1.0, atol=0.02)
    np.testing.assert_allclose(mixing.own_terms()["a"].mean(dim=(1, 2)).numpy(), np.diag(a), atol=0.03)
    np.testing.assert_allclose((mixing.e_std ** 2).numpy(), 1.0, rtol=0.06)
    assert (diagonal.e_std ** 2 > 1.05).all()  # the cross terms it drops become innovation (1.09-1.20 here)


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


# ---------------------------------------------------------------------------- the commands, on toy data
TINY_MD = {
    "name": "tiny-around-encoder",
    "data": {"state": ["tas", "pr", "zg500"], "train_period": "2000-07:2001-12", "valid_period": "2000-01:2000-06"},
    "model": {"latent_channels": 2, "latent_shape": [5, 8], "embed_dim": 8, "encoder_rank": 4, "decoder_rank": 4,
              "denoiser_rank": 4, "norm_hidden": 3, "sample_steps": 2, "ddim_steps": 2, "residual_noise": True},
    "train": {"epochs": 1, "batch_size": 9, "lr": 3e-3, "warmup_steps": 1, "ema_decay": 0.5},
    "validation": {"every": 0, "members": 2},
}


def _members(n: int, **kw) -> xr.Dataset:
    """A toy ensemble: the state of make_toy_dataset(seed=s) per member, the forcing of seed 0."""
    base = make_toy_dataset(**kw)
    state = [v for v in ("tas", "pr", "zg500")]
    parts = [make_toy_dataset(seed=s, **kw)[state] for s in range(n)]
    ens = xr.concat(parts, dim="member").assign_coords(member=np.arange(1, n + 1))
    return xr.merge([ens, base.drop_vars(state)])


@pytest.fixture(scope="module")
def around(tmp_path_factory):
    from emulator import config as config_mod
    from emulator.train import Trainer

    root = tmp_path_factory.mktemp("around")
    ens = write_prepared(_members(3, start="2000-01", end="2001-12"), root / "members", {"fingerprint": "toy-ens"})
    single = write_prepared(make_toy_dataset(start="2000-01", end="2001-12"), root / "single", {"fingerprint": "t0"})
    cfg = json.loads(json.dumps(TINY_MD))
    cfg["data"]["path"] = str(single)
    Trainer(config_mod.from_dict(cfg), root / "md", device="cpu", progress=False).run()
    (root / "around.yaml").write_text(
        f"type: around\nname: toy-around\nencoder: {root / 'md'}\ndata: {{train_period: '2000-01:2001-12'}}\n"
        "model: {forcing_modes: 2, hidden: 8, depth: 2, steps: 2}\ntrain: {iterations: 20, batch_size: 16}\n")
    assert train_main(["--config", str(root / "around.yaml"), "--data", str(ens), "--out", str(root / "fit")]) == 0
    return {"root": root, "members": ens, "fit": root / "fit"}


def _run(around, out, *extra) -> int:
    return run_main(["--checkpoint", str(around["fit"]), "--around", str(around["members"]), "--experiment",
                     "historical", "--members", "3", "--start", "2000-01", "--end", "2000-08", "--out", str(out),
                     "--device", "cpu", "--no-progress", *extra])


def test_decoder_noise_scale_is_what_the_decoder_misses_not_the_forecast_calibration(around):
    """The fitted per-channel scale of the decoder noise: std of x_n - D_n(E(x)) of the training
    members (recomputed here in numpy) over the std of the emulator's residual sample; scaling the
    emulator's forecast calibration (residual_scale) by 4 halves it (the target is the decoder's miss)."""
    from diagnostics.data.grid import area_weights
    from diagnostics.data.timeaxis import Period
    from emulator import checkpoint as md_checkpoint
    from emulator.data import load_split, open_prepared_dataset
    from emulator.residual import checkpoint as around_ckpt
    from emulator.residual.train import decoder_noise_scale, encode_states
    from emulator.stepper import DiffusionStepper

    fitted = np.array(around_ckpt.read_meta(around["fit"])["fit"]["decoder_noise_scale"])
    md = DiffusionStepper(md_checkpoint.load_model(around["root"] / "md", weights="ema"))
    ds = open_prepared_dataset(str(around["members"]))
    split = load_split(ds.sel(member=3), md.spec, Period.parse("2000-01:2001-12"), str(around["members"]))
    z = encode_states(md, split.state, split.forcing, split.month)
    scale = decoder_noise_scale(md, split.state, split.forcing, split.month, z).numpy()
    np.testing.assert_allclose(scale, fitted, rtol=1e-3)  # the fit used the last member, seed 0
    # numpy: the decoder's miss (normalised units) about its time mean, area-weighted
    with torch.no_grad():
        mo = torch.as_tensor(split.month)
        cond = md.condition(torch.from_numpy(split.forcing), mo)
        x_n = md.model.normaliser.normalise_state(torch.from_numpy(split.state), cond.month).numpy()
        miss = x_n - md.decode_normalised(z, cond).float().numpy()
        gen = torch.Generator().manual_seed(0)
        sample = md.model.residual_sample(torch.randn(md.model.residual_noise_shape(64), generator=gen)).numpy()
    w = area_weights(np.asarray(md.spec.lat)).values[:, None]
    var_miss = (w * miss.astype(np.float64).var(axis=0)).mean(axis=(1, 2))
    var_own = (w * (sample.astype(np.float64) ** 2).mean(axis=0)).mean(axis=(1, 2))
    np.testing.assert_allclose(scale, np.sqrt(var_miss / var_own), rtol=1e-4)
    with torch.no_grad():
        md.model.residual_scale.mul_(4.0)
    np.testing.assert_allclose(decoder_noise_scale(md, split.state, split.forcing, split.month, z).numpy(),
                               scale / 2, rtol=1e-5)


def test_decoder_noise_choice_is_checked_and_applied_only_when_asked(around, monkeypatch):
    """``model.decoder_noise``: a bad value is a one-line InputError naming the key; "reconstruction"
    hands the fitted scale to the stepper, the default "emulator" does not."""
    import argparse
    import dataclasses

    from diagnostics.data.errors import InputError
    from emulator.residual import checkpoint as around_ckpt, config as around_config
    from emulator.residual.cli import prepare_run
    from emulator.rollout import RolloutConfig

    with pytest.raises(InputError, match="model.decoder_noise: expected one of emulator, reconstruction"):
        around_config.from_dict({"type": "around", "model": {"decoder_noise": "white"}})
    args = argparse.Namespace(checkpoint=str(around["fit"]), around=str(around["members"]), around_member=2,
                              forcing=None, device="cpu", steps=None)
    cfg = RolloutConfig(members=2, start=Month(2000, 1), end=Month(2000, 3), model_name="MD-around").check()
    assert prepare_run(args, cfg)[0].noise_scale is None
    fitted = around_ckpt.read_meta(around["fit"])["fit"]["decoder_noise_scale"]
    original = around_ckpt.config_of

    def reconstruction(meta):
        c = original(meta)
        return dataclasses.replace(c, model=dataclasses.replace(c.model, decoder_noise="reconstruction"))

    monkeypatch.setattr(around_ckpt, "config_of", reconstruction)
    np.testing.assert_allclose(prepare_run(args, cfg)[0].noise_scale.numpy(), fitted)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_around_run_writes_members_around_the_conditioning_run_and_resumes(around, tmp_path):
    from diagnostics.io.open import open_dataset
    from emulator.residual import checkpoint as around_ckpt
    from emulator.residual.cli import prepare_run
    from emulator.rollout import RolloutConfig, run_rollout
    import argparse

    out = tmp_path / "full"
    assert _run(around, out, "--around-member", "2") == 0
    ds = open_dataset(out)
    assert ds.attrs["source_id"] == "MD-around" and dict(ds["tas"].sizes)["member"] == 3
    # the files say the run is conditioned, and the reader keeps it: md-diagnose's conditioning group reads it
    assert ds.attrs["conditioning"].startswith("around a conditioning run")
    cond = xr.open_zarr(around["members"] / "dataset.zarr").sel(member=2)["tas"].isel(time=slice(0, 8)).values
    tas = ds["tas"].values
    np.testing.assert_allclose(tas[:, 0], np.broadcast_to(cond[0], tas[:, 0].shape), rtol=1e-6)  # start: x_c
    assert np.isfinite(tas).all() and not np.array_equal(tas[0, 5], tas[1, 5])
    assert (ds["pr"].values >= 0).all()  # the difference is decoded in the transformed (sqrt) space
    # members stay near the conditioning run (residuals of the size of the members' differences)
    spread = float(np.std(tas[:, 1:] - cond[None, 1:]))
    assert 0 < spread < 10 * float(np.std(cond[1:] - cond[1:].mean(0)) + 1.0)
    # resume: a run stopped after 4 months and resumed writes the same files
    args = argparse.Namespace(checkpoint=str(around["fit"]), around=str(around["members"]), around_member=2,
                              forcing=None, device="cpu", steps=None)
    cfg = RolloutConfig(members=3, start=Month(2000, 1), end=Month(2000, 8), model_name="MD-around").check()
    stepper, forcing, initial, identity = prepare_run(args, cfg)
    state = run_rollout(stepper, forcing, initial, cfg, tmp_path / "resumed", identity, progress=False, stop_after=4)
    assert state.completed == 4
    assert run_rollout(stepper, forcing, initial, cfg, tmp_path / "resumed", identity, resume=True,
                       progress=False).status == "complete"
    for p in out.glob("*.nc"):
        a, b = xr.open_dataset(p), xr.open_dataset(tmp_path / "resumed" / p.name)
        var = p.name.split("_")[0]
        np.testing.assert_array_equal(a[var].values, b[var].values, err_msg=p.name)
    assert around_ckpt.read_meta(around["fit"])["fit"]["pairs"] == 6


def test_around_bad_inputs_fail_with_one_line(around, tmp_path, capsys):
    # a conditioning run on another grid
    coarse = write_prepared(_members(2, start="2000-01", end="2001-12", resolution=22.5), tmp_path / "coarse",
                            {"fingerprint": "toy-coarse"})
    assert _run(around, tmp_path / "r1", "--around", str(coarse)) == 2
    assert "conditioning run (--around) is on" in _error(capsys)
    # a conditioning run without a variable the model needs
    noz = write_prepared(_members(2, start="2000-01", end="2001-12").drop_vars("zg500"), tmp_path / "noz",
                         {"fingerprint": "toy-noz"})
    assert _run(around, tmp_path / "r2", "--around", str(noz)) == 2
    assert "missing variable 'zg500'" in _error(capsys)
    # a conditioning run that does not cover the run's months
    short = write_prepared(_members(2, start="2000-01", end="2000-05"), tmp_path / "short", {"fingerprint": "toy-s"})
    assert _run(around, tmp_path / "r3", "--around", str(short), "--forcing", str(around["members"])) == 2
    assert "conditioning run (--around) is missing 3 month(s) (2000-06..2000-08)" in _error(capsys)
    # a member it does not have, --around without a residual checkpoint, and the other way round
    assert _run(around, tmp_path / "r4", "--around-member", "9") == 2
    assert "--around-member 9: the conditioning run has members [1, 2, 3]" in _error(capsys)
    md = around["root"] / "md"
    assert run_main(["--checkpoint", str(md), "--around", str(around["members"]), "--experiment", "historical",
                     "--out", str(tmp_path / "r5")]) == 2
    assert "--around needs a residual-ensemble checkpoint" in _error(capsys)
    assert run_main(["--checkpoint", str(around["fit"]), "--experiment", "historical",
                     "--out", str(tmp_path / "r6")]) == 2
    assert "runs with --around PATH" in _error(capsys)
    # options a residual ensemble would silently ignore
    assert _run(around, tmp_path / "r7", "--sampler", "ddim") == 2
    assert "--sampler does not apply to a residual-ensemble checkpoint" in _error(capsys)
    assert run_main(["--checkpoint", str(md), "--around-member", "1", "--experiment", "historical",
                     "--out", str(tmp_path / "r8")]) == 2
    assert "--around-member applies only with --around PATH" in _error(capsys)
    # a training set without members
    assert train_main(["--config", str(around["root"] / "around.yaml"), "--data", str(around["root"] / "single"),
                       "--out", str(tmp_path / "f1")]) == 2
    assert "needs a member dim with at least 2 members" in _error(capsys)
