"""`ufvc bench`: the table, the JSON report, MAC counts, sizes and the precision report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ufvc.cli import main
from ufvc.codec import compile as codec_compile
from ufvc.errors import InputFormatError
from ufvc.eval.bench import parse_frame_size
from ufvc.models.complexity import model_complexity

TINY = ["--model", "ufvc-tiny", "--sizes", "64x64", "--frames", "3", "--threads", "1",
        "--peak-size", "128"]


@pytest.fixture
def report(tmp_path: Path, capsys) -> tuple[str, dict]:
    """(printed table, JSON report) of a tiny bench run, with and without pipelining."""
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--pipeline-compare", "--json", str(path)]) == 0
    return capsys.readouterr().out, json.loads(path.read_text())


def test_bench_prints_a_table_with_positive_fps_and_a_peak(report) -> None:
    table, data = report
    assert "matmul peak: float32" in table and "bfloat16" in table
    for direction in ("enc", "dec"):
        assert f"64x64  {direction}  off" in table and f"64x64  {direction}   on" in table
    assert "pipelining gain at 64x64 (fps on / off): encode x" in table
    (size,) = data["sizes"]
    assert (size["width"], size["height"]) == (64, 64) and size["pipeline"] is True
    for direction in ("encode", "decode"):
        speed, sequential = size[direction], size["unpipelined"][direction]
        for one in (speed, sequential):
            # 3 frames asked for, rounded up to whole 2-frame chunks of ufvc-tiny.
            assert one["frames"] == 4
            assert one["fps"] > 0 and one["gmacs"] > 0
            assert one["fps"] == pytest.approx(one["frames"] / one["seconds"])
        # Without pipelining the codec's own timers run inside the wall clock.
        assert sequential["network_seconds"] + sequential["entropy_seconds"] <= (
            sequential["seconds"])
        assert size["pipeline_gain"][direction] == pytest.approx(speed["fps"] / sequential["fps"])
    for dtype in ("float32", "bfloat16"):
        peak = data["peaks"][dtype]
        assert peak["size"] == 128 and peak["repeats"] >= 2 and peak["gmacs"] > 0
    assert data["warmup_frames"] == 3 and data["frames_per_chunk"] == 2
    assert data["threads"] == 1 and data["precision"] == "float32"
    assert data["pipeline"] is True and data["compile"] is False
    assert data["command"].startswith("ufvc bench --model ufvc-tiny --threads 1")
    assert data["command"].endswith("--pipeline-compare")


def test_macs_per_frame_are_the_complexity_counts_at_that_size(report) -> None:
    _, data = report
    (size,) = data["sizes"]
    video = model_complexity("ufvc-tiny", (64, 64)).video
    assert size["encode"]["macs_per_frame"] == video.encode_macs
    assert size["decode"]["macs_per_frame"] == video.decode_macs
    assert video.decode_macs < video.encode_macs


def test_no_pipeline_and_a_compile_that_cannot_work(tmp_path, capsys, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("no C compiler")

    monkeypatch.setattr(codec_compile, "_STATE", codec_compile._State())
    monkeypatch.setenv(codec_compile.COMPILE_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "unused"))  # restored after
    monkeypatch.setattr(torch, "compile", broken)
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--no-pipeline", "--compile", "--json", str(path)]) == 0
    out = capsys.readouterr()
    assert "pipelining off, torch.compile off" in out.out
    assert "ufvc: warning: torch.compile is not usable here" in out.err
    data = json.loads(path.read_text())
    assert data["pipeline"] is False and data["compile"] is False
    assert "unpipelined" not in data["sizes"][0]
    assert any("torch.compile is not usable" in note for note in data["notes"])


def test_bf16_runs_the_codec_in_bfloat16(tmp_path, capsys) -> None:
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--bf16", "--json", str(path)]) == 0
    assert "bfloat16" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["bf16_requested"] is True and data["precision"] == "bfloat16"


def test_fp16_on_a_cpu_is_refused_before_any_timing(tmp_path, capsys) -> None:
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--fp16", "--json", str(path)]) != 0
    err = capsys.readouterr().err.strip()
    assert "fp16" in err and "CUDA" in err and len(err.splitlines()) == 1
    assert not path.exists()


@pytest.mark.parametrize(("text", "size"), [("720p", (1280, 720)), ("240p", (426, 240)),
                                            ("1080P", (1920, 1080)), ("96x64", (96, 64))])
def test_frame_sizes_by_name_or_width_x_height(text, size) -> None:
    assert parse_frame_size(text) == size


@pytest.mark.parametrize("text", ["65x64", "big", "0x64"])
def test_bad_frame_sizes_are_refused(text) -> None:
    with pytest.raises(InputFormatError):
        parse_frame_size(text)
