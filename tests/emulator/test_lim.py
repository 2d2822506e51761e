"""The linear inverse model baseline (emulator/lim): fit, checkpoint, emulator-run, resume, errors.

Independent references: planted linear-Gaussian data with a known operator and noise
covariance, whose least-squares standard errors are computed here from the textbook formulas
(cov vec W = Q kron (Z^T Z)^-1; var of a sample covariance element (Q_ii Q_jj + Q_ij^2) / n);
the prepared toy dataset itself (initial state, forcing); the project's AI-MIP reader; an
uninterrupted run for resume.
"""

from __future__ import annotations

import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from diagnostics.data.grid import area_weights
from diagnostics.data.timeaxis import Month
from diagnostics.io.open import open_dataset
from diagnostics.io.writer import write_prepared
from emulator import checkpoint as md_checkpoint
from emulator.cli.run import main as run_main
from emulator.cli.train import main as train_main
from emulator.data import Split, compute_stats
from emulator.forcing import ForcingReader, initial_state
from emulator.lim import checkpoint
from emulator.lim.model import fit
from emulator.lim.operator import fit_operator
from emulator.lim.rollout import run_lim
from emulator.model import DataSpec
from emulator.rollout import RolloutConfig
from tests.emulator.toy_data import make_toy_dataset, write_toy_dataset

CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)
TOY_LIM = """type: lim
name: toy-lim
data:
  state: [tas, pr, zg500, ta850]
  forcings: [tos, siconc]
  statics: []
  train_period: "2000-01:2002-12"
  valid_period: "2003-01:2003-06"
  test_period: "2003-07:2003-12"
model: {modes: 4, forcing_modes: 2, residual_modes: 10, noise: seasonal}
"""


def _planted(t: int, seed: int = 0, k: int = 4, m: int = 2):
    """x_{t+1} = A x_t + B u_{t+1} + c_m + eps with a non-normal A, full Q and an AR(1) forcing."""
    rng = np.random.default_rng(seed)
    a = np.array([[0.7, 0.2, 0.0, 0.0], [-0.1, 0.5, 0.1, 0.0], [0.0, 0.0, 0.3, 0.3], [0.1, 0.0, -0.2, 0.6]])[:k, :k]
    b = rng.normal(0.0, 0.5, (k, m))
    c = rng.normal(0.0, 0.3, (12, k))
    g = rng.normal(0.0, 1.0, (k, k))
    q = g @ g.T / k + 0.2 * np.eye(k)
    chol = np.linalg.cholesky(q)
    month = np.arange(t) % 12 + 1
    u = np.zeros((t, m))
    x = np.zeros((t, k))
    for i in range(1, t):
        u[i] = 0.8 * u[i - 1] + rng.standard_normal(m)
        x[i] = a @ x[i - 1] + b @ u[i] + c[month[i] - 1] + chol @ rng.standard_normal(k)
    return x, u, month, a, b, q


def test_fit_recovers_planted_operator_within_sampling_error():
    x, u, month, a, b, q = _planted(4000)
    pairs = np.arange(len(x) - 1)
    op = fit_operator(x, u, month, pairs, noise="constant", ridge=0.0)
    # standard errors of the least-squares coefficients, from the planted Q (not the fit's)
    onehot = np.eye(12)[month[pairs + 1] - 1]
    z = np.concatenate([x[pairs], u[pairs + 1], onehot], axis=1)
    inv = np.diag(np.linalg.inv(z.T @ z))
    k = a.shape[0]
    se_a = np.sqrt(np.outer(np.diag(q), inv[:k]))
    se_b = np.sqrt(np.outer(np.diag(q), inv[k:k + 2]))
    assert np.abs(op.A - a).max() > 0  # a fit, not the answer
    assert np.all(np.abs(op.A - a) < 4.5 * se_a), np.abs(op.A - a) / se_a
    assert np.all(np.abs(op.B - b) < 4.5 * se_b), np.abs(op.B - b) / se_b
    n = len(pairs)
    se_q = np.sqrt((np.outer(np.diag(q), np.diag(q)) + q ** 2) / n)
    q_fit = op.covariance[0]
    assert np.allclose(op.covariance, q_fit)  # constant noise: one Q for every month
    assert np.all(np.abs(q_fit - q) < 4.5 * se_q), np.abs(q_fit - q) / se_q
    np.testing.assert_allclose(q_fit, q_fit.T)
    # sampling error shrinks like 1/sqrt(n): a 16x shorter record is about 4x worse
    short = fit_operator(x[:250], u[:250], month[:250], np.arange(249), noise="constant", ridge=0.0)
    assert np.abs(short.A - a).mean() > 2.0 * np.abs(op.A - a).mean()


