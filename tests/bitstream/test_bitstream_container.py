"""The .ufv container: round trips, index seeks, and every kind of damage detected."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from ufvc.bitstream import (
    Record,
    RecordType,
    SequenceHeader,
    StreamReader,
    StreamWriter,
)
from ufvc.bitstream.format import RecordHeader
from ufvc.entropy import GaussianTables
from ufvc.errors import (
    BitstreamError,
    CorruptStreamError,
    InputFormatError,
    OutputError,
    StreamWarning,
    UnsupportedVersionError,
)


def make_header(**changes) -> SequenceHeader:
    fields = dict(
        model_id="dcvc-uf-hts",
        model_digest=bytes(range(16)),
        entropy_digest=bytes(range(100, 116)),
        width=1280,
        height=720,
        fps=Fraction(30000, 1001),
        chunk_size=8,
        frame_count=29,
    )
    fields.update(changes)
    return SequenceHeader(**fields)


def make_records(seed: int = 0) -> list[Record]:
    """Intra, two chunks, a refresh intra, a reset chunk and a short last chunk: 29 frames."""
    rng = np.random.default_rng(seed)

    def parts() -> tuple[bytes, bytes]:
        sizes = rng.integers(0, 40, 2)
        return tuple(rng.integers(0, 256, s, dtype=np.uint8).tobytes() for s in sizes)

    layout = [
        (RecordType.INTRA, 0, 1, 50, False),
        (RecordType.CHUNK, 1, 8, 40, False),
        (RecordType.CHUNK, 9, 8, 40, False),
        (RecordType.INTRA, 17, 1, 63, False),
        (RecordType.CHUNK, 18, 8, 0, True),
        (RecordType.CHUNK, 26, 3, 40, False),
    ]
    return [
        Record(type=t, first_frame=f, num_frames=n, qp=qp, reset=reset, parts=parts())
        for t, f, n, qp, reset in layout
    ]


def write_stream(target, header=None, records=None) -> None:
    with StreamWriter(target, header or make_header()) as writer:
        for record in records if records is not None else make_records():
            writer.write(record)


def stream_bytes(**kwargs) -> bytes:
    buffer = io.BytesIO()
    write_stream(buffer, **kwargs)
    return buffer.getvalue()


def read_everything(source, **options) -> tuple[SequenceHeader, list[Record]]:
    with StreamReader(source, **options) as reader:
        return reader.header, list(reader)


def record_offsets(data: bytes) -> list[int]:
    """Offsets where each record (and the index record) starts, from the headers."""
    position = struct.unpack_from("<H", data, 6)[0]
    offsets = []
    while position < len(data) - 12:
        offsets.append(position)
        position += 16 + RecordHeader.unpack(data[position : position + 16]).payload_length
    return offsets


class Pipe(io.RawIOBase):
    """A non-seekable reader, like stdin."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._inner.readinto(buffer)


def test_header_round_trips_through_bytes():
    header = make_header(
        chroma="444",
        bit_depth=10,
        skip_threshold=0.0,
        gaussian=GaussianTables(num_bins=64, precision_bits=15, max_range=40),
        z_symbol_min=-32,
        z_symbol_max=31,
    )
    assert SequenceHeader.unpack(header.pack()) == header
    assert make_header().skip_threshold == float(np.float32(0.15))
    rebuilt = SequenceHeader.unpack(make_header().pack()).gaussian
    assert rebuilt.digest() == GaussianTables().digest()  # the decoder's tables match


def test_written_stream_reads_back_identically(tmp_path: Path):
    path = tmp_path / "clip.ufv"
    write_stream(path)
    header, records = read_everything(path)
    assert header == make_header()
    assert records == make_records()
    assert [p.name for p in tmp_path.iterdir()] == ["clip.ufv"]


def test_index_lists_every_intra_record_and_seeks_to_it(tmp_path: Path):
    path = tmp_path / "clip.ufv"
    write_stream(path)
    records = make_records()
    with StreamReader(path) as reader:
        assert reader.index is not None and reader.index.total_frames == 29
        entries = reader.index.entries
        assert [(e.frame_number, e.record_number) for e in entries] == [(0, 0), (17, 3)]
        assert reader.seek_intra(20) == 17
        assert list(reader) == records[3:]
        assert reader.seek_intra(16) == 0
        assert next(iter(reader)) == records[0]
        assert reader.seek_intra(10_000) == 17


def test_stream_without_index_decodes_front_to_back_and_still_seeks():
    data = stream_bytes()
    cut = data[: record_offsets(data)[-1]]  # everything before the index record
    with StreamReader(io.BytesIO(cut)) as reader:
        assert reader.index is None
        assert list(reader) == make_records()
        assert reader.seek_intra(25) == 17
        assert list(reader) == make_records()[3:]


