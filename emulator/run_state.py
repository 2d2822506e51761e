"""The run-state file of a rollout directory and the saved latents that make ``--resume`` exact.

    <out>/run_state.json         format, fingerprint, arguments, status, months completed,
                                 the latent file of the last completed month and its SHA-256
    <out>/.run/latent-<k>.safetensors   latent ``[members, Z, h, w]`` after month k

Order of one month: data of every member written and flushed -> the month's latents
written atomically under a new name -> run_state.json replaced atomically (now naming the
new latent file) -> the previous latent file deleted. A process killed between any two of
these leaves a state that names a complete latent file of a month whose data are flushed;
resume rewrites every month after it. ``status`` is ``complete`` only after every output
file has its final name, so an unfinished run is never taken for a finished one.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from diagnostics.data.errors import InputError
from diagnostics.io.writer import atomic_path, file_sha256, write_json

FORMAT = "emulator-run-state/1"
STATE_FILE = "run_state.json"
LATENT_DIR = ".run"


@dataclass
class RunState:
    """What ``run_state.json`` holds."""

    fingerprint: str
    args: dict
    total: int  # months in the run (start..end inclusive)
    completed: int = 0  # months written and flushed for every member
    status: str = "running"  # running | finalising | complete | unstable
    latent: str | None = None  # file (relative to the run dir) with the latents after month completed - 1
    latent_sha256: str | None = None
    files: list[str] = field(default_factory=list)  # final output names
    message: str = ""
    summary: dict = field(default_factory=dict)
    format: str = FORMAT
    updated: str = ""

    def save(self, out_dir: Path) -> None:
        self.updated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_json(asdict(self), out_dir / STATE_FILE)


def read_state(out_dir: str | os.PathLike) -> RunState | None:
    """The run state of a directory, None if it has none; InputError if it is unreadable."""
    path = Path(out_dir) / STATE_FILE
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text())
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}")
        return RunState(**data)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InputError(f"run state is not a valid {FORMAT} file ({exc})", path) from None


def save_latent(out_dir: Path, k: int, latent: torch.Tensor) -> tuple[str, str]:
    """Write the latents after month ``k`` atomically (float32, or float64 when they are: a LIM's
    PCs, so that a resume continues bit for bit); returns (relative path, SHA-256)."""
    rel = f"{LATENT_DIR}/latent-{k:06d}.safetensors"
    keep = latent.detach()
    keep = keep if keep.dtype == torch.float64 else keep.float()
    with atomic_path(out_dir / rel) as tmp:
        save_file({"latent": keep.cpu().contiguous()}, str(tmp))
    return rel, file_sha256(out_dir / rel)


def load_latent(out_dir: Path, state: RunState) -> torch.Tensor:
    """The latents named by ``state``, checked against their SHA-256."""
    path = out_dir / str(state.latent)
    if not path.exists() or file_sha256(path) != state.latent_sha256:
        raise InputError("the saved latent state of the unfinished run is missing or does not match its "
                         "SHA-256; cannot resume", path)
    return load_file(str(path))["latent"]


def drop_stale_latents(out_dir: Path, keep: str | None) -> None:
    """Delete latent files other than ``keep`` (left by a run killed between two writes)."""
    folder = out_dir / LATENT_DIR
    if not folder.is_dir():
        return
    for p in folder.iterdir():
        if keep is None or p != out_dir / keep:
            p.unlink(missing_ok=True)
