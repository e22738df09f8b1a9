"""Compressed video through PyAV: the sample clips, H.264 output, odd sources."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from ufvc.errors import InputFormatError
from ufvc.io import open_reader, open_writer
from ufvc.io.color import rgb_to_frame
from ufvc.io.types import VideoInfo
from ufvc.metrics import frame_psnr
from ufvc.samples import SAMPLE_CLIPS, synthetic_video


def test_bigbuckbunny_metadata_and_first_frames(clip_path):
    expected = SAMPLE_CLIPS["bigbuckbunny.mp4"]
    with open_reader(clip_path("bigbuckbunny.mp4"), max_frames=3) as reader:
        assert reader.source_num_frames == expected.num_frames == 132
        assert (reader.info.width, reader.info.height) == (1280, 720)
        assert reader.info.fps == expected.fps
        assert (reader.info.chroma, reader.info.bit_depth) == ("420", 8)
        assert reader.info.format_name == "mp4" and reader.codec_name == "h264"
        frames = list(reader)
    assert len(frames) == 3
    assert frames[0].y.shape == (720, 1280) and frames[0].u.shape == (360, 640)
    assert frames[0].y.dtype == np.uint8


@pytest.mark.parametrize("name", ["bikes.mp4", "carphone_pristine.mp4"])
def test_small_sample_clips_decode_to_their_frame_count(clip_path, name):
    expected = SAMPLE_CLIPS[name]
    with open_reader(clip_path(name)) as reader:
        assert reader.info.fps == expected.fps
        decoded = 0
        for frame in reader:
            assert (frame.width, frame.height) == (expected.width, expected.height)
            decoded += 1
    assert decoded == reader.info.num_frames == expected.num_frames


def test_reader_takes_decoded_planes_unchanged(clip_path):
    path = clip_path("carphone_pristine.mp4")
    with av.open(str(path)) as container:
        reference = [f for _, f in zip(range(6), container.decode(video=0), strict=False)]
    with open_reader(path, start=4, max_frames=2) as reader:
        frames = list(reader)
    assert len(frames) == 2
    for frame, av_frame in zip(frames, reference[4:], strict=True):
        packed = av_frame.to_ndarray()  # yuv420p as [H * 3/2, W]
        np.testing.assert_array_equal(frame.y, packed[:144])
        np.testing.assert_array_equal(frame.u.ravel(), packed[144:180].ravel())


@pytest.mark.parametrize(
    ("suffix", "chroma", "bit_depth"), [(".mp4", "420", 8), (".mkv", "444", 10)]
)
def test_h264_output_is_viewable_and_close_to_the_input(tmp_path, suffix, chroma, bit_depth):
    frames = list(synthetic_video(64, 48, 5, chroma=chroma, bit_depth=bit_depth, seed=1))
    path = tmp_path / f"view{suffix}"
    with open_writer(path, VideoInfo(64, 48, Fraction(25), 5, bit_depth, chroma)) as writer:
        for frame in frames:
            writer.write(frame)
    eight_bit_420 = list(synthetic_video(64, 48, 5, seed=1))
    with open_reader(path) as reader:
        assert reader.codec_name == "h264"
        assert (reader.info.chroma, reader.info.bit_depth, reader.info.fps) == ("420", 8, 25)
        decoded = list(reader)
        assert reader.count_frames() == 5
    assert len(decoded) == 5
    # CRF 18 on this noise-like texture gives 34-40 dB; a frame out of order or a swapped
    # plane would be far below 30 dB.
    for frame, back in zip(eight_bit_420, decoded, strict=True):
        assert frame_psnr(frame, back).yuv611 > 30


def test_ten_bit_source_decodes_to_ten_bit(tmp_path):
    path = tmp_path / "ten.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "yuv420p10le"
        source = av.VideoFrame(32, 16, "yuv420p10le")
        for plane in source.planes:
            plane.update(np.full(plane.buffer_size // 2, 700, dtype="<u2").tobytes())
        for packet in [*stream.encode(source), *stream.encode()]:
            out.mux(packet)
    with open_reader(path) as reader:
        assert reader.info.num_frames is None  # Matroska does not store a frame count
        assert reader.count_frames() == 1
        frame = next(iter(reader))
    assert (reader.info.bit_depth, frame.y.dtype, int(frame.y[0, 0])) == (10, np.uint16, 700)


def test_rgb_source_uses_the_bt709_full_range_conversion(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (16, 32, 3), dtype=np.uint8)
    path = tmp_path / "rgb.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 32, 16, "bgr0"
        for packet in [*stream.encode(av.VideoFrame.from_ndarray(rgb, "rgb24")), *stream.encode()]:
            out.mux(packet)
    with open_reader(path, pix_fmt="yuv444p") as reader:
        frame = next(iter(reader))
    expected = rgb_to_frame(rgb, chroma="444")
    for plane, want in zip(frame.planes, expected.planes, strict=True):
        np.testing.assert_array_equal(plane, want)


def test_text_file_is_not_a_video(tmp_path):
    path = tmp_path / "notes.xyz"
    path.write_text("just some words\n")
    with pytest.raises(InputFormatError, match="not a video format ufvc can read"):
        open_reader(path)


def test_odd_sized_h264_output_is_refused(tmp_path, random_frames):
    with pytest.raises(InputFormatError, match="even width and height"):
        open_writer(tmp_path / "odd.mp4", VideoInfo(7, 5, Fraction(25), 1, 8, "444"))
    assert list(tmp_path.iterdir()) == []