def test_seasonal_noise_follows_the_planted_winter_variance():
    rng = np.random.default_rng(1)
    t, k = 3600, 2
    month = np.arange(t) % 12 + 1
    amp = np.where(np.isin(month, [12, 1, 2]), 2.0, 0.5)  # NAO-like: large only in DJF
    x = np.zeros((t, k))
    for i in range(1, t):
        x[i] = 0.5 * x[i - 1] + amp[i] * rng.standard_normal(k)
    op = fit_operator(x, np.zeros((t, 0)), month, np.arange(t - 1), noise="seasonal")
    var = np.diagonal(op.covariance, axis1=1, axis2=2).mean(axis=1)  # [12]
    assert abs(var[0] - 4.0) < 0.4  # January pools Dec, Jan, Feb: all winter
    assert abs(var[2] - (4.0 + 0.25 + 0.25) / 3) < 0.2  # March pools Feb, Mar, Apr
    assert abs(var[6] - 0.25) < 0.03  # July: summer only


def test_cyclostationary_fit_recovers_a_winter_long_mode():
    """Mode 0 keeps one amplitude through each Dec-Jan-Feb (as md-synth's NAO) and is zero
    otherwise; mode 1 is a stationary AR(1). A stationary A cannot hold the winter; A_m can."""
    rng = np.random.default_rng(4)
    years, k = 300, 2
    month = np.tile(np.arange(1, 13), years)
    x = np.zeros((month.size, k))
    for i in range(1, month.size):
        m = month[i]
        x[i, 0] = rng.standard_normal() if m == 12 else (x[i - 1, 0] if m in (1, 2) else 0.0)
        x[i, 1] = 0.6 * x[i - 1, 1] + 0.8 * rng.standard_normal()
    pairs = np.arange(month.size - 1)
    stationary = fit_operator(x, np.zeros((month.size, 0)), month, pairs, noise="seasonal")
    assert np.all(stationary.dA == 0) and abs(stationary.A[0, 0] - 2 / 3) < 0.05  # 2 of 3 winter pairs persist
    op = fit_operator(x, np.zeros((month.size, 0)), month, pairs, noise="seasonal", seasonal_ridge=0.01)
    a_m = op.A + op.dA  # [12, K, K]
    assert np.all(np.abs(a_m[[0, 1], 0, 0] - 1.0) < 0.05)  # Jan, Feb carry the winter's amplitude
    assert abs(a_m[2, 0, 0]) < 0.05  # March drops it (Apr..Dec: x_t of mode 0 is 0, nothing to fit)
    assert np.all(np.abs(a_m[:, 1, 1] - 0.6) < 0.1)  # the stationary mode stays stationary
    assert op.spectral_radius() < 1.0


