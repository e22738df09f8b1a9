"""Raw planar YUV (.yuv): frames back to back, with the geometry given from outside."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from ufvc.errors import InputFormatError
from ufvc.io.base import VideoReader, VideoWriter
from ufvc.io.planar import frame_bytes, pix_fmt_layout, read_frame_data, write_frame_data
from ufvc.io.types import Frame, FramePosition, VideoInfo

DEFAULT_FPS = Fraction(30)

# Test-set file names carry their geometry, e.g. BasketballDrive_1920x1080_50.yuv (HEVC CTC)
# or Beauty_1920x1080_120fps_420_10bit_YUV.yuv (UVG).
_NAME_SIZE = re.compile(
    r"(?<![0-9])(\d{1,5})x(\d{1,5})"  # WxH
    r"(?:_(\d+(?:\.\d+)?)(?:fps|hz)?(?![0-9a-z]))?"  # optional _50, _120fps
)
_NAME_BITS = re.compile(r"(?<![0-9a-z])(\d{1,2})bit(?![a-z])")


def geometry_from_name(path: Path) -> tuple[tuple[int, int] | None, Fraction | None, int | None]:
    """(size, fps, bit depth) spelled in a file name like clip_1920x1080_50fps_10bit.yuv."""
    name = path.stem.lower()
    size = fps = bits = None
    match = _NAME_SIZE.search(name)
    if match:
        size = (int(match[1]), int(match[2]))
        if match[3]:
            fps = Fraction(match[3])
    match = _NAME_BITS.search(name)
    if match:
        bits = int(match[1])
    return size, fps, bits


class RawYuvReader(VideoReader):
    """Reads headerless planar YUV; the file size must be a whole number of frames.

    Size, frame rate and bit depth not given are taken from the file name when it spells
    them (`name_1920x1080_50fps_10bit.yuv`); the frame rate defaults to 30.
    """

    def __init__(
        self,
        path: Path,
        *,
        size: tuple[int, int] | None = None,
        pix_fmt: str | None = None,
        fps: Fraction | None = None,
        start: int | FramePosition = 0,
        duration: FramePosition | None = None,
        max_frames: int | None = None,
    ) -> None:
        name_size, name_fps, name_bits = geometry_from_name(path)
        size = size or name_size
        if size is None:
            raise InputFormatError(
                f"{path}: raw .yuv needs the frame size: pass --size WxH "
                "(or use a name like clip_1920x1080_30.yuv)"
            )
        if pix_fmt is None:
            pix_fmt = "yuv420p10le" if name_bits == 10 else "yuv420p"
            if name_bits not in (None, 8, 10):
                raise InputFormatError(
                    f"{path}: the name says {name_bits}-bit; ufvc reads 8 or 10 bits"
                )
        chroma, bit_depth = pix_fmt_layout(pix_fmt)
        width, height = size
        try:
            self.frame_size = frame_bytes(width, height, chroma, bit_depth)
        except InputFormatError as error:
            raise InputFormatError(f"{path}: {error}") from None
        file_size = path.stat().st_size
        if file_size % self.frame_size:
            raise InputFormatError(
                f"{path}: file size {file_size} is not a multiple of the {width}x{height} "
                f"{pix_fmt} frame size {self.frame_size}; check --size and --pix-fmt"
            )
        info = VideoInfo(
            width=width,
            height=height,
            fps=fps or name_fps or DEFAULT_FPS,
            num_frames=file_size // self.frame_size,
            bit_depth=bit_depth,
            chroma=chroma,
            format_name="yuv",
        )
        super().__init__(path, info, start=start, duration=duration, max_frames=max_frames)

    def _read_from(self, start: int) -> Iterator[Frame]:
        info = self.info
        with self.path.open("rb") as file:
            file.seek(start * self.frame_size)
            index = start
            while True:
                frame, got = read_frame_data(
                    file, info.width, info.height, info.chroma, info.bit_depth
                )
                if frame is None:
                    if got:
                        raise InputFormatError(
                            f"{self.path}: frame {index} is truncated "
                            f"({got} of {self.frame_size} bytes)"
                        )
                    return
                yield frame
                index += 1


class RawYuvWriter(VideoWriter):
    """Writes headerless planar YUV (10-bit as little-endian 16-bit words)."""

    _file: BinaryIO

    def _open(self) -> None:
        self._file = self._open_binary()

    def _write(self, frame: Frame) -> None:
        write_frame_data(self._file, frame)

    def _finish(self) -> None:
        self._file.close()
