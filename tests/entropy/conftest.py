"""Fixtures of the entropy tests: golden values kept in golden_entropy.json.

They pin what decides the bits: the integer tables (float64 libm results quantised to
integers) and constriction's output. If a platform or a constriction release changes
them, streams would not decode across machines, so the tests fail. Regenerate only on
purpose, with UFVC_GENERATE_EXPECTED=1, and say why in the commit.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

GOLDEN_PATH = Path(__file__).with_name("golden_entropy.json")


def _check_golden(name: str, value: str) -> None:
    stored = json.loads(GOLDEN_PATH.read_text()) if GOLDEN_PATH.exists() else {}
    if os.environ.get("UFVC_GENERATE_EXPECTED"):
        stored[name] = value
        GOLDEN_PATH.write_text(json.dumps(stored, indent=2, sort_keys=True) + "\n")
        return
    assert name in stored, f"no golden value {name!r}; run with UFVC_GENERATE_EXPECTED=1"
    assert value == stored[name], f"{name} changed: {value} != {stored[name]}"


@pytest.fixture
def check_golden() -> Callable[[str, str], None]:
    """check_golden(name, value): compare with the stored value, or store it when regenerating."""
    return _check_golden


def _official_like_params(num_qp: int = 64, channels: int = 128, seed: int = 0):
    """h, b, a drawn like the reference recipe (1 + 0.5 n, 0.1 n, 0.5 n), as float32."""
    rng = np.random.default_rng(seed)
    h = (1.0 + 0.5 * rng.standard_normal((num_qp, channels, 4))).astype(np.float32)
    b = (0.1 * rng.standard_normal((num_qp, channels, 4))).astype(np.float32)
    a = (0.5 * rng.standard_normal((num_qp, channels, 3))).astype(np.float32)
    return h, b, a


@pytest.fixture
def official_like_params() -> Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """official_like_params(num_qp=64, channels=128, seed=0) -> h, b, a."""
    return _official_like_params
