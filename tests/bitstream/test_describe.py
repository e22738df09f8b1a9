"""`ufvc info FILE.ufv`: header, per-record sizes and rate of a real stream."""

from __future__ import annotations

import json

from tests.codec.conftest import write_clip
from ufvc.bitstream.describe import describe
from ufvc.cli import main
from ufvc.codec import encode


def test_describe_reports_every_record_and_the_file_size(tmp_path):
    source = write_clip(tmp_path / "src.y4m", 64, 48, 6)
    stream = tmp_path / "s.ufv"
    encode(source, stream, model="ufvc-tiny", quality=30, precision="bf16")
    report = describe(stream)
    assert report["model"] == "ufvc-tiny" and report["frames"] == 6
    assert [r["type"] for r in report["records"]] == ["INTRA", "CHUNK", "CHUNK", "CHUNK"]
    assert [r["frames"] for r in report["records"]] == [1, 2, 2, 1]
    assert report["bytes"] == stream.stat().st_size
    assert report["bytes"] > sum(r["bytes"] for r in report["records"])  # + header, index
    assert report["bpp"] == 8 * report["bytes"] / (6 * 64 * 48)


def test_info_cli_prints_text_and_json(tmp_path, capsys):
    source = write_clip(tmp_path / "src.y4m", 64, 48, 3)
    stream = tmp_path / "s.ufv"
    encode(source, stream, model="ufvc-tiny", quality=30)
    assert main(["info", str(stream)]) == 0
    text = capsys.readouterr().out
    assert "ufvc-tiny" in text and "INTRA" in text and "kbps" in text
    assert main(["info", str(stream), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["frames"] == 3


def test_info_on_a_file_that_is_not_ufv_is_one_line(tmp_path, capsys):
    bogus = tmp_path / "x.ufv"
    bogus.write_bytes(b"nope" * 40)
    assert main(["info", str(bogus)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a .ufv file" in err[0]


def test_info_on_a_cut_file_describes_its_records_and_warns(tmp_path, capsys):
    source = write_clip(tmp_path / "src.y4m", 64, 48, 6)
    stream = tmp_path / "s.ufv"
    encode(source, stream, model="ufvc-tiny", quality=30)
    data = stream.read_bytes()
    cut = tmp_path / "cut.ufv"
    cut.write_bytes(data[: len(data) // 2])
    assert main(["info", str(cut), "--json"]) == 0
    captured = capsys.readouterr()
    frames = json.loads(captured.out)["frames"]
    assert 0 < frames < 6
    assert captured.err.strip().splitlines() == [
        f"ufvc: warning: {cut} is cut inside record {len(json.loads(captured.out)['records'])}"
        f" at byte {_record_start(data, frames)}: decoded the {frames} frames before it"]


def _record_start(data: bytes, frames: int) -> int:
    """Offset of the record after the one ending at `frames` frames."""
    import struct

    position, total = struct.unpack_from("<H", data, 6)[0], 0
    while total < frames:
        total += data[position + 3]
        position += 16 + struct.unpack_from("<I", data, position + 8)[0]
    return position
