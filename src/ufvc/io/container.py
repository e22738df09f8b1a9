"""Compressed video through PyAV (FFmpeg): any container for reading, mp4/mkv for writing."""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ufvc.errors import InputFormatError, OutputError
from ufvc.io.base import VideoReader, VideoWriter
from ufvc.io.color import downsample_444_to_420, rgb_to_frame
from ufvc.io.planar import pix_fmt_layout, sample_dtype
from ufvc.io.types import Frame, FramePosition, VideoInfo

DEFAULT_FPS = Fraction(30)
# Output containers by file suffix, as FFmpeg names their muxers.
OUTPUT_CONTAINERS = {".mp4": "mp4", ".mkv": "matroska", ".mov": "mov"}
# Written files are for viewing: visually lossless H.264 that every player decodes.
VIEWING_CODEC = "libx264"
VIEWING_CRF = 18
# Decoded formats whose planes ufvc takes as they are; the yuvj ("JPEG", full range)
# variants hold the same planes with another range flag, and samples are never rescaled.
_DIRECT_FORMATS = {
    "yuv420p": "yuv420p",
    "yuvj420p": "yuv420p",
    "yuv444p": "yuv444p",
    "yuvj444p": "yuv444p",
    "yuv420p10le": "yuv420p10le",
    "yuv444p10le": "yuv444p10le",
}


def _reason(error: Exception) -> str:
    return getattr(error, "strerror", None) or str(error)


def _plane_arrays(av_frame: av.VideoFrame, bit_depth: int) -> list[np.ndarray]:
    """Copies of a planar frame's three planes without the row padding."""
    dtype = sample_dtype(bit_depth)
    arrays = []
    for plane in av_frame.planes[:3]:
        rows = np.frombuffer(plane, dtype=dtype).reshape(
            plane.height, plane.line_size // dtype.itemsize
        )
        arrays.append(rows[:, : plane.width].copy())
    return arrays


class PyAvReader(VideoReader):
    """Decodes the first video stream of any file FFmpeg opens (mp4, mkv, avi, ...).

    Frames come out as yuv420p, or yuv420p10le when the source has more than 8 bits, unless
    `pix_fmt` asks for another supported format. Planar YUV is taken sample for sample
    (no range conversion); RGB sources are converted with BT.709 full range like PNGs.
    """

    def __init__(
        self,
        path: Path,
        *,
        pix_fmt: str | None = None,
        fps: Fraction | None = None,
        start: int | FramePosition = 0,
        duration: FramePosition | None = None,
        max_frames: int | None = None,
    ) -> None:
        try:
            container = av.open(str(path))
        except av.FFmpegError as error:
            raise InputFormatError(
                f"{path}: not a video format ufvc can read ({_reason(error)})"
            ) from None
        with container:
            if not container.streams.video:
                raise InputFormatError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            context = stream.codec_context
            source_format = context.format
            if source_format is None or not context.width or not context.height:
                raise InputFormatError(f"{path}: the video stream has no frame size")
            source_bits = max(component.bits for component in source_format.components)
            self.source_pix_fmt = source_format.name
            self.codec_name = context.name
            self.pix_fmt = pix_fmt or ("yuv420p10le" if source_bits > 8 else "yuv420p")
            chroma, bit_depth = pix_fmt_layout(self.pix_fmt)
            width, height = context.width, context.height
            if chroma == "420" and (width % 2 or height % 2):
                raise InputFormatError(
                    f"{path}: 4:2:0 needs an even width and height, got {width}x{height}"
                    " (read it as --pix-fmt yuv444p instead)"
                )
            rate = fps or stream.average_rate or stream.guessed_rate or DEFAULT_FPS
            suffix = path.suffix.lower().lstrip(".")
            names = container.format.name.split(",")
            format_name = suffix if suffix in (container.format.extensions or ()) else names[0]
            info = VideoInfo(
                width=width,
                height=height,
                fps=Fraction(rate),
                num_frames=stream.frames or None,
                bit_depth=bit_depth,
                chroma=chroma,
                format_name=format_name,
            )
        super().__init__(path, info, start=start, duration=duration, max_frames=max_frames)

    def _decoded(self) -> Iterator[av.VideoFrame]:
        index = 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for av_frame in container.decode(stream):
                    yield av_frame
                    index += 1
        except av.FFmpegError as error:
            raise InputFormatError(
                f"{self.path}: decoding failed at frame {index} ({_reason(error)})"
            ) from None

    def _read_from(self, start: int) -> Iterator[Frame]:
        decoded = self._decoded()
        try:
            for index, av_frame in enumerate(decoded):
                if index >= start:
                    yield self._to_frame(av_frame, index)
        finally:
            decoded.close()

    def _to_frame(self, av_frame: av.VideoFrame, index: int) -> Frame:
        info = self.info
        if (av_frame.width, av_frame.height) != (info.width, info.height):
            raise InputFormatError(
                f"{self.path}: frame {index} is {av_frame.width}x{av_frame.height}, "
                f"the stream started at {info.width}x{info.height}"
            )
        source = av_frame.format
        if source.is_rgb:
            rgb_format = "rgb24" if info.bit_depth == 8 else "rgb48le"
            rgb = av_frame.reformat(format=rgb_format).to_ndarray()
            return rgb_to_frame(rgb, chroma=info.chroma, bit_depth=info.bit_depth)
        if _DIRECT_FORMATS.get(source.name) != self.pix_fmt:
            full_range = "JPEG" if source.name.startswith("yuvj") else None
            av_frame = av_frame.reformat(
                format=self.pix_fmt, src_color_range=full_range, dst_color_range=full_range
            )
        y, u, v = _plane_arrays(av_frame, info.bit_depth)
        return Frame(y, u, v, info.bit_depth)

    def count_frames(self) -> int:
        """Frames an iteration yields; decodes (without conversion) when the header is silent."""
        if self.info.num_frames is not None:
            return self.info.num_frames
        decoded = self._decoded()
        try:
            total = sum(1 for _ in decoded)
        finally:
            decoded.close()
        remaining = max(total - self.start, 0)
        return remaining if self.max_frames is None else min(remaining, self.max_frames)


