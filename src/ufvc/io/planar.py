"""Planar YUV layouts: pixel format names, plane shapes, frames to and from raw bytes."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from ufvc.errors import InputFormatError
from ufvc.io.types import Frame

# Pixel formats ufvc reads and writes as planes, with their (chroma, bit depth).
SUPPORTED_PIX_FMTS: dict[str, tuple[str, int]] = {
    "yuv420p": ("420", 8),
    "yuv420p10le": ("420", 10),
    "yuv444p": ("444", 8),
    "yuv444p10le": ("444", 10),
}


def pix_fmt_layout(pix_fmt: str) -> tuple[str, int]:
    """(chroma, bit_depth) of a supported pixel format name."""
    try:
        return SUPPORTED_PIX_FMTS[pix_fmt]
    except KeyError:
        choices = ", ".join(SUPPORTED_PIX_FMTS)
        raise InputFormatError(
            f"unsupported pixel format {pix_fmt!r}; choose one of {choices}"
        ) from None


def pix_fmt_name(chroma: str, bit_depth: int) -> str:
    """The pixel format name for a chroma layout and bit depth."""
    for name, layout in SUPPORTED_PIX_FMTS.items():
        if layout == (chroma, bit_depth):
            return name
    raise InputFormatError(f"no pixel format for {chroma} chroma at {bit_depth} bits")


def plane_shapes(width: int, height: int, chroma: str) -> tuple[tuple[int, int], ...]:
    """(rows, columns) of the Y, Cb and Cr planes; 4:2:0 needs even sizes."""
    if width < 1 or height < 1:
        raise InputFormatError(f"frame size must be positive, got {width}x{height}")
    if chroma == "420":
        if width % 2 or height % 2:
            raise InputFormatError(
                f"4:2:0 video needs an even width and height, got {width}x{height}"
            )
        return (height, width), (height // 2, width // 2), (height // 2, width // 2)
    return (height, width), (height, width), (height, width)


def sample_dtype(bit_depth: int) -> np.dtype:
    """Stored sample type: one byte for 8-bit, little-endian 16-bit words for 10-bit."""
    return np.dtype(np.uint8) if bit_depth == 8 else np.dtype("<u2")


def frame_bytes(width: int, height: int, chroma: str, bit_depth: int) -> int:
    """Bytes of one planar frame."""
    itemsize = sample_dtype(bit_depth).itemsize
    return itemsize * sum(rows * cols for rows, cols in plane_shapes(width, height, chroma))


def read_frame_data(
    file: BinaryIO, width: int, height: int, chroma: str, bit_depth: int
) -> tuple[Frame | None, int]:
    """Read one frame's planes; returns (frame, bytes read), frame None when short."""
    size = frame_bytes(width, height, chroma, bit_depth)
    buffer = np.empty(size, dtype=np.uint8)
    view, got = memoryview(buffer), 0
    # A pipe may deliver a frame in several pieces: read until full or at the end.
    while got < size and (piece := file.readinto(view[got:])):
        got += piece
    if got != size:
        return None, got
    samples = buffer.view(sample_dtype(bit_depth))
    planes = []
    offset = 0
    for rows, cols in plane_shapes(width, height, chroma):
        planes.append(samples[offset : offset + rows * cols].reshape(rows, cols))
        offset += rows * cols
    y, u, v = planes
    return Frame(y, u, v, bit_depth), size


def write_frame_data(file: BinaryIO, frame: Frame) -> None:
    """Write a frame's planes in Y, Cb, Cr order."""
    dtype = sample_dtype(frame.bit_depth)
    for plane in frame.planes:
        file.write(np.ascontiguousarray(plane, dtype=dtype).data)
