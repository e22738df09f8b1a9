"""The Python encode call: reader options by name, one clear error for a wrong one."""

from __future__ import annotations

import pytest

from tests.codec.conftest import write_clip
from ufvc.codec import encode
from ufvc.errors import InputFormatError, OutputError
from ufvc.io import open_reader


def _raw_yuv(tmp_path):
    source = write_clip(tmp_path / "c.y4m", 64, 48, 3)
    raw = tmp_path / "c.yuv"
    with open_reader(source) as reader:
        raw.write_bytes(b"".join(p.tobytes() for frame in reader for p in frame.planes))
    return source, raw


def test_raw_yuv_size_as_text_gives_the_y4m_stream(tmp_path) -> None:
    source, raw = _raw_yuv(tmp_path)
    from_y4m = encode(source, tmp_path / "a.ufv", model="ufvc-tiny")
    from_raw = encode(raw, tmp_path / "b.ufv", model="ufvc-tiny",
                      reader_options={"size": "64x48", "fps": "25"})
    assert from_raw.frames == from_y4m.frames == 3
    assert (tmp_path / "a.ufv").read_bytes() == (tmp_path / "b.ufv").read_bytes()


def test_unknown_reader_option_and_bad_size_are_input_format_errors(tmp_path) -> None:
    _, raw = _raw_yuv(tmp_path)
    with pytest.raises(InputFormatError, match="unknown reader option.*resolution"):
        encode(raw, tmp_path / "x.ufv", model="ufvc-tiny", reader_options={"resolution": 1})
    with pytest.raises(InputFormatError, match="frame size must look like"):
        encode(raw, tmp_path / "x.ufv", model="ufvc-tiny", reader_options={"size": "64*48"})
    assert not (tmp_path / "x.ufv").exists()


def test_overwrite_false_keeps_an_existing_stream(tmp_path) -> None:
    source = write_clip(tmp_path / "c.y4m", 64, 48, 2)
    target = tmp_path / "s.ufv"
    target.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists"):
        encode(source, target, model="ufvc-tiny", overwrite=False)
    assert target.read_bytes() == b"old"
    encode(source, target, model="ufvc-tiny")
    assert target.read_bytes() != b"old"