def _to_viewing_planes(frame: Frame) -> np.ndarray:
    """A frame as the packed yuv420p array [H * 3/2, W] that PyAV takes."""
    planes = list(frame.planes)
    if frame.bit_depth != 8:
        top = (1 << frame.bit_depth) - 1
        # Round v * 255 / top in integers, so 10-bit 1023 maps to 255 exactly.
        planes = [((p.astype(np.uint32) * 255 + top // 2) // top).astype(np.uint8) for p in planes]
    y, u, v = planes
    if frame.chroma == "444":
        u, v = downsample_444_to_420(u), downsample_444_to_420(v)
    stacked = np.concatenate([y.ravel(), u.ravel(), v.ravel()])
    return stacked.reshape(frame.height * 3 // 2, frame.width)


class PyAvWriter(VideoWriter):
    """Writes H.264 (libx264, CRF 18, yuv420p 8-bit) in mp4, mkv or mov, for viewing."""

    max_bit_depth = 8

    def _open(self) -> None:
        info = self.info
        if info.width % 2 or info.height % 2:
            raise InputFormatError(
                f"{self.path}: H.264 output needs an even width and height, "
                f"got {info.width}x{info.height}; write .y4m instead"
            )
        if VIEWING_CODEC not in av.codecs_available:
            raise OutputError(f"cannot write {self.path}: this PyAV build lacks {VIEWING_CODEC}")
        muxer = OUTPUT_CONTAINERS[self.path.suffix.lower()]
        try:
            self._container = av.open(str(self.staging_path), "w", format=muxer)
            stream = self._container.add_stream(VIEWING_CODEC, rate=Fraction(info.fps))
            stream.width, stream.height = info.width, info.height
            stream.pix_fmt = "yuv420p"
            stream.codec_context.time_base = 1 / Fraction(info.fps)
            stream.options = {"crf": str(VIEWING_CRF)}
        except av.FFmpegError as error:
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None
        self._stream = stream

    def _write(self, frame: Frame) -> None:
        av_frame = av.VideoFrame.from_ndarray(_to_viewing_planes(frame), format="yuv420p")
        av_frame.pts = self.frames_written
        try:
            for packet in self._stream.encode(av_frame):
                self._container.mux(packet)
        except av.FFmpegError as error:
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None

    def _finish(self) -> None:
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
        except av.FFmpegError as error:
            raise OutputError(f"cannot write {self.path}: {_reason(error)}") from None
        finally:
            self._container.close()
