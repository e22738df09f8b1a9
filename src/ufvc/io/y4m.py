"""YUV4MPEG2 (.y4m): planar frames behind a one-line text header and a FRAME line each."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import BinaryIO

from ufvc.errors import InputFormatError
from ufvc.io.base import VideoReader, VideoWriter, is_special_file
from ufvc.io.planar import frame_bytes, plane_shapes, read_frame_data, write_frame_data
from ufvc.io.types import Frame, FramePosition, VideoInfo

MAGIC = b"YUV4MPEG2"
FRAME_MAGIC = b"FRAME"
MAX_LINE = 4096  # longest stream or frame header line accepted
DEFAULT_FPS = Fraction(30)

# The C values ffmpeg writes for each layout, with its XYSCSS comment.
_COLORSPACE_TAGS = {
    ("420", 8): "C420jpeg XYSCSS=420JPEG",
    ("444", 8): "C444 XYSCSS=444",
    ("420", 10): "C420p10 XYSCSS=420P10",
    ("444", 10): "C444p10 XYSCSS=444P10",
}
# 420jpeg, 420paldv and 420mpeg2 differ only in chroma siting, which ufvc does not model.
_COLORSPACE = re.compile(
    r"(?P<layout>420|422|444|411|440|mono)(?P<variant>jpeg|paldv|mpeg2|alpha|p?\d+)?"
)


@dataclass(frozen=True)
class Y4mHeader:
    """The fields of a YUV4MPEG2 stream header that matter to ufvc."""

    width: int
    height: int
    fps: Fraction | None  # None when F is absent or 0:0
    chroma: str
    bit_depth: int
    interlace: str  # p, t, b, m or ? (frames are coded as progressive pictures either way)
    size: int  # bytes of the header line, newline included


def _ratio(text: str, field: str, path: Path) -> Fraction | None:
    match = re.fullmatch(r"(\d+):(\d+)", text)
    if not match:
        raise InputFormatError(f"{path}: malformed Y4M {field} field {text!r}")
    num, den = int(match[1]), int(match[2])
    return Fraction(num, den) if num and den else None


def _colorspace(tag: str, path: Path) -> tuple[str, int]:
    match = _COLORSPACE.fullmatch(tag)
    if not match:
        raise InputFormatError(f"{path}: unknown Y4M colour space C{tag}")
    layout, variant = match["layout"], match["variant"] or ""
    if layout not in ("420", "444") or variant == "alpha":
        raise InputFormatError(
            f"{path}: unsupported chroma format C{tag}; ufvc reads 4:2:0 and 4:4:4"
        )
    digits = variant.removeprefix("p")
    bits = int(digits) if digits.isdigit() else 8
    if bits not in (8, 10):
        raise InputFormatError(f"{path}: unsupported bit depth {bits} (C{tag}); use 8 or 10")
    return layout, bits


def parse_header(line: bytes, path: Path) -> Y4mHeader:
    """Parse a stream header line (with its newline)."""
    if not line.startswith(MAGIC + b" ") or not line.endswith(b"\n"):
        raise InputFormatError(f"{path}: not a YUV4MPEG2 file (bad header)")
    fields = line[len(MAGIC) :].decode("ascii", errors="replace").split()
    width = height = None
    fps = None
    chroma, bit_depth = "420", 8  # no C field means 420jpeg
    interlace = "p"
    for item in fields:
        key, value = item[0], item[1:]
        if key in "WH":
            if not value.isdigit() or int(value) == 0:
                raise InputFormatError(f"{path}: malformed Y4M size field {item!r}")
            if key == "W":
                width = int(value)
            else:
                height = int(value)
        elif key == "F":
            fps = _ratio(value, "frame rate", path)
        elif key == "A":
            _ratio(value, "aspect", path)
        elif key == "I":
            interlace = value
        elif key == "C":
            chroma, bit_depth = _colorspace(value, path)
        # X (comments) and unknown tags are ignored, as the format asks.
    if width is None or height is None:
        raise InputFormatError(f"{path}: Y4M header lacks the W or H field")
    try:
        plane_shapes(width, height, chroma)
    except InputFormatError as error:
        raise InputFormatError(f"{path}: {error}") from None
    return Y4mHeader(width, height, fps, chroma, bit_depth, interlace, len(line))


def format_header(info: VideoInfo) -> bytes:
    """The header line ffmpeg writes for this layout (aspect unknown, progressive)."""
    fps = Fraction(info.fps)
    tag = _COLORSPACE_TAGS[(info.chroma, info.bit_depth)]
    line = (
        f"YUV4MPEG2 W{info.width} H{info.height} F{fps.numerator}:{fps.denominator} Ip A0:0 {tag}\n"
    )
    return line.encode("ascii")


def _read_header(path: Path) -> Y4mHeader:
    with path.open("rb") as file:
        line = file.readline(MAX_LINE)
    if not line:
        raise InputFormatError(f"{path}: empty file")
    return parse_header(line, path)


def _check_frame_line(line: bytes, index: int, path: Path) -> None:
    if not (line.startswith(FRAME_MAGIC) and line.endswith(b"\n")):
        raise InputFormatError(f"{path}: frame {index} does not start with a FRAME line")
    if len(line) > len(FRAME_MAGIC) + 1 and line[len(FRAME_MAGIC)] != ord(" "):
        raise InputFormatError(f"{path}: frame {index} has a malformed FRAME line")


def _count_frames(path: Path, header: Y4mHeader) -> int:
    """Count frames by hopping over frame headers (no sample data is read)."""
    data_size = frame_bytes(header.width, header.height, header.chroma, header.bit_depth)
    # Unbuffered, so each hop reads only the short FRAME line, not a buffer's worth.
    with path.open("rb", buffering=0) as file:
        file_size = os.fstat(file.fileno()).st_size
        offset, index = header.size, 0
        while offset < file_size:
            file.seek(offset)
            chunk = file.read(MAX_LINE)
            end = chunk.find(b"\n")
            if end < 0 and len(chunk) < MAX_LINE:
                raise InputFormatError(f"{path}: frame {index} is truncated (no sample data)")
            line = chunk[: end + 1]
            _check_frame_line(line, index, path)
            offset += len(line) + data_size
            if offset > file_size:
                raise InputFormatError(
                    f"{path}: frame {index} is truncated "
                    f"({file_size - (offset - data_size)} of {data_size} bytes)"
                )
            index += 1
        return index


class Y4mReader(VideoReader):
    """Reads .y4m files: 4:2:0 (jpeg, paldv, mpeg2 siting) and 4:4:4, 8 or 10 bits.

    A regular file is counted and may be read many times; a pipe or FIFO (`from_stream`,
    or a path that is not a regular file) is read once, front to back, and its frame
    count is unknown (`info.num_frames` None).
    """

    def __init__(
        self,
        path: Path,
        *,
        fps: Fraction | None = None,
        start: int | FramePosition = 0,
        duration: FramePosition | None = None,
        max_frames: int | None = None,
        stream: BinaryIO | None = None,
    ) -> None:
        self._owns_stream = stream is None and is_special_file(path)
        if self._owns_stream:
            stream = path.open("rb")
        self._stream = stream
        self._stream_read = False
        try:
            if stream is None:
                self.header = _read_header(path)
                num_frames: int | None = _count_frames(path, self.header)
            else:
                line = stream.readline(MAX_LINE)
                if not line:
                    raise InputFormatError(f"{path}: empty input")
                self.header = parse_header(line, path)
                num_frames = None
            header = self.header
            info = VideoInfo(
                width=header.width,
                height=header.height,
                fps=fps or header.fps or DEFAULT_FPS,
                num_frames=num_frames,
                bit_depth=header.bit_depth,
                chroma=header.chroma,
                format_name="y4m",
            )
            super().__init__(path, info, start=start, duration=duration, max_frames=max_frames)
        except BaseException:
            self._close_stream()
            raise

    @classmethod
    def from_stream(cls, stream: BinaryIO, name: str, **options) -> Y4mReader:
        """A reader of Y4M from an open binary stream (standard input), called `name`."""
        return cls(Path(name), stream=stream, **options)

    def _read_from(self, start: int) -> Iterator[Frame]:
        if self._stream is None:
            with self.path.open("rb") as file:
                file.seek(self.header.size)
                yield from self._frames(file, start)
            return
        if self._stream_read:
            raise InputFormatError(f"{self.path}: a pipe can be read only once")
        self._stream_read = True
        yield from self._frames(self._stream, start)

    def _frames(self, file: BinaryIO, start: int) -> Iterator[Frame]:
        header = self.header
        data_size = frame_bytes(header.width, header.height, header.chroma, header.bit_depth)
        seekable = file.seekable()
        index = 0
        while line := file.readline(MAX_LINE):
            _check_frame_line(line, index, self.path)
            if index < start and seekable:
                file.seek(data_size, os.SEEK_CUR)
                index += 1
                continue
            frame, got = read_frame_data(
                file, header.width, header.height, header.chroma, header.bit_depth
            )
            if frame is None:
                raise InputFormatError(
                    f"{self.path}: frame {index} is truncated ({got} of {data_size} bytes)"
                )
            if index >= start:  # a pipe cannot seek: frames before `start` are read and dropped
                yield frame
            index += 1

    def close(self) -> None:
        super().close()
        self._close_stream()

    def _close_stream(self) -> None:
        if self._owns_stream and self._stream is not None:
            self._stream.close()


class Y4mWriter(VideoWriter):
    """Writes .y4m with the header ffmpeg writes for the same layout."""

    _file: BinaryIO

    def _open(self) -> None:
        self._file = self._open_binary()
        self._file.write(format_header(self.info))

    def _write(self, frame: Frame) -> None:
        self._file.write(FRAME_MAGIC + b"\n")
        write_frame_data(self._file, frame)

    def _finish(self) -> None:
        self._file.close()
