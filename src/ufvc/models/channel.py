"""Where quantised latents go to or come from: one model forward for training,
rate estimation, real encoding and real decoding.

The networks never round or count bits themselves. At each step of the spatial
prior they hand the residual `(y - mean) * mask` and its scales to a channel and
continue with what the channel returns:

* `EstimateChannel` rounds (or adds noise) and sums estimated bits (training, eval);
* the encoder's channel (`ufvc.codec`) rounds, records the symbols for the coder;
* the decoder's channel reads the symbols back from the bitstream.

Streamlined models (all scales from one pass) announce every step's scales through
`begin`, so a decoder can parse all y symbols in one call before the mean steps.
"""

from __future__ import annotations

from typing import Protocol

import torch

from ufvc.nn.entropy import FactorizedDensity, gaussian_bits, quantize_ste


class LatentChannel(Protocol):
    """The interface between a model's entropy model and whatever consumes its symbols."""

    def exchange_z(
        self, z: torch.Tensor | None, density: FactorizedDensity, qp: torch.Tensor, shape
    ) -> torch.Tensor:
        """Return z_hat (integers as float) of `shape`; `z` is None on the decoder side."""
        ...

    def begin_y(self, scales: list[torch.Tensor] | None, masks: list[torch.Tensor]) -> None:
        """Called once before the steps: every step's scales (streamlined) or None (per-step)."""
        ...

    def exchange_y(
        self, step: int, residual: torch.Tensor | None, scales: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """Return the quantised residual at `mask` (zero elsewhere); `residual` is None when
        decoding. `scales` are the Gaussian scales of this step (only `mask` positions count)."""
        ...


class EstimateChannel:
    """Quantise in-graph and sum estimated bits (per sample) for training and evaluation.

    `noisy_rate=True` is the training recipe: the rate of y and z is measured on the
    unrounded value plus uniform noise, while the value passed on is rounded with a
    straight-through gradient. With `noisy_rate=False` the rate is that of the rounded
    integers an entropy coder would code (the reference fixtures use this).
    """

    def __init__(self, *, noisy_rate: bool = False) -> None:
        self.noisy_rate = noisy_rate
        self.bits_y: torch.Tensor | float = 0.0
        self.bits_z: torch.Tensor | float = 0.0
        self.y_symbols: list[torch.Tensor] = []
        self.scales: list[torch.Tensor] = []

    def _rate_input(self, value: torch.Tensor) -> torch.Tensor:
        if self.noisy_rate:
            return value + torch.empty_like(value).uniform_(-0.5, 0.5)
        return torch.round(value)

    def exchange_z(self, z, density, qp, shape):
        bits = density.bits(self._rate_input(z), qp)
        self.bits_z = self.bits_z + bits.flatten(1).sum(1)
        return quantize_ste(z)

    def begin_y(self, scales, masks):
        pass

    def exchange_y(self, step, residual, scales, mask):
        q = quantize_ste(residual) * mask
        bits = gaussian_bits(self._rate_input(residual), scales) * mask
        self.bits_y = self.bits_y + bits.flatten(1).sum(1)
        self.y_symbols.append(q.detach())
        self.scales.append((scales * mask).detach())
        return q
