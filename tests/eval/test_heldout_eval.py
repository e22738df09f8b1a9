"""benchmarks/heldout_eval.py: the photo rows of a candidate whose intra codec is ufvc-s's."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch

from ufvc.codec.api import load_model
from ufvc.eval.results import RateRow, read_rows, write_rows

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def carry_photo_rows():
    return runpy.run_path(str(REPO / "benchmarks" / "heldout_eval.py"))["carry_photo_rows"]


def photo_row(sequence: str, quality: int) -> RateRow:
    return RateRow(codec="ufvc", config="shipped", sequence=sequence, class_name="photos",
                   rate_control="quality", quality=quality, frames=1, width=64, height=48,
                   fps=1.0, bits=1000 + quality, bpp_actual=0.3, kbps=1.0, psnr_y=30.0,
                   psnr_u=40.0, psnr_v=40.0, psnr_yuv=32.0, encode_fps=1.0, decode_fps=1.0)


def test_rows_are_copied_only_for_the_same_intra_codec(tmp_path, carry_photo_rows):
    shipped = tmp_path / "shipped-photos.json"
    write_rows(shipped, [photo_row("a", 0), photo_row("b", 63)])
    video_only = load_model("ufvc-s")
    with torch.no_grad():
        next(iter(video_only.video.parameters())).add_(1.0)
    target = tmp_path / "cand-photos.json"
    assert carry_photo_rows(video_only, "cand", target, shipped)
    rows = read_rows(target)
    assert [(r.config, r.sequence, r.bits) for r in rows] == [("cand", "a", 1000),
                                                             ("cand", "b", 1063)]

    other_intra = load_model("ufvc-s")
    with torch.no_grad():
        next(iter(other_intra.intra.parameters())).add_(1e-3)
    elsewhere = tmp_path / "other-photos.json"
    assert not carry_photo_rows(other_intra, "other", elsewhere, shipped)
    assert not elsewhere.exists()
    # The shipped file itself is never rewritten in place.
    assert not carry_photo_rows(video_only, "shipped", shipped, shipped)
