"""Joint training of the CVAE and the latent denoiser (``emulator-train``).

One epoch visits every training month pair (t, t+1) once in a seeded random order (the order
of epoch e depends only on (seed, e)); all model noise comes from one ``torch.Generator``
whose state is checkpointed, so ``--resume`` continues bit-for-bit (tested: 2 epochs equal
1 epoch + resume 1). After each epoch: EMA-weight validation, metrics.csv/json, checkpoint.
"""

from __future__ import annotations

import csv
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xarray as xr
from tqdm import tqdm

from diagnostics.data import catalogue
from diagnostics.data.errors import InputError
from diagnostics.data.timeaxis import Period
from diagnostics.io.writer import atomic_path, write_json

from . import checkpoint
from . import config as config_mod
from .config import RunConfig
from .data import (PairTensors, Split, compute_stats, data_spec, load_split, normalised_statics, open_prepared_dataset,
                   parse_channels, to_tensors)
from .ema import EMA
from .model import DataSpec, MonthlyDiffusion, autocast
from .validation import (FREE_RUN_CHANNEL_STATS, FreeRunData, diffusion_offset, fit_latent_linear, free_run_data,
                         free_run_validation, pair_ids, residual_power, select_best, spread_scale, validate)


SELECTED_DIR = "selected"  # <run>/selected/: the checkpoint validation.select chose (checkpoint/ is the last)
OFFSET_DRAWS = 10  # diffusion draws per held-out pair for diffusion_offset (71 demo pairs: noise 0.04 std)


@dataclass
class PreparedData:
    spec: DataSpec
    train: PairTensors
    valid: PairTensors | None
    stats: dict[str, np.ndarray]
    statics: np.ndarray
    nino34: dict[int, float] | None = None  # month index -> relative Niño-3.4 index (K), train + valid