def test_pipe_input_reads_front_to_back_but_cannot_seek():
    with StreamReader(Pipe(stream_bytes())) as reader:
        assert reader.index is None
        assert list(reader) == make_records()
        with pytest.raises(BitstreamError):
            reader.seek_intra(0)


def test_every_truncation_is_corrupt_or_a_clean_cut_at_a_record_boundary():
    data = stream_bytes()
    offsets = record_offsets(data)
    records = make_records()
    for length in range(len(data)):
        if length in offsets:
            kept = records[: offsets.index(length)]
            frames = sum(r.num_frames for r in kept)
            if frames == 29:  # cut before the index: complete
                assert read_everything(io.BytesIO(data[:length]))[1] == kept
                continue
            # Fewer frames than the header's 29: an error naming them, or with the opt-in
            # flag the records that are there and a warning naming them.
            with pytest.raises(CorruptStreamError, match=f"after {frames} of the 29 frames"):
                read_everything(io.BytesIO(data[:length]))
            with pytest.warns(StreamWarning, match=f"after {frames} of the 29 frames"):
                got = read_everything(io.BytesIO(data[:length]), allow_truncated=True)[1]
            assert got == kept
        else:
            with pytest.raises(CorruptStreamError):
                read_everything(io.BytesIO(data[:length]))
            # With the flag, a cut inside a record ends the stream before that record.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    got = read_everything(io.BytesIO(data[:length]), allow_truncated=True)[1]
                except CorruptStreamError:
                    continue  # a cut sequence header or footer
            assert got == records[: len(got)] and len(caught) == 1
            assert caught[0].category is StreamWarning


