"""Frame and stream descriptions shared by every reader and writer."""

from __future__ import annotations

from dataclasses import dataclass, replace
from fractions import Fraction

import numpy as np


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
