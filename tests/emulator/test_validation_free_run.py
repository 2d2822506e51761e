"""Free-run validation during training and checkpoint selection on it (issue 13 point 4)."""

import json

import numpy as np
import pytest
import torch

from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Month, Period
from diagnostics.io.open import open_dataset
from emulator import checkpoint, validation
from emulator import config as config_mod
from emulator.data import load_split, open_prepared_dataset
from emulator.rollout import RolloutConfig, run_rollout
from emulator.train import SELECTED_DIR, Trainer, build_model, channel_units, prepare_data
from emulator.validation import (FREE_RUN_CHANNEL_STATS, free_run, free_run_data, free_run_score,
                                 free_run_statistics, free_run_validation, select_best)
from tests.emulator.test_emulator_training import _cfg
from tests.emulator.toy_data import write_toy_dataset

FREE = {"free_run_every": 1, "free_run_months": 30, "free_run_members": 2}


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return write_toy_dataset(tmp_path_factory.mktemp("toy-fr") / "prepared", start="2000-01", end="2002-12")


@pytest.fixture(scope="module")
def prepared(toy_dir):
    return prepare_data(_cfg(toy_dir, validation=FREE), toy_dir)


def _model(toy_dir, prepared):
    torch.manual_seed(0)
    return build_model(_cfg(toy_dir, validation=FREE), prepared).eval()


def test_free_run_validation_returns_finite_statistics_with_the_right_keys(toy_dir, prepared):
    cfg = _cfg(toy_dir, validation=FREE)
    data = free_run_data([prepared.valid, prepared.train], prepared.nino34, 30)
    assert len(data) == 30 and str(Month.from_index(int(data.index[0]))) == "2000-01"
    assert np.all(np.diff(data.index) == 1) and np.isfinite(data.nino34[1:-1]).all()
    model = _model(toy_dir, prepared)
    units = [channel_units(lab) for lab in model.spec.labels]
    out = free_run_validation(model, data, cfg.validation, 0, torch.device("cpu"), units)
    assert set(out["free_run"]) == set(FREE_RUN_CHANNEL_STATS)
    for stat in FREE_RUN_CHANNEL_STATS:
        assert list(out["free_run"][stat]) == list(model.spec.labels)
        assert np.isfinite(list(out["free_run"][stat].values())).all(), stat
    assert out["free_run_modes"] == {}  # 2 winters < MIN_WINTERS: no NAO from them
    assert np.isfinite(out["free_run_score"]) and out["free_run_score"] > 0
    assert out["free_run_months"] == 30 and out["free_run_start"] == "2000-01"


class _Forcing:
    """Physical forcing of the toy months, as emulator-run's ForcingReader gives it."""

    calendar = "proleptic_gregorian"

    def __init__(self, forcing: np.ndarray):
        self.forcing = forcing

    def __len__(self) -> int:
        return len(self.forcing)

    def month(self, k: int) -> np.ndarray:
        return self.forcing[k]


def test_free_run_is_what_emulator_run_writes(toy_dir, prepared, tmp_path):
    """The validation's rollout equals run_rollout (the code behind emulator-run) member for member."""
    model = _model(toy_dir, prepared)
    data = free_run_data([prepared.valid, prepared.train], None, 5)
    ours = free_run(model, data, 2, 7, "ancestral", None, torch.device("cpu"))
    split = load_split(open_prepared_dataset(toy_dir), model.spec, Period.parse("2000-01:2000-05"), str(toy_dir))
    cfg = RolloutConfig(members=2, start=Month(2000, 1), end=Month(2000, 5), seed=7)
    run_rollout(model, _Forcing(split.forcing), split.state[0], cfg, tmp_path / "run", {"test": 1}, progress=False)
    ds = open_dataset(str(tmp_path / "run"))  # the project's AI-MIP reader, as md-diagnose reads the run
    for c, (name, level) in enumerate(model.spec.channels):
        da = ds[name] if level is None else ds[name].sel(plev=level * 100.0)
        written = da.transpose("member", "time", "lat", "lon").values
        np.testing.assert_allclose(ours[:, :, c], written, rtol=1e-5, atol=1e-5 * np.abs(written).max(),
                                   err_msg=model.spec.labels[c])


def _planted(n_years: int = 12, seed: int = 0):
    """A reference [T, 2, H, W] (psl, zg500) with an AR(1) anomaly, a trend and a seasonal cycle."""
    rng = np.random.default_rng(seed)
    lat, lon = np.linspace(-90, 90, 17), np.arange(32) * 360.0 / 32
    t = 12 * n_years
    noise = np.zeros((t, 2, 17, 32))
    for k in range(1, t):
        noise[k] = 0.6 * noise[k - 1] + rng.standard_normal((2, 17, 32))
    season = np.cos(2 * np.pi * np.arange(t) / 12)[:, None, None, None]
    ref = np.array([101300.0, 5600.0])[None, :, None, None] + 100.0 * (noise + season) + 0.5 * np.arange(t)[:, None, None, None]
    index = np.arange(t) + Month(1980, 1).index
    nino = np.convolve(rng.standard_normal(t + 2), np.ones(3) / 3, mode="valid")
    return ref.astype(np.float32), index, lat, lon, nino


