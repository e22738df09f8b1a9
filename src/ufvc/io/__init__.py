"""Video input and output: streaming readers and atomic writers picked by path.

    with open_reader("clip.mp4") as reader:
        with open_writer("out.y4m", reader.info) as writer:
            for frame in reader:
                writer.write(frame)

Formats: .y4m, raw .yuv, PNG sequences (a folder, a pattern such as frames/%05d.png, or
one .png), and for reading anything FFmpeg opens through PyAV; for writing .mp4/.mkv/.mov
(H.264 for viewing). Colour conventions live in `ufvc.io.color`.

`-` reads Y4M from standard input and writes Y4M to standard output (ffmpeg's
`-f yuv4mpegpipe -`); a FIFO is read as Y4M, front to back. The modules of formats
that need PyAV, PIL or torch load on first use, so importing this package is cheap.
"""

from __future__ import annotations

import os
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

from ufvc.errors import InputFormatError
from ufvc.io.base import STDIO, VideoReader, VideoWriter, is_special_file, is_stdio
from ufvc.io.planar import SUPPORTED_PIX_FMTS
from ufvc.io.rawyuv import RawYuvReader, RawYuvWriter
from ufvc.io.types import Frame, FramePosition, VideoInfo
from ufvc.io.y4m import Y4mReader, Y4mWriter

# Output suffixes of the H.264 viewing writer (`ufvc.io.container.OUTPUT_CONTAINERS`).
VIEWING_SUFFIXES = (".mp4", ".mkv", ".mov")

__all__ = [
    "SUPPORTED_PIX_FMTS",
    "STDIO",
    "Frame",
    "FramePosition",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "check_reader_options",
    "open_reader",
    "open_writer",
    "parse_fps",
    "parse_size",
    "writer_class",
]


def parse_size(text: str) -> tuple[int, int]:
    """'1920x1080' -> (1920, 1080)."""
    width, sep, height = text.lower().partition("x")
    if not (sep and width.isdigit() and height.isdigit() and int(width) and int(height)):
        raise InputFormatError(f"frame size must look like 1920x1080, got {text!r}")
    return int(width), int(height)


def parse_fps(text: str) -> Fraction:
    """'25', '29.97' or '30000/1001' -> a positive Fraction."""
    try:
        fps = Fraction(text)
    except (ValueError, ZeroDivisionError):
        fps = None
    if fps is None or fps <= 0:
        raise InputFormatError(
            f"frame rate must be a positive number like 25 or 30000/1001, got {text!r}"
        )
    return fps


def _check_request(
    reader: VideoReader, size: tuple[int, int] | None, pix_fmt: str | None
) -> VideoReader:
    """Refuse a size or pixel format that contradicts what a self-describing file says."""
    info = reader.info
    if size is not None and tuple(size) != (info.width, info.height):
        raise InputFormatError(
            f"{reader.path} is {info.width}x{info.height}, not the {size[0]}x{size[1]} asked for"
        )
    if pix_fmt is not None and SUPPORTED_PIX_FMTS.get(pix_fmt) != (info.chroma, info.bit_depth):
        raise InputFormatError(
            f"{reader.path} holds {info.chroma} {info.bit_depth}-bit video, not {pix_fmt}"
        )
    return reader


READER_OPTIONS = ("size", "pix_fmt", "fps", "start", "duration", "max_frames")