def nino34_by_month(splits: list[Split], spec: DataSpec) -> dict[int, float] | None:
    """The relative Niño-3.4 index (K; AI-MIP convention, 3-month running mean,
    :func:`diagnostics.metrics.nino34.nino34_index`) of the prescribed ``tos`` of ``splits``
    (climatology over all their months), by month index; None without ``tos`` or when the
    months are not consecutive."""
    if "tos" not in spec.forcing_names:
        return None
    from diagnostics.data.timeaxis import Month, monthly_axis
    from diagnostics.metrics import nino34
    from diagnostics.metrics.modes import select_domain

    f = list(spec.forcing_names).index("tos")
    idx = np.concatenate([s.index for s in splits])
    order = np.argsort(idx, kind="stable")
    idx = idx[order]
    if idx.size < 3 or np.any(np.diff(idx) != 1):
        return None
    tos = np.concatenate([s.forcing[:, f] for s in splits])[order]
    axis = monthly_axis(Month.from_index(int(idx[0])), Month.from_index(int(idx[-1])))
    da = xr.DataArray(tos, dims=("time", "lat", "lon"), name="tos", attrs={"units": "K"},
                      coords={"time": axis["time"], "lat": np.asarray(spec.lat), "lon": np.asarray(spec.lon)})
    index = nino34.nino34_index(select_domain(da, nino34.TROPICS_LAT), relative=True)
    return {int(i): float(v) for i, v in zip(idx, index.values)}


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda asked for, but no CUDA device is visible")
    if name not in ("cpu", "cuda"):
        raise InputError(f"--device must be auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def prepare_data(cfg: RunConfig, data_dir: str | Path, with_valid: bool = True) -> PreparedData:
    """Open the prepared dataset, load the train (and validation) periods, compute statistics."""
    ds = open_prepared_dataset(data_dir)
    source = str(data_dir)
    spec = data_spec(ds, cfg.data.state, cfg.data.forcings, cfg.data.statics, source)
    train_split = load_split(ds, spec, Period.parse(cfg.data.train_period), source)
    stats = compute_stats(train_split, spec, anomaly=cfg.model.normalisation == "anomaly",
                          forcing_anomaly=cfg.model.forcing_anomaly)
    statics = normalised_statics(ds, spec, source)
    probe = MonthlyDiffusion.normaliser_only(spec, stats)
    valid_split = load_split(ds, spec, Period.parse(cfg.data.valid_period), source) if with_valid else None
    index = None
    if with_valid and cfg.validation.free_run_every > 0:  # before to_tensors consumes the physical state
        index = nino34_by_month([valid_split, train_split], spec)
    train = to_tensors(train_split, probe)
    valid = to_tensors(valid_split, probe) if valid_split is not None else None
    return PreparedData(spec, train, valid, stats, statics, index)


def build_model(cfg: RunConfig, data: PreparedData) -> MonthlyDiffusion:
    """A fresh model for ``data``'s channels and grid, with its statistics and statics set."""
    model = MonthlyDiffusion(cfg.model, data.spec)
    model.normaliser.set_stats(**data.stats)
    model.statics.copy_(torch.from_numpy(data.statics))
    return model


def lr_at(step: int, total_steps: int, cfg) -> float:
    """Linear warm-up to ``lr`` over ``warmup_steps``, then constant or cosine decay to ``lr_min``."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return cfg.lr
    frac = min(1.0, (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps))
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1.0 + math.cos(math.pi * frac))


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """Permutation of the training pairs for one epoch (depends only on seed and epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def _flatten(row: dict) -> dict:
    flat = {k: v for k, v in row.items() if not isinstance(v, dict)}
    for key, value in row.get("train", {}).items():
        flat[f"train_{key}"] = value
    for metric, per in row.get("valid", {}).items():
        for label, value in per.items():
            flat[f"{metric}_{label}"] = value
    for section in ("free_run", "free_run_modes"):  # fr_<stat>_<label>, fr_<mode>_<stat>
        for metric, per in row.get(section, {}).items():
            for label, value in per.items():
                flat[f"fr_{metric}_{label}"] = value
    return flat


def channel_units(label: str) -> str:
    """Catalogue units of a channel label (``ta850`` -> ``K``, ``pr`` -> ``kg m-2 s-1``)."""
    (name, _), = parse_channels([label])
    return catalogue.variable(name).units


def format_table(valid: dict[str, dict[str, float]]) -> str:
    """Validation metrics as an aligned text table, one row per channel, with units.

    rmse_rec (reconstruction), rmse_ensmean (ensemble mean, one month ahead) and crps are in the
    channel's units; ssr (spread / skill) is dimensionless.
    """
    metrics = [m for m in ("rmse_rec", "rmse_ensmean", "crps", "ssr") if m in valid]
    labels = list(valid[metrics[0]])
    units = {lab: channel_units(lab) for lab in labels}
    width = max(len(u) for u in units.values()) + 2
    lines = [f"{'channel':<10}{'units':<{width}}" + "".join(f"{m:>14}" for m in metrics)]
    for lab in labels:
        lines.append(f"{lab:<10}{units[lab]:<{width}}" + "".join(f"{valid[m][lab]:>14.4g}" for m in metrics))
    if "ssr" in metrics:
        lines.append("(rmse and crps in the channel's units; ssr = spread / skill, dimensionless)")
    return "\n".join(lines)


def format_free_run(result: dict) -> str:
    """A free-run validation (:func:`emulator.validation.free_run_validation`) as a text table:
    one row per channel (lag-1 and std ratios, Niño-3.4 pattern correlation and amplitude ratio:
    dimensionless; drift in the channel's units per decade), then the modes and the score."""
    fr = result["free_run"]
    labels = list(fr["lag1_ratio"])
    units = {lab: channel_units(lab) + " dec-1" for lab in labels}
    width = max(len(u) for u in units.values()) + 2
    head = {"lag1_ratio": "lag1", "std_ratio": "std", "nino34_pattern_corr": "nino_corr",
            "nino34_amplitude_ratio": "nino_amp", "drift": "drift"}
    lines = [f"free run {result['free_run_start']} + {result['free_run_months']} months:",
             f"{'channel':<10}" + "".join(f"{head[m]:>11}" for m in FREE_RUN_CHANNEL_STATS) + f"  {'drift units':<{width}}"]
    for lab in labels:
        lines.append(f"{lab:<10}" + "".join(f"{fr[m][lab]:>11.3g}" for m in FREE_RUN_CHANNEL_STATS)
                     + f"  {units[lab]:<{width}}")
    modes = ", ".join(f"{k} pattern {v['pattern_corr']:.2f} / PC std {v['pc_std_ratio']:.2f}"
                      for k, v in result.get("free_run_modes", {}).items())
    lines.append((modes + "; " if modes else "") + f"score {result['free_run_score']:.4f} "
                 f"(0 = the reference; lag1 / std / nino: ratios and correlation, dimensionless)")
    return "\n".join(lines)


class Trainer:
    """Runs (or resumes) one training run into ``out_dir``."""

    def __init__(self, cfg: RunConfig, out_dir: str | Path, device: str = "auto", resume: bool = False,
                 max_epochs: int | None = None, progress: bool = True, data: PreparedData | None = None,
                 verbose: bool = True):
        self.cfg, self.out = cfg, Path(out_dir)
        self.device = resolve_device(device)
        self.max_epochs = min(cfg.train.epochs, max_epochs or cfg.train.epochs)
        self.progress, self.verbose = progress, verbose
        ckpt_dir = self.out / checkpoint.CHECKPOINT_DIR
        if ckpt_dir.exists() and not resume:
            raise InputError("output directory already holds a training run; pass --resume to continue it "
                             "or choose another --out", self.out)
        if cfg.data.path is None and data is None:
            raise InputError("no dataset: give --data DIR or data.path in the config")
        torch.manual_seed(cfg.train.seed)
        self.data = data or prepare_data(cfg, cfg.data.path)
        self.model = build_model(cfg, self.data).to(self.device)
        self.ema = EMA(self.model, cfg.train.ema_decay)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr,
                                           weight_decay=cfg.train.weight_decay)
        self.generator = torch.Generator().manual_seed(cfg.train.seed)
        self.epoch, self.step, self.history = 0, 0, []
        if resume and ckpt_dir.exists():
            state, rng = checkpoint.load_training_state(ckpt_dir, self.model, self.ema, self.optimizer, cfg)
            self.epoch, self.step, self.history = state["epoch"], state["step"], state["history"]
            self.generator.set_state(rng["train"])

    @property
    def steps_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.cfg.train.batch_size)

    def train_epoch(self) -> dict[str, float]:
        cfg, model = self.cfg, self.model
        model.train()
        weights = {"kl_weight": cfg.loss.kl_weight, "v_weight": cfg.loss.v_weight, "pop_weight": cfg.loss.pop_weight,
                   "skip_weight": cfg.loss.skip_weight}
        order = epoch_order(len(self.data.train), cfg.train.seed, self.epoch)
        total_steps = cfg.train.epochs * self.steps_per_epoch
        sums: dict[str, float] = {}
        start = time.perf_counter()
        bar = tqdm(total=len(order), unit="sample", desc=f"epoch {self.epoch + 1}/{cfg.train.epochs}",
                   disable=not self.progress, leave=False)
        for b in range(0, len(order), cfg.train.batch_size):
            ids = order[b:b + cfg.train.batch_size]
            lr = lr_at(self.step, total_steps, cfg.train)
            for group in self.optimizer.param_groups:
                group["lr"] = lr
            batch = self.data.train.batch(ids, self.device)
            with autocast(self.device):
                loss, terms = model.training_loss(*batch, self.generator, weights)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.train.grad_clip > 0:
                terms["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip))
            if not math.isfinite(terms["loss"]):
                raise RuntimeError(f"training loss is {terms['loss']} at step {self.step}; lower train.lr")
            self.optimizer.step()
            self.ema.update(model)
            self.step += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * len(ids)
            bar.update(len(ids))
            bar.set_postfix(loss=f"{terms['loss']:.4f}", lr=f"{lr:.2e}")
        bar.close()
        elapsed = time.perf_counter() - start
        out = {k: v / len(order) for k, v in sums.items()}
        out["samples_per_s"] = len(order) / elapsed
        return out

    def _write_metrics(self) -> None:
        write_json({"run": self.cfg.name, "epochs": self.history}, self.out / "metrics.json")
        rows = [_flatten(r) for r in self.history]
        keys: list[str] = []
        for r in rows:
            keys.extend(k for k in r if k not in keys)
        with atomic_path(self.out / "metrics.csv") as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=keys)
                writer.writeheader()
                writer.writerows(rows)

    def calibrate(self) -> list[str]:
        """Calibrate the EMA model on the held-out months; returns the buffers it set.

        An explicit step after the last EMA update of an epoch (every validation epoch and the
        last one): with ``step.type: latent_lim`` the latent Gaussian model, fitted on the
        training latents (instead of the diffusion offset, its samples being unused); otherwise
        the skip path's sampled mean (``diffusion_offset``); then, with residual noise,
        the residual power on held-out months, then its per-(channel, latitude) spread scale.
        The buffers are then held by the EMA (:meth:`EMA.hold`), so later updates keep them until
        the next calibration recomputes them from scratch.
        """
        ema, vcfg, valid = self.ema.model, self.cfg.validation, self.data.valid
        if valid is None:
            return []
        ids, steps, seed = pair_ids(len(valid), 0), vcfg.steps or None, self.cfg.train.seed
        names = []
        if ema.latent_linear is not None:  # step.type latent_lim: the step's mean and noise, from training latents
            fit = fit_latent_linear(ema, self.data.train, self.device)
            names += [f"latent_linear.{n}" for n, _ in ema.latent_linear.named_buffers()]
            if self.verbose:
                tqdm.write("latent LIM: " + ", ".join(f"{k} {v:.3f}" for k, v in fit.items()))
        elif ema.skip is not None:  # the diffusion adds spread only: remove its sampled mean first
            ema.diffusion_offset.zero_()
            ema.diffusion_offset.copy_(diffusion_offset(ema, valid, ids, OFFSET_DRAWS, seed + 2, vcfg.sampler,
                                                        steps, self.device).to(self.device))
            names.append("diffusion_offset")
        if ema.cfg.residual_noise:  # calibrate the residual on held-out months first
            ema.residual_power.copy_(residual_power(ema, valid, ids, self.device))
            # then scale it per channel and latitude so that the spread matches the error there
            ema.residual_scale.fill_(1.0)
            cap = ema.cfg.step.max_residual_scale if ema.latent_linear is not None else 100.0
            ema.residual_scale.copy_(spread_scale(ema, valid, ids, vcfg.members, seed + 1, vcfg.sampler,
                                                  steps, self.device, max_scale=cap).to(self.device))
            names += ["residual_power", "residual_scale"]
        self.ema.hold(names)
        return names

    def run(self) -> list[dict]:
        """Train until ``max_epochs`` (total, counting resumed epochs); returns the history."""
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.yaml").write_text(config_mod.to_yaml(self.cfg))
        if self.epoch == 0 and self.verbose:
            tqdm.write(f"{self.cfg.name}: {self.model.n_parameters():,} parameters, "
                       f"{len(self.data.train)} training pairs, device {self.device}")
        while self.epoch < self.max_epochs:
            train_stats = self.train_epoch()
            self.epoch += 1
            row = {"epoch": self.epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
                   "train": train_stats}
            vcfg = self.cfg.validation
            validating = self.data.valid is not None and vcfg.every > 0 and (
                self.epoch % vcfg.every == 0 or self.epoch == self.max_epochs)
            free = self.data.valid is not None and vcfg.free_run_every > 0 and (
                self.epoch % vcfg.free_run_every == 0 or self.epoch == self.max_epochs)
            if self.data.valid is not None and (validating or free or self.epoch == self.max_epochs):
                self.calibrate()  # after this epoch's last EMA update; EMA.update keeps it from now on
            if validating:
                row["valid"] = validate(self.ema.model, self.data.valid, vcfg, self.cfg.train.seed, self.device)
            if free:
                t0 = time.process_time()
                row.update(free_run_validation(self.ema.model, self.free_run_data(), vcfg, self.cfg.train.seed,
                                               self.device, [channel_units(lab) for lab in self.model.spec.labels]))
                row["free_run_cpu_s"] = time.process_time() - t0
            self.history.append(row)
            if self.verbose:
                msg = (f"epoch {self.epoch}: loss {train_stats['loss']:.4f} (rec {train_stats['rec']:.4f}, "
                       f"v {train_stats['v']:.4f}), {train_stats['samples_per_s']:.1f} samples/s")
                if "valid" in row:
                    msg += "\n" + format_table(row["valid"])
                if free:
                    msg += "\n" + format_free_run(row) + f" [{row['free_run_cpu_s']:.0f} CPU-s]"
                tqdm.write(msg)
            self._write_metrics()
            trainer_state = {"epoch": self.epoch, "step": self.step, "history": self.history}
            selection = self.selection()
            if selection is not None:
                trainer_state["selection"] = selection
            if selection is not None and selection["epoch"] == self.epoch:  # a new best: keep it beside the last
                checkpoint.save(self.out / SELECTED_DIR, self.model, self.ema, self.optimizer, self.cfg,
                                trainer_state, {"train": self.generator.get_state()})
            checkpoint.save(self.out / checkpoint.CHECKPOINT_DIR, self.model, self.ema, self.optimizer, self.cfg,
                            trainer_state, {"train": self.generator.get_state()})
            if selection is not None:
                write_json(selection, self.out / "selection.json")
                if self.verbose and self.epoch == self.max_epochs:
                    tqdm.write(f"selected: epoch {selection['epoch']} (free-run score {selection['score']:.4f}; "
                               f"last epoch {self.epoch}) in {self.out / SELECTED_DIR}; run it with "
                               f"emulator-run --checkpoint {self.out / SELECTED_DIR}")
        return self.history

    def free_run_data(self) -> FreeRunData:
        """The months the free-run validation rolls over: the validation then training years from
        their first month, ``validation.free_run_months`` of them (built once)."""
        if getattr(self, "_free_run_data", None) is None:
            parts = [p for p in (self.data.valid, self.data.train) if p is not None]
            self._free_run_data = free_run_data(parts, self.data.nino34, self.cfg.validation.free_run_months)
        return self._free_run_data

    def selection(self) -> dict | None:
        """With ``validation.select: free_run``: which epoch ``<run>/selected/`` holds and why
        (:func:`emulator.validation.select_best` on the history); None otherwise."""
        if self.cfg.validation.select != "free_run":
            return None
        best = select_best(self.history)
        if best is None:
            return None
        scored = {int(r["epoch"]): float(r["free_run_score"]) for r in self.history if "free_run_score" in r}
        return {"criterion": "free_run", **best, "dir": SELECTED_DIR, "last_epoch": self.epoch, "scores": scored,
                "why": "lowest free-run score (emulator.validation.free_run_score: mean of |lag-1 ratio - 1|, "
                       "|std ratio - 1|, 1 - Nino-3.4 pattern corr., |Nino-3.4 amplitude ratio - 1|, drift per "
                       "channel and 1 - pattern corr., |PC std ratio - 1| of the NAO) among the scored epochs"}


