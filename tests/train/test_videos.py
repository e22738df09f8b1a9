"""Gathering training videos from Debian packages (here: packages built on the spot)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest

from tests.train.test_photos import _build_deb
from ufvc.errors import InputFormatError
from ufvc.train.photos import is_validation
from ufvc.train.sources import read_listing
from ufvc.train.videos import VideoRule, gather_videos, probe_video

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def _planes(size: tuple[int, int], frames: int, seed: int) -> np.ndarray:
    """uint8 YCbCr 4:4:4 frames [n, 3, h, w]: smooth noise that moves one pixel a frame."""
    rng = np.random.default_rng(seed)
    width, height = size
    base = rng.integers(0, 256, (3, height, width + frames), dtype=np.uint8)
    return np.stack([base[:, :, i : i + width] for i in range(frames)])


def _write_video(path: Path, planes: np.ndarray, codec: str = "ffv1") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="matroska" if path.suffix == ".mkv" else None) as out:
        stream = out.add_stream(codec, rate=25)
        stream.width, stream.height = planes.shape[3], planes.shape[2]
        stream.pix_fmt = "yuv444p" if codec == "ffv1" else "yuv420p"
        for frame in planes:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="yuv444p")
            out.mux(stream.encode(video_frame))
        out.mux(stream.encode(None))


def _decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.reformat(format="yuv444p").to_ndarray()
                         for f in container.decode(video=0)])


def test_gather_videos_from_built_packages(tmp_path: Path):
    debs = tmp_path / "debs"
    debs.mkdir()
    tree = tmp_path / "build" / "films"
    odd = _planes((99, 73), 12, seed=1)
    _write_video(tree / "usr/share/films/odd.mkv", odd)
    _write_video(tree / "usr/share/films/even.avi", _planes((96, 64), 10, seed=2), "mpeg4")
    _write_video(tree / "usr/share/films/short.mkv", _planes((96, 64), 4, seed=3))
    _write_video(tree / "usr/share/films/small.mkv", _planes((40, 30), 12, seed=4))
    _write_video(tree / "usr/share/films/render.mkv", _planes((96, 64), 12, seed=5))
    (tree / "usr/share/films/broken.mp4").write_bytes(b"not a video")
    _build_deb(tree, "films", debs)
    rules = (VideoRule("films", ("usr/share/films/*",), exclude=("*/render*",)),)
    out = tmp_path / "videos"
    manifest = gather_videos(out, rules, debs=debs, min_side=48, min_frames=8,
                             log=lambda _: None)

    names = sorted(v["name"] for v in manifest["videos"])
    assert names == ["films/even", "films/odd"]
    assert manifest["licences"]["films"] == ["CC-BY-SA-4.0"]
    by_name = {v["name"]: v for v in manifest["videos"]}
    assert by_name["films/odd"]["size"] == [98, 72] and by_name["films/odd"]["frames"] == 12
    assert by_name["films/even"]["video"].endswith("even.avi")
    # The odd video is rewritten losslessly without its last row and column.
    rewritten = out / by_name["films/odd"]["video"]
    assert rewritten.suffix == ".mkv"
    np.testing.assert_array_equal(_decoded(rewritten), odd[:, :, :72, :98])

    listed = {split: [e["video"] for e in json.loads((out / f"{split}-video.json").read_text())]
              for split in ("train", "val")}
    for video in manifest["videos"]:
        split = "val" if is_validation(video["name"]) else "train"
        assert video["split"] == split and video["video"] in listed[split]
    clips = read_listing(out / "train-video.json") + read_listing(out / "val-video.json")
    frames = {clip.video.name: [f.shape for f in clip.decode()] for clip in clips}
    assert frames == {"odd.mkv": [(3, 72, 98)] * 12, "even.avi": [(3, 64, 96)] * 10}

    with pytest.raises(InputFormatError, match="no videos"):
        gather_videos(tmp_path / "none", (VideoRule("films", ("nothing/*",)),), debs=debs,
                      log=lambda _: None)


def test_probe_video_rejects_what_does_not_decode(tmp_path: Path):
    path = tmp_path / "x.mp4"
    path.write_bytes(b"\x00" * 64)
    assert probe_video(path) is None
    _write_video(tmp_path / "ok.mkv", _planes((32, 16), 3, seed=0))
    info = probe_video(tmp_path / "ok.mkv")
    assert (info.width, info.height, info.frames) == (32, 16, 3)
