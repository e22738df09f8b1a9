"""Partition masks of the latent for the multi-step spatial prior (paper Fig. 4a)."""

from __future__ import annotations

import torch

# Step k codes 2x2 position ORDER[k][g] in channel group g; positions are
# 0=(even row, even col), 1=(even, odd), 2=(odd, even), 3=(odd, odd).
QUADTREE_ORDER = ((0, 1, 2, 3), (3, 2, 1, 0), (2, 3, 0, 1), (1, 0, 3, 2))


def quadtree_masks(
    channels: int, height: int, width: int, *, device=None, dtype=torch.float32
) -> list[torch.Tensor]:
    """Four masks [1, C, H, W] for the 4-step quadtree partition; they sum to one."""
    rows = torch.arange(height, device=device) % 2
    cols = torch.arange(width, device=device) % 2
    position = (rows[:, None] * 2 + cols[None, :])  # H x W, values 0..3
    group = torch.arange(channels, device=device) // (channels // 4)  # C, values 0..3
    masks = []
    for order in QUADTREE_ORDER:
        wanted = torch.tensor(order, device=device)[group]  # position coded by each channel
        masks.append((position[None] == wanted[:, None, None]).to(dtype)[None])
    return masks


def checkerboard_masks(
    channels: int, height: int, width: int, *, device=None, dtype=torch.float32
) -> list[torch.Tensor]:
    """Two masks [1, C, H, W] for the 2-step checkerboard with swapped channel halves."""
    rows = torch.arange(height, device=device)
    cols = torch.arange(width, device=device)
    even = ((rows[:, None] + cols[None, :]) % 2 == 0).to(dtype)  # anchor set A
    first_half = (torch.arange(channels, device=device) < channels // 2).to(dtype)[:, None, None]
    step0 = first_half * even + (1 - first_half) * (1 - even)
    return [step0[None], (1 - step0)[None]]
