"""Conventional anchors end to end on tiny synthetic video: rows, structures, resuming, CLI."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ufvc.cli import main
from ufvc.errors import InputFormatError
from ufvc.eval.anchors import (
    anchor_config,
    decode_stream,
    encode_frames,
    encoder_available,
    measure_point,
    run_anchor,
)
from ufvc.eval.results import ResultStore, read_rows
from ufvc.eval.testsets import load_testset
from ufvc.io import VideoInfo, open_writer
from ufvc.samples import synthetic_video

SIZE, FRAMES = 64, 5


@pytest.fixture(scope="module")
def frames() -> list:
    return list(synthetic_video(SIZE, SIZE, FRAMES, seed=3))


@pytest.fixture
def testset(tmp_path: Path) -> Path:
    """A one-sequence test set: a 64x64, 5-frame synthetic clip stored as Y4M."""
    clip = tmp_path / "clip.y4m"
    info = VideoInfo(SIZE, SIZE, Fraction(25), FRAMES)
    with open_writer(clip, info) as writer:
        for frame in synthetic_video(SIZE, SIZE, FRAMES, seed=3):
            writer.write(frame)
    path = tmp_path / "testset.json"
    path.write_text(json.dumps([{"path": "clip.y4m", "class": "synthetic"}]))
    return path


def test_x264_rows_have_sane_values_and_lower_crf_costs_more(frames, tmp_path) -> None:
    config = anchor_config("x264", preset="ultrafast", mode="ld")
    rows = [measure_point(frames, Fraction(25), config, crf, sequence="syn", class_name="c",
                          workdir=tmp_path) for crf in (18, 28, 38)]
    for row, crf in zip(rows, (18, 28, 38), strict=True):
        assert (row.config, row.rate_control, row.quality) == ("x264-ultrafast-ld", "crf", crf)
        assert (row.frames, row.width, row.height, row.fps) == (FRAMES, SIZE, SIZE, 25.0)
        assert row.bits > 0 and row.bits % 8 == 0
        assert row.bpp_actual == pytest.approx(row.bits / (FRAMES * SIZE * SIZE))
        assert row.kbps == pytest.approx(row.bits * 25 / FRAMES / 1000)
        assert 20 < row.psnr_y < 60 and 20 < row.psnr_u < 70 and 20 < row.psnr_v < 70
        assert row.psnr_yuv == pytest.approx((6 * row.psnr_y + row.psnr_u + row.psnr_v) / 8)
        assert row.encode_fps > 0 and row.decode_fps > 0
        assert row.tools["encoder"].startswith("x264 core ")
        assert row.tools["decoder"] == "h264"
        assert {"ffmpeg", "libavcodec", "pyav"} <= set(row.tools)
        assert "keyint=infinite" in row.settings
    assert rows[0].bits > rows[1].bits > rows[2].bits
    assert rows[0].psnr_yuv > rows[1].psnr_yuv > rows[2].psnr_yuv


def test_lossless_x264_decodes_to_the_source_planes(frames, tmp_path) -> None:
    # qp 0 is lossless in x264: PSNR must hit the cap on every plane, which checks the whole
    # numpy -> encoder -> file -> decoder -> numpy path plane by plane.
    config = anchor_config("x264", preset="ultrafast", mode="ld", rate_control="qp")
    stream = encode_frames(frames, Fraction(25), config, 0, tmp_path / "lossless.264")
    decoded = decode_stream(stream.path, config.codec)
    assert len(decoded.frames) == FRAMES
    for source, picture in zip(frames, decoded.frames, strict=True):
        for a, b in zip(source.planes, picture.planes, strict=True):
            np.testing.assert_array_equal(a, b)
    row = measure_point(frames, Fraction(25), config, 0, sequence="syn", class_name="c",
                        workdir=tmp_path)
    assert (row.psnr_y, row.psnr_u, row.psnr_v) == (99.9, 99.9, 99.9)


@pytest.mark.parametrize(("codec", "preset"),
                         [("x264", "ultrafast"), ("x265", "ultrafast"), ("svt-av1", "12")])
@pytest.mark.parametrize(("mode", "structure"), [("ld", "IPPPP"), ("ai", "IIIII")])
def test_coding_structure_follows_the_mode(frames, tmp_path, codec, preset, mode,
                                           structure) -> None:
    config = anchor_config(codec, preset=preset, mode=mode)
    quality = 40 if codec == "svt-av1" else 30
    stream = encode_frames(frames, Fraction(25), config, quality, tmp_path / f"s{mode}")
    assert decode_stream(stream.path, config.codec).picture_types == structure


@pytest.mark.parametrize(("codec", "version"), [("x264", "x264 core "), ("x265", "x265 ")])
def test_informational_sei_is_dropped_but_the_version_kept(frames, tmp_path, codec,
                                                            version) -> None:
    config = anchor_config(codec, preset="ultrafast", mode="ld")
    stream = encode_frames(frames, Fraction(25), config, 30, tmp_path / f"s.{codec}")
    assert b"options:" not in stream.path.read_bytes()
    assert stream.encoder_version.startswith(version)
    assert stream.bits == 8 * stream.path.stat().st_size
    assert len(decode_stream(stream.path, config.codec).frames) == FRAMES


def test_random_access_uses_the_encoders_b_frames(frames, tmp_path) -> None:
    config = anchor_config("x265", preset="ultrafast", mode="ra")
    stream = encode_frames(frames, Fraction(25), config, 30, tmp_path / "ra.265")
    assert "B" in decode_stream(stream.path, config.codec).picture_types


def test_run_skips_points_already_in_the_result_file(testset, tmp_path) -> None:
    config = anchor_config("x264", preset="ultrafast", mode="ld")
    sequences = load_testset(testset)
    output = tmp_path / "results.json"
    first = list(run_anchor(config, sequences, [30, 40], ResultStore(output)))
    assert [p.skipped for p in first] == [False, False]
    assert [p.row.class_name for p in first] == ["synthetic", "synthetic"]
    # Mark the stored crf 30 row: a re-measured row would lose the mark.
    rows = read_rows(output)
    rows[0].bits = 1
    store = ResultStore(output)
    store.add(rows[0])
    second = list(run_anchor(config, sequences, [30, 40, 20], ResultStore(output)))
    assert [(p.quality, p.skipped) for p in second] == [(30, True), (40, True), (20, False)]
    final = {row.quality: row for row in read_rows(output)}
    assert final[30].bits == 1
    assert final[40] == rows[1]
    assert final[20].bits > final[40].bits


def test_quality_outside_the_encoder_range_is_refused() -> None:
    with pytest.raises(InputFormatError, match="crf must be in 0..51"):
        anchor_config("x264").check_quality(52)
    with pytest.raises(InputFormatError, match="crf must be in 1..63"):
        anchor_config("svt-av1").check_quality(0)
    with pytest.raises(InputFormatError, match="preset must be one of"):
        anchor_config("x265", preset="8")


@pytest.mark.skipif(encoder_available("vvc"), reason="this ffmpeg has libvvenc")
def test_missing_vvenc_is_reported_clearly() -> None:
    with pytest.raises(InputFormatError, match="vvc needs the libvvenc encoder"):
        anchor_config("vvc", rate_control="qp")


def test_cli_measures_then_compares_and_plots(testset, tmp_path, capsys) -> None:
    ld, ai = tmp_path / "ld.json", tmp_path / "ai.csv"
    common = ["--codec", "x264", "--preset", "ultrafast", "--crf", "20", "26", "32", "38",
              "--testset", str(testset)]
    assert main(["anchor", *common, "--mode", "ld", "-o", str(ld)]) == 0
    assert main(["anchor", *common, "--mode", "ai", "-o", str(ai)]) == 0
    capsys.readouterr()
    assert main(["anchor", *common, "--mode", "ai", "-o", str(ai)]) == 0
    assert capsys.readouterr().out.strip() == f"0 point(s) measured, 4 already in {ai}"
    plots, table = tmp_path / "plots", tmp_path / "bd.md"
    assert main(["bdrate", "--anchor", str(ld), "--test", str(ai), "--plots", str(plots),
                 "--md", str(table)]) == 0
    report = table.read_text()
    assert "## BD-rate against x264-ultrafast-ld:crf" in report
    assert "| synthetic | clip | 5 |" in report
    ai_vs_ld = float(report.split("| synthetic | clip | 5 | ")[1].split(" %")[0])
    assert ai_vs_ld > 0  # all intra needs more bits than low delay on moving content
    assert sorted(p.name for p in plots.iterdir()) == ["class_synthetic.png",
                                                       "seq_synthetic_clip.png"]
    assert (plots / "class_synthetic.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
