"""Deterministic synthetic weights of the reference fixtures (shared/reference README, sec. 2).

Every tensor depends only on its state-dict key and shape, so any implementation that
uses the official keys reproduces the same weights.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch

_QP_TABLES = {"q_scale_enc", "q_scale_dec", "q_scale_y_enc", "q_scale_y_dec", "q_encoder",
              "q_feature"}


def recipe_tensor(key: str, shape: tuple[int, ...]) -> np.ndarray:
    """The recipe value of one state-dict entry, as float32."""
    rng = np.random.default_rng(zlib.crc32(key.encode("utf-8")))
    n = rng.standard_normal(size=tuple(shape))
    leaf = key.split(".")[-1]
    if leaf in _QP_TABLES:
        value = 1.0 + 0.1 * n
    elif leaf == "q_decoder":
        value = 0.5 * (1.0 + 0.1 * n)
    elif key.startswith("bit_estimator_z."):
        value = {"h": 1.0 + 0.5 * n, "b": 0.1 * n, "a": 0.5 * n}[leaf]
    elif len(shape) >= 2:
        receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
        fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
        gain = 0.15 if key.endswith((".dc.3.weight", ".ffn.2.weight")) else 1.0
        value = gain * math.sqrt(2.0 / (fan_in + fan_out)) * n
    else:
        value = 0.01 * n
    return value.astype(np.float32)


def recipe_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Recipe weights for every entry of `model.state_dict()` (keys must be official)."""
    return {
        key: torch.from_numpy(recipe_tensor(key, tuple(t.shape)))
        for key, t in model.state_dict().items()
    }
