"""`ufvc eval` end to end with the tiny model: rows, real stream sizes, decode equality,
resuming, both test-set layouts, and BD-rate on its output."""

from __future__ import annotations

import json
import runpy
import shlex
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch

from ufvc.cli import main
from ufvc.codec import CodingOptions, open_stream
from ufvc.codec.options import torch_threads
from ufvc.errors import InputFormatError, UfvcError
from ufvc.eval.anchors import encoder_available
from ufvc.eval.neural import (
    EvalSettings,
    decode_and_verify,
    encode_file,
    load_codec_model,
    load_source,
    run_eval,
)
from ufvc.eval.results import ResultStore, read_rows
from ufvc.eval.testsets import load_testset
from ufvc.io import VideoInfo, open_writer
from ufvc.metrics import SequencePsnr
from ufvc.samples import synthetic_video

WIDTH, HEIGHT, FRAMES = 64, 48, 5
QUALITIES = ("20", "40", "50", "63")
# One thread: the suite shares two cores, and oversubscribed OpenMP threads spin.
REPO = Path(__file__).resolve().parents[2]
FAST = ["--model", "ufvc-tiny", "--threads", "1"]


@pytest.fixture(autouse=True)
def one_thread():
    """Library calls too run on one thread (the CLI calls get --threads 1)."""
    with torch_threads(1):
        yield


def write_clip(path: Path, frames: int = FRAMES, seed: int = 1) -> Path:
    with open_writer(path, VideoInfo(WIDTH, HEIGHT, Fraction(25), frames)) as writer:
        for frame in synthetic_video(WIDTH, HEIGHT, frames, seed=seed):
            writer.write(frame)
    return path


@pytest.fixture
def testset(tmp_path: Path) -> Path:
    """A one-sequence list test set: a 64x48, 5-frame synthetic clip stored as Y4M."""
    write_clip(tmp_path / "clip.y4m")
    path = tmp_path / "testset.json"
    path.write_text(json.dumps([{"path": "clip.y4m", "class": "synthetic"}]))
    return path


@pytest.fixture
def evaluated(testset: Path, tmp_path: Path) -> tuple[Path, Path]:
    """(results file, stream folder) of `ufvc eval` at four qualities."""
    output, streams = tmp_path / "ufvc.json", tmp_path / "streams"
    assert main(["eval", *FAST, "-q", *QUALITIES, "--testset", str(testset),
                 "--keep-streams", str(streams), "-o", str(output)]) == 0
    return output, streams


def test_rows_hold_the_size_of_the_written_stream_and_consistent_fields(evaluated) -> None:
    output, streams = evaluated
    rows = read_rows(output)
    assert [row.quality for row in rows] == [int(q) for q in QUALITIES]
    for row in rows:
        assert (row.codec, row.config, row.rate_control) == ("ufvc", "ufvc-tiny", "quality")
        assert (row.sequence, row.class_name) == ("clip", "synthetic")
        assert (row.frames, row.width, row.height, row.fps) == (FRAMES, WIDTH, HEIGHT, 25.0)
        stream = streams / f"synthetic_clip_ufvc-tiny_q{row.quality}.ufv"
        assert row.bits == 8 * stream.stat().st_size > 0
        assert row.bpp_actual == pytest.approx(row.bits / (FRAMES * WIDTH * HEIGHT))
        assert row.kbps == pytest.approx(row.bits * 25 / FRAMES / 1000)
        assert row.psnr_yuv == pytest.approx((6 * row.psnr_y + row.psnr_u + row.psnr_v) / 8)
        assert all(0 < value < 99.9 for value in (row.psnr_y, row.psnr_u, row.psnr_v))
        assert row.encode_fps > 0 and row.decode_fps > 0
        assert set(row.tools) == {"ufvc", "torch", "model", "weights"}
        assert row.tools["model"].startswith("ufvc-tiny ")
        assert f"quality={row.quality} " in row.settings and "intra_period=0" in row.settings
        assert row.bpp_estimated is None


def test_psnr_of_the_decoded_stream_equals_the_rows_psnr(evaluated, testset) -> None:
    # The row's PSNR is measured on the encoder's reconstruction; the decoder must give the
    # same frames, so decoding the kept file independently reproduces it exactly.
    output, streams = evaluated
    (spec,) = load_testset(testset)
    source = load_source(spec)
    for row in read_rows(output):
        psnr = SequencePsnr()
        with open_stream(streams / f"synthetic_clip_ufvc-tiny_q{row.quality}.ufv") as stream:
            for original, decoded in zip(source.frames, stream, strict=True):
                psnr.add(original, decoded)
        mean = psnr.mean()
        assert (mean.y, mean.u, mean.v) == (row.psnr_y, row.psnr_u, row.psnr_v)


