"""emulator-run: AI-MIP ensemble rollout from a tiny trained checkpoint on the toy dataset (17 x 32).

Independent references: the prepared dataset itself (initial state, forcing), the writer's
batch AI-MIP output (:func:`diagnostics.io.writer.write_aimip`) for the streamed file layout,
cftime arithmetic for the time axis, the readers and md-diagnose for validity, and an
uninterrupted run for resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import torch
import xarray as xr

from diagnostics.data.errors import cli_entry
from diagnostics.data.timeaxis import Month
from diagnostics.io.open import open_dataset
from emulator import checkpoint
from emulator import config as config_mod
from emulator.cli.run import main as run_main
from emulator.forcing import ForcingReader, initial_state
from emulator.stepper import DiffusionStepper
from emulator.rollout import RolloutConfig, member_generators, run_rollout
from tests.emulator.toy_data import write_toy_dataset
from emulator.train import Trainer

ROOT = Path(__file__).resolve().parents[2]
CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)
VARS = ("tas", "pr", "zg", "ta", "tos", "siconc")

TINY = {
    "name": "tiny-rollout",
    "data": {"state": ["tas", "pr", "zg500", "ta850", "ta500"], "train_period": "2000-07:2001-12",
             "valid_period": "2000-01:2000-06"},
    "model": {"latent_channels": 3, "latent_shape": [5, 8], "embed_dim": 8, "encoder_rank": 4, "decoder_rank": 4,
              "denoiser_rank": 4, "norm_hidden": 3, "sample_steps": 3, "ddim_steps": 2},
    "train": {"epochs": 1, "batch_size": 9, "lr": 3e-3, "warmup_steps": 1, "ema_decay": 0.5},
    "validation": {"every": 0, "members": 2},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A toy prepared dataset (2000-01..2001-12) and a checkpoint trained one epoch on it."""
    root = tmp_path_factory.mktemp("rollout")
    data = write_toy_dataset(root / "prepared", start="2000-01", end="2001-12")
    cfg = json.loads(json.dumps(TINY))
    cfg["data"]["path"] = str(data)
    Trainer(config_mod.from_dict(cfg), root / "train", device="cpu", progress=False).run()
    return {"root": root, "data": data, "ckpt": root / "train"}


def _run(tiny, out, *extra, members=3, end="2000-12") -> int:
    return run_main(["--checkpoint", str(tiny["ckpt"]), "--experiment", "historical", "--members", str(members),
                     "--start", "2000-01", "--end", end, "--out", str(out), "--device", "cpu", "--no-progress", *extra])


def _name(var, member, exp="aimip", span="200001-200012"):
    return f"{var}_Amon_MD-1p5_{exp}_r{member}i1p1f1_gn_{span}.nc"


def _values(path: Path) -> np.ndarray:
    with netCDF4.Dataset(path) as nc:
        var = nc[path.name.lstrip(".").split("_")[0]]
        return var[:].filled(np.nan)


def _same_outputs(a: Path, b: Path, exact: bool = True, rtol: float = 0.0) -> None:
    names = sorted(p.name for p in a.glob("*.nc"))
    assert names and names == sorted(p.name for p in b.glob("*.nc"))
    for name in names:
        x, y = _values(a / name), _values(b / name)
        if exact:
            assert np.array_equal(x, y, equal_nan=True), name
        else:
            np.testing.assert_allclose(x, y, rtol=rtol, atol=0, equal_nan=True, err_msg=name)


def _toy(tiny) -> xr.Dataset:
    return xr.open_zarr(tiny["data"] / "dataset.zarr", decode_times=CFTIME)


# ---------------------------------------------------------------------------------------------- output


