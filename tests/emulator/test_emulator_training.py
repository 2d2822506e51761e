"""Model, checkpoints, resume and the training CLI on a tiny toy contract dataset (17 x 32)."""

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xarray as xr
import yaml
from safetensors.torch import load_file, save_file

from diagnostics.data.errors import InputError
from diagnostics.io.writer import file_sha256
from emulator import checkpoint
from emulator import config as config_mod
from emulator.cli.train import main as train_main
from emulator.data import parse_channels
from emulator.denoiser import LatentSkip
from emulator.model import DataSpec, MonthlyDiffusion
from emulator.stepper import DiffusionStepper
from tests.emulator.toy_data import write_toy_dataset
from emulator.train import Trainer, build_model, prepare_data
from emulator.validation import diffusion_offset, pair_ids

ROOT = Path(__file__).resolve().parents[2]

TINY = {
    "name": "tiny",
    "data": {"state": ["tas", "pr", "zg500", "ta850"], "train_period": "2001-01:2002-12",
             "valid_period": "2000-01:2000-12"},
    "model": {"latent_channels": 3, "latent_shape": [5, 8], "embed_dim": 8, "encoder_rank": 4,
              "decoder_rank": 4, "denoiser_rank": 4, "norm_hidden": 3, "sample_steps": 4, "ddim_steps": 2,
              "residual_noise": True, "step": {"type": "skip"}},
    "train": {"epochs": 2, "batch_size": 6, "lr": 3e-3, "warmup_steps": 2, "ema_decay": 0.9},
    "validation": {"members": 3, "max_samples": 4},
}


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "prepared", start="2000-01", end="2002-12")


def _cfg(toy_dir, flat: bool = False, **overrides):
    """TINY with ``overrides`` per section; ``flat``: its model section without ``step`` (old flat keys)."""
    data = json.loads(json.dumps(TINY))
    data["data"]["path"] = str(toy_dir)
    if flat:
        del data["model"]["step"]
    for section, values in overrides.items():
        data[section].update(values)
    return config_mod.from_dict(data)


@pytest.fixture(scope="module")
def prepared(toy_dir):
    return prepare_data(_cfg(toy_dir), toy_dir)


def test_configs_load_and_reject_unknown_keys(tmp_path):
    demo = config_mod.load(ROOT / "configs" / "demo.yaml")
    ref = config_mod.load(ROOT / "configs" / "md-1p5.yaml")
    assert len(parse_channels(ref.data.state)) == 37 and ref.model.latent_shape == [30, 60]
    assert len(parse_channels(demo.data.state)) == 6
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  rankk: 3\n")
    with pytest.raises(InputError, match=r"model\.rankk: unknown key"):
        config_mod.load(bad)
    with pytest.raises(InputError, match=r"model\.rankk: unknown key \(18 keys are allowed here, listed in docs"):
        config_mod.load(bad)  # not 18 keys on one line (issue 16)
    bad.write_text("train:\n  epoch: 3\n")
    with pytest.raises(InputError, match=r"train\.epoch: unknown key \(did you mean epochs\?\)"):
        config_mod.load(bad)
    bad.write_text("train:\n  epochs: many\n")
    with pytest.raises(InputError, match=r"train\.epochs: expected an integer"):
        config_mod.load(bad)
    with pytest.raises(InputError, match="ta123"):
        parse_channels(["ta123"])


def test_normalisation_stats_and_forcing_mask(prepared):
    spec, stats = prepared.spec, prepared.stats
    assert spec.labels == ["tas", "pr", "zg500", "ta850"]
    model = build_model(_cfg(Path(".")), prepared)
    # normalised training data: area-weighted mean 0 and std 1 per channel
    w = model.area_data.view(1, -1, 1).numpy()
    for c in range(len(spec.channels)):
        x = prepared.train.state[:, c].numpy()
        wb = np.broadcast_to(w, x.shape)
        assert abs(np.average(x, weights=wb)) < 1e-4
        assert np.sqrt(np.average(x ** 2, weights=wb)) == pytest.approx(1.0, rel=1e-4)
    # pr is square-rooted before z-scoring: denormalise inverts exactly
    phys = model.normaliser.denormalise_state(prepared.train.state[:3])
    again = model.normaliser.normalise_state(phys)
    np.testing.assert_allclose(again.numpy(), prepared.train.state[:3].numpy(), atol=1e-4)
    assert float(phys[:, 0].mean()) == pytest.approx(287.0, abs=15.0)  # tas in K
    f = prepared.train.forcing
    assert f.shape[1] == 3 and torch.isfinite(f).all()
    land = f[:, 2] == 0
    assert land.any() and (f[:, 0][land] == 0).all()  # tos NaN filled with 0 where the mask says land