def test_decode_check_raises_when_a_frame_differs(testset, tmp_path) -> None:
    model = load_codec_model("ufvc-tiny")
    (spec,) = load_testset(testset)
    encoded = encode_file(model, load_source(spec), CodingOptions(quality=40), tmp_path / "s.ufv")
    assert decode_and_verify(encoded.path, model, encoded.digests,
                             device=torch.device("cpu")) > 0
    wrong = list(encoded.digests)
    wrong[3] = bytes(len(wrong[3]))
    with pytest.raises(UfvcError, match="decoded frame 3 differs"):
        decode_and_verify(encoded.path, model, wrong, device=torch.device("cpu"))
    with pytest.raises(UfvcError, match="decoded 5 frames, the encoder wrote 6"):
        decode_and_verify(encoded.path, model, encoded.digests + wrong[:1],
                          device=torch.device("cpu"))


def test_a_second_run_keeps_measured_rows_and_adds_only_new_points(evaluated, testset,
                                                                   capsys) -> None:
    output, _ = evaluated
    before = [row.to_dict() for row in read_rows(output)]
    capsys.readouterr()
    assert main(["eval", *FAST, "-q", "40", "30", "--testset", str(testset),
                 "-o", str(output)]) == 0
    assert "1 point(s) measured, 1 already in" in capsys.readouterr().out
    after = [row.to_dict() for row in read_rows(output)]
    # Measured rows come back unchanged (their timings too: nothing was measured again).
    assert after[:len(before)] == before
    assert [row["quality"] for row in after] == [20, 40, 50, 63, 30]


def test_bitrates_are_swept_as_rate_controlled_rows(testset, tmp_path) -> None:
    output = tmp_path / "rates.json"
    assert main(["eval", "--model", "ufvc-s", "--threads", "1", "--bitrate", "15k", "50k",
                 "--testset", str(testset), "-o", str(output)]) == 0
    rows = read_rows(output)
    assert [(row.rate_control, row.quality) for row in rows] == [("bitrate", 15),
                                                                 ("bitrate", 50)]
    assert rows[0].kbps < rows[1].kbps
    assert "bitrate=15000" in rows[0].settings


def test_rows_of_other_weights_are_refused_under_the_same_label(evaluated, testset,
                                                                capsys) -> None:
    output, _ = evaluated
    document = json.loads(output.read_text())
    document["rows"][0]["tools"]["model"] = "ufvc-tiny 00000000000000000000000000000000"
    output.write_text(json.dumps(document))
    assert main(["eval", *FAST, "-q", "30", "--testset", str(testset),
                 "-o", str(output)]) == 2
    assert "other weights" in capsys.readouterr().err
    assert main(["eval", *FAST, "--label", "tiny-b", "-q", "30", "--testset", str(testset),
                 "-o", str(output)]) == 0
    assert {row.config for row in read_rows(output)} == {"ufvc-tiny", "tiny-b"}


def test_estimated_rate_comes_from_the_likelihoods(testset, tmp_path) -> None:
    model = load_codec_model("ufvc-tiny")
    store = ResultStore(tmp_path / "est.csv")
    settings = EvalSettings(estimate_rate=True)
    (point,) = run_eval(model, load_testset(testset), [40], store, settings=settings)
    estimate = point.row.bpp_estimated
    assert estimate is not None and np.isfinite(estimate) and estimate > 0
    # The CSV file keeps the estimate apart from the file rate.
    (row,) = read_rows(tmp_path / "est.csv")
    assert row.bpp_estimated == pytest.approx(estimate)
    assert row.bpp_actual == point.row.bpp_actual


