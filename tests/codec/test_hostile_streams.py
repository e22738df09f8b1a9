"""Hostile streams: each damage a CRC cannot catch is refused in one line, before it costs
memory, runs a compiler or opens a file; cut streams decode only when asked, and say so."""

from __future__ import annotations

import struct
import tracemalloc
import warnings

import pytest

from ufvc.bitstream.format import Footer, RecordType
from ufvc.bitstream.fuzz import (
    fix_record_crc,
    join_parts,
    parse_layout,
    reindex,
    replace_payload,
    set_header_field,
    set_model_id,
    set_network_mode,
    set_record_field,
    split_parts,
)
from ufvc.cli import main
from ufvc.codec import decode, encode
from ufvc.errors import (
    CorruptStreamError,
    InputFormatError,
    ModelMismatchError,
    StreamWarning,
)
from ufvc.models import checkpoint


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 9-frame ufvc-tiny stream with INTRA records at frames 0, 4 and 8, and its frames."""
    from tests.codec.conftest import write_clip

    folder = tmp_path_factory.mktemp("hostile")
    path = folder / "source.ufv"
    encode(write_clip(folder / "clip.y4m", 64, 48, 9), path, model="ufvc-tiny", quality=30,
           intra_period=4)
    return path.read_bytes(), list(decode(path))


def _decode(tmp_path, data: bytes, **options):
    path = tmp_path / "case.ufv"
    path.write_bytes(data)
    return list(decode(path, **options))


def _cli(tmp_path, capsys, data: bytes, *extra: str) -> tuple[int, list[str]]:
    path = tmp_path / "case.ufv"
    path.write_bytes(data)
    code = main(["decode", str(path), "-o", str(tmp_path / "out.y4m"), "--quiet", *extra])
    return code, capsys.readouterr().err.strip().splitlines()


def _data_records(data: bytes):
    return parse_layout(data).data_records()


def test_part_table_that_overruns_its_payload_is_corrupt(tmp_path, source):
    data, _ = source
    record = _data_records(data)[1]
    payload = bytearray(data[record.payload_start : record.payload_end])
    payload[0] = 255  # 255 part lengths would need 1020 bytes
    with pytest.raises(CorruptStreamError, match="part table of 255 parts overruns"):
        _decode(tmp_path, replace_payload(data, record, bytes(payload)))


@pytest.mark.parametrize(("field", "value"), [
    ("gaussian_scale_max", 1e300), ("gaussian_scale_max", float("inf")),
    ("gaussian_tail_sigmas", 1e300), ("skip_threshold", float("nan")),
    ("gaussian_scale_min", float("nan")),
])
def test_float_fields_out_of_range_are_corrupt_not_overflow(tmp_path, source, field, value):
    data, _ = source
    with pytest.raises(CorruptStreamError):
        _decode(tmp_path, set_header_field(data, field, value))


@pytest.mark.parametrize("name", [b"/etc/passwd", b"/proc/self/status"])
def test_model_name_that_is_a_path_is_refused_without_opening_it(tmp_path, source, name,
                                                                  monkeypatch, capsys):
    data, _ = source
    opened = []
    monkeypatch.setattr(checkpoint, "read_ufvm", lambda path, *a, **k: opened.append(path))
    monkeypatch.setattr(checkpoint, "load_checkpoint_object",
                        lambda path, *a, **k: opened.append(path))
    with pytest.raises(ModelMismatchError, match="not a built-in model"):
        _decode(tmp_path, set_model_id(data, name))
    code, err = _cli(tmp_path, capsys, set_model_id(data, name))
    assert code == 4 and len(err) == 1 and "--model" in err[0]
    assert opened == []


def test_model_file_named_by_a_stream_is_not_loaded_but_given_with_model_is(tmp_path, source):
    from tests.codec.conftest import tiny_model

    data, frames = source
    weights = tmp_path / "tiny.ufvm"
    checkpoint.save_ufvm(tiny_model(), weights)
    with pytest.raises(ModelMismatchError, match="not a built-in model"):
        _decode(tmp_path, set_model_id(data, str(weights).encode()))
    assert len(_decode(tmp_path, data, model=weights)) == len(frames)


@pytest.mark.parametrize(("field", "value"), [
    ("gaussian_num_bins", 32768), ("gaussian_max_range", 16384), ("gaussian_precision", 24),
    ("z_symbol_min", -32767), ("z_symbol_max", 32766),
])
def test_table_parameters_other_than_the_models_are_refused_before_building(
        tmp_path, source, field, value):
    data, _ = source
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStreamError, match="header is damaged"):
            _decode(tmp_path, set_header_field(data, field, value))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 32768 bins of 2 * 16384 + 2 entries would be 4 GiB; the model alone stays far below.
    assert peak < 64 << 20


@pytest.mark.parametrize(("width", "height"), [(1 << 31, 48), (64, 1 << 31), (65535, 65535),
                                               (16385, 48)])
def test_frame_size_beyond_the_maximum_is_corrupt_before_any_allocation(
        tmp_path, source, width, height):
    data, _ = source
    damaged = set_header_field(set_header_field(data, "width", width), "height", height)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStreamError, match="width|height"):
            _decode(tmp_path, damaged)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20  # the model's construction; nothing sized by the header


def test_largest_frame_size_is_bounded_by_the_checks(tmp_path, source):
    data, _ = source
    damaged = set_header_field(set_header_field(data, "width", 16384), "height", 16384)
    tracemalloc.start()
    try:
        with pytest.raises(CorruptStreamError):
            _decode(tmp_path, damaged)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 256 << 20


def test_chunk_size_other_than_the_models_is_refused(tmp_path, source):
    data, _ = source
    with pytest.raises(CorruptStreamError, match="chunk size"):
        _decode(tmp_path, set_header_field(data, "chunk_size", 200))


def test_compile_bit_makes_the_decoder_refuse_unless_asked(tmp_path, source, capsys,
                                                           monkeypatch):
    import torch

    data, _ = source
    compiled = set_network_mode(data, 1)
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(InputFormatError, match="--compile"):
        _decode(tmp_path, compiled)
    code, err = _cli(tmp_path, capsys, compiled)
    assert code == 2 and len(err) == 1 and "pass --compile" in err[0]
    assert not (tmp_path / "out.y4m").exists()


def test_stream_cut_at_a_record_boundary_is_an_error_and_the_flag_decodes_it(
        tmp_path, source, capsys, assert_same_frames):
    data, frames = source
    cut = data[: _data_records(data)[3].offset]  # I, C(2), C(1): 4 of 9 frames
    with pytest.raises(CorruptStreamError, match="ends after 4 of the 9 frames"):
        _decode(tmp_path, cut)
    with pytest.warns(StreamWarning, match="ends after 4 of the 9 frames"):
        got = _decode(tmp_path, cut, allow_truncated=True)
    assert_same_frames(frames[:4], got)
    code, err = _cli(tmp_path, capsys, cut)
    assert code == 3 and len(err) == 1 and "4 of the 9 frames" in err[0]
    assert "--allow-truncated" in err[0] and not (tmp_path / "out.y4m").exists()
    code, err = _cli(tmp_path, capsys, cut, "--allow-truncated")
    assert code == 0 and err[0] == (f"ufvc: warning: {tmp_path / 'case.ufv'} ends after 4 of "
                                    "the 9 frames its header announces (cut short): decoded "
                                    "the 4 frames it holds")
    assert len(err) == 2 and "frames 0-3" in err[1]  # then the summary
    assert (tmp_path / "out.y4m").exists()


def test_stream_cut_inside_a_record_decodes_the_records_before_with_the_flag(
        tmp_path, source, assert_same_frames):
    data, frames = source
    cut = data[: _data_records(data)[4].offset + 40]
    with pytest.raises(CorruptStreamError, match="truncated record 4"):
        _decode(tmp_path, cut)
    with pytest.warns(StreamWarning, match="cut inside record 4"):
        assert_same_frames(frames[:5], _decode(tmp_path, cut, allow_truncated=True))


def _repeat_renumbered(data: bytes, record_number: int, *, keep_index: bool) -> bytes:
    """A copy of one record renumbered to follow the last frame, after the others; then
    the index as it was (its footer moved), or no index."""
    layout = parse_layout(data)
    index = layout.index_record()
    piece = bytearray(data[layout.records[record_number].offset :
                           layout.records[record_number].payload_end])
    struct.pack_into("<I", piece, 4, 9)
    fix_record_crc(piece, 0)
    records = data[: index.offset] + bytes(piece)
    if not keep_index:
        return records
    return records + data[index.offset : index.payload_end] + Footer(len(records)).pack()


def test_repeated_intra_record_is_an_error(tmp_path, source):
    data, _ = source
    intra = [r for r in _data_records(data) if r.type == RecordType.INTRA][1]
    doubled = (data[: intra.payload_end] + data[intra.offset : intra.payload_end]
               + data[intra.payload_end :])
    with pytest.raises(CorruptStreamError, match="index"):
        _decode(tmp_path, reindex(doubled))  # an index listing both copies is refused
    without_index = doubled[: parse_layout(doubled).index_record().offset]
    with pytest.raises(CorruptStreamError, match="starts at frame 4, expected 5"):
        _decode(tmp_path, without_index)
    number = _data_records(data).index(intra)
    with pytest.raises(CorruptStreamError, match="beyond the 9 frames of the header"):
        _decode(tmp_path, _repeat_renumbered(data, number, keep_index=False))


def test_repeated_record_in_a_live_stream_contradicts_the_index(tmp_path, source):
    data, _ = source
    live = set_header_field(data, "frame_count", 0)
    number = [r.type for r in _data_records(data)].index(RecordType.INTRA, 1)
    with pytest.raises(CorruptStreamError, match="record 7 at byte .* contradicts the index"):
        _decode(tmp_path, _repeat_renumbered(live, number, keep_index=True))


@pytest.mark.parametrize("frames", [3, 9, 255])
def test_last_chunk_claiming_more_frames_than_allowed_is_an_error(tmp_path, source, frames):
    data, _ = source
    layout = parse_layout(data)
    last_chunk = [r for r in layout.data_records() if r.type == RecordType.CHUNK][-1]
    damaged = set_record_field(data, last_chunk, "num_frames", frames)
    with pytest.raises(CorruptStreamError, match="more than the chunk size|beyond the 9"):
        _decode(tmp_path, damaged)


@pytest.mark.parametrize("column", [0, 1, 2])
def test_index_entry_that_contradicts_the_records_is_an_error(tmp_path, source, column):
    data, _ = source
    index = parse_layout(data).index_record()
    payload = bytearray(data[index.payload_start : index.payload_end])
    entry = list(struct.unpack_from("<IIQ", payload, 4 + 16))  # the second INTRA record
    entry[column] += 1
    struct.pack_into("<IIQ", payload, 4 + 16, *entry)
    with pytest.raises(CorruptStreamError, match="index"):
        _decode(tmp_path, replace_payload(data, index, bytes(payload)))


def test_index_frame_count_other_than_the_headers_is_an_error(tmp_path, source):
    data, _ = source
    index = parse_layout(data).index_record()
    payload = bytearray(data[index.payload_start : index.payload_end])
    struct.pack_into("<I", payload, 0, 10)
    with pytest.raises(CorruptStreamError, match="index counts 10 frames, the header 9"):
        _decode(tmp_path, replace_payload(data, index, bytes(payload)))


@pytest.mark.parametrize(("part", "words"), [(0, b"\x01\x00\x00\x00"), (1, b"\xff" * 4),
                                             (1, b"\x12\x34\x56\x78" * 2)])
def test_left_over_payload_words_are_reported(tmp_path, source, part, words):
    data, _ = source
    record = _data_records(data)[1]
    parts = split_parts(data[record.payload_start : record.payload_end])
    parts[part] += words
    with pytest.raises(CorruptStreamError, match="trailing data|does not end"):
        _decode(tmp_path, replace_payload(data, record, join_parts(parts)))


def test_trailing_zero_words_change_nothing_the_decoder_reads(tmp_path, source,
                                                              assert_same_frames):
    data, frames = source
    record = _data_records(data)[1]
    parts = split_parts(data[record.payload_start : record.payload_end])
    parts[1] += bytes(8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_frames(frames, _decode(tmp_path, replace_payload(data, record,
                                                                     join_parts(parts))))


@pytest.mark.parametrize("name", [b"dcvc-uf-ld", b"dcvc-uf-hts", b"dcvc-uf-htl", b"ufvc-s"])
def test_stream_naming_another_registered_model_is_refused_before_building_it(
        tmp_path, source, monkeypatch, name):
    from ufvc.codec import api

    data, _ = source
    monkeypatch.setattr(api, "create_model", lambda *a, **k: pytest.fail("built a model"))
    with pytest.raises(CorruptStreamError, match="chunk size 2"):
        _decode(tmp_path, set_model_id(data, name))
    if name != b"ufvc-s":  # the right chunk size: refused by the digest of recipe weights
        chunk_size = 1 if name == b"dcvc-uf-ld" else 8
        renamed = set_header_field(set_model_id(data, name), "chunk_size", chunk_size)
        with pytest.raises(ModelMismatchError, match="other weights"):
            _decode(tmp_path, renamed)
