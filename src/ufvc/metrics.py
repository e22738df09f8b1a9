"""Quality metrics: per-plane PSNR, combined YUV PSNR, sequence averages, MS-SSIM.

The paper's method: PSNR per plane on the 4:2:0 planes, YUV PSNR = (6Y + U + V) / 8, each
capped at 99.9 dB, and a sequence's value is the mean over frames of per-frame PSNRs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ufvc.errors import InputFormatError
from ufvc.io.types import Frame

PSNR_CAP = 99.9
# MS-SSIM (Wang, Simoncelli, Bovik 2003): per-scale exponents and SSIM constants.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5
SSIM_K1 = 0.01
SSIM_K2 = 0.03


def _check_same_shape(ref: np.ndarray, dist: np.ndarray, what: str) -> None:
    if ref.shape != dist.shape:
        raise InputFormatError(f"{what}: shapes differ, {ref.shape} vs {dist.shape}")


def plane_psnr(ref: np.ndarray, dist: np.ndarray, bit_depth: int = 8) -> float:
    """PSNR in dB of one plane, peak 255 (8-bit) or 1023 (10-bit), capped at 99.9."""
    _check_same_shape(ref, dist, "plane_psnr")
    peak = float((1 << bit_depth) - 1)
    mse = float(np.mean((ref.astype(np.float64) - dist.astype(np.float64)) ** 2))
    if mse == 0.0:
        return PSNR_CAP
    return min(10.0 * math.log10(peak * peak / mse), PSNR_CAP)


@dataclass(frozen=True)
class FramePsnr:
    """PSNR in dB of Y, U and V, with the two usual weighted combinations."""

    y: float
    u: float
    v: float

    @property
    def yuv611(self) -> float:
        """(6Y + U + V) / 8: the combined value the paper reports."""
        return (6.0 * self.y + self.u + self.v) / 8.0

    @property
    def yuv411(self) -> float:
        """(4Y + U + V) / 6."""
        return (4.0 * self.y + self.u + self.v) / 6.0

    def to_dict(self) -> dict[str, float]:
        return {"y": self.y, "u": self.u, "v": self.v, "yuv611": self.yuv611, "yuv411": self.yuv411}


def frame_psnr(ref: Frame, dist: Frame) -> FramePsnr:
    """Per-plane PSNR of two frames of the same layout, on their stored (e.g. 4:2:0) planes."""
    if ref.bit_depth != dist.bit_depth:
        raise InputFormatError(
            f"frame_psnr: bit depths differ, {ref.bit_depth} vs {dist.bit_depth}"
        )
    for name, a, b in zip("yuv", ref.planes, dist.planes, strict=True):
        _check_same_shape(a, b, f"frame_psnr plane {name}")
    y, u, v = (
        plane_psnr(a, b, ref.bit_depth) for a, b in zip(ref.planes, dist.planes, strict=True)
    )
    return FramePsnr(y, u, v)


@dataclass
class SequencePsnr:
    """Collects per-frame PSNRs; the sequence value is their mean over frames."""

    frames: list[FramePsnr] = field(default_factory=list)

    def add(self, ref: Frame, dist: Frame) -> FramePsnr:
        """Compare one frame pair, keep and return its PSNR."""
        psnr = frame_psnr(ref, dist)
        self.frames.append(psnr)
        return psnr

    def __len__(self) -> int:
        return len(self.frames)

    def mean(self) -> FramePsnr:
        """Mean over frames per plane; the combined values are then means too (linear)."""
        if not self.frames:
            raise InputFormatError("no frames were compared")
        count = len(self.frames)
        return FramePsnr(
            sum(f.y for f in self.frames) / count,
            sum(f.u for f in self.frames) / count,
            sum(f.v for f in self.frames) / count,
        )


def _gaussian_window() -> torch.Tensor:
    offsets = torch.arange(SSIM_WINDOW, dtype=torch.float64) - (SSIM_WINDOW - 1) / 2
    weights = torch.exp(-(offsets**2) / (2 * SSIM_SIGMA**2))
    return weights / weights.sum()


def _blur(x: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian filtering over the valid region of [N, 1, H, W]."""
    x = F.conv2d(x, window.view(1, 1, 1, -1))
    return F.conv2d(x, window.view(1, 1, -1, 1))


def _ssim_terms(
    a: torch.Tensor, b: torch.Tensor, window: torch.Tensor, peak: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SSIM and mean contrast-structure term over the valid window positions."""
    c1 = (SSIM_K1 * peak) ** 2
    c2 = (SSIM_K2 * peak) ** 2
    mu_a, mu_b = _blur(a, window), _blur(b, window)
    var_a = _blur(a * a, window) - mu_a**2
    var_b = _blur(b * b, window) - mu_b**2
    cov = _blur(a * b, window) - mu_a * mu_b
    contrast_structure = (2 * cov + c2) / (var_a + var_b + c2)
    luminance = (2 * mu_a * mu_b + c1) / (mu_a**2 + mu_b**2 + c1)
    return (luminance * contrast_structure).mean(), contrast_structure.mean()


def ms_ssim_scales(height: int, width: int) -> int:
    """Scales MS-SSIM uses for a plane: 5, or fewer while the smallest would be under 11."""
    scales = 0
    while scales < len(MS_SSIM_WEIGHTS) and min(height, width) >= SSIM_WINDOW << scales:
        scales += 1
    return scales


def ms_ssim(ref_y: np.ndarray, dist_y: np.ndarray, bit_depth: int = 8) -> float:
    """Multi-scale SSIM of two luma planes (Gaussian window 11, sigma 1.5, valid filtering).

    Between scales the planes are halved by 2x2 averaging (an odd last row or column is
    dropped). Planes too small for five scales (under 176 pixels on a side) use as many
    scales as keep the smallest at least 11 pixels, with the exponents of those scales
    renormalised to sum to one. Negative per-scale terms are clamped to zero so that
    fractional powers stay real.
    """
    _check_same_shape(ref_y, dist_y, "ms_ssim")
    if ref_y.ndim != 2:
        raise InputFormatError(f"ms_ssim takes 2-D planes, got shape {ref_y.shape}")
    scales = ms_ssim_scales(*ref_y.shape)
    if scales == 0:
        raise InputFormatError(
            f"ms_ssim: a {ref_y.shape[1]}x{ref_y.shape[0]} plane is smaller than the "
            f"{SSIM_WINDOW}x{SSIM_WINDOW} window"
        )
    peak = float((1 << bit_depth) - 1)
    weights = torch.tensor(MS_SSIM_WEIGHTS[:scales], dtype=torch.float64)
    weights = weights / weights.sum()
    window = _gaussian_window()
    a = torch.from_numpy(ref_y.astype(np.float64))[None, None]
    b = torch.from_numpy(dist_y.astype(np.float64))[None, None]
    terms = []
    for scale in range(scales):
        ssim, contrast_structure = _ssim_terms(a, b, window, peak)
        last = scale == scales - 1
        terms.append(torch.clamp(ssim if last else contrast_structure, min=0.0))
        if not last:
            a, b = F.avg_pool2d(a, 2), F.avg_pool2d(b, 2)
    return float(torch.prod(torch.stack(terms) ** weights))
