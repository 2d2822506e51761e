"""Benchmark: can the latent subspace of a ``latent_lim`` step represent the planted NAO?

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_fidelity_subspace.py \
        --checkpoint outputs/demo/train/checkpoint --data outputs/demo/synthetic [--json out.json]

The synthetic climate plants the NAO as ``nao_psl_pattern`` / ``nao_z500_pattern`` (truth.nc,
field units per standard deviation of the winter amplitude). Its latent image is measured by
the encoder's response: for every DJF month i of the training years,
``v_i = enc(x_i + d) - enc(x_i)`` (standardised posterior means), ``d`` the planted NAO psl
and zg500 patterns at +1 std; ``v`` = the mean over i, reduced as the latent LIM reduces a
latent (``y = sqrt(w_lat) zn``, emulator.latent_lim). For a basis E (orthonormal columns) the
fraction of the NAO's latent image that the basis can carry is ``|E^T v|^2 / |v|^2``; the
decoded check is the psl response ``dec(z_i + P_E v) - dec(z_i)`` (mean over i) in the NAO
domain: its pattern correlation with the planted pattern and its amplitude (area-weighted RMS
ratio). Bases compared, each for K leading modes:

* ``latents``: EOFs of the training latents about their time mean (session 6's basis);
* ``anomalies``: EOFs of the latents' departures from their calendar-month means with the
  forcing predictors regressed out (emulator.latent_lim_fit's ``basis: anomalies``);
* ``residuals``: EOFs of the skip path's one-month residuals (``basis: residuals``).

This is a script, not a test; it prints one table and optionally writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import xarray as xr

from emulator import checkpoint
from emulator.latent_lim import LatentLinearModel
from emulator.latent_lim_fit import basis_samples, standardised_predictors
from emulator.lim.operator import leading_eofs
from emulator.stepper import DiffusionStepper
from emulator.train import prepare_data
from emulator.validation import latent_fit_inputs


def _encode(stepper: DiffusionStepper, x_n: torch.Tensor, f_n: torch.Tensor, month: torch.Tensor) -> torch.Tensor:
    """Standardised posterior-mean latents of normalised states."""
    cond = stepper.condition_normalised(f_n, month)
    return stepper.model.standardise(stepper.encode_normalised(x_n, cond, None).float())


def _decode(stepper: DiffusionStepper, zn: torch.Tensor, f_n: torch.Tensor, month: torch.Tensor) -> torch.Tensor:
    """Physical state of standardised latents (no residual noise)."""
    cond = stepper.condition_normalised(f_n, month)
    x_n = stepper.decode_normalised(stepper.model.unstandardise(zn), cond).float()
    return stepper.model.normaliser.denormalise_state(x_n, month)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--data", required=True, help="prepared synthetic dataset (with truth.nc)")
    p.add_argument("--modes", default="24,48,96,200,359")
    p.add_argument("--json")
    args = p.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    model = checkpoint.load_model(args.checkpoint)
    cfg = checkpoint.config_of(checkpoint.read_meta(args.checkpoint))
    data = prepare_data(cfg, args.data, with_valid=False).train
    stepper = DiffusionStepper(model)
    truth = xr.open_dataset(f"{args.data}/truth.nc")
    spec = model.spec
    lat = np.asarray(spec.lat)
    labels = spec.labels
    delta = torch.zeros(1, len(labels), len(lat), len(spec.lon))
    for label, name in (("psl", "nao_psl_pattern"), ("zg500", "nao_z500_pattern")):
        pattern = truth[name].sel(lat=lat, lon=np.asarray(spec.lon), method="nearest").fillna(0.0)
        delta[0, labels.index(label)] = torch.from_numpy(pattern.values.astype(np.float32))
    norm = model.normaliser
    zn, skip_prediction = latent_fit_inputs(model, data, torch.device("cpu"))
    # a latent LIM's reductions (buffers only: the checkpoint's own step may be a plain skip)
    lim = LatentLinearModel(tuple(zn.shape[1:]), spec.shape, len(spec.forcing_names), 8, 4,
                            model.area_latent, model.area_data)
    sqrt_w = lim.sqrt_w
    with torch.no_grad():
        djf = torch.from_numpy(np.flatnonzero(np.isin(data.month.numpy(), (12, 1, 2))))
        x, f, mo = data.state[djf], data.forcing[djf], data.month[djf]
        x_plus = norm.normalise_state(norm.denormalise_state(x, mo) + delta, mo)
        v_all = _encode(stepper, x_plus, f, mo) - zn[djf]
        base = _decode(stepper, zn[djf], f, mo)
    v = (v_all.mean(0, keepdim=True) * sqrt_w).flatten(1).double().numpy()[0]
    c_psl = labels.index("psl")
    mask = truth["nao_domain_mask"].sel(lat=lat, lon=np.asarray(spec.lon), method="nearest").values > 0
    w = np.cos(np.deg2rad(lat))[:, None] * np.ones(len(spec.lon))
    planted = delta[0, c_psl].numpy()

    def decoded_response(v_flat: np.ndarray) -> tuple[float, float]:
        dz = torch.from_numpy(v_flat.astype(np.float32)).view(1, *zn.shape[1:]) / sqrt_w
        with torch.no_grad():
            resp = (_decode(stepper, zn[djf] + dz, f, mo) - base)[:, c_psl].mean(0).numpy()
        a, b = resp[mask], planted[mask]
        ww = w[mask]
        am, bm = np.average(a, weights=ww), np.average(b, weights=ww)
        corr = np.average((a - am) * (b - bm), weights=ww) / np.sqrt(
            np.average((a - am) ** 2, weights=ww) * np.average((b - bm) ** 2, weights=ww))
        amp = np.sqrt(np.average(a ** 2, weights=ww) / np.average(b ** 2, weights=ww))
        return float(corr), float(amp)

    rows = {"full latent": {"captured": 1.0, "decoded": decoded_response(v)}}
    # the latent_lim fit's own sample sets for each basis (one home for their definitions)
    y = lim.reduce(zn).double().numpy()
    u, _, _ = standardised_predictors(lim, data.forcing)
    resid = y[1:] - lim.reduce(skip_prediction).double().numpy()
    samples = basis_samples(y, u, data.month.numpy().astype(int), resid)
    modes = [int(k) for k in args.modes.split(",")]
    for basis, ys in samples.items():
        e_all, s_all = leading_eofs(ys, max(modes))
        total = float((ys ** 2).sum())
        for k in modes:
            e = e_all[:, :k]
            proj = e @ (e.T @ v)
            rows[f"{basis} K={k}"] = {"captured": float(proj @ proj / (v @ v)),
                                      "variance_explained": float((s_all[:k] ** 2).sum() / total),
                                      "decoded": decoded_response(proj)}
    print(f"latent NAO image (psl+zg500 +1 std), {len(djf)} DJF months, {time.perf_counter() - t0:.0f} s")
    print(f"{'basis':<22} {'captured':>9} {'var.expl.':>9} {'psl corr':>9} {'psl amp':>8}")
    for name, r in rows.items():
        print(f"{name:<22} {r['captured']:9.3f} {r.get('variance_explained', float('nan')):9.3f} "
              f"{r['decoded'][0]:9.3f} {r['decoded'][1]:8.3f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
