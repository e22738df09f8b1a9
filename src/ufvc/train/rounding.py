"""Training with the weights a model file will store: int8 convolution weights.

An int8 `.ufvm` (`ufvc.models.checkpoint`) holds every convolution weight as an 8-bit level
with a float16 scale per output channel. Rounding a float-trained model so costs it about
one session of training (docs/training.md, session 55). Training through the rounding
removes that cost: the forward and backward passes see the stored values, and the
gradients they give update the float weights, which the optimizer keeps (a
straight-through estimator, as BinaryConnect trains binary weights).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from ufvc.models.checkpoint import dequantize_int8, is_integer_storable, quantize_int8


class StorageRounding:
    """Inside `applied()`, every convolution weight of `model` holds its int8 storage
    value; after it, the float value again (with any gradient computed inside)."""

    def __init__(self, model: nn.Module) -> None:
        self.params = [param for name, param in model.named_parameters()
                       if is_integer_storable(name, param)]
        # Every training step swaps the weights: one buffer for the float values, kept.
        self.floats = [torch.empty_like(param) for param in self.params]

    @contextmanager
    def applied(self) -> Iterator[None]:
        with torch.no_grad():
            for param, saved in zip(self.params, self.floats, strict=True):
                saved.copy_(param)
                param.copy_(dequantize_int8(*quantize_int8(param)))
        try:
            yield
        finally:
            with torch.no_grad():
                for param, saved in zip(self.params, self.floats, strict=True):
                    param.copy_(saved)
