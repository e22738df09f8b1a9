"""The encoder's rate-distortion choice between the chunk codec and intra frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tests.codec.conftest import tiny_model
from ufvc.bitstream.format import RecordType
from ufvc.bitstream.stream import StreamReader
from ufvc.cli import main
from ufvc.codec import CodingOptions, decode, encode, modedecision
from ufvc.codec.modedecision import ModeDecider, decision_lambda, mean_distortion
from ufvc.entropy.tables import GaussianTables
from ufvc.errors import InputFormatError
from ufvc.io import open_reader
from ufvc.samples import sample_clip


def _data_records(path) -> list:
    with StreamReader(path) as reader:
        return [r for r in reader if r.type != RecordType.INDEX]


def _same_frames(a: list, b: list) -> bool:
    return len(a) == len(b) and all(
        np.array_equal(x.y, y.y) and np.array_equal(x.u, y.u) and np.array_equal(x.v, y.v)
        for x, y in zip(a, b, strict=True))


def test_lambda_rises_with_quality_between_its_ends() -> None:
    values = [decision_lambda(q) for q in range(64)]
    low, high = modedecision.DECISION_LAMBDA_RANGE
    assert values[0] == pytest.approx(low) and values[-1] == pytest.approx(high)
    assert all(a < b for a, b in zip(values, values[1:], strict=False))


def test_distortion_weighs_luma_six_to_one() -> None:
    x = torch.zeros(2, 3, 8, 8)
    luma, chroma = x.clone(), x.clone()
    luma[:, 0] += 0.1
    chroma[:, 1] += 0.1
    assert mean_distortion(luma, x) == pytest.approx(0.01 * 6 / 8)
    assert mean_distortion(chroma, x) == pytest.approx(0.01 / 8)
    assert mean_distortion(x, x) == 0.0
    # Reconstructions are clamped to the sample range, as the decoder's output is.
    assert mean_distortion(x + 1.0, x) == pytest.approx(0.25)


def test_intra_is_tried_only_near_the_last_intra_cost() -> None:
    decider = ModeDecider(40, 64 * 64, GaussianTables())
    assert decider.worth_trying_intra(0.01)  # no intra cost known yet
    decider.last_intra_cost = 1.0
    assert decider.worth_trying_intra(0.9) and decider.worth_trying_intra(2.0)
    assert not decider.worth_trying_intra(0.5)


def test_options_check_the_decision_and_rate_control_keeps_it_fixed() -> None:
    assert CodingOptions().mode_decision == "fixed"
    assert CodingOptions(mode_decision="rd").effective_mode_decision == "rd"
    assert CodingOptions(mode_decision="rd", bitrate="1M").effective_mode_decision == "fixed"
    assert "mode_decision=rd" in CodingOptions(mode_decision="rd").describe()
    with pytest.raises(InputFormatError, match="mode decision"):
        CodingOptions(mode_decision="fast")


def _price(monkeypatch, intra: float, chunk: float) -> list[int]:
    """Make every intra frame cost `intra` and every chunk `chunk`; return a log of the
    frame counts priced (1 = an intra frame)."""
    priced: list[int] = []

    def cost(self, x_hat, x, y_steps, frames):
        assert x_hat.shape == x.shape and x.shape[0] == frames
        priced.append(frames)
        return intra if frames == 1 else chunk

    monkeypatch.setattr(ModeDecider, "cost", cost)
    return priced


def test_chunks_that_cost_more_become_intra_frames_and_decode_exactly(
        tmp_path, clip, monkeypatch) -> None:
    model = tiny_model()
    n = model.frames_per_chunk
    source = clip(96, 64, 1 + 2 * n)
    priced = _price(monkeypatch, intra=1.0, chunk=2.0)
    recon = tmp_path / "recon.y4m"
    summary = encode(source, tmp_path / "rd.ufv", model=model, quality=30, mode_decision="rd",
                     scenecut=None, recon=recon)
    assert summary.intra_chunks == [1, 1 + n]
    records = _data_records(tmp_path / "rd.ufv")
    assert [r.type for r in records] == [RecordType.INTRA] * (1 + 2 * n)
    assert [r.first_frame for r in records] == list(range(1 + 2 * n))
    # Each chunk, its intra trial and every intra frame coded are priced.
    assert priced.count(n) == 2 and priced.count(1) == 1 + 2 * (1 + n)
    assert {r.qp for r in records} == {30}
    with open_reader(recon) as reader:
        expected = list(reader)
    assert _same_frames(list(decode(tmp_path / "rd.ufv", model=model)), expected)


def test_cheaper_chunks_stay_and_match_the_fixed_structure(tmp_path, clip, monkeypatch) -> None:
    model = tiny_model()
    n = model.frames_per_chunk
    source = clip(96, 64, 1 + 2 * n)
    priced = _price(monkeypatch, intra=2.0, chunk=1.0)  # under 0.7 of the intra cost
    encode(source, tmp_path / "fixed.ufv", model=model, quality=30, scenecut=None)
    summary = encode(source, tmp_path / "rd.ufv", model=model, quality=30, mode_decision="rd",
                     scenecut=None)
    assert summary.intra_chunks == []
    assert priced == [1, n, n]  # no intra trial: the chunks are far cheaper
    assert (tmp_path / "rd.ufv").read_bytes() == (tmp_path / "fixed.ufv").read_bytes()


def test_a_chunk_near_the_intra_cost_is_weighed_and_kept(tmp_path, clip, monkeypatch) -> None:
    model = tiny_model()
    n = model.frames_per_chunk
    source = clip(96, 64, 1 + n)
    priced = _price(monkeypatch, intra=1.0, chunk=0.9)
    encode(source, tmp_path / "fixed.ufv", model=model, quality=30, scenecut=None)
    summary = encode(source, tmp_path / "rd.ufv", model=model, quality=30, mode_decision="rd",
                     scenecut=None, pipeline=True)
    assert summary.intra_chunks == [] and priced == [1, n, 1]
    assert (tmp_path / "rd.ufv").read_bytes() == (tmp_path / "fixed.ufv").read_bytes()


def test_shipped_model_reaches_higher_quality_at_the_top(tmp_path) -> None:
    """The chunk codec's top is flat; the decision lets quality 63 go on to intra quality,
    while a low quality keeps the chunk codec's stream byte for byte."""
    source = sample_clip("carphone_pristine.mp4")
    points = {}
    for quality in (63, 8):
        for mode in ("fixed", "rd"):
            stream = tmp_path / f"{mode}{quality}.ufv"
            summary = encode(source, stream, quality=quality, mode_decision=mode,
                             max_frames=9, precision="fp32")
            points[mode, quality] = summary.psnr.mean().yuv611, stream.read_bytes()
    assert points["rd", 63][0] > points["fixed", 63][0] + 2.0
    assert points["rd", 8][1] == points["fixed", 8][1]


def test_cli_reports_the_chunks_coded_intra(tmp_path, clip, capsys) -> None:
    source = clip(96, 64, 9)
    assert main(["encode", str(source), "-o", str(tmp_path / "s.ufv"), "-q", "63",
                 "--mode-decision", "rd", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert isinstance(report["intra_chunks"], list)
    with pytest.raises(SystemExit) as exit_info:
        main(["encode", str(source), "-o", str(tmp_path / "t.ufv"), "--mode-decision", "fast"])
    assert exit_info.value.code != 0
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "t.ufv").exists()
