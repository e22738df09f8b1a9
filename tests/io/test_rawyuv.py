"""Raw planar .yuv: exact round trips, geometry from options or file names, bad sizes."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ufvc.errors import InputFormatError
from ufvc.io import open_reader, open_writer
from ufvc.io.rawyuv import geometry_from_name
from ufvc.io.types import VideoInfo


@pytest.mark.parametrize(
    ("pix_fmt", "chroma", "bit_depth"),
    [
        ("yuv420p", "420", 8),
        ("yuv420p10le", "420", 10),
        ("yuv444p", "444", 8),
        ("yuv444p10le", "444", 10),
    ],
)
def test_raw_yuv_round_trip_is_bit_exact(
    tmp_path, random_frames, assert_same_frames, pix_fmt, chroma, bit_depth
):
    frames = random_frames(24, 16, 4, chroma=chroma, bit_depth=bit_depth, seed=5)
    path = tmp_path / "clip.yuv"
    info = VideoInfo(24, 16, Fraction(30), 4, bit_depth, chroma)
    with open_writer(path, info) as writer:
        for frame in frames:
            writer.write(frame)
    sample_bytes = 1 if bit_depth == 8 else 2
    chroma_samples = 2 * (24 * 16 // 4 if chroma == "420" else 24 * 16)
    assert path.stat().st_size == 4 * sample_bytes * (24 * 16 + chroma_samples)
    with open_reader(path, size=(24, 16), pix_fmt=pix_fmt) as reader:
        assert reader.info == VideoInfo(24, 16, Fraction(30), 4, bit_depth, chroma, "yuv")
        assert_same_frames(frames, list(reader))
    with open_reader(path, size=(24, 16), pix_fmt=pix_fmt, start=1, max_frames=2) as reader:
        assert_same_frames(frames[1:3], list(reader))


def test_ten_bit_samples_are_little_endian(tmp_path, random_frames):
    frame = random_frames(4, 2, 1, chroma="444", bit_depth=10)[0]
    frame.y[0, 0] = 0x0301
    path = tmp_path / "le.yuv"
    with open_writer(path, VideoInfo(4, 2, Fraction(30), 1, 10, "444")) as writer:
        writer.write(frame)
    assert path.read_bytes()[:2] == b"\x01\x03"


def test_raw_yuv_without_size_raises(tmp_path):
    path = tmp_path / "clip.yuv"
    path.write_bytes(bytes(96))
    with pytest.raises(InputFormatError, match="needs the frame size"):
        open_reader(path)


def test_raw_yuv_whose_size_does_not_divide_the_file_raises(tmp_path):
    path = tmp_path / "clip.yuv"
    path.write_bytes(bytes(8 * 4 * 3 // 2 * 2 + 5))
    with pytest.raises(InputFormatError, match="not a multiple of the 8x4 yuv420p frame size 48"):
        open_reader(path, size=(8, 4))


def test_raw_yuv_odd_size_for_420_raises(tmp_path):
    path = tmp_path / "clip.yuv"
    path.write_bytes(bytes(100))
    with pytest.raises(InputFormatError, match="even width and height, got 5x4"):
        open_reader(path, size=(5, 4))


def test_raw_yuv_unknown_pixel_format_raises(tmp_path):
    path = tmp_path / "clip.yuv"
    path.write_bytes(bytes(48))
    with pytest.raises(InputFormatError, match="unsupported pixel format 'yuv422p'"):
        open_reader(path, size=(8, 4), pix_fmt="yuv422p")


@pytest.mark.parametrize(
    ("name", "size", "fps", "bits"),
    [
        ("BasketballDrive_1920x1080_50.yuv", (1920, 1080), Fraction(50), None),
        ("Beauty_1920x1080_120fps_420_10bit_YUV.yuv", (1920, 1080), Fraction(120), 10),
        ("RaceHorses_416x240_30.yuv", (416, 240), Fraction(30), None),
        ("clip_352x288_29.97fps_8bit.yuv", (352, 288), Fraction("29.97"), 8),
        ("plain.yuv", None, None, None),
    ],
)
def test_geometry_is_taken_from_test_set_names(name, size, fps, bits):
    assert geometry_from_name(Path(name)) == (size, fps, bits)


def test_name_geometry_is_used_and_options_override_it(tmp_path, random_frames):
    frames = random_frames(8, 4, 2, bit_depth=10)
    path = tmp_path / "seq_8x4_60fps_10bit.yuv"
    with open_writer(path, VideoInfo(8, 4, Fraction(60), 2, 10, "420")) as writer:
        for frame in frames:
            writer.write(frame)
    with open_reader(path) as reader:
        assert (reader.info.width, reader.info.height, reader.info.fps) == (8, 4, 60)
        assert reader.info.bit_depth == 10 and reader.info.num_frames == 2
        np.testing.assert_array_equal(next(iter(reader)).y, frames[0].y)
    with open_reader(path, size=(16, 4), pix_fmt="yuv420p", fps=Fraction(25)) as reader:
        assert (reader.info.width, reader.info.fps, reader.info.num_frames) == (16, 25, 2)
