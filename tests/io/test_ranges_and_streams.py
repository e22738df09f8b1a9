"""Frame positions in frames or seconds, reader options, Y4M from a stream, safe outputs."""

from __future__ import annotations

import io
import os
from fractions import Fraction

import pytest

from ufvc.errors import InputFormatError, OutputError
from ufvc.io import VIEWING_SUFFIXES, FramePosition, check_reader_options, open_reader, open_writer
from ufvc.io.base import StagedOutput
from ufvc.io.container import OUTPUT_CONTAINERS
from ufvc.io.types import VideoInfo
from ufvc.io.y4m import Y4mReader


@pytest.mark.parametrize(("text", "fps", "frames"), [
    ("0", 25, 0), ("12", 25, 12), (7, 25, 7), ("2s", 25, 50), ("0.5s", Fraction(30000, 1001), 15),
    ("1/3s", 30, 10), ("0.02s", 25, 1), ("0.019s", 25, 0),
])
def test_positions_in_frames_or_seconds(text, fps, frames) -> None:
    assert FramePosition.parse(text).frames(Fraction(fps)) == frames


@pytest.mark.parametrize("text", ["-1", "1.5", "s", "", "abc", "1e400x", True])
def test_bad_positions_are_refused(text) -> None:
    with pytest.raises(InputFormatError, match="frame position"):
        FramePosition.parse(text)


def write_y4m(path, frames):
    first = frames[0]
    info = VideoInfo(first.width, first.height, Fraction(25), None, first.bit_depth, first.chroma)
    with open_writer(path, info) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def test_seconds_range_reads_the_same_frames_as_a_frame_range(
    tmp_path, random_frames, assert_same_frames
) -> None:
    frames = random_frames(16, 8, 10)
    path = write_y4m(tmp_path / "c.y4m", frames)
    with open_reader(path, start="0.08s", duration="0.12s") as reader:
        assert reader.info.num_frames == 3
        assert_same_frames(list(reader), frames[2:5])


def test_y4m_from_a_stream_reads_front_to_back_once(
    tmp_path, random_frames, assert_same_frames
) -> None:
    frames = random_frames(16, 8, 4, bit_depth=10)
    data = write_y4m(tmp_path / "c.y4m", frames).read_bytes()
    reader = Y4mReader.from_stream(io.BufferedReader(io.BytesIO(data)), "stdin", start=1)
    assert reader.info.num_frames is None and reader.info.bit_depth == 10
    assert_same_frames(list(reader), frames[1:])
    with pytest.raises(InputFormatError, match="only once"):
        list(reader)


def test_reader_options_take_a_size_string_and_name_unknown_keys(tmp_path, random_frames):
    frame = random_frames(16, 8, 1)[0]
    path = tmp_path / "c.yuv"
    path.write_bytes(frame.y.tobytes() + frame.u.tobytes() + frame.v.tobytes())
    with open_reader(path, **check_reader_options({"size": "16x8"})) as reader:
        assert (reader.info.width, reader.info.height) == (16, 8)
    with pytest.raises(InputFormatError, match="unknown reader option.*sizes"):
        check_reader_options({"sizes": "16x8"})
    with pytest.raises(InputFormatError, match="size"):
        open_reader(path, size=(16, "8"))


def test_frame_repr_is_short(random_frames) -> None:
    assert repr(random_frames(64, 48, 1)[0]) == "Frame(64x48, 420, 8-bit, uint8)"


def test_viewing_suffixes_are_the_containers_written() -> None:
    assert set(VIEWING_SUFFIXES) == set(OUTPUT_CONTAINERS)


def test_an_output_that_appears_while_staged_is_not_clobbered(tmp_path) -> None:
    target = tmp_path / "out.bin"
    staged = StagedOutput(target, overwrite=False)
    with staged.open_binary() as file:
        file.write(b"new")
    target.write_bytes(b"someone else's")
    with pytest.raises(OutputError, match="already exists"):
        staged.commit()
    assert target.read_bytes() == b"someone else's"
    assert sorted(os.listdir(tmp_path)) == ["out.bin"]