def test_short_rollout_writes_valid_aimip_files(tiny, tmp_path, capsys):
    out = tmp_path / "hist"
    assert _run(tiny, out) == 0
    assert "complete" in capsys.readouterr().out
    expected = {_name(v, m) for v in VARS for m in (1, 2, 3)}
    assert {p.name for p in out.iterdir()} == expected | {"run_state.json"}  # no partial files, no latents
    state = json.loads((out / "run_state.json").read_text())
    assert state["status"] == "complete" and state["completed"] == state["total"] == 12

    # layout: the same as the one batch writer's AI-MIP files (diagnostics.io.writer.write_aimip)
    toy = _toy(tiny).isel(time=slice(0, 12))
    from diagnostics.io.writer import write_aimip

    ref_files = write_aimip(toy[["pr", "zg500", "ta", "time_bnds"]].sel(plev=[85000.0, 50000.0]),
                            tmp_path / "batch", "MD-1p5", "aimip")
    for ref in ref_files:
        var = ref.name.split("_")[0]
        mine = xr.open_dataset(out / ref.name, decode_times=CFTIME)
        theirs = xr.open_dataset(ref, decode_times=CFTIME)
        assert mine[var].dims == theirs[var].dims and mine[var].dtype == np.float32
        for key in ("units", "standard_name", "long_name"):
            assert mine[var].attrs[key] == theirs[var].attrs[key]
        if "plev" in theirs.coords:
            np.testing.assert_array_equal(mine["plev"].values, theirs["plev"].values)
        assert (mine["time"].values == theirs["time"].values).all()
        assert (mine["time_bnds"].values == theirs["time_bnds"].values).all()
        assert mine.attrs["experiment_id"] == "aimip" and mine.attrs["variant_label"] == "r1i1p1f1"
    zg = xr.open_dataset(out / _name("zg", 2), decode_times=CFTIME)
    assert zg["zg"].dims == ("time", "plev", "lat", "lon") and zg["plev"].values.tolist() == [50000.0]
    assert zg["zg"].attrs["units"] == "m" and zg.attrs["variant_label"] == "r2i1p1f1"
    assert xr.open_dataset(out / _name("pr", 1))["pr"].attrs["units"] == "kg m-2 s-1"
    # time: mid-month with bounds at the first instants of the month and the next one (cftime by hand)
    import cftime

    t = zg["time"].values
    assert t[0] == cftime.DatetimeProlepticGregorian(2000, 1, 16, 12)
    assert t[1] == cftime.DatetimeProlepticGregorian(2000, 2, 15, 12)  # February 2000 has 29 days
    assert zg["time_bnds"].values[11, 1] == cftime.DatetimeProlepticGregorian(2001, 1, 1)

    # month 0 is the reference state of 2000-01 for every member; tos is the dataset's forcing
    for m in (1, 2, 3):
        np.testing.assert_array_equal(_values(out / _name("tas", m))[0], toy["tas"].values[0])
        np.testing.assert_array_equal(_values(out / _name("zg", m))[0, 0], toy["zg500"].values[0])
        np.testing.assert_array_equal(_values(out / _name("tos", m)), toy["tos"].values)
    later = [_values(out / _name("tas", m))[6] for m in (1, 2, 3)]
    assert np.isfinite(later).all() and not np.allclose(later[0], later[1])  # members diverge

    # the readers and md-diagnose read the run
    ds = open_dataset(str(out))
    assert ds.sizes["member"] == 3 and ds.attrs["experiment_id"] == "aimip"
    assert {"tas", "pr", "zg500", "ta", "tos"} <= set(ds.data_vars)
    assert ds["ta"].sizes["plev"] == 2
    from diagnostics.cli.diagnose import main as diagnose_main

    code = diagnose_main(["--ensemble", str(out), "--reference", str(tiny["data"]), "--out", str(tmp_path / "diag"),
                          "--train-period", "2000-01:2000-06", "--test-period", "2000-07:2000-12",
                          "--variables", "tas", "zg", "pr", "--report", "none", "--no-spectra", "--no-baselines",
                          "--no-progress"])
    assert code == 0
    metrics = json.loads((tmp_path / "diag" / "metrics.json").read_text())
    assert "MD-1p5" in json.dumps(metrics)


def test_p2k_adds_exactly_2K_to_sst_and_changes_the_run(tiny, tmp_path):
    assert _run(tiny, tmp_path / "hist", end="2000-06") == 0
    assert _run(tiny, tmp_path / "p2k", "--experiment", "p2k", end="2000-06") == 0
    assert _run(tiny, tmp_path / "p4k", "--experiment", "p4k", "--sst-offset", "1.25", end="2000-06") == 0
    span = "200001-200006"
    for m in (1, 3):
        hist = _values(tmp_path / "hist" / _name("tos", m, span=span))
        for exp, offset in (("p2k", 2.0), ("p4k", 1.25)):
            warm = _values(tmp_path / exp / _name("tos", m, f"aimip-{exp}", span))
            land = np.isnan(hist)
            assert land.any() and np.array_equal(np.isnan(warm), land)  # SST stays undefined over land
            np.testing.assert_allclose(warm[~land] - hist[~land], offset, rtol=0, atol=3.1e-5)  # float32 ULP at 300 K
            ice_h = _values(tmp_path / "hist" / _name("siconc", m, span=span))
            assert np.array_equal(_values(tmp_path / exp / _name("siconc", m, f"aimip-{exp}", span)), ice_h)
        tas_h = _values(tmp_path / "hist" / _name("tas", m, span=span))
        tas_w = _values(tmp_path / "p2k" / _name("tas", m, "aimip-p2k", span))
        assert np.array_equal(tas_h[0], tas_w[0])  # same initial state
        assert not np.allclose(tas_h[1:], tas_w[1:], rtol=0, atol=1e-6)  # the forcing changes the run
    attrs = xr.open_dataset(tmp_path / "p2k" / _name("tas", 1, "aimip-p2k", span)).attrs
    assert attrs["experiment_id"] == "aimip-p2k" and attrs["forcing_sst_offset_K"] == "2"