def test_statistics_of_a_run_that_is_the_reference_are_perfect_and_a_damped_one_is_not():
    ref, index, lat, lon, nino = _planted()
    labels, units = ["psl", "zg500"], ["Pa", "m"]
    same = free_run_statistics(np.stack([ref, ref]), ref, index, labels, units, lat, lon, nino)
    fr = same["free_run"]
    for label in labels:
        assert fr["lag1_ratio"][label] == pytest.approx(1.0, abs=1e-6)
        assert fr["std_ratio"][label] == pytest.approx(1.0, abs=1e-6)
        assert fr["nino34_pattern_corr"][label] == pytest.approx(1.0, abs=1e-6)
        assert fr["nino34_amplitude_ratio"][label] == pytest.approx(1.0, abs=1e-6)
        assert fr["drift"][label] == pytest.approx(0.0, abs=1e-3)
    assert set(same["modes"]) == {"nao_psl", "nao_z500"}  # 11 complete winters >= MIN_WINTERS
    for mode in same["modes"].values():
        assert mode["pattern_corr"] == pytest.approx(1.0, abs=1e-6)
        assert mode["pc_std_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert free_run_score(same, len(index)) == pytest.approx(0.0, abs=1e-4)
    # anomalies halved (climatology kept), plus a drift of 2 reference stds of the global mean per run
    clim = np.stack([ref[index % 12 == m].mean(0) for m in range(12)])[index % 12]
    scale = same["drift_scale"]["psl"]
    ramp = np.linspace(0, 2 * scale, len(index))[:, None, None, None]
    damped = (clim + 0.5 * (ref - clim) + ramp).astype(np.float32)
    worse = free_run_statistics(damped[None], ref, index, labels, units, lat, lon, nino)
    assert worse["free_run"]["std_ratio"]["psl"] == pytest.approx(0.5, rel=0.05)
    assert worse["free_run"]["drift"]["psl"] > 0
    assert free_run_score(worse, len(index)) > 0.1


def test_select_best_picks_the_planted_epoch():
    history = [{"epoch": e, "free_run_score": s} for e, s in zip(range(1, 6), (0.9, 0.4, np.inf, 0.25, 0.25))]
    history.insert(2, {"epoch": 99})  # an epoch without a free run
    assert select_best(history) == {"epoch": 4, "score": 0.25}  # the first of equal scores
    assert select_best([{"epoch": 1}]) is None


def test_training_keeps_the_best_free_run_checkpoint_beside_the_last(toy_dir, tmp_path, monkeypatch):
    planted = {1: 0.7, 2: 0.2, 3: 0.5}
    calls = []

    def fake(model, data, cfg, seed, device, units):
        calls.append(len(data))
        epoch = len(calls)
        return {"free_run": {}, "free_run_modes": {}, "free_run_score": planted[epoch],
                "free_run_months": len(data), "free_run_start": "2000-01"}

    monkeypatch.setattr("emulator.train.free_run_validation", fake)
    cfg = _cfg(toy_dir, train={"epochs": 3}, validation={**FREE, "select": "free_run", "every": 3})
    Trainer(cfg, tmp_path / "run", device="cpu", progress=False, verbose=False).run()
    assert calls == [30, 30, 30]
    selection = json.loads((tmp_path / "run" / "selection.json").read_text())
    assert selection["epoch"] == 2 and selection["score"] == 0.2 and selection["last_epoch"] == 3
    assert selection["scores"] == {"1": 0.7, "2": 0.2, "3": 0.5}
    sel = json.loads((tmp_path / "run" / SELECTED_DIR / "trainer.json").read_text())
    last = json.loads((tmp_path / "run" / checkpoint.CHECKPOINT_DIR / "trainer.json").read_text())
    assert sel["epoch"] == 2 and last["epoch"] == 3 and last["selection"]["epoch"] == 2
    checkpoint.load_model(tmp_path / "run" / SELECTED_DIR)  # a complete checkpoint emulator-run can load
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())["epochs"]
    assert [r["free_run_score"] for r in metrics] == [0.7, 0.2, 0.5]


@pytest.mark.parametrize("validation, message", [
    ({"select": "free_run"}, "validation.select: free_run needs validation.free_run_every"),
    ({"free_run_every": -1}, "validation.free_run_every: must be >= 0"),
    ({"free_run_every": 2, "free_run_months": 12}, "validation.free_run_months"),
    ({"free_run_every": 2, "free_run_members": 0}, "validation.free_run_members"),
    ({"select": "best"}, "validation.select"),
    ({"free_run_evry": 2}, "free_run_evry"),
])
def test_free_run_config_is_strict(toy_dir, validation, message):
    with pytest.raises(InputError, match=message.replace(".", r"\.")):
        _cfg(toy_dir, validation=validation)
