"""PNG sequences: folder, pattern and single-file input; RGB round trips; output folders."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from ufvc.errors import InputFormatError, OutputError
from ufvc.io import open_reader, open_writer
from ufvc.io.color import frame_to_rgb, rgb_to_frame
from ufvc.io.types import VideoInfo
from ufvc.samples import synthetic_video

# 8-bit RGB -> 8-bit YCbCr 4:4:4 -> 8-bit RGB moves no component by more than one code.
# Measured over all 2**24 colours: 75.3% of colours come back with some component off by
# one, none by more. The test below checks a 52**3-colour grid that includes 0 and 255.
RGB_ROUND_TRIP_MAX_ERROR = 1


def rgb_images(count: int, width: int = 20, height: int = 12, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(count)]


def save_pngs(folder, images, pattern="%05d.png", first=0):
    folder.mkdir(exist_ok=True)
    for index, image in enumerate(images, start=first):
        Image.fromarray(image).save(folder / (pattern % index))


def test_rgb_conversion_error_is_at_most_one_code_over_a_colour_grid():
    levels = np.arange(0, 256, 5)
    grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    rgb = grid.reshape(-1, len(levels), 3).astype(np.uint8)
    back = frame_to_rgb(rgb_to_frame(rgb, chroma="444"))
    error = np.abs(back.astype(int) - rgb.astype(int)).max()
    assert error == RGB_ROUND_TRIP_MAX_ERROR


def test_png_rgb_round_trip_is_within_the_conversion_error(tmp_path):
    images = rgb_images(3)
    save_pngs(tmp_path / "in", images)
    with open_reader(tmp_path / "in", pix_fmt="yuv444p") as reader:
        assert reader.info == VideoInfo(20, 12, Fraction(30), 3, 8, "444", "png")
        with open_writer(tmp_path / "out/", reader.info) as writer:
            for frame in reader:
                writer.write(frame)
    for index, image in enumerate(images):
        back = np.asarray(Image.open(tmp_path / "out" / f"{index:05d}.png"))
        assert np.abs(back.astype(int) - image.astype(int)).max() <= RGB_ROUND_TRIP_MAX_ERROR


def test_in_gamut_ycbcr_survives_a_png_round_trip_within_one_code(tmp_path):
    frames = list(synthetic_video(32, 16, 2, chroma="444", seed=4))
    info = VideoInfo(32, 16, Fraction(30), 2, 8, "444")
    with open_writer(tmp_path / "%03d.png", info) as writer:
        for frame in frames:
            writer.write(frame)
    with open_reader(tmp_path / "%03d.png", pix_fmt="yuv444p") as reader:
        for frame, back in zip(frames, reader, strict=True):
            for plane, back_plane in zip(frame.planes, back.planes, strict=True):
                assert np.abs(plane.astype(int) - back_plane.astype(int)).max() <= 1


def test_420_reading_averages_chroma_of_each_2x2_block(tmp_path):
    image = rgb_images(1, 8, 4, seed=2)[0]
    save_pngs(tmp_path / "in", [image])
    with open_reader(tmp_path / "in") as reader:
        frame = next(iter(reader))
    assert reader.info.chroma == "420"
    full = rgb_to_frame(image, chroma="444")
    np.testing.assert_array_equal(frame.y, full.y)
    # 2x2 mean of the unrounded chroma, so within half a code of the mean of rounded codes.
    block_mean = full.u.astype(float).reshape(2, 2, 4, 2).mean(axis=(1, 3))
    assert np.abs(frame.u - block_mean).max() <= 0.75


def test_folder_is_read_in_natural_number_order(tmp_path):
    images = rgb_images(3, seed=1)
    folder = tmp_path / "shots"
    folder.mkdir()
    for name, image in zip(["frame_2.png", "frame_10.png", "frame_1.png"], images, strict=True):
        Image.fromarray(image).save(folder / name)
    (folder / "notes.txt").write_text("not a frame")
    with open_reader(folder, pix_fmt="yuv444p") as reader:
        lumas = [frame.y for frame in reader]
    expected = [rgb_to_frame(images[i], chroma="444").y for i in (2, 0, 1)]
    for luma, want in zip(lumas, expected, strict=True):
        np.testing.assert_array_equal(luma, want)


@pytest.mark.parametrize("first", [0, 1, 4])
def test_pattern_finds_its_first_number_like_ffmpeg(tmp_path, first):
    save_pngs(tmp_path, rgb_images(3), pattern="img%03d.png", first=first)
    with open_reader(tmp_path / "img%03d.png", max_frames=2) as reader:
        assert reader.info.num_frames == 2
        assert len(list(reader)) == 2


def test_single_png_is_a_one_frame_video(tmp_path):
    save_pngs(tmp_path, rgb_images(1), pattern="still%d.png")
    with open_reader(tmp_path / "still0.png") as reader:
        assert reader.info.num_frames == 1
        frame = next(iter(reader))
    info = reader.info
    with open_writer(tmp_path / "copy.png", info) as writer:
        writer.write(frame)
    assert Image.open(tmp_path / "copy.png").size == (20, 12)
    with pytest.raises(OutputError, match="a single .png holds one frame"):
        with open_writer(tmp_path / "two.png", info) as writer:
            writer.write(frame)
            writer.write(frame)
    assert not (tmp_path / "two.png").exists()


def test_odd_png_size_needs_444(tmp_path):
    save_pngs(tmp_path / "odd", rgb_images(1, width=7, height=5))
    with pytest.raises(InputFormatError, match="even width and height, got 7x5"):
        open_reader(tmp_path / "odd")
    with open_reader(tmp_path / "odd", pix_fmt="yuv444p") as reader:
        assert next(iter(reader)).y.shape == (5, 7)


def test_png_frames_of_another_size_raise(tmp_path):
    save_pngs(tmp_path / "mixed", [*rgb_images(1), *rgb_images(1, width=22)])
    with open_reader(tmp_path / "mixed") as reader:
        with pytest.raises(InputFormatError, match="00001.png: image is 22x12"):
            list(reader)


def test_empty_folder_and_missing_pattern_raise(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFormatError, match="holds no .png files"):
        open_reader(tmp_path / "empty")
    with pytest.raises(InputFormatError, match="no file matches the pattern"):
        open_reader(tmp_path / "%05d.png")


def test_output_folder_with_old_frames_is_refused(tmp_path, random_frames):
    info = VideoInfo(8, 4, Fraction(30), 1)
    frame = random_frames(8, 4, 1)[0]
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("unrelated")
    with open_writer(out, info) as writer:
        writer.write(frame)
    assert sorted(p.name for p in out.iterdir()) == ["00000.png", "keep.txt"]
    with pytest.raises(OutputError, match="already holds 00000.png"):
        open_writer(out, info)