def test_fit_on_a_grid_recovers_the_planted_operator():
    """Planted LIM in physical space on a 9 x 16 grid (two channels, patterns P): the fitted
    operator mapped back to physical anomalies, D^-1 E A E^T D, maps P to P A (basis-free)."""
    t, k = 1200, 3
    x, u, month, a, _, _ = _planted(t, seed=2, k=k, m=1)
    lat, lon = np.linspace(-90, 90, 9), np.arange(16) * 22.5
    spec = DataSpec((("tas", None), ("psl", None)), ("tos",), (), tuple(lat), tuple(lon))
    rng = np.random.default_rng(3)
    patterns = rng.normal(0.0, 1.0, (k, 2, 9, 16)) * np.array([1.0, 100.0])[None, :, None, None]
    state = np.einsum("tk,kchw->tchw", x, patterns)
    state += np.array([280.0, 101000.0])[None, :, None, None]
    state = state.astype(np.float32)
    forcing = (290.0 + u[:, :, None, None] * np.ones((1, 1, 9, 16))).astype(np.float32)
    split = Split(state, forcing, month, np.arange(t), None)
    stats = compute_stats(split, spec, anomaly=True, forcing_anomaly=True)
    lim, info = fit(spec, state, forcing, month, stats, modes=k, forcing_modes=1, residual_modes=0,
                    global_sst=False, noise="constant", ridge=0.0)
    assert info["resolved_variance_fraction"] > 0.999
    d = np.broadcast_to(np.sqrt(area_weights(lat).values)[None, :, None] / lim.state_std[:, None, None],
                        (2, 9, 16)).reshape(-1)
    e = lim.eofs.astype(np.float64)
    fitted = (e @ lim.operator.A @ e.T) * d[None, :] / d[:, None]
    p = patterns.reshape(k, -1).T  # [P, k]: the planted physical patterns
    # on the span of the patterns (the only subspace the data constrain) fitted @ P = P A
    assert np.linalg.norm(fitted @ p - p @ a) / np.linalg.norm(p @ a) < 0.1


# ---------------------------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy prepared dataset (2000-01..2003-12, 17 x 32) and a LIM fitted on it with emulator-train."""
    root = tmp_path_factory.mktemp("lim")
    data = write_toy_dataset(root / "prepared", start="2000-01", end="2003-12")
    (root / "lim.yaml").write_text(TOY_LIM)
    assert train_main(["--config", str(root / "lim.yaml"), "--data", str(data), "--out", str(root / "fit")]) == 0
    return {"root": root, "data": data, "ckpt": root / "fit", "config": root / "lim.yaml"}


def _run(toy, out, *extra, members=2, exp="historical", end="2001-06") -> int:
    return run_main(["--checkpoint", str(toy["ckpt"]), "--experiment", exp, "--members", str(members),
                     "--start", "2000-01", "--end", end, "--out", str(out), "--no-progress", *extra])


def _name(var, member, exp="aimip", span="200001-200106"):
    return f"{var}_Amon_LIM_{exp}_r{member}i1p1f1_gn_{span}.nc"


def _values(path: Path) -> np.ndarray:
    with netCDF4.Dataset(path) as nc:
        return nc[path.name.split("_")[0]][:].filled(np.nan)


def test_checkpoint_layout_and_safe_loading(toy):
    d = toy["ckpt"] / "checkpoint"
    assert sorted(p.name for p in d.iterdir()) == ["config.yaml", "lim.safetensors", "meta.json"]
    meta = json.loads((d / "meta.json").read_text())
    assert meta["format"] == "monthly-diffusion-lim/1" and meta["fit"]["modes"] == 4
    assert meta["fit"]["spectral_radius"] < 1
    lim, _ = checkpoint.load(toy["ckpt"])
    assert lim.eofs.shape == (4 * 17 * 32, 4) and lim.operator.chol.shape == (12, 4, 4)


