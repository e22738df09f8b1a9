"""The training log's validation BD-rates."""

from __future__ import annotations

from pathlib import Path

import pytest

from ufvc.train.runlog import CsvLog, read_log, validation_bdrates

QPS = (0, 16, 32, 48, 63)
BPP = (0.06, 0.25, 0.7, 1.3, 1.9)
PSNR = (26.0, 30.0, 33.0, 35.0, 36.0)


def _write_validation(log: CsvLog, step: int, bpp_scale: float, top_psnr_shift: float,
                      stage: str = "intra", split: str = "val") -> None:
    for index, (qp, bpp, psnr) in enumerate(zip(QPS, BPP, PSNR, strict=True)):
        shift = top_psnr_shift if index == len(QPS) - 1 else 0.0
        log.write(step=step, stage=stage, split=f"{split}_qp{qp}", loss=1.0,
                  bpp=bpp * bpp_scale, psnr=psnr + shift)
    log.write(step=step, stage=stage, split=split, loss=1.0, bpp=1.0, psnr=30.0)


def test_bdrate_ranks_a_cheaper_curve_whose_top_drops(tmp_path: Path) -> None:
    path = tmp_path / "train_log.csv"
    log = CsvLog(path)
    _write_validation(log, 0, 1.0, 0.0)
    log.write(step=10, stage="intra", split="train", loss=2.0, bpp=1.0, psnr=30.0)
    _write_validation(log, 500, 0.97, -0.05)
    _write_validation(log, 1000, 1.02, 0.0)
    log.close()
    bdrates = validation_bdrates(read_log(path))
    assert bdrates[("intra", 0, "val")] == pytest.approx(0.0, abs=1e-9)
    assert bdrates[("intra", 500, "val")] < -1.0  # 3 % fewer bits everywhere, a little off the top
    assert bdrates[("intra", 1000, "val")] == pytest.approx(2.0, abs=0.3)


def test_each_stage_is_measured_against_its_own_first_validation(tmp_path: Path) -> None:
    path = tmp_path / "train_log.csv"
    log = CsvLog(path)
    _write_validation(log, 0, 1.0, 0.0)
    _write_validation(log, 500, 0.9, 0.0, stage="video")
    _write_validation(log, 1000, 0.8, 0.0, stage="video")
    log.close()
    bdrates = validation_bdrates(read_log(path))
    assert bdrates[("video", 500, "val")] == pytest.approx(0.0, abs=1e-9)
    assert bdrates[("video", 1000, "val")] == pytest.approx(100 * (0.8 / 0.9 - 1), abs=0.2)


def test_a_curve_that_cannot_be_measured_gives_none(tmp_path: Path) -> None:
    path = tmp_path / "train_log.csv"
    log = CsvLog(path)
    _write_validation(log, 0, 1.0, 0.0)
    log.write(step=500, stage="intra", split="val_qp0", loss=1.0, bpp=0.1, psnr=27.0)
    log.close()
    assert validation_bdrates(read_log(path))[("intra", 500, "val")] is None


def test_own_weights_are_measured_against_the_first_validation_of_the_average(
    tmp_path: Path,
) -> None:
    path = tmp_path / "train_log.csv"
    log = CsvLog(path)
    _write_validation(log, 0, 1.0, 0.0, split="val_live")  # logged first, still not the anchor
    _write_validation(log, 0, 1.1, 0.0)
    _write_validation(log, 500, 1.0, 0.0)
    _write_validation(log, 500, 0.99, 0.0, split="val_live")
    log.close()
    bdrates = validation_bdrates(read_log(path))
    assert bdrates[("intra", 0, "val")] == pytest.approx(0.0, abs=1e-9)
    assert bdrates[("intra", 0, "val_live")] == pytest.approx(100 * (1 / 1.1 - 1), abs=0.2)
    assert bdrates[("intra", 500, "val_live")] == pytest.approx(100 * (0.99 / 1.1 - 1), abs=0.2)
