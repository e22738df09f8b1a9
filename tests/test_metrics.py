"""PSNR and MS-SSIM against direct computations on known inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ufvc.errors import InputFormatError
from ufvc.io.types import Frame
from ufvc.metrics import (
    MS_SSIM_WEIGHTS,
    FramePsnr,
    SequencePsnr,
    frame_psnr,
    ms_ssim,
    ms_ssim_scales,
    plane_psnr,
)


def numpy_psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(peak**2 / mse)


def test_plane_psnr_of_a_known_error():
    ref = np.zeros((4, 4), np.uint8)
    dist = ref.copy()
    dist[0, 0] = 16  # mse = 256 / 16 = 16
    assert plane_psnr(ref, dist) == pytest.approx(10 * math.log10(255**2 / 16))
    ten_bit = np.zeros((4, 4), np.uint16)
    assert plane_psnr(ten_bit, dist.astype(np.uint16), bit_depth=10) == pytest.approx(
        10 * math.log10(1023**2 / 16)
    )


def test_identical_and_nearly_identical_planes_are_capped_at_99_9():
    plane = np.full((8, 8), 7, np.uint8)
    assert plane_psnr(plane, plane) == 99.9
    big = np.zeros((2048, 2048), np.uint16)
    tiny_error = big.copy()
    tiny_error[0, 0] = 1  # 10-bit PSNR ~126.9 dB before the cap
    assert plane_psnr(big, tiny_error, bit_depth=10) == 99.9


def test_frame_psnr_matches_numpy_and_combines_611_and_411(random_frames):
    ref, dist = random_frames(32, 16, 2, seed=4)
    psnr = frame_psnr(ref, dist)
    y, u, v = (numpy_psnr(a, b, 255) for a, b in zip(ref.planes, dist.planes, strict=True))
    assert (psnr.y, psnr.u, psnr.v) == pytest.approx((y, u, v))
    assert psnr.yuv611 == pytest.approx((6 * y + u + v) / 8)
    assert psnr.yuv411 == pytest.approx((4 * y + u + v) / 6)
    assert psnr.u != psnr.v


def test_sequence_value_is_the_mean_of_per_frame_psnrs(random_frames):
    refs = random_frames(16, 8, 3, seed=1)
    dists = [
        Frame(f.y // 2, f.u, f.v // 3) if i else Frame(f.y.copy(), f.u.copy(), f.v.copy())
        for i, f in enumerate(refs)
    ]
    sequence = SequencePsnr()
    per_frame = [sequence.add(r, d) for r, d in zip(refs, dists, strict=True)]
    assert len(sequence) == 3 and per_frame[0] == FramePsnr(99.9, 99.9, 99.9)
    mean = sequence.mean()
    assert mean.y == pytest.approx(np.mean([p.y for p in per_frame]))
    assert mean.yuv611 == pytest.approx(np.mean([p.yuv611 for p in per_frame]))
    assert mean.yuv411 == pytest.approx(np.mean([p.yuv411 for p in per_frame]))
    # Averaging PSNRs is not the PSNR of the pooled error.
    pooled = numpy_psnr(np.stack([r.y for r in refs[1:]]), np.stack([d.y for d in dists[1:]]), 255)
    assert pooled != pytest.approx(np.mean([p.y for p in per_frame[1:]]))


def test_mismatched_shapes_and_depths_raise(random_frames):
    small, large = random_frames(8, 8, 1)[0], random_frames(16, 8, 1)[0]
    with pytest.raises(InputFormatError, match="shapes differ"):
        frame_psnr(small, large)
    with pytest.raises(InputFormatError, match="bit depths differ"):
        frame_psnr(small, random_frames(8, 8, 1, bit_depth=10)[0])
    with pytest.raises(InputFormatError, match="shapes differ"):
        ms_ssim(small.y, large.y)
    with pytest.raises(InputFormatError, match="no frames"):
        SequencePsnr().mean()


def numpy_ssim_terms(a: np.ndarray, b: np.ndarray, peak: float) -> tuple[float, float]:
    """SSIM and contrast-structure means with a full 2-D window over valid positions."""
    offsets = np.arange(11) - 5
    g = np.exp(-(offsets**2) / (2 * 1.5**2))
    window = np.outer(g, g) / np.outer(g, g).sum()

    def blur(x):
        views = np.lib.stride_tricks.sliding_window_view(x, (11, 11))
        return np.einsum("ijkl,kl->ij", views, window)

    c1, c2 = (0.01 * peak) ** 2, (0.03 * peak) ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a, var_b = blur(a * a) - mu_a**2, blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    lum = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return float((lum * cs).mean()), float(cs.mean())


def numpy_ms_ssim(a: np.ndarray, b: np.ndarray, scales: int, peak: float = 255) -> float:
    weights = np.array(MS_SSIM_WEIGHTS[:scales]) / sum(MS_SSIM_WEIGHTS[:scales])
    a, b = a.astype(np.float64), b.astype(np.float64)
    result = 1.0
    for scale in range(scales):
        ssim, cs = numpy_ssim_terms(a, b, peak)
        result *= max(ssim if scale == scales - 1 else cs, 0) ** weights[scale]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
        b = b[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    return result


@pytest.mark.parametrize(("height", "width", "scales"), [(180, 200, 5), (144, 176, 4), (40, 60, 2)])
def test_ms_ssim_matches_a_direct_numpy_computation(height, width, scales):
    rng = np.random.default_rng(7)
    smooth = np.cumsum(np.cumsum(rng.normal(size=(height, width)), 0), 1)
    ref = np.clip(128 + smooth / np.abs(smooth).max() * 100, 0, 255).astype(np.uint8)
    dist = np.clip(ref + rng.normal(0, 8, ref.shape), 0, 255).astype(np.uint8)
    assert ms_ssim_scales(height, width) == scales
    value = ms_ssim(ref, dist)
    assert value == pytest.approx(numpy_ms_ssim(ref, dist, scales), abs=1e-9)
    assert 0.5 < value < 1.0
    assert ms_ssim(ref, ref) == pytest.approx(1.0)


def test_ms_ssim_falls_as_noise_grows():
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 1024, (64, 64)).astype(np.uint16)
    values = [
        ms_ssim(ref, np.clip(ref + rng.normal(0, s, ref.shape), 0, 1023).astype(np.uint16), 10)
        for s in (5, 40, 200)
    ]
    assert values[0] > values[1] > values[2]


def test_ms_ssim_needs_at_least_one_window():
    with pytest.raises(InputFormatError, match="smaller than the 11x11 window"):
        ms_ssim(np.zeros((10, 40), np.uint8), np.zeros((10, 40), np.uint8))
