"""Frame and stream descriptions shared by every reader and writer."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np

from ufvc.errors import InputFormatError


@dataclass(frozen=True)
class VideoInfo:
    """What a video stream is: geometry, timing and sample format."""

    width: int
    height: int
    fps: Fraction
    num_frames: int | None  # None when the container does not say
    bit_depth: int = 8  # 8 or 10
    chroma: str = "420"  # "420" or "444"
    format_name: str = ""  # e.g. "y4m", "yuv", "png", "mp4"

    def with_(self, **changes) -> VideoInfo:
        """A copy with some fields changed."""
        return replace(self, **changes)


@dataclass
class Frame:
    """One picture as three planes (Y, Cb, Cr).

    Planes are uint8 for 8-bit content and uint16 for 10-bit. With chroma "420"
    the chroma planes are half size in both directions; with "444" full size.
    """

    y: np.ndarray
    u: np.ndarray
    v: np.ndarray
    bit_depth: int = 8

    @property
    def planes(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.y, self.u, self.v

    @property
    def width(self) -> int:
        return int(self.y.shape[1])

    @property
    def height(self) -> int:
        return int(self.y.shape[0])

    @property
    def chroma(self) -> str:
        return "444" if self.u.shape == self.y.shape else "420"

    def __repr__(self) -> str:
        # The planes are summarised: a repr that prints every sample is of no use.
        return (f"Frame({self.width}x{self.height}, {self.chroma}, {self.bit_depth}-bit, "
                f"{self.y.dtype})")


@dataclass(frozen=True)
class FramePosition:
    """A frame index or frame count, given in frames ("25") or in seconds ("1.5s")."""

    value: Fraction
    seconds: bool = False

    @classmethod
    def parse(cls, spec: int | str | FramePosition) -> FramePosition:
        """25 or "25" (frames), "1.5s" or "3/2s" (seconds); InputFormatError otherwise."""
        if isinstance(spec, FramePosition):
            return spec
        text = str(spec).strip().lower()
        seconds = text.endswith("s")
        try:
            value = Fraction(text.removesuffix("s")) if not isinstance(spec, bool) else None
        except (ValueError, ZeroDivisionError):
            value = None
        if value is None or value < 0 or (not seconds and value.denominator != 1):
            raise InputFormatError(
                f"a frame position must be a frame count like 25 or seconds like 1.5s, "
                f"got {spec!r}"
            )
        return cls(value, seconds)

    def frames(self, fps: Fraction) -> int:
        """The position in frames; seconds round to the nearest frame."""
        if not self.seconds:
            return int(self.value)
        return math.floor(self.value * Fraction(fps) + Fraction(1, 2))

    def __str__(self) -> str:
        return f"{float(self.value):g}s" if self.seconds else str(self.value)


def frames_sha256(frames: Iterable[Frame]) -> str:
    """SHA-256 (hex) over every plane of every frame, in order, little-endian samples."""
    digest = hashlib.sha256()
    for frame in frames:
        for plane in frame.planes:
            digest.update(np.ascontiguousarray(plane)
                          .astype(plane.dtype.newbyteorder("<")).tobytes())
    return digest.hexdigest()