def test_zarr_output_matches_netcdf(tiny, tmp_path):
    assert _run(tiny, tmp_path / "nc", end="2000-04") == 0
    assert _run(tiny, tmp_path / "zarr", "--format", "zarr", end="2000-04") == 0
    store = tmp_path / "zarr" / "MD-1p5_aimip_gn_200001-200004.zarr"
    assert store.is_dir() and not list((tmp_path / "zarr").glob(".*partial"))
    ds = open_dataset(str(store))
    assert ds.sizes["member"] == 3
    for m in (1, 2, 3):
        nc = _values(tmp_path / "nc" / _name("ta", m, span="200001-200004"))
        np.testing.assert_array_equal(ds["ta"].sel(member=m).values, nc)
        tos = _values(tmp_path / "nc" / _name("tos", m, span="200001-200004"))
        np.testing.assert_array_equal(ds["tos"].sel(member=m).values, tos)


# ---------------------------------------------------------------------------------------------- randomness


def test_one_member_seed_formula_the_rollout_files_were_made_with():
    """The rollout's SHA-256 formula is the one home (validation and calibration used another):
    pinned values, from the formula the existing rollout files were written with."""
    from emulator import seeding, validation

    assert seeding.member_seed(0, 1, 0) == 3532379097109104694
    assert seeding.member_seed(7, 3, 554) == 3678213144510836518
    assert seeding.member_seed(0, 2, -1) == 3500577420533722855  # the initial-state perturbation
    assert validation.member_seed is seeding.member_seed
    assert member_generators is seeding.member_generators
    assert not hasattr(validation, "member_generators") or validation.member_generators is seeding.member_generators


def test_noise_is_per_member_and_step_and_batch_size_only_changes_round_off(tiny, tmp_path):
    st = DiffusionStepper(checkpoint.load_model(tiny["ckpt"]))
    together = st.noise_for_step(3, member_generators(7, [1, 2, 3], 5, st.device))
    alone = [st.noise_for_step(1, member_generators(7, [m], 5, st.device)) for m in (1, 2, 3)]
    assert torch.equal(together, torch.cat(alone, dim=1))  # member m's noise ignores the batch
    other_step = st.noise_for_step(1, member_generators(7, [2], 6, st.device))
    assert not torch.equal(other_step, alone[1])

    assert _run(tiny, tmp_path / "all", end="2000-06") == 0
    assert _run(tiny, tmp_path / "all2", end="2000-06") == 0
    assert _run(tiny, tmp_path / "one", "--batch-size", "1", end="2000-06") == 0
    assert _run(tiny, tmp_path / "two", "--batch-size", "2", end="2000-06") == 0
    _same_outputs(tmp_path / "all", tmp_path / "all2")  # reproducible bit for bit
    # batch size 1, 2 or all: the same trajectories; CPU GEMM kernels chosen by batch size
    # differ in the last bits, so equality holds to float32 round-off, not bitwise
    _same_outputs(tmp_path / "all", tmp_path / "one", exact=False, rtol=2e-6)
    _same_outputs(tmp_path / "all", tmp_path / "two", exact=False, rtol=2e-6)


