"""Convolutions whose results do not depend on the number of CPU threads.

oneDNN's dense convolutions (1x1 and 3x3 alike) split their reductions differently
with the number of threads, so the same input gives results that differ in the last
bits between, say, 1 and 2 threads. A decoder that computes entropy parameters and
reconstructions from such values can then disagree with its encoder. A matrix
product over channels (MKL/oneDNN GEMM) was thread-count invariant on every CPU
we measured, and depthwise convolutions are too, so a codec model runs every dense
convolution as a GEMM. Weights keep the Conv2d layout, so checkpoints are unaffected.

One exception was measured (MKL in torch 2.13, AVX-512): products with 5 to 11 rows
take a thread-dependent path, while 1-4 and 12 or more rows do not. Products with
fewer than `MIN_GEMM_ROWS` rows are therefore padded with zero rows (they only occur
at 1/64 resolution for tiny frames, so the padding costs nothing measurable).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MIN_GEMM_ROWS = 16


def _gemm(rows: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """rows @ weight (+ bias), with the same rounding for any number of threads."""
    count = rows.shape[0]
    if count < MIN_GEMM_ROWS:
        rows = torch.cat([rows, rows.new_zeros(MIN_GEMM_ROWS - count, rows.shape[1])])
    out = torch.mm(rows, weight) if bias is None else torch.addmm(bias, rows, weight)
    return out[:count]


def _is_pointwise(conv: nn.Conv2d) -> bool:
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding == (0, 0)
            and conv.dilation == (1, 1))


def gemm_conv2d(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
    """`conv`'s dense convolution of x with `weight` (Conv2d layout) as one GEMM: a product
    over channels for 1x1 kernels, im2col (`F.unfold`) and a product otherwise."""
    batch, channels, height, width = x.shape
    out_channels = weight.shape[0]
    if _is_pointwise(conv):
        # Free of copies when x is channels_last; the result is channels_last too.
        rows = x.permute(0, 2, 3, 1).reshape(-1, channels)
        out_h, out_w = height, width
    else:
        kh, kw = conv.kernel_size
        (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
        out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        cols = F.unfold(x, conv.kernel_size, conv.dilation, conv.padding, conv.stride)
        rows = cols.transpose(1, 2).reshape(batch * out_h * out_w, -1)
    y = _gemm(rows, weight.view(out_channels, -1).t(), bias)
    return y.view(batch, out_h, out_w, out_channels).permute(0, 3, 1, 2)


class PointwiseConv2d(nn.Conv2d):
    """An `nn.Conv2d` with a 1x1 kernel, evaluated as a GEMM over the channel axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemm_conv2d(self, x, self.weight, self.bias)


class UnfoldConv2d(nn.Conv2d):
    """A dense k x k `nn.Conv2d` evaluated as im2col (`F.unfold`) and one GEMM.

    Used only where dense kernels are larger than 1x1 (a few layers at 1/16 resolution),
    so the unfolded copy stays small.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return gemm_conv2d(self, x, self.weight, self.bias)


def use_deterministic_convs(model: nn.Module) -> nn.Module:
    """Switch every dense `nn.Conv2d` of `model` to its GEMM form, in place."""
    for module in model.modules():
        if type(module) is not nn.Conv2d or module.groups != 1 or module.padding_mode != "zeros":
            continue
        module.__class__ = PointwiseConv2d if _is_pointwise(module) else UnfoldConv2d
    return model
