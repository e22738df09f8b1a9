"""1x1 convolutions computed as matrix products.

oneDNN's 1x1 convolution splits its reduction differently with the number of
threads, so the same input gives results that differ in the last bits between,
say, 1 and 2 threads. A decoder that computes entropy parameters from such values
can then disagree with its encoder. A plain matmul over channels is
thread-count invariant on the CPU backends we measured and as fast, so every 1x1
convolution of a codec model runs through it. Weights keep the Conv2d layout, so
checkpoints are unaffected.
"""

from __future__ import annotations

import torch
from torch import nn


class PointwiseConv2d(nn.Conv2d):
    """An `nn.Conv2d` with a 1x1 kernel, evaluated as a matmul over the channel axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        # Free of copies when x is channels_last; the result is channels_last too.
        rows = x.permute(0, 2, 3, 1).reshape(-1, channels)
        weight = self.weight.view(self.out_channels, channels).t()
        y = torch.mm(rows, weight) if self.bias is None else torch.addmm(self.bias, rows, weight)
        return y.view(batch, height, width, self.out_channels).permute(0, 3, 1, 2)


def use_pointwise_matmul(model: nn.Module) -> nn.Module:
    """Switch every plain 1x1 convolution of `model` to `PointwiseConv2d`, in place."""
    for module in model.modules():
        if (
            type(module) is nn.Conv2d
            and module.kernel_size == (1, 1)
            and module.stride == (1, 1)
            and module.padding == (0, 0)
            and module.dilation == (1, 1)
            and module.groups == 1
        ):
            module.__class__ = PointwiseConv2d
    return model