def test_initial_state_perturbed_lagged_and_ddim(tiny, tmp_path):
    toy = _toy(tiny)
    assert _run(tiny, tmp_path / "pert", "--perturb", "0.05", end="2000-03") == 0
    x0 = [_values(tmp_path / "pert" / _name("tas", m, span="200001-200003"))[0] for m in (1, 2, 3)]
    ref = toy["tas"].values[0]
    assert not np.array_equal(x0[0], x0[1]) and not np.array_equal(x0[0], ref)
    # perturbation of std 0.05 in normalised units: small against the field's spread
    assert 0 < np.abs(x0[0] - ref).mean() < 0.2 * ref.std()
    assert _run(tiny, tmp_path / "lag", "--initial-state", "2000-06", "--sampler", "ddim", "--steps", "2",
                end="2000-03") == 0
    lag = _values(tmp_path / "lag" / _name("tas", 2, span="200001-200003"))
    np.testing.assert_array_equal(lag[0], toy["tas"].values[5])
    assert np.isfinite(lag).all()
    state = json.loads((tmp_path / "lag" / "run_state.json").read_text())
    assert state["args"]["sampler"] == "ddim" and state["args"]["steps"] == 2
    other = write_toy_dataset(tmp_path / "other", start="2000-01", end="2000-02", seed=3)
    assert _run(tiny, tmp_path / "dir", "--initial-state", str(other), end="2000-02") == 0
    first = _values(tmp_path / "dir" / _name("zg", 1, span="200001-200002"))[0, 0]
    np.testing.assert_array_equal(first, xr.open_zarr(other / "dataset.zarr")["zg500"].values[0])
    assert not np.array_equal(first, toy["zg500"].values[0])


# ---------------------------------------------------------------------------------------------- resume


def _api_run(tiny, out, **kw):
    meta = checkpoint.read_meta(tiny["ckpt"])
    spec = checkpoint.spec_from_meta(meta)
    model = checkpoint.load_model(tiny["ckpt"])
    cfg = RolloutConfig(members=3, start=Month(2000, 1), end=Month(2000, 8))
    forcing = ForcingReader(tiny["data"], spec, cfg.start, cfg.end, cfg.offset)
    initial = initial_state(tiny["data"], spec, cfg.start)
    return model, run_rollout(model, forcing, initial, cfg, out, {"checkpoint": "tiny"}, progress=False, **kw)


def test_interrupted_run_is_not_final_and_resumes_exactly(tiny, tmp_path):
    _, full = _api_run(tiny, tmp_path / "full")
    _, part = _api_run(tiny, tmp_path / "part", stop_after=3)
    assert part.status == "running" and part.completed == 3
    assert not list((tmp_path / "part").glob("*.nc"))  # nothing under a final name yet
    assert len(list((tmp_path / "part").glob(".*.nc.partial"))) == 18
    with pytest.raises(Exception, match="unfinished run"):
        _api_run(tiny, tmp_path / "part")
    _, done = _api_run(tiny, tmp_path / "part", resume=True)
    assert done.status == "complete" and full.fingerprint == done.fingerprint
    _same_outputs(tmp_path / "full", tmp_path / "part")
    _, again = _api_run(tiny, tmp_path / "part", resume=True)  # resuming a complete run does nothing
    assert again.status == "complete"

    # killed while renaming: some files final, some temporary, state "finalising" -> resume finishes
    part = tmp_path / "part"
    moved = sorted(part.glob("tas_*.nc"))
    for p in moved:
        p.rename(part / f".{p.name}.partial")
    state = json.loads((part / "run_state.json").read_text())
    (part / "run_state.json").write_text(json.dumps({**state, "status": "finalising"}))
    _, finished = _api_run(tiny, part, resume=True)
    assert finished.status == "complete" and all(p.exists() for p in moved)
    assert not list(part.glob(".*partial"))
    _same_outputs(tmp_path / "full", part)


@pytest.mark.slow  # a fresh interpreter importing torch: about 10-20 s on 2 busy cores
def test_sigkill_mid_run_then_resume_matches_uninterrupted(tiny, tmp_path):
    # batches of one member make each month several model calls: plenty of time to kill mid-run
    args = ["--checkpoint", str(tiny["ckpt"]), "--experiment", "historical", "--members", "4", "--batch-size", "1",
            "--start", "2000-01", "--end", "2001-12", "--device", "cpu", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads()), "PYTHONPATH": str(ROOT)}
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "emulator.cli.run", *args, "--out", str(out)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    state_file, deadline = out / "run_state.json", time.time() + 120
    try:
        while time.time() < deadline:
            try:
                if json.loads(state_file.read_text())["completed"] >= 2:
                    break
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                pass
            assert proc.poll() is None, f"run ended before it could be killed: {proc.stderr.read().decode()}"
            time.sleep(0.002)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    killed_at = json.loads(state_file.read_text())
    assert killed_at["status"] == "running" and 2 <= killed_at["completed"] < 24
    assert not list(out.glob("*.nc"))
    assert run_main([*args, "--out", str(out), "--resume"]) == 0
    assert run_main([*args, "--out", str(tmp_path / "straight")]) == 0
    _same_outputs(out, tmp_path / "straight")
    for f in out.glob("*.nc"):  # byte for byte: no HDF5 "open for write" flag left (issue 16)
        assert f.read_bytes() == (tmp_path / "straight" / f.name).read_bytes(), f.name