def test_run_writes_valid_aimip_files(toy, tmp_path, capsys):
    out = tmp_path / "p2k"
    assert _run(toy, out, exp="p2k") == 0
    assert "LIM 2 member(s) x 18 months (aimip-p2k) complete" in capsys.readouterr().out
    names = {_name(v, m, "aimip-p2k") for v in ("tas", "pr", "zg", "ta", "tos", "siconc") for m in (1, 2)}
    assert {p.name for p in out.iterdir()} == names | {"run_state.json"}
    ds = open_dataset(out)
    assert ds.attrs["source_id"] == "LIM" and ds.attrs["experiment_id"] == "aimip-p2k"
    assert dict(ds["tas"].sizes) == {"member": 2, "time": 18, "lat": 17, "lon": 32}
    ref = xr.open_zarr(toy["data"] / "dataset.zarr", decode_times=CFTIME).isel(time=slice(0, 18))
    for v in ("tas", "pr", "zg500", "ta"):
        assert np.isfinite(ds[v].values).all(), v
    assert (ds["pr"].values >= 0).all()
    for m in (1, 2):  # month 0 is the reference state; tos is the forcing + 2 K over the ocean
        np.testing.assert_allclose(_values(out / _name("tas", m, "aimip-p2k"))[0], ref["tas"].values[0], rtol=1e-6)
        tos = _values(out / _name("tos", m, "aimip-p2k"))
        np.testing.assert_allclose(tos, ref["tos"].values + 2.0, rtol=1e-6)
    tas = ds["tas"].values
    assert not np.array_equal(tas[0, 5], tas[1, 5])  # members differ
    # a fitted model, not noise: the members' anomalies have the training data's size
    anom = tas[:, 1:] - ref["tas"].values[1:][None]
    assert 0 < float(np.std(anom)) < 5 * float(np.std(ref["tas"].values - ref["tas"].values.mean(axis=0)))


def test_members_do_not_depend_on_ensemble_size_and_resume_is_exact(toy, tmp_path):
    lim, meta = checkpoint.load(toy["ckpt"])
    start, end = Month(2000, 1), Month(2000, 12)
    ident = {"checkpoint_sha256": meta["sha256"]["lim.safetensors"]}
    initial = initial_state(toy["data"], lim.spec, start)

    def run(out, members, **kw):
        cfg = RolloutConfig(members=members, start=start, end=end, model_name="LIM")
        return run_lim(lim, ForcingReader(toy["data"], lim.spec, start, end), initial, cfg, out, ident,
                       progress=False, **kw)

    run(tmp_path / "full", 3)
    run(tmp_path / "two", 2)
    span = "200001-200012"
    for v in ("tas", "pr"):
        np.testing.assert_array_equal(_values(tmp_path / "full" / _name(v, 2, span=span)),
                                      _values(tmp_path / "two" / _name(v, 2, span=span)))
    state = run(tmp_path / "resumed", 3, stop_after=5)
    assert state.status == "running" and state.completed == 5
    assert not list((tmp_path / "resumed").glob("*.nc"))  # nothing under a final name yet
    assert run(tmp_path / "resumed", 3, resume=True).status == "complete"
    for p in (tmp_path / "full").glob("*.nc"):
        np.testing.assert_array_equal(_values(p), _values(tmp_path / "resumed" / p.name), err_msg=p.name)
    assert not (tmp_path / "resumed" / ".run").exists()


