"""Video input and output: streaming readers and atomic writers picked by path.

    with open_reader("clip.mp4") as reader:
        with open_writer("out.y4m", reader.info) as writer:
            for frame in reader:
                writer.write(frame)

Formats: .y4m, raw .yuv, PNG sequences (a folder, a pattern such as frames/%05d.png, or
one .png), and for reading anything FFmpeg opens through PyAV; for writing .mp4/.mkv/.mov
(H.264 for viewing). Colour conventions live in `ufvc.io.color`.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

from ufvc.errors import InputFormatError
from ufvc.io.base import VideoReader, VideoWriter
from ufvc.io.container import OUTPUT_CONTAINERS, PyAvReader, PyAvWriter
from ufvc.io.planar import SUPPORTED_PIX_FMTS
from ufvc.io.png import PngImageWriter, PngReader, PngSequenceWriter, is_pattern
from ufvc.io.rawyuv import RawYuvReader, RawYuvWriter
from ufvc.io.types import Frame, VideoInfo
from ufvc.io.y4m import Y4mReader, Y4mWriter

__all__ = [
    "SUPPORTED_PIX_FMTS",
    "Frame",
    "VideoInfo",
    "VideoReader",
    "VideoWriter",
    "open_reader",
    "open_writer",
    "parse_fps",
    "parse_size",
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


def open_reader(
    path: str | os.PathLike[str],
    *,
    size: tuple[int, int] | None = None,
    pix_fmt: str | None = None,
    fps: Fraction | None = None,
    start: int = 0,
    max_frames: int | None = None,
) -> VideoReader:
    """Open a video for reading; the format follows from the path.

    `size` and `pix_fmt` describe raw .yuv input (pix_fmt default yuv420p, fps default 30);
    for PNG and PyAV input `pix_fmt` picks the output layout; for Y4M they must agree with
    the file. `fps` overrides the stored frame rate. `start` and `max_frames` pick a range.
    """
    if pix_fmt is not None and pix_fmt not in SUPPORTED_PIX_FMTS:
        choices = ", ".join(SUPPORTED_PIX_FMTS)
        raise InputFormatError(f"unsupported pixel format {pix_fmt!r}; choose one of {choices}")
    source = Path(path)
    ranged = {"fps": fps, "start": start, "max_frames": max_frames}
    if source.is_dir() or is_pattern(source):
        if not source.is_dir() and source.suffix.lower() != ".png":
            raise InputFormatError(f"{source}: numbered sequences must be .png files")
        return _check_request(PngReader(source, pix_fmt=pix_fmt, **ranged), size, None)
    if not source.exists():
        raise InputFormatError(f"input not found: {source}")
    if not source.is_file():
        raise InputFormatError(f"{source}: not a regular file")
    suffix = source.suffix.lower()
    if suffix == ".yuv":
        return RawYuvReader(source, size=size, pix_fmt=pix_fmt, **ranged)
    if suffix == ".y4m":
        return _check_request(Y4mReader(source, **ranged), size, pix_fmt)
    if suffix == ".png":
        return _check_request(PngReader(source, pix_fmt=pix_fmt, **ranged), size, None)
    return _check_request(PyAvReader(source, pix_fmt=pix_fmt, **ranged), size, None)


def open_writer(path: str | os.PathLike[str], info: VideoInfo) -> VideoWriter:
    """Open a video for writing; the format follows from the path.

    .y4m and .yuv keep samples exactly; .mp4/.mkv/.mov are H.264 for viewing (8-bit 4:2:0);
    a folder (an existing one, a path ending in '/' or a name without suffix) or a pattern
    like out/%05d.png gives a PNG sequence;
    a single .png holds one frame. The output appears only when the writer closes cleanly.
    """
    text = os.fspath(path)
    target = Path(text)
    suffix = target.suffix.lower()
    if is_pattern(target):
        if suffix != ".png":
            raise InputFormatError(f"{target}: numbered output is written as .png frames")
        return PngSequenceWriter(target, info)
    if text.endswith(("/", os.sep)):
        return PngSequenceWriter(target, info)
    if suffix == ".y4m":
        return Y4mWriter(target, info)
    if suffix == ".yuv":
        return RawYuvWriter(target, info)
    if suffix == ".png":
        return PngImageWriter(target, info)
    if suffix in OUTPUT_CONTAINERS:
        return PyAvWriter(target, info)
    if target.is_dir() or not suffix:
        return PngSequenceWriter(target, info)
    known = ", ".join([".y4m", ".yuv", ".png", *OUTPUT_CONTAINERS, "a folder"])
    raise InputFormatError(f"{target}: unknown output format {suffix!r}; use {known}")