def test_dcvc_test_config_layout_with_raw_yuv(tmp_path) -> None:
    name = "Synthetic_64x48_30fps_420_8bit_YUV"
    folder = tmp_path / "data" / "S"
    folder.mkdir(parents=True)
    with (folder / f"{name}.yuv").open("wb") as raw:
        for frame in synthetic_video(WIDTH, HEIGHT, 4, seed=2):
            for plane in frame.planes:
                raw.write(plane.tobytes())
    config = {"root_path": "data", "test_classes": {
        "S": {"test": 1, "base_path": "S", "src_type": "yuv420",
              "sequences": {name: {"width": WIDTH, "height": HEIGHT, "frames": 3,
                                   "intra_period": -1}}},
        "Off": {"test": 0, "base_path": "none", "src_type": "yuv420",
                "sequences": {"Absent_64x48": {"width": 64, "height": 48}}}}}
    testset = tmp_path / "dcvc.json"
    testset.write_text(json.dumps(config))
    output = tmp_path / "out.csv"
    assert main(["eval", *FAST, "-q", "40", "--testset", str(testset), "-o", str(output)]) == 0
    (row,) = read_rows(output)
    assert (row.class_name, row.sequence, row.frames, row.fps) == ("S", name, 3, 30.0)


@pytest.mark.skipif(not encoder_available("x264"), reason="PyAV's ffmpeg lacks libx264")
def test_bdrate_and_results_page_from_an_anchor_and_the_eval_results(evaluated, testset,
                                                                     tmp_path, capsys) -> None:
    output, _ = evaluated
    results = tmp_path / "root" / "results"
    (results / "neural").mkdir(parents=True)
    neural = results / "neural" / "ufvc-tiny.json"
    neural.write_bytes(output.read_bytes())
    anchor = results / "anchors" / "x264-ultrafast-ld.json"
    anchor_command = ["anchor", "--codec", "x264", "--preset", "ultrafast", "--crf", "20", "28",
                      "36", "44", "--testset", str(testset), "--threads", "1", "-o", str(anchor)]
    assert main(anchor_command) == 0
    capsys.readouterr()
    assert main(["bdrate", "--anchor", str(anchor), "--test", str(neural)]) == 0
    table = capsys.readouterr().out
    assert "## BD-rate against x264-ultrafast-ld:crf" in table
    assert "| synthetic | clip | 5 |" in table
    assert "ufvc-tiny:quality" in table

    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"runs": [{"output": "results/anchors/x264-ultrafast-ld.json",
                                          "command": shlex.join(["ufvc", *anchor_command])}]}))
    make_results = runpy.run_path(str(REPO / "benchmarks" / "make_results.py"))
    assert make_results["main"](["--root", str(tmp_path / "root"), "--plan", str(plan)]) == 0
    page = (tmp_path / "root" / "docs" / "results.md").read_text()
    assert shlex.join(["ufvc", *anchor_command]) in page
    assert "(their commands are unknown): `results/neural/ufvc-tiny.json`" in page
    assert "### clip (synthetic)" in page and "| ufvc-tiny | quality 40 |" in page
    assert "### Against x264-ultrafast-ld:crf" in page
    assert "![class_synthetic](plots/class_synthetic.png)" in page
    assert (tmp_path / "root" / "docs" / "plots" / "class_synthetic.png").stat().st_size > 0
    assert "No bench results." in page


@pytest.mark.parametrize(("arguments", "message"), [
    (["-q", "64"], "quality must be 0..63"),
    (["-q", "40", "--frames", "0"], "--frames must be >= 1"),
    (["-q", "40", "--model", "no-such-model"], "unknown model"),
])
def test_bad_arguments_are_one_line_errors(testset, tmp_path, capsys, arguments,
                                           message) -> None:
    assert main(["eval", "--model", "ufvc-tiny", *arguments, "--testset", str(testset),
                 "-o", str(tmp_path / "x.json")]) == 2
    assert message in capsys.readouterr().err


def test_threads_below_one_is_a_usage_error(testset, tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["eval", "--model", "ufvc-tiny", "-q", "40", "--threads", "0", "--testset",
              str(testset), "-o", str(tmp_path / "x.json")])
    assert exit_info.value.code == 2
    assert "usage: ufvc eval" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_cuda_without_cuda_is_refused(testset, tmp_path, capsys) -> None:
    assert main(["eval", *FAST, "-q", "40", "--device", "cuda", "--testset", str(testset),
                 "-o", str(tmp_path / "x.json")]) == 2
    assert "sees no CUDA device" in capsys.readouterr().err


def test_checkpoint_needs_a_registered_name(tmp_path) -> None:
    with pytest.raises(InputFormatError, match="need a registered model name"):
        load_codec_model(str(tmp_path / "model.ufvm"), checkpoint=str(tmp_path / "w.pth"))
