"""Colour and sample conventions: chroma resampling, BT.709 RGB <-> YCbCr, model tensors.

Conventions (see docs/architecture.md, "Signal conventions"):

- 4:2:0 -> 4:4:4 is nearest-neighbour chroma upsampling; 4:4:4 -> 4:2:0 is a 2x2 average.
- RGB <-> YCbCr uses BT.709 coefficients at full range. In the float domain every
  component lies in [0, 1] and chroma is centred on 0.5, so an integer code is
  `round(x * (2**bit_depth - 1))` for luma and chroma alike. Neutral chroma therefore sits
  at 127.5 (8-bit), the zero of the model's sample mapping, rather than JPEG's 128.
- The model sees a frame as a float32 tensor [3, H, W] at 4:4:4 with values
  `v / (2**bit_depth - 1) - 0.5`, i.e. in [-0.5, 0.5].
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ufvc.errors import InputFormatError
from ufvc.io.planar import sample_dtype
from ufvc.io.types import Frame

# BT.709 luma weights.
KR = 0.2126
KB = 0.0722
KG = 1.0 - KR - KB

# Rows give Y, Cb, Cr (chroma still centred on 0) from R, G, B.
RGB_TO_YCBCR = np.array(
    [
        [KR, KG, KB],
        [-KR / (2 * (1 - KB)), -KG / (2 * (1 - KB)), 0.5],
        [0.5, -KG / (2 * (1 - KR)), -KB / (2 * (1 - KR))],
    ]
)
YCBCR_TO_RGB = np.linalg.inv(RGB_TO_YCBCR)
CHROMA_OFFSET = np.array([0.0, 0.5, 0.5])


def max_code(bit_depth: int) -> int:
    """The largest sample value at `bit_depth` (255 or 1023)."""
    return (1 << bit_depth) - 1


def _check_even(height: int, width: int, what: str) -> None:
    if height % 2 or width % 2:
        raise InputFormatError(
            f"{what}: 4:2:0 needs an even width and height, got {width}x{height}"
        )


def upsample_420_to_444(plane: np.ndarray) -> np.ndarray:
    """Nearest-neighbour chroma upsampling: each sample becomes a 2x2 block."""
    return np.repeat(np.repeat(plane, 2, axis=-2), 2, axis=-1)


def downsample_444_to_420(plane: np.ndarray) -> np.ndarray:
    """2x2 average of a full-size chroma plane.

    Integer planes are averaged exactly and rounded half up, `(a + b + c + d + 2) >> 2`, so
    the result stays in the input's dtype with no float round trip. Float planes are
    averaged without rounding.
    """
    height, width = plane.shape[-2:]
    _check_even(height, width, "chroma downsampling")
    if np.issubdtype(plane.dtype, np.integer):
        wide = plane.astype(np.uint32)
        total = wide[..., 0::2, 0::2] + wide[..., 0::2, 1::2]
        total += wide[..., 1::2, 0::2] + wide[..., 1::2, 1::2]
        return ((total + 2) >> 2).astype(plane.dtype)
    quads = plane[..., 0::2, 0::2] + plane[..., 0::2, 1::2]
    quads = quads + plane[..., 1::2, 0::2] + plane[..., 1::2, 1::2]
    return quads * 0.25


def _apply_matrix(
    x: np.ndarray | torch.Tensor, matrix: np.ndarray, channel_axis: int
) -> np.ndarray | torch.Tensor:
    if isinstance(x, torch.Tensor):
        weights = torch.as_tensor(matrix, dtype=x.dtype, device=x.device)
        moved = torch.movedim(x, channel_axis, -1)
        return torch.movedim(moved @ weights.T, -1, channel_axis)
    moved = np.moveaxis(np.asarray(x, dtype=np.float64), channel_axis, -1)
    return np.moveaxis(moved @ matrix.T, -1, channel_axis)


def _offset(x: np.ndarray | torch.Tensor, channel_axis: int) -> np.ndarray | torch.Tensor:
    shape = [1] * x.ndim
    shape[channel_axis] = 3
    if isinstance(x, torch.Tensor):
        return torch.as_tensor(CHROMA_OFFSET, dtype=x.dtype, device=x.device).reshape(shape)
    return CHROMA_OFFSET.reshape(shape)


def rgb_to_ycbcr(
    rgb: np.ndarray | torch.Tensor, *, channel_axis: int = -1
) -> np.ndarray | torch.Tensor:
    """BT.709 full-range RGB in [0, 1] to YCbCr in [0, 1] (chroma centred on 0.5).

    Works on numpy arrays (computed in float64) and on float torch tensors (in their own
    dtype and device); `channel_axis` is the axis of the three components.
    """
    if rgb.shape[channel_axis] != 3:
        raise InputFormatError(f"expected 3 colour components, got shape {tuple(rgb.shape)}")
    return _apply_matrix(rgb, RGB_TO_YCBCR, channel_axis) + _offset(rgb, channel_axis)


def ycbcr_to_rgb(
    ycbcr: np.ndarray | torch.Tensor, *, channel_axis: int = -1
) -> np.ndarray | torch.Tensor:
    """Inverse of `rgb_to_ycbcr`; the result is not clipped to [0, 1]."""
    if ycbcr.shape[channel_axis] != 3:
        raise InputFormatError(f"expected 3 colour components, got shape {tuple(ycbcr.shape)}")
    return _apply_matrix(ycbcr - _offset(ycbcr, channel_axis), YCBCR_TO_RGB, channel_axis)


def quantize(x: np.ndarray, bit_depth: int) -> np.ndarray:
    """Float samples in [0, 1] to integer codes (clipped, round half to even)."""
    top = max_code(bit_depth)
    return np.clip(np.rint(x * top), 0, top).astype(sample_dtype(bit_depth))


def rgb_to_frame(rgb: np.ndarray, *, chroma: str = "420", bit_depth: int = 8) -> Frame:
    """An RGB image [H, W, 3] (uint8, uint16 or float in [0, 1]) as a YCbCr Frame.

    Integer input is scaled by its own dtype's range (uint16 as 16-bit). For 4:2:0 the
    chroma is averaged over 2x2 blocks in float before rounding.
    """
    _check_chroma(chroma)
    _check_bit_depth(bit_depth)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise InputFormatError(f"expected an RGB image [H, W, 3], got shape {rgb.shape}")
    if np.issubdtype(rgb.dtype, np.integer):
        unit = rgb.astype(np.float64) / np.iinfo(rgb.dtype).max
    else:
        unit = rgb.astype(np.float64)
    ycbcr = rgb_to_ycbcr(unit)
    y, u, v = ycbcr[..., 0], ycbcr[..., 1], ycbcr[..., 2]
    if chroma == "420":
        _check_even(*y.shape, "RGB image")
        u, v = downsample_444_to_420(u), downsample_444_to_420(v)
    return Frame(quantize(y, bit_depth), quantize(u, bit_depth), quantize(v, bit_depth), bit_depth)


def frame_to_rgb(frame: Frame, *, bit_depth: int | None = None) -> np.ndarray:
    """A Frame as an RGB image [H, W, 3], uint8 or uint16.

    The output has the frame's bit depth unless `bit_depth` says otherwise. 4:2:0 chroma
    is upsampled by nearest neighbour first.
    """
    out_depth = frame.bit_depth if bit_depth is None else bit_depth
    u, v = frame.u, frame.v
    if frame.chroma == "420":
        u, v = upsample_420_to_444(u), upsample_420_to_444(v)
    ycbcr = np.stack([frame.y, u, v], axis=-1).astype(np.float64) / max_code(frame.bit_depth)
    return quantize(ycbcr_to_rgb(ycbcr), out_depth)


def rgb8_to_frame(rgb: np.ndarray, *, chroma: str = "420") -> Frame:
    """A uint8 RGB image [H, W, 3] as an 8-bit YCbCr Frame."""
    if rgb.dtype != np.uint8:
        raise InputFormatError(f"expected uint8 RGB, got {rgb.dtype}")
    return rgb_to_frame(rgb, chroma=chroma, bit_depth=8)


def frame_to_rgb8(frame: Frame) -> np.ndarray:
    """A Frame as a uint8 RGB image [H, W, 3] (10-bit frames are scaled down)."""
    return frame_to_rgb(frame, bit_depth=8)


def _check_chroma(chroma: str) -> None:
    if chroma not in ("420", "444"):
        raise InputFormatError(f"chroma must be '420' or '444', got {chroma!r}")


def _check_bit_depth(bit_depth: int) -> None:
    if bit_depth not in (8, 10):
        raise InputFormatError(f"bit depth must be 8 or 10, got {bit_depth}")


def frame_to_tensor(frame: Frame, *, device: torch.device | str | None = None) -> torch.Tensor:
    """A Frame as the model's float32 tensor [3, H, W] at 4:4:4, values in [-0.5, 0.5]."""
    _check_bit_depth(frame.bit_depth)
    height, width = frame.height, frame.width
    samples = np.empty((3, height, width), dtype=np.float32)
    samples[0] = frame.y
    if frame.chroma == "420":
        _check_even(height, width, "frame_to_tensor")
        # Nearest-neighbour upsampling, written straight into 2x2 blocks by broadcasting.
        for channel, plane in ((1, frame.u), (2, frame.v)):
            samples[channel].reshape(height // 2, 2, width // 2, 2)[...] = plane[:, None, :, None]
    else:
        samples[1], samples[2] = frame.u, frame.v
    np.divide(samples, float(max_code(frame.bit_depth)), out=samples)
    samples -= 0.5
    return torch.from_numpy(samples).to(device)


def frames_to_tensor(
    frames: Sequence[Frame], *, device: torch.device | str | None = None
) -> torch.Tensor:
    """Several Frames of one size as a batch [N, 3, H, W] (see `frame_to_tensor`)."""
    if not frames:
        raise InputFormatError("no frames to convert")
    sizes = {(f.height, f.width) for f in frames}
    if len(sizes) > 1:
        raise InputFormatError(f"frames differ in size: {sorted(sizes)}")
    return torch.stack([frame_to_tensor(f, device=device) for f in frames])


def tensors_to_frames(
    batch: torch.Tensor, *, chroma: str = "420", bit_depth: int = 8
) -> list[Frame]:
    """A batch [N, 3, H, W] in [-0.5, 0.5] as N Frames.

    Values are clamped to [-0.5, 0.5] and scaled; for 4:2:0 the chroma is averaged over
    2x2 blocks in float before rounding; rounding is half to even (`torch.round`).
    """
    _check_chroma(chroma)
    _check_bit_depth(bit_depth)
    if batch.ndim != 4 or batch.shape[1] != 3:
        raise InputFormatError(f"expected a tensor [N, 3, H, W], got {tuple(batch.shape)}")
    height, width = batch.shape[-2:]
    top = max_code(bit_depth)
    scaled = batch.detach().to(torch.float32).clamp(-0.5, 0.5).add_(0.5).mul_(top)
    chroma_planes = scaled[:, 1:]
    if chroma == "420":
        _check_even(height, width, "tensor_to_frame")
        chroma_planes = F.avg_pool2d(chroma_planes, 2)
    # Codes fit int16 (at most 1023), which numpy then narrows to the sample type.
    luma = torch.round(scaled[:, 0]).to(torch.int16).cpu().numpy()
    chroma_codes = torch.round(chroma_planes).to(torch.int16).cpu().numpy()
    dtype = sample_dtype(bit_depth)
    luma, chroma_codes = luma.astype(dtype), chroma_codes.astype(dtype)
    return [
        Frame(luma[i], chroma_codes[i, 0], chroma_codes[i, 1], bit_depth)
        for i in range(batch.shape[0])
    ]


def tensor_to_frame(t: torch.Tensor, *, chroma: str = "420", bit_depth: int = 8) -> Frame:
    """A tensor [3, H, W] in [-0.5, 0.5] as a Frame (see `tensors_to_frames`)."""
    if t.ndim != 3:
        raise InputFormatError(f"expected a tensor [3, H, W], got {tuple(t.shape)}")
    return tensors_to_frames(t.unsqueeze(0), chroma=chroma, bit_depth=bit_depth)[0]


def pad_to_multiple(t: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad the last two dims right and bottom up to a multiple of `multiple`.

    Takes [C, H, W] or [N, C, H, W]; returns the padded tensor and the original (H, W).
    """
    if multiple < 1:
        raise InputFormatError(f"padding multiple must be positive, got {multiple}")
    if t.ndim not in (3, 4):
        raise InputFormatError(f"expected [C, H, W] or [N, C, H, W], got {tuple(t.shape)}")
    height, width = int(t.shape[-2]), int(t.shape[-1])
    pad_bottom = -height % multiple
    pad_right = -width % multiple
    if pad_bottom == 0 and pad_right == 0:
        return t, (height, width)
    return F.pad(t, (0, pad_right, 0, pad_bottom), mode="replicate"), (height, width)


def crop(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The top-left (H, W) of the last two dims (undoes `pad_to_multiple`)."""
    height, width = size
    if height > t.shape[-2] or width > t.shape[-1]:
        raise InputFormatError(
            f"cannot crop {tuple(t.shape[-2:])} to a larger size {(height, width)}"
        )
    return t[..., :height, :width]