def test_anomaly_normalisation_removes_the_monthly_climatology(toy_dir):
    cfg = _cfg(toy_dir, model={"normalisation": "anomaly"})
    data = prepare_data(cfg, toy_dir, with_valid=False)
    model = build_model(cfg, data)
    x, month = data.train.state, data.train.month
    # independent check: per point and calendar month the normalised anomalies average to zero
    for m in (1, 7):
        assert float(x[month == m].mean(dim=0).abs().max()) < 1e-4
    w = np.broadcast_to(model.area_data.view(1, -1, 1).numpy(), x[:, 0].shape)
    assert np.sqrt(np.average(x[:, 0].numpy() ** 2, weights=w)) == pytest.approx(1.0, rel=1e-4)
    phys = model.normaliser.denormalise_state(x[:5], month[:5])
    np.testing.assert_allclose(model.normaliser.normalise_state(phys, month[:5]).numpy(), x[:5].numpy(), atol=1e-4)
    with pytest.raises(ValueError, match="month"):
        model.normaliser.normalise_state(phys)
    assert "normaliser.state_clim" in model.state_dict()


def test_latent_statistics_are_saved_buffers(prepared):
    model = build_model(_cfg(Path(".")), prepared)
    names = dict(model.named_parameters())
    assert "latent_mean" not in names and "latent_std" not in names
    state = model.state_dict()
    assert {"latent_mean", "latent_std", "normaliser.state_mean", "statics"} <= set(state)
    batch = prepared.train.batch(torch.arange(4), torch.device("cpu"))
    model.train()
    model.training_loss(*batch, torch.Generator().manual_seed(0), {"kl_weight": 0.0, "v_weight": 1.0, "pop_weight": 0.0})
    assert int(model.latent_updates) == 1 and not torch.allclose(model.latent_std, torch.ones(3))


