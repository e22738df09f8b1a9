"""Damaged or mismatched streams and bad outputs fail with one line and leave nothing behind."""

from __future__ import annotations

import os

import pytest

from tests.codec.conftest import tiny_model
from ufvc.cli import main
from ufvc.codec import decode, encode
from ufvc.errors import CorruptStreamError, ModelMismatchError


@pytest.fixture
def stream(tmp_path, clip):
    path = tmp_path / "good.ufv"
    encode(clip(64, 48, 5), path, model="ufvc-tiny", quality=30)
    return path


def _decode_cli(capsys, stream_path, output):
    code = main(["decode", str(stream_path), "-o", str(output), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    return code, err


def test_truncated_stream_is_a_one_line_error_without_output(tmp_path, stream, capsys):
    damaged = tmp_path / "cut.ufv"
    data = stream.read_bytes()
    damaged.write_bytes(data[: len(data) * 2 // 3])
    output = tmp_path / "out.y4m"
    code, err = _decode_cli(capsys, damaged, output)
    assert code != 0 and len(err) == 1 and err[0].startswith("ufvc: error:")
    assert not output.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


@pytest.mark.parametrize("offset_fraction", [0.3, 0.6, 0.9])
def test_flipped_byte_raises_corrupt_stream(tmp_path, stream, offset_fraction):
    data = bytearray(stream.read_bytes())
    data[int(len(data) * offset_fraction)] ^= 0x40
    damaged = tmp_path / "flipped.ufv"
    damaged.write_bytes(bytes(data))
    with pytest.raises(CorruptStreamError):
        list(decode(damaged))


def test_wrong_model_is_refused(tmp_path, stream, capsys):
    other = tiny_model("per-step-quadtree")  # same name, other weights
    with pytest.raises(ModelMismatchError):
        list(decode(stream, model=other))
    code, err = _decode_cli(capsys, stream, tmp_path / "o.y4m")
    assert code == 0  # the stream's own model decodes it
    code = main(["decode", str(stream), "-o", str(tmp_path / "x.y4m"), "--model", "dcvc-uf-ld",
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1 and "model" in err[0]
    assert not (tmp_path / "x.y4m").exists()


def test_file_that_is_not_ufv_is_rejected(tmp_path, capsys):
    bogus = tmp_path / "bogus.ufv"
    bogus.write_bytes(b"this is not a video stream at all" * 10)
    code, err = _decode_cli(capsys, bogus, tmp_path / "o.y4m")
    assert code != 0 and len(err) == 1 and "not a .ufv file" in err[0]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output_is_an_error(tmp_path, stream, capsys):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, err = _decode_cli(capsys, stream, locked / "o.y4m")
    assert code != 0 and len(err) == 1


def test_output_in_missing_folder_is_an_error(tmp_path, stream, capsys, clip):
    code, err = _decode_cli(capsys, stream, tmp_path / "no" / "such" / "o.y4m")
    assert code != 0 and len(err) == 1 and err[0].startswith("ufvc: error:")
    code = main(["encode", str(clip(64, 48, 3)), "-o", str(tmp_path / "nope" / "x.ufv"),
                 "--model", "ufvc-tiny", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and len(err) == 1


def test_encode_of_missing_input_leaves_no_stream(tmp_path, capsys):
    output = tmp_path / "x.ufv"
    code = main(["encode", str(tmp_path / "missing.y4m"), "-o", str(output), "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert list(tmp_path.iterdir()) == []


def test_fp16_is_refused_on_a_cpu_in_one_line(tmp_path, capsys, clip):
    from ufvc.cli import main

    out = tmp_path / "s.ufv"
    assert main(["encode", str(clip(64, 64, 3)), "-o", str(out), "--model", "ufvc-tiny",
                 "--precision", "fp16", "--quiet"]) != 0
    err = capsys.readouterr().err.strip()
    assert "fp16" in err and "CUDA" in err and len(err.splitlines()) == 1
    assert not out.exists()
