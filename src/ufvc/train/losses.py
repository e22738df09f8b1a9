"""The rate-distortion objective of the release's training recipe.

Frames are YCbCr 4:4:4 in [-0.5, 0.5]. Per frame and sample:

    D = 0.8 * 3 * (mse_Y^10 * mse_U * mse_V)^(1/12) + 0.2 * mse_RGB
    loss = lambda[qp] * D + bpp

with RGB from YCbCr by BT.709 full range. qp indexes 64 log-spaced lambdas;
qp 63 is the HIGHEST quality (the largest lambda), the opposite of H.26x QPs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ufvc.errors import InputFormatError
from ufvc.io.color import YCBCR_TO_RGB

NUM_QP = 64
VIDEO_LAMBDA_RANGE = (1.0, 768.0)
IMAGE_LAMBDA_RANGE = (10.0, 2048.0)

# The release's per-frame weights inside an 8-frame chunk.
RELEASE_FRAME_WEIGHTS_8 = (0.16, 0.4, 0.16, 0.4, 0.16, 0.4, 0.16, 1.5)

# Floor under each plane's mse before the geometric mean: log(0) would give an
# infinite gradient on a perfectly reconstructed plane (e.g. a flat chroma crop).
_MSE_FLOOR = 1e-10


def lambda_table(low: float, high: float, num_qp: int = NUM_QP) -> torch.Tensor:
    """`num_qp` lambdas spaced evenly in log from `low` (qp 0) to `high` (qp num_qp-1)."""
    if not 0 < low < high:
        raise InputFormatError(f"lambda range must satisfy 0 < low < high, got [{low}, {high}]")
    steps = torch.arange(num_qp, dtype=torch.float64) / (num_qp - 1)
    return torch.exp(math.log(low) + steps * (math.log(high) - math.log(low))).float()


def default_frame_weights(chunk_size: int) -> tuple[float, ...]:
    """Relative distortion weights of the frames of one chunk.

    The release's 8-frame pattern generalised to any N: even positions 0.16, odd
    positions 0.4, the last frame (which seeds the next chunk's memory through the
    reset path and ends the chunk) 1.5. For N = 8 this is exactly the release's table;
    for N = 1 it is a single weight.
    """
    if chunk_size < 1:
        raise InputFormatError(f"chunk size must be >= 1, got {chunk_size}")
    weights = [0.4 if i % 2 else 0.16 for i in range(chunk_size)]
    weights[-1] = 1.5
    return tuple(weights)


def normalized_frame_weights(weights: Sequence[float]) -> torch.Tensor:
    """Weights scaled to mean 1, so lambda keeps its meaning whatever the chunk size."""
    w = torch.tensor([float(v) for v in weights], dtype=torch.float32)
    if w.numel() == 0 or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise InputFormatError(f"frame weights must be non-negative with a positive sum: {weights}")
    return w * (w.numel() / w.sum())


def rgb_difference(diff: torch.Tensor) -> torch.Tensor:
    """A YCbCr difference [..., 3, H, W] as the RGB difference (BT.709 full range).

    The colour transform is affine, so on differences only its matrix acts: the
    offsets of the [-0.5, 0.5] convention cancel.
    """
    matrix = torch.as_tensor(YCBCR_TO_RGB, dtype=diff.dtype, device=diff.device)
    return torch.einsum("ij,...jhw->...ihw", matrix, diff)


def plane_mse(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-plane mse over the last two dims: [..., 3, H, W] -> [..., 3], in float32."""
    diff = x_hat.float() - x.float()
    return diff.square().mean(dim=(-2, -1))


def distortion(x_hat: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The release's distortion per frame: [..., 3, H, W] -> (D [...], plane mse [..., 3])."""
    diff = x_hat.float() - x.float()
    mse = diff.square().mean(dim=(-2, -1))
    mse_rgb = rgb_difference(diff).square().mean(dim=(-3, -2, -1))
    log_mse = torch.log(mse.clamp_min(_MSE_FLOOR))
    geometric = torch.exp((10.0 * log_mse[..., 0] + log_mse[..., 1] + log_mse[..., 2]) / 12.0)
    return 0.8 * 3.0 * geometric + 0.2 * mse_rgb, mse


def psnr_from_mse(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of values in a range of 1, capped at 99.9 as in the paper's tables."""
    return (-10.0 * torch.log10(mse.clamp_min(1e-10))).clamp_max(99.9)


def yuv_psnr(plane_mse_: torch.Tensor) -> torch.Tensor:
    """(6 PSNR_Y + PSNR_U + PSNR_V) / 8 from per-plane mse [..., 3]."""
    p = psnr_from_mse(plane_mse_)
    return (6.0 * p[..., 0] + p[..., 1] + p[..., 2]) / 8.0


@dataclass
class RDTerms:
    """One batch's objective and what is logged about it, all per sample ([B])."""

    loss: torch.Tensor  # lambda * D + bpp, averaged over the coded units
    bpp: torch.Tensor  # estimated bits per pixel over the coded frames
    distortion: torch.Tensor  # weighted D over the coded frames
    plane_mse: torch.Tensor  # [B, 3] plain (unweighted) mse of Y, Cb, Cr over the coded frames

    def detached_means(self) -> dict[str, float]:
        """Batch means of the logged quantities, as Python floats."""
        mse = self.plane_mse.detach().mean(dim=0)
        return {
            "loss": float(self.loss.detach().mean()),
            "bpp": float(self.bpp.detach().mean()),
            "psnr": float(yuv_psnr(mse)),
        }
