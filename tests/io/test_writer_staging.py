"""Writers publish their output only on a clean close and never leave partial files."""

from __future__ import annotations

import os
from fractions import Fraction

import pytest

from ufvc.errors import InputFormatError, OutputError
from ufvc.io import open_reader, open_writer
from ufvc.io.types import VideoInfo

INFO = VideoInfo(16, 8, Fraction(25), None)
TARGETS = ["out.y4m", "out.yuv", "out.mp4", "out.mkv", "frames/", "seq/%04d.png"]


def published(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


@pytest.mark.parametrize("target", TARGETS)
def test_output_appears_only_when_the_writer_closes(tmp_path, random_frames, target):
    if target.startswith("seq/"):
        (tmp_path / "seq").mkdir()
    path = tmp_path / target
    # What a reader of the destination sees: the file, or the frames in the folder.
    visible = tmp_path / target.split("/")[0] if target.endswith("/") else path
    if target.startswith("seq/"):
        visible = tmp_path / "seq" / "0000.png"
    with open_writer(str(path), INFO) as writer:
        for frame in random_frames(16, 8, 3):
            writer.write(frame)
        assert not visible.exists()
    assert visible.exists()
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".partial")]
    with open_reader(str(path), size=(16, 8)) as reader:
        assert reader.count_frames() == 3


@pytest.mark.parametrize("target", TARGETS)
def test_error_inside_with_removes_the_partial_output(tmp_path, random_frames, target):
    if target.startswith("seq/"):
        (tmp_path / "seq").mkdir()
    before = published(tmp_path)
    with pytest.raises(RuntimeError, match="stop"):
        with open_writer(str(tmp_path / target), INFO) as writer:
            writer.write(random_frames(16, 8, 1)[0])
            raise RuntimeError("stop")
    assert published(tmp_path) == before
    if target.startswith("seq/"):
        assert list((tmp_path / "seq").iterdir()) == []


def test_mismatched_frame_raises_and_leaves_nothing(tmp_path, random_frames):
    with pytest.raises(InputFormatError, match="frame 1 is 8x8, but .* is 16x8"):
        with open_writer(tmp_path / "out.y4m", INFO) as writer:
            writer.write(random_frames(16, 8, 1)[0])
            writer.write(random_frames(8, 8, 1)[0])
    with pytest.raises(InputFormatError, match="frame 0 is 4:4:4 8-bit, but .* is 4:2:0 8-bit"):
        with open_writer(tmp_path / "out.y4m", INFO) as writer:
            writer.write(random_frames(16, 8, 1, chroma="444")[0])
    assert published(tmp_path) == []


def test_writer_dropped_without_close_leaves_nothing(tmp_path, random_frames):
    writer = open_writer(tmp_path / "out.y4m", INFO)
    writer.write(random_frames(16, 8, 1)[0])
    assert len(published(tmp_path)) == 1  # the hidden staging file
    del writer
    assert published(tmp_path) == []


def test_existing_output_file_is_replaced_with_normal_permissions(tmp_path, random_frames):
    path = tmp_path / "out.yuv"
    path.write_bytes(b"old content")
    with open_writer(path, INFO) as writer:
        writer.write(random_frames(16, 8, 1)[0])
    assert path.stat().st_size == 16 * 8 * 3 // 2
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert published(tmp_path) == ["out.yuv"]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("missing/out.y4m", "folder .*missing does not exist"),
        ("afile/out.y4m", "folder .*afile does not exist"),
        ("adir.y4m", "it is a folder"),
        ("afile/frames/", "folder .*afile does not exist"),
    ],
)
def test_unwritable_destination_raises_output_error(tmp_path, target, message):
    (tmp_path / "afile").write_text("a file, not a folder")
    (tmp_path / "adir.y4m").mkdir()
    with pytest.raises(OutputError, match=message) as raised:
        open_writer(str(tmp_path / target), INFO)
    assert "\n" not in str(raised.value)


def test_unknown_output_suffix_raises(tmp_path):
    with pytest.raises(InputFormatError, match="unknown output format '.avi'"):
        open_writer(tmp_path / "out.avi", INFO)
