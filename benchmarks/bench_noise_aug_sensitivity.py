"""Benchmark: how much a trained denoiser's velocity depends on the previous latent (session 8).

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python benchmarks/bench_noise_aug_sensitivity.py \
        RUN [RUN ...] [--data outputs/demo/synthetic]

On the first 64 training pairs (posterior-mean latents of month t), at diffusion times
s = 0.2, 0.5, 0.9: ``prev``, the RMS of ``v_hat(z_s, z_t) - v_hat(z_s, z_t')`` (z_t' the latent of
the pair 7 places away) over the RMS of ``v_hat`` (0 for a denoiser without the previous latent);
with ``model.step.previous_noise`` also ``level``, the same for the told noise level 0 vs ``max``
(same z_t, nothing added: only the level embedding changes). This is a script, not a test.
"""

from __future__ import annotations

import argparse

import torch

from emulator import checkpoint
from emulator.stepper import DiffusionStepper
from emulator.train import prepare_data


def relative_change(a: torch.Tensor, b: torch.Tensor) -> float:
    """RMS(a - b) / RMS(a)."""
    return float((a - b).pow(2).mean().sqrt() / a.pow(2).mean().sqrt())


def sensitivity(run: str, data_dir: str, pairs: int = 64) -> list[tuple[float, float, float | None]]:
    """``(s, prev, level)`` per diffusion time for the run's EMA model (``level`` None when off)."""
    m = checkpoint.load_model(run + "/checkpoint").eval()
    data = prepare_data(checkpoint.config_of(checkpoint.read_meta(run)), data_dir)
    st = DiffusionStepper(m)
    x_t, _, f_t, f_t1, mo_t, mo_t1 = data.train.batch(torch.arange(pairs), torch.device("cpu"))
    out = []
    with torch.no_grad():
        c_t, c_t1 = st.condition_normalised(f_t, mo_t), st.condition_normalised(f_t1, mo_t1)
        zn, cl = st._step_inputs(st.encode_normalised(x_t, c_t).float(), c_t, c_t1)
        cd = cl.index_select(1, m.denoiser_cond_index)
        other = zn[torch.roll(torch.arange(pairs), 7)]
        pn = m.previous_noise
        for s in (0.2, 0.5, 0.9):
            ss, zs = torch.full((pairs,), s), torch.randn_like(zn)
            a = m.denoiser(zs, zn, cd, ss)
            level = None
            if pn is not None:
                level = relative_change(a, m.denoiser(zs, zn, cd, ss, torch.full((pairs,), pn.max)))
            out.append((s, relative_change(a, m.denoiser(zs, other, cd, ss)), level))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="training run directories")
    p.add_argument("--data", default="outputs/demo/synthetic")
    args = p.parse_args()
    torch.manual_seed(0)
    for run in args.runs:
        for s, prev, level in sensitivity(run, args.data):
            print(f"{run}: s {s}: prev {prev:.3f}" + ("" if level is None else f", level 0 vs max {level:.3f}"))


if __name__ == "__main__":
    main()
