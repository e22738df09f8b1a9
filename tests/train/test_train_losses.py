"""The RD objective: lambda tables, the release's distortion, frame weights."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ufvc.errors import InputFormatError
from ufvc.io.color import ycbcr_to_rgb
from ufvc.train.losses import (
    RELEASE_FRAME_WEIGHTS_8,
    default_frame_weights,
    distortion,
    lambda_table,
    normalized_frame_weights,
    yuv_psnr,
)


def test_lambda_tables_are_log_spaced_with_qp63_the_largest():
    video, image = lambda_table(1.0, 768.0), lambda_table(10.0, 2048.0)
    assert video.shape == (64,) and image.shape == (64,)
    assert video[0].item() == pytest.approx(1.0) and video[63].item() == pytest.approx(768.0)
    assert image[0].item() == pytest.approx(10.0) and image[63].item() == pytest.approx(2048.0)
    ratios = (video[1:] / video[:-1]).double()
    assert torch.allclose(ratios, torch.full_like(ratios, 768.0 ** (1 / 63)), rtol=1e-5)
    assert bool((image[1:] > image[:-1]).all())


def test_lambda_range_must_be_increasing():
    with pytest.raises(InputFormatError):
        lambda_table(10.0, 1.0)


def test_distortion_follows_the_release_formula():
    rng = np.random.default_rng(0)
    x = rng.uniform(-0.5, 0.5, (2, 4, 3, 16, 24))
    x_hat = x + rng.normal(0, [0.02, 0.05, 0.08], (2, 4, 16, 24, 3)).transpose(0, 1, 4, 2, 3)
    d, mse = distortion(torch.from_numpy(x_hat), torch.from_numpy(x))

    ref_mse = ((x_hat - x) ** 2).mean(axis=(-2, -1))
    # RGB of each frame through the io module's own conversion (offsets included).
    rgb = ycbcr_to_rgb(x + 0.5, channel_axis=-3)
    rgb_hat = ycbcr_to_rgb(x_hat + 0.5, channel_axis=-3)
    mse_rgb = ((rgb_hat - rgb) ** 2).mean(axis=(-3, -2, -1))
    geometric = (ref_mse[..., 0] ** 10 * ref_mse[..., 1] * ref_mse[..., 2]) ** (1 / 12)
    expected = 0.8 * 3 * geometric + 0.2 * mse_rgb

    assert d.shape == (2, 4) and mse.shape == (2, 4, 3)
    np.testing.assert_allclose(mse.numpy(), ref_mse, rtol=1e-5)
    np.testing.assert_allclose(d.numpy(), expected, rtol=1e-4)


def test_perfect_plane_gives_zero_distortion_and_finite_gradient():
    x = torch.zeros(1, 3, 8, 8)
    x_hat = torch.zeros(1, 3, 8, 8, requires_grad=True)
    d, _ = distortion(x_hat, x)
    d.sum().backward()
    assert float(d.detach()) == pytest.approx(0.0, abs=1e-9)
    assert torch.isfinite(x_hat.grad).all()


def test_default_frame_weights_are_the_release_table_for_eight_frames():
    assert default_frame_weights(8) == RELEASE_FRAME_WEIGHTS_8
    assert default_frame_weights(8) == (0.16, 0.4, 0.16, 0.4, 0.16, 0.4, 0.16, 1.5)
    two = default_frame_weights(2)
    assert two[-1] == max(two)
    assert normalized_frame_weights(default_frame_weights(1)).tolist() == [1.0]


def test_normalized_weights_have_mean_one_and_keep_ratios():
    w = normalized_frame_weights(RELEASE_FRAME_WEIGHTS_8)
    assert float(w.mean()) == pytest.approx(1.0)
    assert float(w[7] / w[0]) == pytest.approx(1.5 / 0.16)
    with pytest.raises(InputFormatError):
        normalized_frame_weights([0.0, 0.0])
    with pytest.raises(InputFormatError):
        default_frame_weights(0)


def test_yuv_psnr_weights_luma_six_to_one():
    mse = torch.tensor([1e-3, 1e-2, 1e-4])
    expected = (6 * 30.0 + 20.0 + 40.0) / 8
    assert float(yuv_psnr(mse)) == pytest.approx(expected, rel=1e-5)
    assert math.isclose(float(yuv_psnr(torch.zeros(3))), 99.9, rel_tol=1e-6)
