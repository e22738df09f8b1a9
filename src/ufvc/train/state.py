"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint holds the model, the current stage's optimizer, LR scheduler and gradient
scaler, the step, the data position and the random generators of every process (Python,
numpy, torch, CUDA). Training samples are a function of their number (see
`ufvc.train.data`), so with these a resumed run computes bit-identical parameters to
one that never stopped. Files hold plain types and tensors only, so they load with
`torch.load(weights_only=True)`.
"""

from __future__ import annotations

import os
import random
import secrets
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ufvc.errors import CheckpointError

CHECKPOINT_FORMAT = "ufvc-train"
CHECKPOINT_VERSION = 1


def capture_rng() -> dict[str, Any]:
    """The random states of this process, as plain types and tensors."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    state: dict[str, Any] = {
        "python": [version, list(py_state), gauss],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    """Set this process's random states from `capture_rng` output."""
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(payload: dict[str, Any], path: Path) -> None:
    """torch.save to a file beside `path`, then rename: a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def make_checkpoint(
    *,
    model_state: dict[str, torch.Tensor],
    optimizer_state: dict[str, Any] | None,
    scheduler_state: dict[str, Any] | None,
    scaler_state: dict[str, Any] | None,
    step: int,
    stage_index: int,
    stage_step: int,
    samples: int,
    rng_states: list[dict[str, Any]],
    elapsed: float,
    config: dict[str, Any],
) -> dict[str, Any]:
    """The checkpoint payload (see the module docstring)."""
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "model": model_state,
        "optimizer": optimizer_state,
        "scheduler": scheduler_state,
        "scaler": scaler_state,
        "step": step,
        "data_position": {"stage": stage_index, "stage_step": stage_step, "samples": samples},
        "rng": rng_states,
        "elapsed": elapsed,
        "config": config,
    }


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a training checkpoint (tensors on the CPU) and check its format."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"no training checkpoint at {path}") from None
    except (RuntimeError, OSError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: not a readable training checkpoint ({error})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a ufvc training checkpoint")
    if data.get("version", 0) > CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} was written by a newer ufvc (checkpoint version {data.get('version')})"
        )
    return data
