"""Coding options, rate control (ABR, VBV) and scene cuts."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests.codec.conftest import tiny_model
from ufvc.bitstream.format import RecordType
from ufvc.bitstream.stream import StreamReader
from ufvc.cli import main
from ufvc.codec import CodingOptions, decode, encode
from ufvc.codec.options import parse_rate
from ufvc.codec.ratecontrol import RateController, RecordKind, estimate_y_bits
from ufvc.codec.scenecut import SceneCutDetector
from ufvc.entropy.tables import GaussianTables
from ufvc.errors import InputFormatError
from ufvc.io import open_reader, open_writer
from ufvc.io.types import VideoInfo
from ufvc.samples import sample_clip, synthetic_video


def test_rates_parse_with_suffixes_and_bad_ones_are_refused() -> None:
    assert parse_rate("800k") == 800_000
    assert parse_rate("1.5M") == 1_500_000
    assert parse_rate("250000") == 250_000
    for bad in ("fast", "-3k", "0", "1.5x"):
        with pytest.raises(InputFormatError):
            parse_rate(bad)


def test_options_are_validated_and_frozen() -> None:
    options = CodingOptions(bitrate="1M", maxrate="2M", bufsize="1M")
    assert (options.bitrate, options.maxrate, options.bufsize) == (1e6, 2e6, 1e6)
    assert options.rate_controlled and not CodingOptions().rate_controlled
    with pytest.raises(AttributeError):
        options.quality = 3  # type: ignore[misc]
    with pytest.raises(InputFormatError, match="go together"):
        CodingOptions(maxrate="1M")
    with pytest.raises(InputFormatError, match="exceeds maxrate"):
        CodingOptions(bitrate="2M", maxrate="1M", bufsize="1M")
    with pytest.raises(InputFormatError, match="quality"):
        CodingOptions(quality=64)
    with pytest.raises(InputFormatError, match="precision"):
        CodingOptions(precision="fp8")
    with pytest.raises(TypeError, match="unknown coding option"):
        encode("in.y4m", "out.ufv", qualty=3)


def test_estimate_counts_likely_symbols_as_cheaper() -> None:
    tables = GaussianTables()
    bins = np.full(1000, 60, dtype=np.int16)
    zeros = estimate_y_bits(tables, [(np.zeros(1000, dtype=np.int32), bins)])
    large = estimate_y_bits(tables, [(np.full(1000, 5, dtype=np.int32), bins)])
    skipped = estimate_y_bits(tables, [(np.zeros(1000, dtype=np.int32),
                                        np.full(1000, -1, dtype=np.int16))])
    assert 0 < zeros < large and skipped == 0


def test_controller_lowers_quality_after_overspending() -> None:
    options = CodingOptions(bitrate="100k")
    rate = RateController(options, pixels=176 * 144, fps=25.0, frames_per_chunk=8,
                          total_frames=100)
    first = rate.choose(RecordKind.INTRA, 1)
    rate.accept(RecordKind.INTRA, 1, first, estimated=200_000.0)  # far more than planned
    assert rate.choose(RecordKind.FIRST, 8) < first


def _clip(path: Path, frames: list) -> Path:
    first = frames[0]
    with open_writer(path, VideoInfo(first.width, first.height, Fraction(25), len(frames))) as w:
        for frame in frames:
            w.write(frame)
    return path


def _records(path: Path) -> list:
    with StreamReader(path) as reader:
        return list(reader)


def test_scene_cut_gets_an_intra_frame_and_ends_the_chunk_early(tmp_path) -> None:
    cut = 6  # frames 0..5 from one clip, 6..13 from another
    frames = (list(synthetic_video(96, 64, cut, seed=1))
              + list(synthetic_video(96, 64, 8, seed=2, motion="zoom")))
    source = _clip(tmp_path / "spliced.y4m", frames)
    model = tiny_model()
    recon = tmp_path / "recon.y4m"
    summary = encode(source, tmp_path / "cut.ufv", model=model, quality=30, scenecut=8.0,
                     recon=recon, pipeline=False)
    assert summary.scene_cuts == [cut]
    records = [r for r in _records(tmp_path / "cut.ufv") if r.type != RecordType.INDEX]
    assert [r.first_frame for r in records if r.type == RecordType.INTRA] == [0, cut]
    before = records[[r.first_frame for r in records].index(cut) - 1]
    assert before.type == RecordType.CHUNK
    assert before.first_frame + before.num_frames == cut
    assert before.num_frames < model.frames_per_chunk  # short: it ends at the cut
    # The short chunk before the cut decodes bit-exactly, like every record.
    with open_reader(recon) as reader:
        expected = list(reader)
    decoded = list(decode(tmp_path / "cut.ufv", model=model))
    assert len(decoded) == len(frames)
    assert all(np.array_equal(a.y, b.y) and np.array_equal(a.u, b.u)
               for a, b in zip(decoded, expected, strict=True))

    encode(source, tmp_path / "none.ufv", model=model, quality=30, scenecut=None)
    intra = [r.first_frame for r in _records(tmp_path / "none.ufv") if r.type == RecordType.INTRA]
    assert intra == [0]


def test_detector_scores_a_cut_above_motion() -> None:
    detector = SceneCutDetector(8.0)
    pan = list(synthetic_video(96, 64, 4, seed=1))
    other = next(iter(synthetic_video(96, 64, 1, seed=2, motion="zoom")))
    assert [detector.is_cut(frame) for frame in pan + [other]] == [False] * 4 + [True]


@pytest.fixture(scope="module")
def carphone() -> Path:
    return sample_clip("carphone_pristine.mp4")


def test_average_bitrate_meets_the_target(carphone, tmp_path) -> None:
    summary = encode(carphone, tmp_path / "abr.ufv", bitrate="120k", max_frames=41,
                     precision="bf16")
    assert abs(summary.kbps / 120 - 1) < 0.10


def _vbv_levels(path: Path, maxrate: float, bufsize: float) -> list[float]:
    """The leaky bucket of docs/rate-control.md, simulated from the written records:
    each record's bits enter when it is written, maxrate/fps leave per frame it holds."""
    levels, level = [], 0.0
    with StreamReader(path) as reader:
        fps = float(reader.header.fps)
        for record in reader:
            if record.type == RecordType.INDEX:
                continue
            level += 8 * len(record.pack())
            levels.append(level)  # must not pass bufsize
            level = max(0.0, level - record.num_frames * maxrate / fps)
    return levels