def test_tiny_model_overfits_a_handful_of_samples(prepared):
    torch.manual_seed(0)
    model = build_model(_cfg(Path(".")), prepared)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batch = prepared.train.batch(torch.arange(2), torch.device("cpu"))
    gen = torch.Generator().manual_seed(0)
    w = {"kl_weight": 1e-4, "v_weight": 0.5, "pop_weight": 0.0}
    history = []
    for _ in range(50):
        loss, terms = model.training_loss(*batch, gen, w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(terms["rec"])
    assert history[-1] < history[0] / 10, (history[0], history[-1])


def _trained(toy_dir, out, **kw):
    trainer = Trainer(_cfg(toy_dir), out, device="cpu", progress=False, verbose=False, **kw)
    trainer.run()
    return trainer


def test_resume_is_exact_and_checkpoint_round_trip(toy_dir, tmp_path):
    full = _trained(toy_dir, tmp_path / "full")
    _trained(toy_dir, tmp_path / "part", max_epochs=1)
    resumed = _trained(toy_dir, tmp_path / "part", resume=True)
    for name in ("model.safetensors", "ema.safetensors", "optimizer.safetensors"):
        a = load_file(tmp_path / "full" / "checkpoint" / name)
        b = load_file(tmp_path / "part" / "checkpoint" / name)
        assert set(a) == set(b)
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    assert resumed.epoch == 2 and len(resumed.history) == 2
    metrics = json.loads((tmp_path / "part" / "metrics.json").read_text())
    assert [r["epoch"] for r in metrics["epochs"]] == [1, 2]
    assert "crps" in metrics["epochs"][-1]["valid"] and "tas" in metrics["epochs"][-1]["valid"]["crps"]
    assert (tmp_path / "part" / "metrics.csv").read_text().startswith("epoch,step,lr,train_loss")

    # save -> load -> identical outputs (EMA weights), sampler deterministic for a fixed seed
    model = checkpoint.load_model(tmp_path / "full")
    ema = full.ema.model
    data = full.data.valid
    x = model.normaliser.denormalise_state(data.state[:2], data.month[:2])
    forcing = torch.from_numpy(np.stack([np.where(data.forcing[:2, 2].numpy() > 0, 290.0, np.nan),
                                         np.full((2, 17, 32), 0.1)], axis=1)).float()
    month = torch.tensor([3, 4])
    outs = []
    for m in (model, ema):
        st = DiffusionStepper(m)
        c0, c1 = st.condition(forcing, month), st.condition(forcing, month + 1)
        z = st.init(x, c0, torch.Generator().manual_seed(5))
        z1 = st.step(z, c0, c1, [torch.Generator().manual_seed(s) for s in (1, 2)])
        outs.append(st.decode(z1, c1))
    assert torch.equal(outs[0], outs[1]) and torch.isfinite(outs[0]).all()
    # member 2 alone gives the same trajectory as inside the batch
    st = DiffusionStepper(model)
    c0 = st.condition(forcing[1:], month[1:])
    z = st.init(x[1:], c0, [torch.Generator().manual_seed(7)])
    zb = st.init(x, st.condition(forcing, month), [torch.Generator().manual_seed(6), torch.Generator().manual_seed(7)])
    # same noise; only float round-off of batched arithmetic may differ
    torch.testing.assert_close(z[0], zb[1], atol=1e-5, rtol=1e-5)
    for sampler in ("ancestral", "ddim"):
        st = DiffusionStepper(model, sampler)
        a = st.step(z, c0, None, torch.Generator().manual_seed(3))
        b = st.step(z, c0, None, torch.Generator().manual_seed(3))
        assert torch.equal(a, b)


def test_tampered_or_mismatched_checkpoints_fail_cleanly(toy_dir, tmp_path):
    _trained(toy_dir, tmp_path / "run", max_epochs=1)
    ckpt = tmp_path / "run" / "checkpoint"
    # mismatched config on resume
    with pytest.raises(InputError, match="different configuration: model.embed_dim"):
        Trainer(_cfg(toy_dir, model={"embed_dim": 16}), tmp_path / "run", device="cpu", resume=True, progress=False)
    # mismatched channels / grid
    spec = checkpoint.spec_from_meta(checkpoint.read_meta(ckpt))
    other = DataSpec(spec.channels[:2], spec.forcing_names, spec.static_names, spec.lat, spec.lon)
    with pytest.raises(InputError, match="channels"):
        checkpoint.load_model(ckpt, spec=other)
    coarse = DataSpec(spec.channels, spec.forcing_names, spec.static_names, spec.lat[::2], spec.lon[::2])
    with pytest.raises(InputError, match="grid"):
        checkpoint.load_model(ckpt, spec=coarse)
    # one flipped byte in the weights
    weights = ckpt / "ema.safetensors"
    raw = bytearray(weights.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(InputError, match="SHA-256"):
        checkpoint.load_model(ckpt)
    # truncated file with a forged hash still fails cleanly in the reader
    weights.write_bytes(bytes(raw[:100]))
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["sha256"]["ema.safetensors"] = file_sha256(weights)
    (ckpt / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="cannot read weights"):
        checkpoint.load_model(ckpt)
    (ckpt / "meta.json").write_text("{not json")
    with pytest.raises(InputError, match="corrupt"):
        checkpoint.load_model(ckpt)
    with pytest.raises(InputError, match="no checkpoint"):
        checkpoint.load_model(tmp_path)


def test_checkpoint_from_before_the_diffusion_offset_loads_with_zero_offset(toy_dir, tmp_path):
    """Weights written before ``diffusion_offset`` existed load with a zero offset (their own
    behaviour); any other missing tensor is still refused."""
    trainer = _trained(toy_dir, tmp_path / "run", max_epochs=1)
    ckpt = tmp_path / "run" / "checkpoint"
    assert float(trainer.ema.model.diffusion_offset.abs().max()) > 0  # calibrated at the end of the run
    meta = json.loads((ckpt / "meta.json").read_text())
    for name in ("model.safetensors", "ema.safetensors"):
        tensors = load_file(ckpt / name)
        del tensors["diffusion_offset"]
        save_file(tensors, ckpt / name)
        meta["sha256"][name] = file_sha256(ckpt / name)
    (ckpt / "meta.json").write_text(json.dumps(meta))
    old = checkpoint.load_model(ckpt)
    assert float(old.diffusion_offset.abs().max()) == 0.0
    tensors = load_file(ckpt / "ema.safetensors")
    del tensors["skip_std"]
    save_file(tensors, ckpt / "ema.safetensors")
    meta["sha256"]["ema.safetensors"] = file_sha256(ckpt / "ema.safetensors")
    (ckpt / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="do not fit"):
        checkpoint.load_model(ckpt)


def test_calibration_survives_ema_updates_and_is_in_the_checkpoint(toy_dir, tmp_path):
    """Issue 12 point 6: calibration wrote into the EMA model's buffers and the next EMA.update
    copied the raw model's over them (offset 0.3 -> 0, scale 2 -> 1). Now it is a step after the
    last update, held by the EMA, and the saved checkpoint holds what an independent recomputation
    on the loaded model gives."""
    trainer = _trained(toy_dir, tmp_path / "run", max_epochs=1)
    ema, model = trainer.ema, trainer.model
    assert ema.held == {"diffusion_offset", "residual_power", "residual_scale"}
    ema.model.diffusion_offset.fill_(0.3)
    ema.model.residual_scale.fill_(2.0)
    power = ema.model.residual_power.clone()
    model.residual_power.mul_(5.0)  # the raw model's training estimate moves on
    ema.update(model)
    assert torch.all(ema.model.diffusion_offset == torch.tensor(0.3)) and torch.all(ema.model.residual_scale == 2.0)
    assert torch.equal(ema.model.residual_power, power)
    torch.testing.assert_close(ema.model.latent_mean, model.latent_mean)  # other buffers still copied

    # validation.every = 0 (no validation epochs): the last epoch is still calibrated
    cfg = _cfg(toy_dir, train={"epochs": 1}, validation={"every": 0})
    Trainer(cfg, tmp_path / "novalid", device="cpu", progress=False, verbose=False).run()
    saved = checkpoint.load_model(tmp_path / "novalid")
    raw = checkpoint.load_model(tmp_path / "novalid", weights="model")
    assert float(raw.diffusion_offset.abs().max()) == 0.0 and torch.all(raw.residual_scale == 1.0)
    data = prepare_data(cfg, toy_dir).valid
    ids = pair_ids(len(data), 0)
    again = diffusion_offset(saved, data, ids, 10, cfg.train.seed + 2, "ancestral", None, torch.device("cpu"))
    assert float(saved.diffusion_offset.abs().max()) > 0
    torch.testing.assert_close(saved.diffusion_offset, again)
    assert not torch.all(saved.residual_scale == 1.0)
    held = json.loads((tmp_path / "novalid" / "checkpoint" / "trainer.json").read_text())["ema_held"]
    assert held == ["diffusion_offset", "residual_power", "residual_scale"]


def test_cli_trains_and_refuses_to_overwrite(toy_dir, tmp_path, capsys):
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text(config_mod.to_yaml(_cfg(toy_dir, train={"epochs": 1})))
    out = tmp_path / "cli"
    assert train_main(["--config", str(cfg), "--out", str(out), "--device", "cpu", "--no-progress"]) == 0
    assert (out / "checkpoint" / "meta.json").exists() and (out / "metrics.csv").exists()
    assert train_main(["--config", str(cfg), "--out", str(out), "--device", "cpu", "--no-progress"]) == 2
    assert "--resume" in capsys.readouterr().err
    assert train_main(["--config", str(cfg), "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "x")]) == 2


def test_reference_config_builds_and_trains_one_step_on_cpu(capsys):
    cfg = config_mod.load(ROOT / "configs" / "md-1p5.yaml")
    from diagnostics.data.grid import equiangular

    grid = equiangular(1.5)
    spec = DataSpec(tuple(parse_channels(cfg.data.state)), ("tos", "siconc"), ("sftlf", "orog", "sdor", "slor"),
                    tuple(grid.lat), tuple(grid.lon))
    torch.manual_seed(0)
    model = MonthlyDiffusion(cfg.model, spec)
    n = model.n_parameters()
    print(f"md-1p5 parameters: {n:,}")
    assert 2.5e6 < n < 4.5e6
    b, (h, w) = 1, grid.shape
    x = torch.randn(b, 37, h, w)
    f = torch.randn(b, 3, h, w)
    month = torch.tensor([1])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    start = time.perf_counter()
    loss, terms = model.training_loss(x, x, f, f, month, month + 1, torch.Generator().manual_seed(0),
                                      {"kl_weight": 5e-3, "v_weight": 0.5, "pop_weight": 1e-2})
    loss.backward()
    opt.step()
    assert np.isfinite(terms["loss"]) and time.perf_counter() - start < 120
    st = DiffusionStepper(model)
    assert st.encode_normalised(x, st.condition_normalised(f, month)).shape == (1, 32, 30, 60)


def test_residual_noise_has_the_recorded_power_per_coefficient(prepared):
    model = build_model(_cfg(Path("."), model={"residual_noise": True}), prepared)
    batch = prepared.train.batch(torch.arange(6), torch.device("cpu"))
    model.train()
    model.training_loss(*batch, torch.Generator().manual_seed(0), {"kl_weight": 0.0, "v_weight": 1.0, "pop_weight": 0.0})
    power = model.residual_power.clone()
    assert int(model.residual_updates) == 1 and float(power.sum()) > 0
    noise = torch.randn(model.residual_noise_shape(4000), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fields = model.residual_sample(noise)
        measured = model.data_sht(fields).abs().pow(2).mean(dim=0)
    valid = torch.tril(torch.ones_like(power[0])).bool()  # real SHT: only m <= l exist
    big = valid.unsqueeze(0) & (power > 1e-3 * power.max())
    assert big.sum() > 20
    torch.testing.assert_close(measured[big], power[big], rtol=0.1, atol=0.0)
    # decode with a generator adds the residual; without one it is deterministic
    model.eval()
    z = torch.zeros(2, *model.latent_shape_full())
    f = torch.full((2, 2, 17, 32), 290.0)
    f[:, 1] = 0.1
    m = torch.tensor([1, 2])
    st = DiffusionStepper(model)
    cond = st.condition(f, m)
    a, b = st.decode(z, cond), st.decode(z, cond)
    c = st.decode(z, cond, [torch.Generator().manual_seed(3), torch.Generator().manual_seed(4)])
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_latent_skip_recovers_a_planted_persistence_and_shifts_the_step(prepared):
    """The skip path's least squares recovers a planted per-point lag-1 coefficient, and a
    step adds exactly ``latent_std * mu`` to what the diffusion alone samples."""

    gen = torch.Generator().manual_seed(0)
    planted = torch.linspace(0.2, 0.55, 3 * 5 * 8).view(3, 5, 8)  # the synthetic climate's range
    z_prev = torch.randn(4000, 3, 5, 8, generator=gen)
    z_next = planted * z_prev + (1 - planted ** 2).sqrt() * torch.randn(4000, 3, 5, 8, generator=gen)
    cond = torch.randn(4000, 2, 5, 8, generator=gen)  # irrelevant conditioning: W must stay near 0
    skip = LatentSkip(3, 2, (5, 8))
    opt = torch.optim.Adam(skip.parameters(), lr=0.05)
    for _ in range(200):
        loss = ((skip(z_prev, cond) - z_next) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    # least-squares coefficient standard error ~ sqrt((1 - a^2) / 4000) < 0.016
    assert float((skip.coef.detach() - planted).abs().max()) < 0.07
    with torch.no_grad():  # irrelevant conditioning: its terms (1x1 and spectral) stay near 0
        cond_part = skip(torch.zeros_like(z_prev[:200]), cond[:200])
    assert float(cond_part.abs().mean()) < 0.05

    model = build_model(_cfg(Path("."), model={"step": {"type": "skip"}}), prepared).eval()
    with torch.no_grad():
        model.skip.coef.fill_(0.5)
        model.latent_std.fill_(2.0)
    z = torch.randn(2, *model.latent_shape_full(), generator=gen)
    f = torch.full((2, 2, 17, 32), 290.0)
    f[:, 1] = 0.1
    m = torch.tensor([1, 7])
    st = DiffusionStepper(model)
    noise, cond = st.noise_for_step(2, torch.Generator().manual_seed(5)), st.condition(f, m)
    with_skip = st.step(z, cond, None, noise=noise)
    skip_module, model.skip = model.skip, None
    without = st.step(z, cond, None, noise=noise)
    model.skip = skip_module
    expected = 2.0 * 0.5 * model.standardise(z)  # mu in standardised units, W = 0 at init
    torch.testing.assert_close(with_skip - without, expected, rtol=1e-4, atol=1e-4)


def test_spread_scale_makes_the_ensemble_spread_match_its_error(prepared):
    """With the residual variance scaled per channel and latitude by :func:`spread_scale`, the
    same forecasts satisfy the calibration identity E[(mean - truth)^2] = (1 + 1/M) E[s^2]."""
    from emulator.validation import ensemble_forecast, pair_ids, spread_scale

    torch.manual_seed(0)
    model = build_model(_cfg(Path("."), model={"residual_noise": True}), prepared).eval()
    data, dev, members = prepared.valid, torch.device("cpu"), 4
    ids = pair_ids(len(data), 0)
    with torch.no_grad():  # an under-dispersed start: a residual much smaller than the error
        model.residual_power.fill_(1e-4)
        model.residual_power.copy_(torch.tril(model.residual_power))

    def ratio():
        fc, truth = ensemble_forecast(model, data, ids, members, 3, "ancestral", None, dev, normalised=True)
        w = model.area_data.numpy()[:, None]
        mse = ((fc.mean(axis=1) - truth) ** 2 * w).mean(axis=(0, 2, 3))
        var = (fc.var(axis=1, ddof=1) * w).mean(axis=(0, 2, 3))
        return mse / ((1 + 1 / members) * var)

    before = ratio()
    k = spread_scale(model, data, ids, members, 3, "ancestral", None, dev, max_scale=1e6)
    assert k.shape == (len(model.channels), 17) and bool((k > 1).all())
    model.residual_scale.copy_(k)
    after = ratio()
    assert float(np.abs(before - 1).min()) > 0.5, before
    np.testing.assert_allclose(after, 1.0, atol=0.2)


def test_forcing_anomalies_are_scaled_monthly_departures_and_keep_an_offset_uniform(toy_dir):
    """``model.forcing_anomaly``: the extra channels are (f - monthly clim) / one scalar per forcing,
    zero on average per point and calendar month over the training years, 0 over land, and a
    uniform +2 K SST offset moves them by exactly 2 / forcing_anom_std over the ocean."""
    cfg = _cfg(toy_dir, model={"forcing_anomaly": True})
    data = prepare_data(cfg, toy_dir, with_valid=False)
    model = build_model(cfg, data)
    f, month = data.train.forcing, data.train.month
    n = len(model.forcing_names)
    assert f.shape[1] == model.normaliser.n_forcing_channels == 2 * n + 1
    anom = f[:, n + 1:]
    for m in (1, 8):
        assert float(anom[month == m].mean(dim=0).abs().max()) < 1e-4
    land = f[:, n] == 0
    assert land.any() and (anom[:, 0][land] == 0).all()
    # independent: scaled departures of the physical SST from its own per-point monthly mean
    ds = xr.open_zarr(toy_dir / "dataset.zarr", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    tos = ds["tos"].sel(time=slice("2001-01", "2002-12")).values.astype(np.float64)
    dep = tos - np.stack([tos[month.numpy() == m].mean(axis=0) for m in range(1, 13)])[month.numpy() - 1]
    std = float(model.normaliser.forcing_anom_std[model.forcing_names.index("tos")])
    ocean = np.isfinite(tos)
    np.testing.assert_allclose(anom[:, model.forcing_names.index("tos")].numpy()[ocean], dep[ocean] / std, atol=1e-4)
    phys = torch.from_numpy(ds["tos"].values[:2].astype(np.float32))
    others = [torch.from_numpy(ds[name].values[:2].astype(np.float32)) for name in model.forcing_names]
    base = torch.stack(others, dim=1)
    warm = base.clone()
    warm[:, model.forcing_names.index("tos")] = phys + 2.0
    m2 = torch.tensor([1, 2])
    shift = model.normaliser.normalise_forcing(warm, m2) - model.normaliser.normalise_forcing(base, m2)
    k = n + 1 + model.forcing_names.index("tos")
    ocean2 = torch.isfinite(phys)
    torch.testing.assert_close(shift[:, k][ocean2], torch.full_like(shift[:, k][ocean2], 2.0 / std), rtol=1e-3, atol=1e-4)
    assert float(shift[:, k][~ocean2].abs().max()) == 0.0
    with pytest.raises(ValueError, match="month"):
        model.normaliser.normalise_forcing(base)


def _step_inputs_and_warmer_sst(model):
    """Two months of toy forcing (SST 290 K, sea ice 0.1), the same 3 K warmer, their calendar
    months and fixed step noise."""
    f = torch.full((2, 2, 17, 32), 290.0)
    f[:, 1] = 0.1
    warm = f.clone()
    warm[:, 0] += 3.0
    return f, warm, torch.tensor([1, 12]), DiffusionStepper(model).noise_for_step(2, torch.Generator().manual_seed(5))


def test_step_with_next_forcing_needs_and_uses_it(prepared):
    """``model.step.next_forcing``: the step is conditioned on the forcing of t+1 as well; calling
    it without that forcing is a clear error, and a different t+1 forcing changes the step."""
    model = build_model(_cfg(Path("."), model={"step": {"type": "skip", "next_forcing": True}}), prepared).eval()
    with torch.no_grad():  # make the skip path's conditioning terms non-zero so the t+1 forcing matters
        for p in model.skip.parameters():
            p.add_(0.1 * torch.randn_like(p))
    gen = torch.Generator().manual_seed(0)
    z = torch.randn(2, *model.latent_shape_full(), generator=gen)
    f, warm, m, noise = _step_inputs_and_warmer_sst(model)
    st = DiffusionStepper(model)
    c_t, c_t1, c_warm = st.condition(f, m), st.condition(f, m % 12 + 1), st.condition(warm, m % 12 + 1)
    with pytest.raises(ValueError, match="forcing of month t\\+1"):
        st.step(z, c_t, None, noise=noise)
    a = st.step(z, c_t, c_t1, noise=noise)
    b = st.step(z, c_t, c_warm, noise=noise)
    assert torch.isfinite(a).all() and float((a - b).abs().max()) > 1e-3
    torch.testing.assert_close(a, st.step(z, c_t, c_t1, noise=noise))


@pytest.mark.parametrize("denoiser_forcing", [True, False])
def test_denoiser_without_forcing_leaves_the_forcing_response_to_the_skip_path(prepared, denoiser_forcing):
    """``model.step.denoiser_forcing: false``: the denoiser sees season and statics only, so with the
    skip path zeroed a warmer SST does not change the step (with the forcing seen, it does); the
    config refuses it without the skip path."""
    overrides = {"step": {"type": "skip", "next_forcing": True, "denoiser_forcing": denoiser_forcing}}
    model = build_model(_cfg(Path("."), model=overrides), prepared).eval()
    n_cond = model.n_cond
    assert model.denoiser_cond_index.numel() == 2 * (n_cond if denoiser_forcing
                                                     else n_cond - model.normaliser.n_forcing_channels)
    with torch.no_grad():  # a denoiser whose output depends on its conditioning
        for p in model.denoiser.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    z = torch.randn(2, *model.latent_shape_full(), generator=torch.Generator().manual_seed(0))
    f, warm, m, noise = _step_inputs_and_warmer_sst(model)
    st = DiffusionStepper(model)
    a = st.step(z, st.condition(f, m), st.condition(f, m % 12 + 1), noise=noise)
    b = st.step(z, st.condition(warm, m), st.condition(warm, m % 12 + 1), noise=noise)
    assert (float((a - b).abs().max()) > 1e-3) == denoiser_forcing
    if not denoiser_forcing:
        with pytest.raises(InputError, match="model.step.denoiser_forcing: unknown key"):
            _cfg(Path("."), model={"step": {"type": "diffusion", "denoiser_forcing": False}})


def test_diffusion_offset_centres_the_sampled_residual(prepared):
    """``validation.diffusion_offset`` is the mean of the diffusion's residual draws; once set, the
    step's residuals over the skip mean, (standardise(z_{t+1}) - mu) / skip_std, average to zero
    on fresh draws (before: the bias that a constant velocity error puts into every sample)."""
    model = build_model(_cfg(Path("."), model={"step": {"type": "skip", "next_forcing": True}}), prepared).eval()
    with torch.no_grad():
        model.denoiser.head.bias.fill_(-0.5)  # a denoiser whose samples have a non-zero mean
    data, dev = prepared.valid, torch.device("cpu")
    ids = pair_ids(len(data), 0)
    x_t, _, f_t, f_t1, mo_t, mo_t1 = data.batch(torch.as_tensor(ids), dev)
    st = DiffusionStepper(model)
    c_t, c_t1 = st.condition_normalised(f_t, mo_t), st.condition_normalised(f_t1, mo_t1)

    def mean_residual(seed: int, draws: int = 16) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for d in range(draws):
                gens = [torch.Generator().manual_seed(seed * 1000 + 17 * i + d) for i in range(len(ids))]
                z = st.encode_normalised(x_t, c_t, torch.cat(
                    [torch.randn((1, *model.latent_shape_full()), generator=g) for g in gens]))
                z1 = st.step_normalised(z, c_t, c_t1, st.noise_for_step(len(ids), gens))
                mu = model.skip(model.standardise(z), model.step_conditioning(c_t.latent, c_t1.latent))
                out.append((model.standardise(z1) - mu) / model.skip_std.view(1, -1, 1, 1))
        return torch.cat(out).mean(dim=0)

    before = mean_residual(7)
    off = diffusion_offset(model, data, ids, 16, 3, "ancestral", None, dev)
    assert off.shape == tuple(model.latent_shape_full())
    assert float(before.abs().mean()) > 0.2
    assert float((off - before).abs().mean()) < 0.25 * float(before.abs().mean())  # same mean, other draws
    model.diffusion_offset.copy_(off)
    after = mean_residual(8)  # fresh draws
    assert float(after.abs().mean()) < 0.25 * float(before.abs().mean())


def test_old_flat_model_configs_load_in_the_typed_form(toy_dir, tmp_path):
    """Configs written before the typed variants (flat booleans, e.g. an old checkpoint's
    config.yaml) load as the same configuration; what the old checks refused is still refused
    with one line; the removed ``skip_monthly: true`` is refused with one line."""
    data = ROOT / "tests" / "emulator" / "data"
    for name in ("demo", "md-1p5"):
        old, new = config_mod.load(data / f"{name}-flat.yaml"), config_mod.load(ROOT / "configs" / f"{name}.yaml")
        assert config_mod.differences(old, new, ignore=()) == [], name
    demo = config_mod.load(ROOT / "configs" / "demo.yaml").model
    assert demo.step == config_mod.SkipStep(next_forcing=True, mixing=True, denoiser_previous=False,
                                            denoiser_forcing=False)
    assert demo.latent_skip and demo.step_next_forcing and demo.operator == config_mod.TensorOperator()
    flat = {"operator": "diagonal", "diagonal_mode": "lm", "latent_skip": False, "step_next_forcing": True}
    m = _cfg(toy_dir, flat=True, model=flat).model
    assert m.operator == config_mod.DiagonalOperator(mode="lm") and m.step == config_mod.DiffusionStep(next_forcing=True)
    for bad, message in (({"skip_mixing": True}, r"model\.skip_mixing: true needs model\.latent_skip: true"),
                         ({"latent_skip": True, "skip_monthly": True}, r"model\.skip_monthly: removed"),
                         ({"step": {"type": "sde"}}, r"model\.step\.type: expected 'diffusion' or 'skip' or 'latent_lim', got 'sde'"),
                         ({"operator": {"type": "tensor", "mode": "l"}}, r"model\.operator\.mode: unknown key"),
                         ({"normalisation": "minmax"}, r"model\.normalisation: expected 'zscore' or 'anomaly'"),
                         ({"latent_skip": True, "step": {"type": "skip"}}, r"old flat key next to model\.step")):
        with pytest.raises(InputError, match=message) as err:
            _cfg(toy_dir, flat="step" not in bad or "latent_skip" in bad, model=bad)
        assert "\n" not in str(err.value)
    assert _cfg(toy_dir, flat=True, model={"latent_skip": True, "skip_monthly": False}).model.step == config_mod.SkipStep()
    # the resolved config written next to a checkpoint is the typed form and reads back equal
    cfg = config_mod.load(ROOT / "configs" / "demo.yaml")
    (tmp_path / "resolved.yaml").write_text(config_mod.to_yaml(cfg))
    assert config_mod.differences(config_mod.load(tmp_path / "resolved.yaml"), cfg, ignore=()) == []
    assert "step:\n    type: skip" in config_mod.to_yaml(cfg)


def test_checkpoint_with_an_old_flat_config_loads_and_runs_the_same(toy_dir, tmp_path):
    """A checkpoint whose config.yaml is in the old flat form (as written before the typed
    variants) loads into the same model: same weights, same step."""
    _trained(toy_dir, tmp_path / "run", max_epochs=1)
    ckpt = tmp_path / "run" / "checkpoint"
    new = checkpoint.load_model(ckpt)
    flat = yaml.safe_load((ckpt / "config.yaml").read_text())
    model = flat["model"]
    step = model.pop("step")
    model.update({"operator": "tensor", "diagonal_mode": "l", "latent_skip": True, "skip_monthly": False,
                  "skip_mixing": step["mixing"], "step_next_forcing": step["next_forcing"],
                  "denoiser_previous": step["denoiser_previous"], "denoiser_forcing": step["denoiser_forcing"]})
    (ckpt / "config.yaml").write_text(yaml.safe_dump(flat, sort_keys=False))
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["sha256"]["config.yaml"] = file_sha256(ckpt / "config.yaml")
    (ckpt / "meta.json").write_text(json.dumps(meta))
    old = checkpoint.load_model(ckpt)
    assert old.cfg == new.cfg
    for (ka, a), (kb, b) in zip(old.state_dict().items(), new.state_dict().items()):
        assert ka == kb and torch.equal(a, b)
    st_old, st_new = DiffusionStepper(old), DiffusionStepper(new)
    f = torch.full((1, 2, 17, 32), 290.0)
    z = torch.zeros(1, *old.latent_shape_full())
    noise = st_new.noise_for_step(1, torch.Generator().manual_seed(0))
    a = st_old.step(z, st_old.condition(f, torch.tensor([1])), None, noise=noise)
    assert torch.equal(a, st_new.step(z, st_new.condition(f, torch.tensor([1])), None, noise=noise))
    # and resuming the run with the typed config accepts it as the same configuration
    Trainer(_cfg(toy_dir), tmp_path / "run", device="cpu", resume=True, progress=False, verbose=False)


def test_mixing_skip_persistence_maps_one_latent_channel_into_another(toy_dir):
    """``model.step.mixing``: mu = a z + M z + ..., M one channel-mixing matrix for all points."""
    skip = LatentSkip(2, 3, (5, 8), mixing=True)
    with torch.no_grad():
        skip.coef.fill_(0.5)
        skip.mix.weight.zero_()
        skip.mix.weight[1, 0] = 0.25  # channel 0 of month t feeds channel 1 of t+1
    z = torch.zeros(1, 2, 5, 8)
    z[:, 0] = torch.randn(5, 8, generator=torch.Generator().manual_seed(0))
    mu = skip(z, torch.zeros(1, 3, 5, 8))
    torch.testing.assert_close(mu[0, 0], 0.5 * z[0, 0])
    torch.testing.assert_close(mu[0, 1], 0.25 * z[0, 0])
    assert LatentSkip(2, 3, (5, 8)).mix is None
    with pytest.raises(InputError, match="model.step.mixing: unknown key"):
        _cfg(toy_dir, model={"step": {"type": "diffusion", "mixing": True}})


def test_denoiser_without_the_previous_latent_ignores_it_and_needs_the_skip_path(toy_dir, prepared):
    """``model.step.denoiser_previous: false``: the previous month reaches the step only through the
    linear skip path (the denoiser's output does not depend on it); without the skip path the
    option is refused, since nothing would then carry month t."""
    model = build_model(_cfg(Path("."), model={"step": {"type": "skip", "denoiser_previous": False}}), prepared).eval()
    gen = torch.Generator().manual_seed(0)
    z_s, cond = torch.randn(2, 3, 5, 8, generator=gen), torch.randn(2, model.n_cond, 5, 8, generator=gen)
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
        s = torch.tensor([0.3, 0.7])
        a = model.denoiser(z_s, torch.randn(2, 3, 5, 8, generator=gen), cond, s)
        b = model.denoiser(z_s, torch.randn(2, 3, 5, 8, generator=gen), cond, s)
    torch.testing.assert_close(a, b)
    with pytest.raises(InputError, match="model.step.denoiser_previous: unknown key"):
        _cfg(toy_dir, model={"step": {"type": "diffusion", "denoiser_previous": False}})
