"""`ufvc bench`: the table, the JSON report, MAC counts, sizes and the precision report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ufvc.cli import main
from ufvc.errors import InputFormatError
from ufvc.eval.bench import parse_frame_size
from ufvc.models.complexity import model_complexity

TINY = ["--model", "ufvc-tiny", "--sizes", "64x64", "--frames", "3", "--threads", "1",
        "--peak-size", "128"]


@pytest.fixture
def report(tmp_path: Path, capsys) -> tuple[str, dict]:
    """(printed table, JSON report) of a tiny bench run."""
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--json", str(path)]) == 0
    return capsys.readouterr().out, json.loads(path.read_text())


def test_bench_prints_a_table_with_positive_fps_and_a_peak(report) -> None:
    table, data = report
    assert "matmul peak: float32" in table and "bfloat16" in table
    assert "64x64  enc" in table and "64x64  dec" in table
    (size,) = data["sizes"]
    assert (size["width"], size["height"]) == (64, 64)
    for direction in ("encode", "decode"):
        speed = size[direction]
        # 3 frames asked for, rounded up to whole 2-frame chunks of ufvc-tiny.
        assert speed["frames"] == 4
        assert speed["fps"] > 0 and speed["gmacs"] > 0
        # The codec's own timers run inside the wall clock.
        assert speed["network_seconds"] + speed["entropy_seconds"] <= speed["seconds"]
        assert speed["fps"] == pytest.approx(speed["frames"] / speed["seconds"])
    for dtype in ("float32", "bfloat16"):
        peak = data["peaks"][dtype]
        assert peak["size"] == 128 and peak["repeats"] >= 2 and peak["gmacs"] > 0
    assert data["warmup_frames"] == 3 and data["frames_per_chunk"] == 2
    assert data["threads"] == 1 and data["precision"] == "float32"
    assert data["command"].startswith("ufvc bench --model ufvc-tiny --threads 1")


def test_macs_per_frame_are_the_complexity_counts_at_that_size(report) -> None:
    _, data = report
    (size,) = data["sizes"]
    video = model_complexity("ufvc-tiny", (64, 64)).video
    assert size["encode"]["macs_per_frame"] == video.encode_macs
    assert size["decode"]["macs_per_frame"] == video.decode_macs
    assert video.decode_macs < video.encode_macs


def test_bf16_runs_the_codec_in_bfloat16(tmp_path, capsys) -> None:
    path = tmp_path / "bench.json"
    assert main(["bench", *TINY, "--bf16", "--json", str(path)]) == 0
    assert "bfloat16" in capsys.readouterr().out
    data = json.loads(path.read_text())
    assert data["bf16_requested"] is True and data["precision"] == "bfloat16"


@pytest.mark.parametrize(("text", "size"), [("720p", (1280, 720)), ("240p", (426, 240)),
                                            ("1080P", (1920, 1080)), ("96x64", (96, 64))])
def test_frame_sizes_by_name_or_width_x_height(text, size) -> None:
    assert parse_frame_size(text) == size


@pytest.mark.parametrize("text", ["65x64", "big", "0x64"])
def test_bad_frame_sizes_are_refused(text) -> None:
    with pytest.raises(InputFormatError):
        parse_frame_size(text)
