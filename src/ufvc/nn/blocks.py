"""Convolutional blocks: WSiLU, the depth-conv (DC) block, down/up blocks, sub-pixel conv."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class WSiLU(nn.Module):
    """x * sigmoid(4x): the activation used throughout DCVC-RT and DCVC-UF."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(4.0 * x)


class _GroupSum4(nn.Module):
    """Sum of the four channel groups taken with stride 4 (channels 0::4 + 1::4 + 2::4 + 3::4)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
            # Sum neighbouring channels in place of strided ones: stays channels_last, no copy.
            return x.permute(0, 2, 3, 1).view(b, h, w, c // 4, 4).sum(-1).permute(0, 3, 1, 2)
        return x.view(b, c // 4, 4, h, w).sum(dim=2)


class DCBlock(nn.Module):
    """Depth-conv block: a depthwise residual branch then a gated feed-forward branch.

    `half` halves the inner width (the "dcb2" blocks of the small models); `shortcut`
    adds the (adapted) input once more at the end; `force_adaptor` keeps the 1x1 input
    adaptor even when the widths match.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        half: bool = False,
        shortcut: bool = False,
        force_adaptor: bool = False,
    ) -> None:
        super().__init__()
        self.adaptor = nn.Conv2d(in_ch, out_ch, 1) if (in_ch != out_ch or force_adaptor) else None
        inner = out_ch // 2 if half else out_ch
        self.dc = nn.Sequential(
            nn.Conv2d(out_ch, inner, 1),
            WSiLU(),
            nn.Conv2d(inner, inner, 3, padding=1, groups=inner),
            nn.Conv2d(inner, out_ch, 1),
        )
        self.ffn = nn.Sequential(
            nn.Conv2d(out_ch, inner * 4, 1),
            nn.Sequential(WSiLU(), _GroupSum4()),
            nn.Conv2d(inner, out_ch, 1),
        )
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.adaptor is not None:
            x = self.adaptor(x)
        out = x + self.dc(x)
        out = out + self.ffn(out)
        if self.shortcut:
            out = out + x
        return out


class DownBlock(nn.Module):
    """Stride-2 block: pixel_unshuffle(2), 1x1 conv (4*in -> out), DC block."""

    def __init__(self, in_ch: int, out_ch: int, *, shortcut: bool = True, half: bool = False):
        super().__init__()
        self.down = nn.Conv2d(in_ch * 4, out_ch, 1)
        self.conv = DCBlock(out_ch, out_ch, shortcut=shortcut, half=half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.down(F.pixel_unshuffle(x, 2)))


class SubPixelConv(nn.Module):
    """Up-sampling by 2: a k x k conv to 4*out channels, then pixel_shuffle(2).

    The official 1x1 variants carry no bias; `bias` overrides that.
    """

    def __init__(self, in_ch: int, out_ch: int, *, kernel: int = 1, bias: bool | None = None):
        super().__init__()
        if bias is None:
            bias = kernel > 1
        self.conv = nn.Sequential(
            nn.Conv2d(in_ch, out_ch * 4, kernel, padding=kernel // 2, bias=bias),
            nn.PixelShuffle(2),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class UpBlock(nn.Module):
    """Up block: sub-pixel conv (in -> out, 2x) then a DC block."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        *,
        shortcut: bool = True,
        half: bool = False,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.up = SubPixelConv(in_ch, out_ch, kernel=1, bias=bias)
        self.conv = DCBlock(out_ch, out_ch, shortcut=shortcut, half=half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))