def test_shared_rollout_reproduces_the_lim_formula_member_by_member(toy, tmp_path):
    """The LimStepper in the shared rollout writes exactly (float32 of) an independent loop of
    x_k = A x_{k-1} + B u_k + c + L eta_k, out_k = denorm(E x_k + E_r sigma_r zeta_k), with eta
    then zeta from PCG64(member_seed(seed, member, k)) and a perturbed start (the pre-fold LIM
    runner's formula, which wrote the same bytes: docs/rollout.md)."""
    from emulator.seeding import member_seed

    lim, _ = checkpoint.load(toy["ckpt"])
    start, end, seed, perturb, member = Month(2000, 1), Month(2000, 8), 7, 0.3, 2
    out = tmp_path / "run"
    assert _run(toy, out, "--seed", str(seed), "--perturb", str(perturb), members=3, end="2000-08") == 0
    forcing = ForcingReader(toy["data"], lim.spec, start, end)
    x0 = np.asarray(initial_state(toy["data"], lim.spec, start), np.float64)
    rng = np.random.Generator(np.random.PCG64(member_seed(seed, member, -1)))
    y0 = lim.normalise_state(x0, 1) + perturb * (rng.standard_normal(x0.shape) * lim.sqrt_w).reshape(-1)
    x_phys = lim.denormalise_state(y0, 1)
    pcs = lim.project(lim.normalise_state(x_phys, 1))
    expected = [x_phys]
    for k in range(1, 8):
        rng = np.random.Generator(np.random.PCG64(member_seed(seed, member, k)))
        m = (start + k).month
        u = lim.predictors(forcing.month(k), m)
        pcs = lim.step(pcs, u, m, rng.standard_normal(lim.modes))
        expected.append(lim.denormalise_state(lim.reconstruct(pcs, rng.standard_normal(lim.residual_std.size)), m))
    tas = lim.spec.labels.index("tas")
    got = _values(out / _name("tas", member, span="200001-200008"))
    np.testing.assert_array_equal(got, np.stack(expected)[:, tas].astype(np.float32))


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_bad_inputs_fail_with_one_line(toy, tmp_path, capsys):
    # a Monthly Diffusion checkpoint is not a LIM checkpoint, and the other way round
    fake = tmp_path / "md" / "checkpoint"
    fake.mkdir(parents=True)
    (fake / "meta.json").write_text(json.dumps({"format": md_checkpoint.FORMAT}))
    with pytest.raises(Exception, match="not a LIM checkpoint"):
        checkpoint.load(tmp_path / "md")
    with pytest.raises(Exception, match="not a monthly-diffusion-checkpoint/1 checkpoint"):
        md_checkpoint.load_model(toy["ckpt"])
    # a tampered array file
    bad = tmp_path / "tampered"
    import shutil

    shutil.copytree(toy["ckpt"], bad)
    with open(bad / "checkpoint" / "lim.safetensors", "r+b") as f:
        f.seek(-8, 2)
        f.write(b"\x00" * 8)
    assert run_main(["--checkpoint", str(bad), "--experiment", "historical", "--out", str(tmp_path / "x")]) == 2
    assert "does not match its recorded SHA-256" in _error(capsys)
    # a dataset without a variable the config needs
    ds = make_toy_dataset(start="2000-01", end="2003-12").drop_vars("zg500")
    nozg = write_prepared(ds, tmp_path / "nozg", {"fingerprint": "toy-no-zg500"})
    assert train_main(["--config", str(toy["config"]), "--data", str(nozg), "--out", str(tmp_path / "f1")]) == 2
    assert "missing variable 'zg500'" in _error(capsys)
    # forcing without siconc for the run
    nosic = write_prepared(make_toy_dataset(start="2000-01", end="2003-12").drop_vars("siconc"),
                           tmp_path / "nosic", {"fingerprint": "toy-no-siconc"})
    assert _run(toy, tmp_path / "r1", "--forcing", str(nosic)) == 2
    assert "forcing dataset has no ['siconc']" in _error(capsys)
    # bad config values and an existing fit
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(TOY_LIM.replace("noise: seasonal", "noise: weekly"))
    assert train_main(["--config", str(cfg), "--data", str(toy["data"]), "--out", str(tmp_path / "f2")]) == 2
    assert "model.noise: expected one of constant, seasonal" in _error(capsys)
    cfg.write_text(TOY_LIM.replace("modes: 4,", "modes: 40,"))
    assert train_main(["--config", str(cfg), "--data", str(toy["data"]), "--out", str(tmp_path / "f3")]) == 2
    assert "cannot fit the LIM" in _error(capsys)
    assert train_main(["--config", str(toy["config"]), "--data", str(toy["data"]), "--out", str(toy["ckpt"])]) == 2
    assert "already holds a checkpoint" in _error(capsys)
    assert train_main(["--config", str(toy["config"]), "--data", str(toy["data"]), "--out", str(toy["ckpt"]),
                       "--resume"]) == 0
    capsys.readouterr()
    # an unfinished run is not silently overwritten (shared refusal logic of the rollout)
    out = tmp_path / "twice"
    assert _run(toy, out) == 0
    capsys.readouterr()
    assert _run(toy, out) == 2
    assert "already holds this run" in _error(capsys)