def open_reader(
    path: str | os.PathLike[str],
    *,
    size: tuple[int, int] | str | None = None,
    pix_fmt: str | None = None,
    fps: Fraction | str | None = None,
    start: int | str | FramePosition = 0,
    duration: int | str | FramePosition | None = None,
    max_frames: int | None = None,
) -> VideoReader:
    """Open a video for reading; the format follows from the path.

    `size` ((width, height) or "WxH") and `pix_fmt` describe raw .yuv input (pix_fmt
    default yuv420p, fps default 30); for PNG and PyAV input `pix_fmt` picks the output
    layout; for Y4M they must agree with the file. `fps` (a number or "30000/1001")
    overrides the stored frame rate. `start` and `duration` pick a range, in frames or
    as seconds ("2.5s", see `FramePosition`); `max_frames` caps the frame count.
    `path` `-` reads Y4M from standard input; a FIFO is read as Y4M. Raises
    InputFormatError for a missing, malformed or unsupported input.
    """
    if pix_fmt is not None and pix_fmt not in SUPPORTED_PIX_FMTS:
        choices = ", ".join(SUPPORTED_PIX_FMTS)
        raise InputFormatError(f"unsupported pixel format {pix_fmt!r}; choose one of {choices}")
    if isinstance(size, str):
        size = parse_size(size)
    elif size is not None and (
        len(size) != 2 or not all(isinstance(n, int) and n > 0 for n in size)
    ):
        raise InputFormatError(f"size must be (width, height) or 'WxH', got {size!r}")
    if isinstance(fps, str):
        fps = parse_fps(fps)
    ranged = {
        "fps": fps,
        "start": FramePosition.parse(start),
        "duration": None if duration is None else FramePosition.parse(duration),
        "max_frames": max_frames,
    }
    if is_stdio(path):
        return _check_request(Y4mReader.from_stream(sys.stdin.buffer, "stdin", **ranged),
                              size, pix_fmt)
    from ufvc.io.png import PngReader, is_pattern

    source = Path(path)
    if source.is_dir() or is_pattern(source):
        if not source.is_dir() and source.suffix.lower() != ".png":
            raise InputFormatError(f"{source}: numbered sequences must be .png files")
        return _check_request(PngReader(source, pix_fmt=pix_fmt, **ranged), size, None)
    if not source.exists():
        raise InputFormatError(f"input not found: {source}")
    if is_special_file(source):  # a FIFO or /dev/stdin: Y4M, ffmpeg's pipe format
        return _check_request(Y4mReader(source, **ranged), size, pix_fmt)
    if not source.is_file():
        raise InputFormatError(f"{source}: not a regular file")
    suffix = source.suffix.lower()
    if suffix == ".yuv":
        return RawYuvReader(source, size=size, pix_fmt=pix_fmt, **ranged)
    if suffix == ".y4m":
        return _check_request(Y4mReader(source, **ranged), size, pix_fmt)
    if suffix == ".png":
        return _check_request(PngReader(source, pix_fmt=pix_fmt, **ranged), size, None)
    from ufvc.io.container import PyAvReader

    return _check_request(PyAvReader(source, pix_fmt=pix_fmt, **ranged), size, None)


def check_reader_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """`options` for `open_reader`, refusing names it does not take (in one line)."""
    options = dict(options or {})
    unknown = sorted(set(options) - set(READER_OPTIONS))
    if unknown:
        raise InputFormatError(
            f"unknown reader option(s) {', '.join(unknown)}; "
            f"open_reader takes {', '.join(READER_OPTIONS)}"
        )
    return options


def open_writer(
    path: str | os.PathLike[str], info: VideoInfo, *, overwrite: bool = True
) -> VideoWriter:
    """Open a video for writing; the format follows from the path (`writer_class`).

    .y4m and .yuv keep samples exactly; .mp4/.mkv/.mov are H.264 for viewing (8-bit 4:2:0);
    a folder (an existing one, a path ending in '/' or a name without suffix) or a pattern
    like out/%05d.png gives a PNG sequence;
    a single .png holds one frame. The output appears only when the writer closes cleanly.
    `-` writes Y4M to standard output; an existing device node or FIFO (`/dev/null`) is
    written in place, as Y4M unless its name ends in a known suffix. With `overwrite`
    False an existing output is refused (OutputError) instead of replaced.
    """
    return writer_class(path)(Path(os.fspath(path)), info, overwrite=overwrite)


def writer_class(path: str | os.PathLike[str]) -> type[VideoWriter]:
    """The writer `open_writer` uses for `path` (its `max_bit_depth`, say)."""
    from ufvc.io.png import PngImageWriter, PngSequenceWriter, is_pattern

    text = os.fspath(path)
    target = Path(text)
    suffix = target.suffix.lower()
    if is_stdio(text):
        return Y4mWriter
    if is_pattern(target):
        if suffix != ".png":
            raise InputFormatError(f"{target}: numbered output is written as .png frames")
        return PngSequenceWriter
    if text.endswith(("/", os.sep)):
        return PngSequenceWriter
    if suffix == ".yuv":
        return RawYuvWriter
    if suffix == ".y4m" or (is_special_file(target) and suffix not in (".png",
                                                                        *VIEWING_SUFFIXES)):
        return Y4mWriter
    if suffix == ".png":
        return PngImageWriter
    if suffix in VIEWING_SUFFIXES:
        from ufvc.io.container import PyAvWriter

        return PyAvWriter
    if target.is_dir() or not suffix:
        return PngSequenceWriter
    known = ", ".join([".y4m", ".yuv", ".png", *VIEWING_SUFFIXES, "a folder"])
    raise InputFormatError(f"{target}: unknown output format {suffix!r}; use {known}")
