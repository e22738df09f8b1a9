"""PNG image sequences: a folder of PNGs, a printf pattern, or a single PNG."""

from __future__ import annotations

import re
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ufvc.errors import InputFormatError, OutputError
from ufvc.io.base import VideoReader, VideoWriter
from ufvc.io.color import frame_to_rgb8, rgb_to_frame
from ufvc.io.planar import pix_fmt_layout
from ufvc.io.types import Frame, FramePosition, VideoInfo

DEFAULT_FPS = Fraction(30)
DEFAULT_PATTERN = "%05d.png"
# Frame dumps are for viewing, so favour writing speed over file size.
PNG_COMPRESS_LEVEL = 1
_PRINTF_INT = re.compile(r"%(0?\d*)d")
_NUMBER = re.compile(r"(\d+)")


def is_pattern(path: str | Path) -> bool:
    """Whether `path` names a numbered sequence such as frames/%05d.png."""
    return len(_PRINTF_INT.findall(Path(path).name)) == 1


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in _NUMBER.split(path.name)]


def list_frame_files(source: Path) -> list[Path]:
    """The PNG files of a folder (in natural order), a printf pattern, or a single file.

    A pattern's first number is looked for among 0..4, as ffmpeg does, and the sequence
    ends at the first missing number.
    """
    if source.is_dir():
        files = sorted(
            (p for p in source.iterdir() if p.suffix.lower() == ".png" and p.is_file()),
            key=_natural_key,
        )
        if not files:
            raise InputFormatError(f"{source}: folder holds no .png files")
        return files
    if is_pattern(source):
        first = next((n for n in range(5) if Path(str(source) % n).is_file()), None)
        if first is None:
            raise InputFormatError(f"{source}: no file matches the pattern")
        files = []
        number = first
        while (path := Path(str(source) % number)).is_file():
            files.append(path)
            number += 1
        return files
    if source.is_file():
        return [source]
    raise InputFormatError(f"input not found: {source}")


def _image_size(path: Path) -> tuple[int, int]:
    """(width, height) from the image header, without decoding the pixels."""
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError) as error:
        raise InputFormatError(f"{path}: cannot read image ({error})") from None


def _load_rgb(path: Path) -> np.ndarray:
    """An image file as RGB [H, W, 3]: uint8, or uint16 for 16-bit greyscale."""
    try:
        with Image.open(path) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I"):
                grey = np.asarray(image).astype(np.uint16)
                return np.repeat(grey[..., None], 3, axis=2)
            return np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise InputFormatError(f"{path}: cannot read image ({error})") from None


class PngReader(VideoReader):
    """Reads PNG sequences, converting RGB to YCbCr (BT.709, full range).

    The pixel format decides chroma and bit depth (default yuv420p: chroma averaged over
    2x2 blocks in float before rounding).
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
        self.pix_fmt = pix_fmt or "yuv420p"
        self.chroma, bit_depth = pix_fmt_layout(self.pix_fmt)
        self.files = list_frame_files(path)
        width, height = _image_size(self.files[0])
        if self.chroma == "420" and (width % 2 or height % 2):
            raise InputFormatError(
                f"{self.files[0]}: 4:2:0 needs an even width and height, got {width}x{height}"
                " (read it as --pix-fmt yuv444p instead)"
            )
        info = VideoInfo(
            width=width,
            height=height,
            fps=fps or DEFAULT_FPS,
            num_frames=len(self.files),
            bit_depth=bit_depth,
            chroma=self.chroma,
            format_name="png",
        )
        super().__init__(path, info, start=start, duration=duration, max_frames=max_frames)

    def _read_from(self, start: int) -> Iterator[Frame]:
        info = self.info
        for path in self.files[start:]:
            rgb = _load_rgb(path)
            if rgb.shape[:2] != (info.height, info.width):
                raise InputFormatError(
                    f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]}, "
                    f"the sequence is {info.width}x{info.height}"
                )
            yield rgb_to_frame(rgb, chroma=info.chroma, bit_depth=info.bit_depth)


def split_output_target(path: Path) -> tuple[Path, str]:
    """(folder, file name pattern) of a PNG sequence output path."""
    if is_pattern(path):
        return path.parent, path.name
    return path, DEFAULT_PATTERN


class PngSequenceWriter(VideoWriter):
    """Writes one 8-bit RGB PNG per frame, numbered from 0 (10-bit frames are scaled down).

    The frames are written to a staging folder; on close they move into the target folder,
    which may exist but must not hold files the pattern would name.
    """

    max_bit_depth = 8

    def __init__(self, path: Path, info: VideoInfo, *, overwrite: bool = True) -> None:
        folder, self.pattern = split_output_target(path.absolute())
        number = _PRINTF_INT.search(self.pattern)
        self._frame_name = re.compile(
            re.escape(self.pattern[: number.start()])
            + r"\d+"
            + re.escape(self.pattern[number.end() :])
        )
        # Refused even with `overwrite`: old frames past the new last one would stay.
        if folder.is_dir():
            clash = next((p for p in folder.iterdir() if self._frame_name.fullmatch(p.name)), None)
            if clash is not None:
                raise OutputError(
                    f"cannot write frames to {folder}: it already holds {clash.name}; "
                    "remove the old frames or choose another folder"
                )
        super().__init__(folder, info, folder=True, overwrite=overwrite)

    def _open(self) -> None:
        """Nothing to start: each frame is a file of its own."""

    def _write(self, frame: Frame) -> None:
        target = self.staging_path / (self.pattern % self.frames_written)
        Image.fromarray(frame_to_rgb8(frame)).save(target, compress_level=PNG_COMPRESS_LEVEL)

    def _finish(self) -> None:
        """Nothing to flush: every frame file is complete once written."""


class PngImageWriter(VideoWriter):
    """Writes a single frame as one 8-bit RGB .png file."""

    max_bit_depth = 8

    def _open(self) -> None:
        """Nothing to start: the image is written whole by `_write`."""

    def _write(self, frame: Frame) -> None:
        if self.frames_written:
            raise OutputError(
                f"cannot write {self.path}: a single .png holds one frame; "
                "write to DIR/%05d.png instead"
            )
        Image.fromarray(frame_to_rgb8(frame)).save(
            self.staging_path, format="PNG", compress_level=PNG_COMPRESS_LEVEL
        )

    def _finish(self) -> None:
        if not self.frames_written:
            raise OutputError(f"cannot write {self.path}: no frame was written")
