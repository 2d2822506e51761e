"""``model.step.previous_noise``: noise augmentation of the previous latent the denoiser sees
(diffusion forcing / GenCast-style noise conditioning; docs/emulator.md, "Noise-augmented
previous latent (session 8)")."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from diagnostics.data.errors import InputError
from emulator import checkpoint
from emulator import config as config_mod
from emulator.stepper import DiffusionStepper
from emulator.train import Trainer, build_model, prepare_data
from tests.emulator.test_emulator_training import TINY
from tests.emulator.toy_data import write_toy_dataset

ROOT = Path(__file__).resolve().parents[2]
AUG = {"type": "skip", "previous_noise": {"max": 1.0, "sample": 0.3}}


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy") / "prepared", start="2000-01", end="2002-12")


def _cfg(toy_dir, step: dict | None = None, **train):
    data = json.loads(json.dumps(TINY))
    data["data"]["path"] = str(toy_dir)
    if step is not None:
        data["model"]["step"] = step
    data["train"].update(train)
    return config_mod.from_dict(data)


@pytest.fixture(scope="module")
def prepared(toy_dir):
    return prepare_data(_cfg(toy_dir), toy_dir)


def _loss(model, prepared, seed: int = 3):
    batch = prepared.train.batch(torch.arange(4), torch.device("cpu"))
    return model.training_loss(*batch, torch.Generator().manual_seed(seed),
                               {"kl_weight": 1e-3, "v_weight": 1.0, "pop_weight": 1e-2})


def test_off_is_the_model_of_before_bit_for_bit(toy_dir, prepared):
    """No ``previous_noise`` (and an explicit null): same parameters, same loss, same step draws."""
    torch.manual_seed(0)
    plain = build_model(_cfg(toy_dir), prepared)
    torch.manual_seed(0)
    null = build_model(_cfg(toy_dir, {"type": "skip", "previous_noise": None}), prepared)
    assert plain.denoiser.previous_level is None and list(plain.state_dict()) == list(null.state_dict())
    for a, b in zip(plain.state_dict().values(), null.state_dict().values()):
        assert torch.equal(a, b)
    assert torch.equal(_loss(plain, prepared)[0], _loss(null, prepared)[0])
    st = DiffusionStepper(plain.eval())
    assert st.noise_for_step(2, torch.Generator().manual_seed(0)).shape[0] == plain.cfg.sample_steps


def test_on_perturbs_the_denoisers_previous_latent_and_tells_it_the_level(toy_dir, prepared, monkeypatch):
    """Training: the denoiser gets ``z_prev + sigma eps`` with sigma in [0, max] per pair and that
    sigma; the skip path the clean latent. Sampling: the configured level, from one extra field."""
    torch.manual_seed(0)
    plain = build_model(_cfg(toy_dir), prepared)
    torch.manual_seed(0)
    aug = build_model(_cfg(toy_dir, AUG), prepared)
    seen: dict[str, list] = {"plain": [], "aug": []}
    for name, model in (("plain", plain), ("aug", aug)):
        real = model.denoiser.forward

        def spy(z_s, z_prev, cond, s, sigma=None, _real=real, _name=name):
            seen[_name].append((z_prev.detach().clone(), None if sigma is None else sigma.clone()))
            return _real(z_s, z_prev, cond, s, sigma)

        monkeypatch.setattr(model.denoiser, "forward", spy)
        skip_in = []
        monkeypatch.setattr(model.skip, "forward", lambda z, c, _f=model.skip.forward: (skip_in.append(z), _f(z, c))[1])
        _loss(model, prepared)
        seen[name].append(skip_in[0])
    (prev_plain, sig_plain), skip_plain = seen["plain"][0], seen["plain"][1]
    (prev_aug, sig_aug), skip_aug = seen["aug"][0], seen["aug"][1]
    assert sig_plain is None and sig_aug.shape == (4,)
    assert bool(((sig_aug >= 0) & (sig_aug <= 1.0)).all()) and float(sig_aug.std()) > 0
    torch.testing.assert_close(skip_aug, skip_plain)  # the skip path sees the clean latent
    torch.testing.assert_close(skip_plain, prev_plain)  # which is what the plain denoiser sees
    diff = (prev_aug - prev_plain).flatten(1)
    assert float(diff.abs().max()) > 0.01
    # the perturbation's std per pair is its sigma (white noise of 120 values: within 35 %)
    ratio = diff.std(dim=1) / sig_aug
    assert bool(((ratio > 0.65) & (ratio < 1.35)).all()), ratio
    # the noise level changes the denoiser's output (through the embedding, once it is trained)
    with torch.no_grad():
        for p in aug.denoiser.parameters():  # the zero-initialised heads and norms as if trained
            p.add_(0.1 * torch.randn_like(p))
        z, c, s = torch.randn(2, 3, 5, 8), torch.randn(2, len(aug.denoiser_cond_index), 5, 8), torch.tensor([.3, .6])
        a = aug.denoiser(z, prev_plain[:2], c, s, torch.zeros(2))
        b = aug.denoiser(z, prev_plain[:2], c, s, torch.full((2,), 0.8))
    assert float((a - b).abs().max()) > 1e-4
    torch.testing.assert_close(a, aug.denoiser(z, prev_plain[:2], c, s))  # None: a clean z_prev, level 0
    # sampling: one extra noise field, the configured level reaches the denoiser
    st = DiffusionStepper(aug.eval())
    noise = st.noise_for_step(2, torch.Generator().manual_seed(0))
    assert noise.shape[0] == aug.cfg.sample_steps + 1
    seen["aug"].clear()
    f = torch.full((2, 2, 17, 32), 290.0)
    cond = st.condition(f, torch.tensor([1, 2]))
    latent = torch.randn(2, *aug.latent_shape_full())
    out = st.step(latent, cond, None, noise=noise)
    assert torch.isfinite(out).all() and len(seen["aug"]) == aug.cfg.sample_steps
    prev, sigma = seen["aug"][0]
    torch.testing.assert_close(sigma, torch.full((2,), 0.3))
    torch.testing.assert_close(prev, aug.standardise(latent) + 0.3 * noise[-1])


@pytest.mark.parametrize("step, match", [
    ({"type": "skip", "denoiser_previous": False, "previous_noise": {"max": 1.0}}, "needs model.step.denoiser_previous"),
    ({"type": "skip", "previous_noise": {"max": 0.0}}, "previous_noise.max: must be > 0"),
    ({"type": "skip", "previous_noise": {"max": 1.0, "sample": 1.5}}, r"previous_noise.sample: must be in \[0"),
    ({"type": "skip", "previous_noise": {"maxx": 1.0}}, "previous_noise.maxx: unknown key"),
    ({"type": "skip", "previous_noise": 0.5}, "previous_noise: expected a mapping"),
    ({"type": "latent_lim", "previous_noise": {"max": 1.0}}, "latent_lim step samples no diffusion"),
])
def test_config_is_strict(toy_dir, step, match):
    with pytest.raises(InputError, match=match):
        _cfg(toy_dir, step)


def test_shipped_configs_leave_it_off_and_the_proposal_has_it():
    for name in ("demo.yaml", "md-1p5.yaml", "demo-latent-lim.yaml"):
        assert config_mod.load(ROOT / "configs" / name).model.step.previous_noise is None
    pn = config_mod.load(ROOT / "configs" / "demo-noiseaug.yaml").model.step.previous_noise
    assert pn is not None and 0 < pn.sample <= pn.max


def test_a_checkpoint_without_the_key_loads_and_steps_as_before(toy_dir, tmp_path):
    """A checkpoint written before the option (no ``previous_noise`` in its config.yaml) loads
    with it off and the same weights; an augmented checkpoint round-trips its option."""
    Trainer(_cfg(toy_dir, epochs=1), tmp_path / "old", device="cpu", progress=False, verbose=False).run()
    ckpt = tmp_path / "old" / "checkpoint"
    import yaml
    from diagnostics.io.writer import file_sha256

    raw = yaml.safe_load((ckpt / "config.yaml").read_text())
    del raw["model"]["step"]["previous_noise"]
    (ckpt / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["sha256"]["config.yaml"] = file_sha256(ckpt / "config.yaml")
    (ckpt / "meta.json").write_text(json.dumps(meta))
    old = checkpoint.load_model(ckpt)
    assert old.previous_noise is None and old.denoiser.previous_level is None
    Trainer(_cfg(toy_dir, AUG, epochs=1), tmp_path / "aug", device="cpu", progress=False, verbose=False).run()
    aug = checkpoint.load_model(tmp_path / "aug" / "checkpoint")
    assert aug.previous_noise == config_mod.PreviousNoise(max=1.0, sample=0.3)
    assert any(k.startswith("denoiser.previous_level.") for k in aug.state_dict())
