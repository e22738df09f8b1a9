"""Differentiable rate models: the factorized density for z and Gaussian bits for y.

These estimate bits for training and evaluation. Real coding builds integer tables
from the same parameters in `ufvc.entropy`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

SCALE_FLOOR = 0.11  # smallest Gaussian scale used for y (the release's table minimum)
PROB_FLOOR = 1e-6  # rates are computed from max(p, PROB_FLOOR), as the release does
_SQRT1_2 = 0.7071067811865476


def quantize_ste(x: torch.Tensor) -> torch.Tensor:
    """Round to the nearest integer (halves to even) with a straight-through gradient."""
    return x + (torch.round(x) - x).detach()


def _bits_from_prob(p: torch.Tensor) -> torch.Tensor:
    return torch.clamp(-torch.log2(torch.clamp(p, min=PROB_FLOOR)), min=0.0)


def gaussian_bits(symbols: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Bits of integer (or noisy) residuals under a zero-mean Gaussian, element-wise.

    p = Phi((0.5 - |v|) / s) - Phi((-0.5 - |v|) / s) with s = max(scale, 0.11); the
    symmetric form keeps precision in the tails.
    """
    s = torch.clamp(scales, min=SCALE_FLOOR)
    v = symbols.abs()
    upper = _normal_cdf((0.5 - v) / s)
    lower = _normal_cdf((-0.5 - v) / s)
    p = torch.clamp(upper - lower, min=1e-9)
    return _bits_from_prob(p)


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    # Written with erfc rather than torch.special.ndtr: in float32 on CPU and CUDA, ndtr
    # loses relative precision in the lower tail (bits of |v| = 2 at s = 0.32 off by
    # 0.01), which moved fixture rates by 2e-5; erfc keeps them within 1e-7.
    return 0.5 * torch.erfc(x * -_SQRT1_2)


class FactorizedDensity(nn.Module):
    """Per-qp, per-channel learned CDF for the hyper-latent z (Balle et al. 2018).

    Parameters h, b (num_qp x C x 4) and a (num_qp x C x 3) select one density per
    quality level; F(x) is built by four affine steps with tanh gates in between.
    """

    def __init__(self, channels: int, num_qp: int = 64) -> None:
        super().__init__()
        self.h = nn.Parameter(torch.zeros(num_qp, channels, 4))
        self.b = nn.Parameter(torch.zeros(num_qp, channels, 4))
        self.a = nn.Parameter(torch.zeros(num_qp, channels, 3))

    def logits_cdf(self, x: torch.Tensor, qp: torch.Tensor) -> torch.Tensor:
        """Logit of F(x) for x of shape [B, C, ...] with one qp index per sample."""
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        h = F.softplus(self.h[qp])
        b, a = self.b[qp], torch.tanh(self.a[qp])
        for i in range(4):
            x = x * h[..., i].reshape(shape) + b[..., i].reshape(shape)
            if i < 3:
                x = x + torch.tanh(x) * a[..., i].reshape(shape)
        return x

    def cdf(self, x: torch.Tensor, qp: torch.Tensor) -> torch.Tensor:
        """F(x), the continuous CDF at x."""
        return torch.sigmoid(self.logits_cdf(x, qp))

    def bits(self, z: torch.Tensor, qp: torch.Tensor) -> torch.Tensor:
        """Element-wise bits of (integer or noisy) z: -log2(F(z + 0.5) - F(z - 0.5))."""
        upper = self.logits_cdf(z + 0.5, qp)
        lower = self.logits_cdf(z - 0.5, qp)
        # The release takes this CDF difference in float32 even in a float64 model. In the
        # upper tail that rounds p coarsely; a tail-exact form differs from the reference
        # rates by up to 3e-5 relative (HT-L fixture), this one by about 1e-7.
        p = torch.sigmoid(upper.float()) - torch.sigmoid(lower.float())
        return _bits_from_prob(p).to(z.dtype)
