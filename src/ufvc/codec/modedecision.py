"""Rate-distortion choice, per chunk, between the chunk codec and intra frames.

At the top qualities the chunk codec's reconstruction stops improving: its transforms,
not its quantiser, cap it (docs/training.md, "what caps the video codec"), while the
intra codec goes on gaining from its bits. At quality 63 an intra frame of Megamind costs
about four times a P frame's bits for 11 dB more, which at that quality's lambda is the
cheaper choice. So with `mode_decision="rd"` the encoder weighs both, like a conventional
encoder's intra/inter decision: a candidate's cost per frame is

    J = lambda(quality) * D + bpp,    D = (6 mse_Y + mse_Cb + mse_Cr) / 8

over the networks' YCbCr 4:4:4 samples in [0, 1] scale, with the bits the coding tables
give the y symbols (the z symbols, a few per cent of either, are left out of both). The
chunk is coded as intra frames, at the same quality, when an intra frame of its first
frame costs less per frame than the chunk. (Coding them at the intra level trained for
the video networks' lambda, 57 for 63 and 29 for 40, was measured too: OpenCV's clips
gained less, Megamind -3.0 % against -6.3 % over the fixed structure, and the top
fell 0.1-0.8 dB.) Trying the intra codec costs about half a chunk's networks, so it is
tried only when the chunk costs at least `TRIAL_RATIO` of the last intra frame's cost:
intra costs within a scene stay inside that margin, so a chunk that is much cheaper is
not weighed.
"""

from __future__ import annotations

import math

import torch

from ufvc.codec.ratecontrol import estimate_y_bits
from ufvc.defaults import NUM_QUALITY_LEVELS
from ufvc.entropy.tables import GaussianTables

# ufvc-s's video training lambdas (configs/ufvc-s-video-photos.toml: 1 at quality 0 to
# 12,000 at 63, log-spaced) times 3: the training distortion is about three plain mean
# square errors when the planes' errors are alike, where the decision's D is one.
DECISION_LAMBDA_RANGE = (3.0, 36000.0)
TRIAL_RATIO = 0.7
PLANE_WEIGHTS = (6.0 / 8.0, 1.0 / 8.0, 1.0 / 8.0)


def decision_lambda(quality: int) -> float:
    """The lambda that prices one unit of D against one bit per pixel at `quality`."""
    low, high = DECISION_LAMBDA_RANGE
    position = quality / (NUM_QUALITY_LEVELS - 1)
    return math.exp(math.log(low) + position * (math.log(high) - math.log(low)))


def mean_distortion(x_hat: torch.Tensor, x: torch.Tensor) -> float:
    """D of reconstructions [N, 3, H, W] against their sources, averaged over the frames."""
    mse = (x_hat.float().clamp(-0.5, 0.5) - x.float()).square().mean(dim=(0, 2, 3))
    weights = torch.tensor(PLANE_WEIGHTS, dtype=mse.dtype, device=mse.device)
    return float((mse * weights).sum())


class ModeDecider:
    """Prices coded candidates at one quality and remembers the last intra frame's cost."""

    def __init__(self, quality: int, pixels_per_frame: int, tables: GaussianTables) -> None:
        self.lam = decision_lambda(quality)
        self.pixels = pixels_per_frame
        self.tables = tables
        self.last_intra_cost: float | None = None

    def cost(self, x_hat: torch.Tensor, x: torch.Tensor,
             y_steps: list, frames: int) -> float:
        """J per frame of `frames` coded frames: x_hat and x hold exactly those frames."""
        bits = estimate_y_bits(self.tables, y_steps)
        return self.lam * mean_distortion(x_hat, x) + bits / (self.pixels * frames)

    def worth_trying_intra(self, chunk_cost: float) -> bool:
        """Whether a chunk costing `chunk_cost` per frame may lose to an intra frame."""
        return self.last_intra_cost is None or chunk_cost >= TRIAL_RATIO * self.last_intra_cost