# ---------------------------------------------------------------------------------------------- failures


def test_non_finite_member_stops_with_one_line_and_valid_files(tiny, tmp_path, capsys):
    cfg = RolloutConfig(members=3, start=Month(2000, 1), end=Month(2000, 8))
    model = DiffusionStepper(checkpoint.load_model(tiny["ckpt"]), cfg.sampler)
    decode = model.decode
    pr = model.spec.labels.index("pr")

    def poisoned(z, cond, generators=None):
        x = decode(z, cond, generators)
        if int(cond.month[0]) == 4 and x.shape[0] > 1:
            x[1, pr, 3, 4] = float("nan")  # member r2, April 2000, pr
        return x

    model.decode = poisoned
    spec = model.spec
    forcing = ForcingReader(tiny["data"], spec, cfg.start, cfg.end, cfg.offset)
    initial = initial_state(tiny["data"], spec, cfg.start)
    out = tmp_path / "unstable"
    main = cli_entry(lambda argv: run_rollout(model, forcing, initial, cfg, out, {}, progress=False) and 0)
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "r2i1p1f1" in err and "2000-04" in err and "variable pr" in err
    state = json.loads((out / "run_state.json").read_text())
    assert state["status"] == "unstable" and state["completed"] == 3
    partial = list(out.glob(".tas_*r1i1p1f1*.partial")) + list(out.glob(".pr_*r2i1p1f1*.partial"))
    assert len(partial) == 2
    for path in partial:
        values = _values(path)  # still a valid netCDF file
        assert np.isfinite(values[:3]).all() and np.isnan(values[3:]).all()
    assert not list(out.glob("*.nc"))  # never under a final name
    assert main([]) == 2 and "stopped" in capsys.readouterr().err


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_inputs_fail_with_one_line(tiny, tmp_path, capsys):
    assert _run(tiny, tmp_path / "x", "--experiment", "p3k") == 2
    assert "unknown experiment 'p3k'" in _error(capsys)
    assert _run(tiny, tmp_path / "x", end="2002-06") == 2
    assert "missing 6 month(s) (2002-01..2002-06)" in _error(capsys)
    coarse = write_toy_dataset(tmp_path / "coarse", start="2000-01", end="2000-12", resolution=22.5)
    assert _run(tiny, tmp_path / "x", "--forcing", str(coarse)) == 2
    assert "grid is 17 x 32 but the forcing is on 9 x 16" in _error(capsys)
    assert _run(tiny, tmp_path / "x", "--resume") == 2
    assert "no run to resume" in _error(capsys)
    assert _run(tiny, tmp_path / "x", "--checkpoint", str(tmp_path)) == 2
    assert "no checkpoint" in _error(capsys)
    assert _run(tiny, tmp_path / "y", members=2, end="2000-02") == 0
    capsys.readouterr()
    assert _run(tiny, tmp_path / "y", "--seed", "1", members=2, end="2000-02") == 2
    assert "holds another run" in _error(capsys)
    assert _run(tiny, tmp_path / "y", "--seed", "1", "--resume", members=2, end="2000-02") == 2
    assert "holds another run" in _error(capsys)
    assert _run(tiny, tmp_path / "y", members=2, end="2000-02") == 2
    assert "already holds this run" in _error(capsys)