def test_vbv_buffer_never_overflows(carphone, tmp_path) -> None:
    maxrate, bufsize = 150_000.0, 60_000.0
    free = tmp_path / "free.ufv"
    encode(carphone, free, quality=55, max_frames=25, precision="bf16", scenecut=None)
    assert max(_vbv_levels(free, maxrate, bufsize)) > bufsize  # the limit has work to do
    capped = tmp_path / "vbv.ufv"
    summary = encode(carphone, capped, quality=55, maxrate=maxrate, bufsize=bufsize,
                     max_frames=25, precision="bf16", scenecut=None)
    assert summary.vbv_overflows == 0
    assert max(_vbv_levels(capped, maxrate, bufsize)) <= bufsize
    assert min(r.qp for r in _records(capped) if r.type != RecordType.INDEX) < 55


def test_cli_refuses_bad_rates(clip, tmp_path, capsys) -> None:
    source = clip(64, 64, 3)
    out = tmp_path / "x.ufv"
    assert main(["encode", str(source), "-o", str(out), "--bitrate", "lots"]) != 0
    assert "rate looks like" in capsys.readouterr().err
    assert main(["encode", str(source), "-o", str(out), "--maxrate", "1M"]) != 0
    assert "go together" in capsys.readouterr().err
    assert not out.exists()