class Sink(io.RawIOBase):
    """A non-seekable writer, like stdout: the header's frame count stays 0."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.data += bytes(b)
        return len(b)


def test_live_stream_without_frame_count_ends_after_any_record():
    sink = Sink()
    write_stream(sink, header=make_header(frame_count=0))
    data = bytes(sink.data)
    length = SequenceHeader.header_length(data[:8])
    assert SequenceHeader.unpack(data[:length]).frame_count == 0
    offsets = record_offsets(data)
    assert read_everything(io.BytesIO(data[: offsets[3]]))[1] == make_records()[:3]


def test_every_flipped_byte_raises_corrupt_stream():
    data = stream_bytes()
    for position in range(len(data)):
        damaged = bytearray(data)
        damaged[position] ^= 0x10
        with pytest.raises(CorruptStreamError):
            read_everything(io.BytesIO(bytes(damaged)))


def test_truncated_record_message_names_record_and_byte():
    data = stream_bytes()
    offsets = record_offsets(data)
    with pytest.raises(CorruptStreamError, match=f"truncated record 2 at byte {offsets[2]}"):
        read_everything(io.BytesIO(data[: offsets[2] + 20]))


def test_wrong_magic_is_not_a_ufv_file():
    with pytest.raises(CorruptStreamError, match="not a .ufv file"):
        read_everything(io.BytesIO(b"RIFF" + stream_bytes()[4:]))
    with pytest.raises(CorruptStreamError, match="not a .ufv file"):
        read_everything(io.BytesIO(b""))


def with_new_prefix(data: bytes, major: int, minor: int, extra: bytes = b"") -> bytes:
    """The stream with another version and `extra` header bytes, CRC made valid again."""
    length = struct.unpack_from("<H", data, 6)[0]
    body = bytearray(data[: length - 4] + extra)
    body[4:8] = struct.pack("<BBH", major, minor, len(body) + 4)
    return bytes(body) + struct.pack("<I", zlib.crc32(body)) + data[length:]


def test_newer_major_version_is_unsupported_not_corrupt():
    data = with_new_prefix(stream_bytes(), 2, 0)
    with pytest.raises(UnsupportedVersionError):
        read_everything(io.BytesIO(data))


def test_newer_minor_version_with_extra_header_fields_still_reads():
    original = stream_bytes()
    records_end = record_offsets(original)[-1]  # without index: its offsets would move
    data = with_new_prefix(original[:records_end], 1, 3, b"a field added by version 1.3")
    header, records = read_everything(io.BytesIO(data))
    assert header == make_header() and records == make_records()


def as_version_1_0(header_bytes: bytes) -> bytes:
    """A 1.1 header as a 1.0 writer made it: without the compiled_networks byte."""
    body = bytearray(header_bytes[:-5])
    body[4:8] = struct.pack("<BBH", 1, 0, len(body) + 4)
    return bytes(body) + struct.pack("<I", zlib.crc32(body))


def test_compiled_networks_flag_round_trips_and_version_1_0_reads_as_eager():
    compiled = make_header(compiled_networks=True)
    data = compiled.pack()
    assert data[5] == 1 and data[-5] == 1  # version 1.1, the flag just before the CRC
    assert SequenceHeader.unpack(data) == compiled
    old = as_version_1_0(make_header().pack())
    assert len(old) == 109 + len("dcvc-uf-hts")
    assert SequenceHeader.unpack(old) == make_header()
    assert SequenceHeader.unpack(as_version_1_0(data)).compiled_networks is False


def test_cuda_graphs_flag_round_trips_beside_the_compiled_flag():
    for compiled in (False, True):
        header = make_header(compiled_networks=compiled, cuda_graphs=True)
        data = header.pack()
        assert data[-5] == 2 + int(compiled)  # bit 1: CUDA graphs, bit 0: torch.compile
        assert SequenceHeader.unpack(data) == header


def test_unknown_network_mode_is_unsupported():
    data = bytearray(make_header().pack())
    data[-5] = 4
    data[-4:] = struct.pack("<I", zlib.crc32(bytes(data[:-4])))
    with pytest.raises(UnsupportedVersionError):
        SequenceHeader.unpack(bytes(data))


def test_unknown_coder_is_unsupported():
    data = bytearray(stream_bytes())
    data[68] = 9  # coder_id (docs/bitstream.md 2.2)
    length = struct.unpack_from("<H", data, 6)[0]
    data[length - 4 : length] = struct.pack("<I", zlib.crc32(bytes(data[: length - 4])))
    with pytest.raises(UnsupportedVersionError):
        read_everything(io.BytesIO(bytes(data)))


def test_ancillary_records_are_skipped():
    data = stream_bytes()
    offsets = record_offsets(data)
    payload = b"metadata a newer writer added"
    header = RecordHeader.for_payload(200, 0, 0, 0, 0, payload).pack()
    cut = data[: offsets[2]] + header + payload + data[offsets[2] : offsets[-1]]
    assert read_everything(io.BytesIO(cut))[1] == make_records()


def test_missing_record_is_detected_by_frame_numbers():
    data = stream_bytes()
    offsets = record_offsets(data)
    without_second = data[: offsets[1]] + data[offsets[2] : offsets[-1]]
    with pytest.raises(CorruptStreamError, match="expected 1"):
        read_everything(io.BytesIO(without_second))


def test_writer_leaves_nothing_when_the_block_raises(tmp_path: Path):
    path = tmp_path / "out.ufv"
    with pytest.raises(RuntimeError, match="network failed"):
        with StreamWriter(path, make_header()) as writer:
            writer.write(make_records()[0])
            raise RuntimeError("network failed")
    assert list(tmp_path.iterdir()) == []


def test_writer_replaces_an_existing_file_only_on_success(tmp_path: Path):
    path = tmp_path / "out.ufv"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with StreamWriter(path, make_header()):
            raise RuntimeError("stop")
    assert path.read_bytes() == b"old"
    write_stream(path)
    assert read_everything(path)[1] == make_records()


def test_writer_to_a_file_object_after_an_error_leaves_a_cut_stream():
    buffer = io.BytesIO()
    with pytest.raises(RuntimeError):
        with StreamWriter(buffer, make_header()) as writer:
            writer.write(make_records()[0])
            raise RuntimeError("stop")
    with pytest.warns(StreamWarning, match="after 1 of the 29 frames"):
        records = read_everything(io.BytesIO(buffer.getvalue()), allow_truncated=True)[1]
    assert records == make_records()[:1]


def test_unwritable_target_raises_output_error(tmp_path: Path):
    with pytest.raises(OutputError):
        StreamWriter(tmp_path / "missing-dir" / "out.ufv", make_header())


def test_writer_rejects_records_out_of_frame_order():
    with StreamWriter(io.BytesIO(), make_header()) as writer:
        writer.write(make_records()[0])
        with pytest.raises(InputFormatError):
            writer.write(make_records()[2])


@pytest.mark.parametrize(
    "changes",
    [
        dict(model_id=""),
        dict(model_id="modèle"),
        dict(model_digest=b"short"),
        dict(width=0),
        dict(fps=Fraction(0)),
        dict(chroma="422"),
        dict(chunk_size=0),
        dict(skip_threshold=-1.0),
        dict(z_symbol_min=1),
    ],
)
def test_invalid_header_fields_are_rejected(changes):
    with pytest.raises(InputFormatError):
        make_header(**changes)


def test_invalid_records_are_rejected():
    with pytest.raises(InputFormatError):
        Record(type=RecordType.INDEX, first_frame=0, num_frames=0)
    with pytest.raises(InputFormatError):
        Record(type=RecordType.INTRA, first_frame=0, num_frames=2)
    with pytest.raises(InputFormatError):
        Record(type=RecordType.CHUNK, first_frame=0, num_frames=8, qp=64)


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_every_compute_precision_round_trips_through_the_header(precision):
    header = make_header(compute_precision=precision)
    assert SequenceHeader.unpack(header.pack()).compute_precision == precision
