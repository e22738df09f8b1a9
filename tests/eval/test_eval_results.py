"""Result rows: JSON and CSV round trips, resumable stores, refusal of malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ufvc.errors import InputFormatError
from ufvc.eval.results import (
    RateRow,
    ResultStore,
    bits_per_pixel,
    kilobits_per_second,
    read_rows,
    write_rows,
)


def _row(sequence: str = "bikes", quality: float = 27, **changes) -> RateRow:
    values = dict(
        codec="x264", config="x264-medium-ld", sequence=sequence, class_name="samples",
        rate_control="crf", quality=quality, frames=33, width=640, height=272, fps=25.0,
        bits=123_456, bpp_actual=bits_per_pixel(123_456, 33, 640, 272),
        kbps=kilobits_per_second(123_456, 33, 25.0), psnr_y=36.5, psnr_u=41.25, psnr_v=42.0,
        psnr_yuv=37.6875, encode_fps=55.5, decode_fps=812.25,
        tools={"encoder": "x264 core 165", "ffmpeg": "8.1.2", "pyav": "18.1.0"},
        settings="preset=medium x264-params=crf=27:bframes=0",
    )
    values.update(changes)
    return RateRow(**values)


def test_rate_fields_follow_their_definitions() -> None:
    assert bits_per_pixel(6400, 2, 80, 40) == pytest.approx(1.0)
    assert kilobits_per_second(30_000, 30, 30.0) == pytest.approx(30.0)


@pytest.mark.parametrize("suffix", [".json", ".csv"])
def test_rows_survive_a_round_trip_unchanged(tmp_path: Path, suffix: str) -> None:
    rows = [_row(), _row("carphone", 32.5, bpp_estimated=0.0123, tools={}),
            _row("bbb", 22, psnr_yuv=1 / 3)]
    path = tmp_path / f"results{suffix}"
    write_rows(path, rows)
    assert read_rows(path) == rows
    assert isinstance(read_rows(path)[0].quality, int)  # CRF 27 stays 27, not 27.0


def test_json_file_names_its_format(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_rows(path, [_row()])
    document = json.loads(path.read_text())
    assert document["format"] == "ufvc-rd-results"
    assert document["version"] == 1
    assert document["rows"][0]["bits"] == 123_456


def test_store_keeps_existing_rows_and_replaces_by_key(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    first = ResultStore(path)
    first.add(_row(quality=22))
    first.add(_row(quality=27))
    reopened = ResultStore(path)
    assert len(reopened) == 2
    assert _row(quality=22).key in reopened
    assert ("x264", "x264-medium-ld", "bikes", "qp", 22) not in reopened
    reopened.add(_row(quality=22, bits=1))
    assert [row.bits for row in read_rows(path)] == [1, 123_456]


def test_a_row_without_a_required_field_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    record = _row().to_dict()
    del record["psnr_yuv"]
    path.write_text(json.dumps({"format": "ufvc-rd-results", "version": 1, "rows": [record]}))
    with pytest.raises(InputFormatError, match="row 1 lacks field"):
        read_rows(path)


def test_optional_fields_may_be_absent(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    record = _row().to_dict()
    for name in ("timing_runs", "tools", "settings", "bpp_estimated"):
        del record[name]
    path.write_text(json.dumps({"format": "ufvc-rd-results", "version": 1, "rows": [record]}))
    (row,) = read_rows(path)
    assert (row.timing_runs, row.tools, row.settings, row.bpp_estimated) == (1, {}, "", None)


def test_a_foreign_json_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"root_path": "/data", "test_classes": {}}))
    with pytest.raises(InputFormatError, match="not a ufvc result file"):
        read_rows(path)


def test_a_newer_format_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"format": "ufvc-rd-results", "version": 99, "rows": []}))
    with pytest.raises(InputFormatError, match="version 99"):
        read_rows(path)
