"""`ufvc probe`: reports on good input, one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from ufvc.cli import main
from ufvc.io import open_writer
from ufvc.io.types import VideoInfo


def write_video(path, frames, fps=Fraction(25)):
    first = frames[0]
    info = VideoInfo(first.width, first.height, fps, None, first.bit_depth, first.chroma)
    with open_writer(path, info) as writer:
        for frame in frames:
            writer.write(frame)


def run_probe(capsys, *args):
    code = main(["probe", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_probe_reports_a_y4m_file(tmp_path, capsys, random_frames):
    path = tmp_path / "clip.y4m"
    write_video(path, random_frames(32, 16, 4, bit_depth=10), fps=Fraction(30000, 1001))
    code, out, err = run_probe(capsys, path)
    assert code == 0 and err == ""
    lines = dict(line.split(":", 1) for line in out.strip().splitlines())
    assert lines["format"].strip() == "y4m"
    assert lines["size"].strip() == "32x16"
    assert lines["fps"].strip() == "29.97 (30000/1001)"
    assert lines["frames"].strip() == "4"
    assert lines["bit depth"].strip() == "10"
    assert lines["chroma"].strip() == "4:2:0"
    assert lines["duration"].strip() == "0.133 s"


def test_probe_json_counts_frames_the_container_does_not_state(tmp_path, capsys, random_frames):
    path = tmp_path / "clip.mkv"
    write_video(path, random_frames(32, 16, 3))
    code, out, _ = run_probe(capsys, "--json", path)
    report = json.loads(out)
    assert code == 0
    assert report["frames"] == 3 and report["frames_counted"] is True
    assert (report["format"], report["codec"], report["fps"]) == ("mkv", "h264", "25/1")
    assert report["duration_s"] == pytest.approx(0.12)


def test_probe_raw_yuv_with_options(tmp_path, capsys, random_frames):
    path = tmp_path / "clip.yuv"
    write_video(path, random_frames(8, 4, 5, chroma="444"))
    code, out, _ = run_probe(
        capsys, path, "--size", "8x4", "--pix-fmt", "yuv444p", "--fps", "50", "--json"
    )
    report = json.loads(out)
    assert code == 0
    assert (report["width"], report["height"], report["frames"]) == (8, 4, 5)
    assert (report["chroma"], report["fps"], report["duration_s"]) == ("444", "50/1", 0.1)


def y4m(header: str, payload: bytes) -> bytes:
    return header.encode() + b"\n" + payload


BAD_INPUTS = {
    "missing file": ("absent.y4m", None, [], "input not found"),
    "unknown format": ("notes.xyz", b"plain text\n", [], "not a video format ufvc can read"),
    "raw yuv without size": ("clip.yuv", bytes(96), [], "needs the frame size"),
    "raw yuv size does not divide": (
        "clip.yuv",
        bytes(100),
        ["--size", "8x4"],
        "not a multiple of the 8x4 yuv420p frame size",
    ),
    "malformed size option": ("clip.yuv", bytes(96), ["--size", "8by4"], "must look like"),
    "malformed fps option": ("clip.yuv", bytes(96), ["--size", "8x4", "--fps", "0"], "positive"),
    "truncated y4m": (
        "cut.y4m",
        y4m("YUV4MPEG2 W8 H4 F25:1", b"FRAME\n" + bytes(48) + b"FRAME\n" + bytes(20)),
        [],
        "frame 1 is truncated",
    ),
    "odd size for 4:2:0": (
        "odd.y4m",
        y4m("YUV4MPEG2 W7 H5 F25:1 C420jpeg", b""),
        [],
        "even width and height, got 7x5",
    ),
    "unsupported bit depth": (
        "deep.y4m",
        y4m("YUV4MPEG2 W8 H4 F25:1 C420p12", b""),
        [],
        "unsupported bit depth 12",
    ),
    "unsupported chroma": (
        "wide.y4m",
        y4m("YUV4MPEG2 W8 H4 F25:1 C422", b""),
        [],
        "unsupported chroma format C422",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_exits_2_with_one_line_error(tmp_path, capsys, case):
    name, content, options, message = BAD_INPUTS[case]
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    code, out, err = run_probe(capsys, path, *options)
    assert code == 2
    assert out == ""
    assert err.startswith("ufvc: error: ") and err.endswith("\n")
    assert err.count("\n") == 1, err
    assert message in err
    assert "Traceback" not in err
