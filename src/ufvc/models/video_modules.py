"""The boxes of the DCVC-UF chunk video codec (paper Fig. 2), one module each.

Attribute names follow the official state-dict layout (`conv`, `conv1`, `conv2`, `down`,
`up`, `head`) so the official checkpoints load without renaming. Widths and depths come
from `ufvc.models.video.ChunkCodecConfig`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ufvc.nn.blocks import DCBlock, DownBlock, SubPixelConv, UpBlock

PATCH = 8  # patch embedding: pixel_unshuffle(8), 3 channels -> 192 at 1/8 resolution
PATCH_CHANNELS = 3 * PATCH * PATCH


def dc_chain(in_ch: int, out_ch: int, blocks: int, *, half: bool) -> list[nn.Module]:
    """`blocks` DC blocks; the first adapts in_ch -> out_ch."""
    return [DCBlock(in_ch if i == 0 else out_ch, out_ch, half=half) for i in range(blocks)]


class BlockStack(nn.Module):
    """A chain of DC blocks held as `conv`: feature adaptors I and M, feature extractor."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, *, half: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(*dc_chain(in_ch, out_ch, blocks, half=half))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Encoder(nn.Module):
    """cat(patch-embedded chunk, context) -> DC blocks -> x q_encoder[qp] -> 3x3 stride-2 conv.

    With `tail_block` the last DC block is held apart as `conv2` (the LD key layout).
    """

    def __init__(
        self,
        in_ch: int,
        width: int,
        y_ch: int,
        blocks: int,
        *,
        half: bool,
        tail_block: bool,
    ) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(*dc_chain(in_ch, width, blocks - int(tail_block), half=half))
        self.conv2 = DCBlock(width, width, half=half) if tail_block else None
        self.down = nn.Conv2d(width, y_ch, 3, stride=2, padding=1)

    def forward(
        self, patches: torch.Tensor, ctx: torch.Tensor, q_row: torch.Tensor
    ) -> torch.Tensor:
        feature = self.conv1(torch.cat((patches, ctx), dim=1))
        if self.conv2 is not None:
            feature = self.conv2(feature)
        return self.down(feature * q_row)


class Decoder(nn.Module):
    """Sub-pixel up (y -> width) ++ context -> DC blocks [-> 1x1] -> x q_decoder[qp] = F."""

    def __init__(
        self,
        y_ch: int,
        width: int,
        ctx_ch: int,
        blocks: int,
        *,
        half: bool,
        up_kernel: int,
        output_conv: bool,
    ) -> None:
        super().__init__()
        self.up = SubPixelConv(y_ch, width, kernel=up_kernel)
        self.conv1 = nn.Sequential(*dc_chain(width + ctx_ch, width, blocks, half=half))
        self.conv2 = nn.Conv2d(width, width, 1) if output_conv else None

    def forward(self, y_hat: torch.Tensor, ctx: torch.Tensor, q_row: torch.Tensor) -> torch.Tensor:
        feature = self.conv1(torch.cat((self.up(y_hat), ctx), dim=1))
        if self.conv2 is not None:
            feature = self.conv2(feature)
        return feature * q_row


class HyperEncoder(nn.Module):
    """y -> DC block -> two stride-2 blocks -> z at 1/4 of y's resolution."""

    def __init__(self, y_ch: int, z_ch: int, *, half: bool, shortcut: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            DCBlock(y_ch, y_ch, half=half),
            DownBlock(y_ch, y_ch, shortcut=shortcut, half=half),
            DownBlock(y_ch, z_ch, shortcut=shortcut, half=half),
        )

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.conv(y)


class HyperDecoder(nn.Module):
    """z_hat -> two up blocks -> DC block -> hyper prior at y's resolution."""

    def __init__(
        self, z_ch: int, y_ch: int, *, half: bool, shortcut: bool, up_bias: bool
    ) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            UpBlock(z_ch, y_ch, shortcut=shortcut, half=half, bias=up_bias),
            UpBlock(y_ch, y_ch, shortcut=shortcut, half=half, bias=up_bias),
            DCBlock(y_ch, y_ch, half=half),
        )

    def forward(self, z_hat: torch.Tensor) -> torch.Tensor:
        return self.conv(z_hat)


class TemporalPriorEncoder(nn.Module):
    """Memory (1/8) -> one stride-2 block -> temporal prior at y's resolution."""

    def __init__(self, memory_ch: int, *, half: bool, shortcut: bool) -> None:
        super().__init__()
        self.conv = DownBlock(memory_ch, memory_ch, shortcut=shortcut, half=half)

    def forward(self, memory: torch.Tensor) -> torch.Tensor:
        return self.conv(memory)


class PriorFusion(nn.Module):
    """cat(hyper prior, temporal prior) -> DC blocks -> 1x1 -> entropy parameters."""

    def __init__(self, in_ch: int, out_ch: int, blocks: int, *, half: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            *(DCBlock(in_ch, in_ch, half=half) for _ in range(blocks)),
            nn.Conv2d(in_ch, out_ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def _branch(in_ch: int, width: int, blocks: int, *, half: bool) -> nn.Sequential:
    """One frame's reconstruction branch: DC blocks then 1x1 to the 192 patch channels."""
    return nn.Sequential(
        *dc_chain(in_ch, width, blocks, half=half), nn.Conv2d(width, PATCH_CHANNELS, 1)
    )


class SingleReconHead(nn.Module):
    """One frame (LD key layout): DC blocks as `conv`, the 1x1 output conv as `head`."""

    def __init__(self, feature_ch: int, width: int, blocks: int, *, half: bool) -> None:
        super().__init__()
        self.conv = nn.Sequential(*dc_chain(feature_ch, width, blocks, half=half))
        self.head = nn.Conv2d(width, PATCH_CHANNELS, 1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """Patch maps [B, 1, 192, h, w]."""
        return self.head(self.conv(feature)).unsqueeze(1)


class BranchReconHead(nn.Module):
    """One independent branch per frame (HT-L): `conv.<frame>`."""

    def __init__(
        self, frames: int, feature_ch: int, width: int, blocks: int, *, half: bool
    ) -> None:
        super().__init__()
        self.conv = nn.ModuleList(
            _branch(feature_ch, width, blocks, half=half) for _ in range(frames)
        )

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """Patch maps [B, N, 192, h, w]."""
        return torch.stack([branch(feature) for branch in self.conv], dim=1)


class SharedReconHead(nn.Module):
    """Groups of `group_size` consecutive frames share a first stage `conv1.<group>`;
    then one branch per frame `conv2.<frame>` (HT-S: one shared DC block per frame pair)."""

    def __init__(
        self,
        frames: int,
        feature_ch: int,
        width: int,
        blocks: int,
        *,
        shared_blocks: int,
        group_size: int,
        half: bool,
    ) -> None:
        super().__init__()
        self.group_size = group_size
        groups = -(-frames // group_size)
        self.conv1 = nn.ModuleList(
            nn.Sequential(*(DCBlock(feature_ch, feature_ch, half=half)
                            for _ in range(shared_blocks)))
            for _ in range(groups)
        )
        self.conv2 = nn.ModuleList(
            _branch(feature_ch, width, blocks, half=half) for _ in range(frames)
        )

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """Patch maps [B, N, 192, h, w]."""
        shared = [stage(feature) for stage in self.conv1]
        return torch.stack(
            [branch(shared[f // self.group_size]) for f, branch in enumerate(self.conv2)], dim=1
        )


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad the last two dims on the bottom/right up to a multiple of `multiple`."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
