"""YUV4MPEG2 reading and writing: exact round trips, ffmpeg's header, malformed files."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from ufvc.errors import InputFormatError
from ufvc.io import open_reader, open_writer
from ufvc.io.types import VideoInfo

LAYOUTS = [("420", 8), ("420", 10), ("444", 8), ("444", 10)]
PIX_FMTS = {
    ("420", 8): "yuv420p",
    ("420", 10): "yuv420p10le",
    ("444", 8): "yuv444p",
    ("444", 10): "yuv444p10le",
}


def write_y4m(path, frames, fps=Fraction(25)):
    first = frames[0]
    info = VideoInfo(first.width, first.height, fps, len(frames), first.bit_depth, first.chroma)
    with open_writer(path, info) as writer:
        for frame in frames:
            writer.write(frame)


def y4m_bytes(header: str, frames: list[bytes], frame_line: bytes = b"FRAME\n") -> bytes:
    return header.encode() + b"\n" + b"".join(frame_line + data for data in frames)


@pytest.mark.parametrize(("chroma", "bit_depth"), LAYOUTS)
def test_y4m_round_trip_is_bit_exact(
    tmp_path, random_frames, assert_same_frames, chroma, bit_depth
):
    frames = random_frames(48, 32, 3, chroma=chroma, bit_depth=bit_depth)
    path = tmp_path / "clip.y4m"
    write_y4m(path, frames, fps=Fraction(30000, 1001))
    with open_reader(path) as reader:
        assert reader.info == VideoInfo(48, 32, Fraction(30000, 1001), 3, bit_depth, chroma, "y4m")
        assert_same_frames(frames, list(reader))


@pytest.mark.parametrize(("chroma", "bit_depth"), LAYOUTS)
def test_y4m_header_matches_ffmpeg_and_ffmpeg_reads_our_samples(
    tmp_path, random_frames, chroma, bit_depth
):
    frames = random_frames(64, 48, 2, chroma=chroma, bit_depth=bit_depth, seed=3)
    ours = tmp_path / "ours.y4m"
    write_y4m(ours, frames)
    pix_fmt = PIX_FMTS[(chroma, bit_depth)]

    # Reference: FFmpeg's own yuv4mpegpipe muxer for the same layout.
    theirs = tmp_path / "ffmpeg.y4m"
    with av.open(str(theirs), "w", format="yuv4mpegpipe", options={"strict": "-1"}) as out:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, pix_fmt
        blank = av.VideoFrame(64, 48, pix_fmt)
        for plane in blank.planes:
            plane.update(bytes(plane.buffer_size))
        for packet in [*stream.encode(blank), *stream.encode()]:
            out.mux(packet)
    assert ours.read_bytes().split(b"\n")[0] == theirs.read_bytes().split(b"\n")[0]

    with av.open(str(ours)) as container:
        decoded = [f for f in container.decode(video=0)]
    assert len(decoded) == 2
    for frame, av_frame in zip(frames, decoded, strict=True):
        assert av_frame.format.name == pix_fmt
        dtype = np.uint8 if bit_depth == 8 else np.dtype("<u2")
        for plane, av_plane in zip(frame.planes, av_frame.planes, strict=True):
            rows = np.frombuffer(av_plane, dtype).reshape(av_plane.height, -1)
            np.testing.assert_array_equal(rows[:, : av_plane.width], plane)


@pytest.mark.parametrize(
    ("tag", "chroma", "bit_depth"),
    [
        ("C420jpeg", "420", 8),
        ("C420paldv", "420", 8),
        ("C420mpeg2", "420", 8),
        ("C420", "420", 8),
        ("", "420", 8),  # no C field means 4:2:0 (jpeg siting)
        ("C444", "444", 8),
        ("C420p10 XYSCSS=420P10", "420", 10),
        ("C444p10 XYSCSS=444P10", "444", 10),
    ],
)
def test_y4m_colour_space_tags_are_understood(tmp_path, random_frames, tag, chroma, bit_depth):
    frame = random_frames(8, 4, 1, chroma=chroma, bit_depth=bit_depth)[0]
    data = b"".join(np.ascontiguousarray(p).tobytes() for p in frame.planes)
    header = f"YUV4MPEG2 W8 H4 F50:1 It A128:117 {tag} XCOLORRANGE=FULL".rstrip()
    path = tmp_path / "tagged.y4m"
    path.write_bytes(y4m_bytes(header, [data, data], frame_line=b"FRAME Ixyz XFOO=1\n"))
    with open_reader(path) as reader:
        assert (reader.info.chroma, reader.info.bit_depth) == (chroma, bit_depth)
        assert reader.info.fps == 50
        assert reader.info.num_frames == 2
        frames = list(reader)
    assert len(frames) == 2
    np.testing.assert_array_equal(frames[1].y, frame.y)
    np.testing.assert_array_equal(frames[1].v, frame.v)


def test_y4m_range_reads_only_the_asked_frames(tmp_path, random_frames, assert_same_frames):
    frames = random_frames(16, 8, 6, seed=9)
    path = tmp_path / "range.y4m"
    write_y4m(path, frames)
    with open_reader(path, start=2, max_frames=3) as reader:
        assert reader.info.num_frames == 3
        assert_same_frames(frames[2:5], list(reader))
        # A second pass starts over at the same frame.
        assert_same_frames(frames[2:5], list(reader))
    with open_reader(path, start=4) as reader:
        assert_same_frames(frames[4:], list(reader))


@pytest.mark.parametrize(
    ("tag", "message"),
    [
        ("C422", "unsupported chroma format C422"),
        ("Cmono", "unsupported chroma format Cmono"),
        ("C444alpha", "unsupported chroma format C444alpha"),
        ("C420p12", "unsupported bit depth 12"),
        ("C444p16", "unsupported bit depth 16"),
        ("Cxyz", "unknown Y4M colour space"),
    ],
)
def test_y4m_unsupported_layouts_raise(tmp_path, tag, message):
    path = tmp_path / "odd.y4m"
    path.write_bytes(y4m_bytes(f"YUV4MPEG2 W8 H4 F25:1 {tag}", [bytes(48)]))
    with pytest.raises(InputFormatError, match=message):
        open_reader(path)


def test_y4m_truncated_last_frame_names_its_index(tmp_path, random_frames):
    path = tmp_path / "cut.y4m"
    write_y4m(path, random_frames(16, 8, 3))
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    with pytest.raises(InputFormatError, match="frame 2 is truncated"):
        open_reader(path)
    path.write_bytes(data + b"FRA")
    with pytest.raises(InputFormatError, match="frame 3 is truncated"):
        open_reader(path)


def test_y4m_odd_size_for_420_raises(tmp_path):
    path = tmp_path / "odd.y4m"
    path.write_bytes(y4m_bytes("YUV4MPEG2 W7 H4 F25:1 C420jpeg", [bytes(28 + 2 * 8)]))
    with pytest.raises(InputFormatError, match="even width and height, got 7x4"):
        open_reader(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"RIFF....\n", "not a YUV4MPEG2 file"),
        (b"YUV4MPEG2 W8 F25:1\n", "lacks the W or H field"),
        (b"YUV4MPEG2 W8 H4 F25:1\nFRAMX\n" + bytes(48), "frame 0 does not start with a FRAME"),
        (b"YUV4MPEG2 W8 H4 F25\n", "malformed Y4M frame rate"),
    ],
)
def test_y4m_malformed_headers_raise(tmp_path, content, message):
    path = tmp_path / "bad.y4m"
    path.write_bytes(content)
    with pytest.raises(InputFormatError, match=message):
        open_reader(path)


def test_y4m_reader_refuses_contradicting_size_or_format(tmp_path, random_frames):
    path = tmp_path / "clip.y4m"
    write_y4m(path, random_frames(16, 8, 1))
    with pytest.raises(InputFormatError, match="is 16x8, not the 32x8"):
        open_reader(path, size=(32, 8))
    with pytest.raises(InputFormatError, match="not yuv444p"):
        open_reader(path, pix_fmt="yuv444p")
    with open_reader(path, size=(16, 8), pix_fmt="yuv420p", fps=Fraction(50)) as reader:
        assert reader.info.fps == 50