def test_out_dir_trust_checks_come_first_and_refuse_foreign_files(tiny, tmp_path, capsys):
    """Issue 16: --out holding AI-MIP files but no run_state.json (another run's, or a tool's)
    was overwritten with different data, exit 0; now refused with one line, files untouched.
    --out is checked before the checkpoint is read or the model loaded; no progress bar when
    stderr is not a terminal; the initial-state month is named as a month, not as a run."""
    assert _run(tiny, tmp_path / "a", members=1, end="2000-02") == 0
    capsys.readouterr()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    for f in (tmp_path / "a").glob("*.nc"):
        (foreign / f.name).write_bytes(f.read_bytes())
    before = {f.name: f.read_bytes() for f in foreign.iterdir()}
    assert _run(tiny, foreign, "--seed", "3", members=1, end="2000-02") == 2
    err = _error(capsys)
    assert "holds rollout output that this run did not write" in err and "no run_state.json" in err
    assert {f.name: f.read_bytes() for f in foreign.iterdir()} == before  # untouched
    (foreign / "run_state.json").write_text(json.dumps({**json.loads((tmp_path / "a" / "run_state.json").read_text()),
                                                        "fingerprint": "0123456789abcdef"}))
    assert _run(tiny, foreign, members=1, end="2000-02") == 2
    assert "holds another run" in _error(capsys)
    partial_only = tmp_path / "partial"
    partial_only.mkdir()
    (partial_only / ".tas_Amon_X_aimip_r1i1p1f1_gn_200001-200002.nc.partial").write_bytes(b"x")
    assert _run(tiny, partial_only, members=1, end="2000-02") == 2
    assert "did not write" in _error(capsys)

    # --out under a file: refused first, even with a checkpoint that does not exist
    (tmp_path / "file").write_text("x")
    assert _run(tiny, tmp_path / "file" / "run", "--checkpoint", str(tmp_path / "nope")) == 2
    err = _error(capsys)
    assert "--out" in err and "under a file" in err

    # no progress bar without a terminal (tqdm redraws in log files, issue 16)
    args = ["--checkpoint", str(tiny["ckpt"]), "--experiment", "historical", "--members", "1", "--start", "2000-01",
            "--end", "2000-02", "--out", str(tmp_path / "bars"), "--device", "cpu"]
    assert run_main(args) == 0
    captured = capsys.readouterr()
    assert "member-month" not in captured.err and "\r" not in captured.err

    # a missing initial-state month is a month, not "the run 1990-01..1990-01"
    assert _run(tiny, tmp_path / "init", "--initial-state", "1990-01") == 2
    err = _error(capsys)
    assert "has no month 1990-01" in err and "covers 2000-01..2001-12" in err and "1990-01..1990-01" not in err


def test_validation_table_has_units():
    from emulator.train import format_table

    table = format_table({"rmse_rec": {"tas": 1.0, "pr": 2e-5, "zg500": 3.0}, "ssr": {"tas": 1.0, "pr": 0.9,
                                                                                   "zg500": 1.1}})
    rows = {line.split()[0]: line.split() for line in table.splitlines()}
    assert rows["channel"][:2] == ["channel", "units"]
    assert rows["tas"][1] == "K" and rows["pr"][1:3] == ["kg", "m-2"] and rows["zg500"][1] == "m"
    assert "ssr = spread / skill, dimensionless" in table


def test_each_month_is_normalised_and_conditioned_once_per_member_batch(tiny, tmp_path):
    """Issue 12.4: the rollout runs a Stepper and conditions each month's forcing once per member
    batch (the model-level API normalised it three times: decode of t, step out of t, step into t);
    the files equal those of the model wrapped by run_rollout itself."""
    cfg = RolloutConfig(members=3, start=Month(2000, 1), end=Month(2000, 4))
    model = checkpoint.load_model(tiny["ckpt"])
    stepper = DiffusionStepper(model, cfg.sampler)
    calls = {"condition": 0, "normalise_forcing": 0}
    condition, normalise = stepper.condition, model.normaliser.normalise_forcing

    def counted(name, fn):
        def wrapper(*a, **k):
            calls[name] += 1
            return fn(*a, **k)
        return wrapper

    stepper.condition = counted("condition", condition)
    model.normaliser.normalise_forcing = counted("normalise_forcing", normalise)
    forcing = ForcingReader(tiny["data"], stepper.spec, cfg.start, cfg.end, cfg.offset)
    initial = initial_state(tiny["data"], stepper.spec, cfg.start)
    run_rollout(stepper, forcing, initial, cfg, tmp_path / "a", {}, batch_size=2, progress=False)
    assert calls == {"condition": 4 * 2, "normalise_forcing": 4 * 2}  # 4 months x 2 member batches
    run_rollout(checkpoint.load_model(tiny["ckpt"]), forcing, initial, cfg, tmp_path / "b", {}, batch_size=2,
                progress=False)
    for f in (tmp_path / "a").glob("*.nc"):
        assert f.read_bytes() == (tmp_path / "b" / f.name).read_bytes()
    with pytest.raises(ValueError, match="samples ddim"):
        run_rollout(DiffusionStepper(model, "ddim"), forcing, initial, cfg, tmp_path / "c", {}, progress=False)
    with pytest.raises(TypeError, match="not a Stepper"):
        run_rollout(object(), forcing, initial, cfg, tmp_path / "c", {}, progress=False)