def calibrate_checkpoint(source: str | Path, cfg: RunConfig, out_dir: str | Path, data_dir: str | Path,
                         device: str = "auto") -> Path:
    """Re-calibrate a trained run with another step configuration, without training: the
    networks of ``source`` (a run directory or its ``checkpoint/``) are loaded into a trainer
    for ``cfg``, :meth:`Trainer.calibrate` fits what the new step needs (e.g. a ``latent_lim``
    step's Gaussian on the training latents, the spread calibration of the residual noise) and
    the result is written as a complete run in ``out_dir``. ``cfg`` may differ from the
    source's configuration in ``model.step`` and ``name`` only (a ``skip`` run serves every
    ``latent_lim`` variant: they are trained identically). The optimiser state is not copied,
    so the new run is for inference (``emulator-run``), not for ``--resume``."""
    meta = checkpoint.read_meta(source)
    theirs = checkpoint.config_of(meta)
    diff = [d for d in config_mod.differences(theirs, cfg)
            if not (d.startswith("model.step.") or d.startswith("name "))]
    if diff:
        raise InputError(f"the configuration differs from the checkpoint's beyond model.step: {'; '.join(diff[:3])}",
                         meta["_dir"])
    trainer = Trainer(cfg, out_dir, device=device, data=prepare_data(cfg, data_dir), verbose=False)
    src = Path(meta["_dir"])
    for module, name in ((trainer.model, "model.safetensors"), (trainer.ema.model, "ema.safetensors")):
        # a latent_lim source's own fitted step is replaced by calibrate(): never compared or loaded
        # (another modes / seasonal_modes changes its shapes, a skip target has none)
        tensors = {k: v for k, v in checkpoint._load_tensors(src / name).items() if not k.startswith("latent_linear.")}
        expected = module.state_dict()
        fitted_later = {k for k in expected if k.startswith("latent_linear.")}  # set by calibrate()
        if set(tensors) - set(expected) or set(expected) - set(tensors) - fitted_later:
            raise InputError("weights do not fit the model of the new configuration", src / name)
        module.load_state_dict({**{k: expected[k] for k in fitted_later}, **tensors})
    state = json.loads((src / "trainer.json").read_text())
    trainer.epoch, trainer.step, trainer.history = state["epoch"], state["step"], state["history"]
    trainer.ema.updates = int(state["ema_updates"])
    trainer.calibrate()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(config_mod.to_yaml(cfg))
    return checkpoint.save(out / checkpoint.CHECKPOINT_DIR, trainer.model, trainer.ema, trainer.optimizer, cfg,
                           {"epoch": trainer.epoch, "step": trainer.step, "history": trainer.history},
                           {"train": trainer.generator.get_state()})
