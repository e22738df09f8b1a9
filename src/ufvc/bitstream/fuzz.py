"""Mutation fuzzing of the decoder: damaged and hostile `.ufv` streams, decoded under limits.

    python -m ufvc.bitstream.fuzz --cases 5000 --seed 1      # the long run (docs/robustness.md)

The mutations follow the format's own field tables (`SequenceHeader.FIELD_NAMES`,
`RecordHeader.FIELD_NAMES`, the part table of 3.3, the entropy payload of 6.1, the index
of section 4): bit flips and truncations that the CRCs must catch, and edits of single
fields, part tables, entropy words, index entries, model ids and network bits with the
CRCs recomputed, plus spliced, repeated and dropped records, which only the decoder's
own checks can catch.

Each case is decoded by a worker process (spawned, one torch thread) that decodes the
stream the way `ufvc decode` does (the model the stream names, from the registry; no
`--compile`), under an address-space limit, with its peak resident memory measured per
case; the parent kills it after `timeout_s`. Outcomes:

- error: a one-line ufvc error (the intended result for damage);
- identical: decoded to the source stream's frames (a harmless edit, e.g. a trailing
  zero word, the frame rate, an ancillary bit);
- warned: decoded with a ufvc warning to the first frames of the source's decode (a cut
  stream with `--allow-truncated`);
- and the failures: different (other frames without an error or warning), traceback
  (any other exception, or a message of several lines), hang, memory (MemoryError or a
  peak RSS over the limit), crash (the worker died).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import re
import resource
import struct
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from ufvc.bitstream.format import (
    NETWORK_FLAGS_KNOWN,
    Footer,
    IndexEntry,
    RecordHeader,
    RecordType,
    SequenceHeader,
    StreamIndex,
    crc32,
)

FAILURES = ("different", "traceback", "hang", "memory", "crash")
OUTCOMES = ("error", "identical", "warned", *FAILURES)
RECORD_HEADER_SIZE = RecordHeader.STRUCT.size
CRC_SIZE = SequenceHeader.CRC.size


@dataclass(frozen=True)
class FuzzConfig:
    """One fuzz run: how many cases, from which seed, under which limits."""

    cases: int = 300
    seed: int = 0
    timeout_s: float = 10.0
    memory_limit_bytes: int = 1 << 30  # peak RSS of the decoding process
    sources: tuple[str, ...] = ("tiny-intra-period", "tiny-resets")


@dataclass(frozen=True)
class SourceSpec:
    """A clean stream the mutations start from: a synthetic clip encoded with `model`."""

    model: str
    width: int
    height: int
    frames: int
    options: dict = field(default_factory=dict)


SOURCES = {
    # Three INTRA records (index entries), 2-frame chunks and short chunks before intras.
    "tiny-intra-period": SourceSpec("ufvc-tiny", 64, 48, 9, {"intra_period": 4}),
    # Chunks with the memory reset flag and a short last chunk.
    "tiny-resets": SourceSpec("ufvc-tiny", 48, 32, 8, {"reset_interval": 4}),
    # The default model: 8-frame chunks, a short last one.
    "ufvc-s": SourceSpec("ufvc-s", 64, 64, 4),
}


# -- the layout of a stream ------------------------------------------------------------------


@dataclass(frozen=True)
class RecordSpan:
    """Where one record lies in a stream, with its header fields."""

    offset: int
    fields: dict[str, int]

    @property
    def payload_start(self) -> int:
        return self.offset + RECORD_HEADER_SIZE

    @property
    def payload_end(self) -> int:
        return self.payload_start + self.fields["payload_length"]

    @property
    def type(self) -> int:
        return self.fields["record_type"]


@dataclass(frozen=True)
class Layout:
    """The header length, the records (data, ancillary and index) and the footer offset."""

    header_length: int
    records: tuple[RecordSpan, ...]
    footer: int | None

    def data_records(self) -> list[RecordSpan]:
        return [r for r in self.records if r.type in (RecordType.INTRA, RecordType.CHUNK)]

    def index_record(self) -> RecordSpan | None:
        return next((r for r in self.records if r.type == RecordType.INDEX), None)


def parse_layout(data: bytes) -> Layout:
    """The layout of a well-formed stream (a mutation's starting point)."""
    header_length = SequenceHeader.header_length(data[: SequenceHeader.PREFIX.size])
    footer = None
    end = len(data)
    if Footer.unpack(data[-Footer.STRUCT.size :]) is not None:
        footer = end - Footer.STRUCT.size
        end = footer
    records = []
    position = header_length
    while position + RECORD_HEADER_SIZE <= end:
        values = RecordHeader.STRUCT.unpack_from(data, position)
        span = RecordSpan(position, dict(zip(RecordHeader.FIELD_NAMES, values, strict=True)))
        records.append(span)
        position = span.payload_end
    return Layout(header_length, tuple(records), footer)


def _field_codes(fmt: str) -> list[str]:
    return ["".join(match) for match in re.findall(r"(\d*)([a-zA-Z?])", fmt)]


def header_field(name: str) -> tuple[int, str]:
    """(offset, struct code) of a sequence header field of section 2.2."""
    codes = _field_codes(SequenceHeader.FIELDS.format)
    position = SequenceHeader.FIELD_NAMES.index(name)
    offset = SequenceHeader.PREFIX.size + struct.calcsize("<" + "".join(codes[:position]))
    return offset, codes[position]


def record_field(name: str) -> tuple[int, str]:
    """(offset within the record header, struct code) of a record header field (3.1)."""
    codes = _field_codes(RecordHeader.STRUCT.format)
    position = RecordHeader.FIELD_NAMES.index(name)
    return struct.calcsize("<" + "".join(codes[:position])), codes[position]


# -- stream surgery (CRCs recomputed) --------------------------------------------------------


def fix_header_crc(data: bytearray) -> None:
    length = struct.unpack_from("<H", data, 6)[0]
    if CRC_SIZE <= length <= len(data):
        crc = crc32(bytes(data[: length - CRC_SIZE]))
        struct.pack_into("<I", data, length - CRC_SIZE, crc)


def fix_record_crc(data: bytearray, offset: int) -> None:
    """Recompute the CRC of the record at `offset`, if its payload lies inside `data`."""
    length = struct.unpack_from("<I", data, offset + 8)[0]
    end = offset + RECORD_HEADER_SIZE + length
    if end <= len(data):
        crc = crc32(bytes(data[offset : offset + RecordHeader.CRC_COVERS]),
                    bytes(data[offset + RECORD_HEADER_SIZE : end]))
        struct.pack_into("<I", data, offset + 12, crc)


def set_header_field(data: bytes, name: str, value) -> bytes:
    """`data` with one header field of 2.2 set (packed as the field's type), CRC fixed."""
    offset, code = header_field(name)
    edited = bytearray(data)
    struct.pack_into("<" + code, edited, offset, value)
    fix_header_crc(edited)
    return bytes(edited)


def set_network_mode(data: bytes, value: int) -> bytes:
    """`data` with the network mode byte of 2.4 set, CRC fixed."""
    length = struct.unpack_from("<H", data, 6)[0]
    edited = bytearray(data)
    edited[length - CRC_SIZE - 1] = value
    fix_header_crc(edited)
    return bytes(edited)


def set_model_id(data: bytes, model_id: bytes) -> bytes:
    """`data` with another model id (lengths and CRC fixed): a header that names anything."""
    layout = parse_layout(data)
    id_start = SequenceHeader.PREFIX.size + SequenceHeader.FIELDS.size
    id_length = data[id_start - 1]
    body = bytearray(data[: id_start - 1])
    body += bytes([len(model_id) & 0xFF]) + model_id
    body += data[id_start + id_length : layout.header_length - CRC_SIZE]
    struct.pack_into("<H", body, 6, len(body) + CRC_SIZE)
    header = bytes(body) + struct.pack("<I", crc32(bytes(body)))
    return reindex(header + data[layout.header_length :])


def set_record_field(data: bytes, record: RecordSpan, name: str, value: int) -> bytes:
    """`data` with one header field of a record set, CRC fixed."""
    offset, code = record_field(name)
    edited = bytearray(data)
    struct.pack_into("<" + code, edited, record.offset + offset, value)
    if name != "crc32":
        fix_record_crc(edited, record.offset)
    return bytes(edited)


def replace_payload(data: bytes, record: RecordSpan, payload: bytes) -> bytes:
    """`data` with a record's payload replaced (length and CRC fixed; the index, unless it
    is the record replaced, rewritten for the records' new places)."""
    header = bytearray(data[record.offset : record.payload_start])
    struct.pack_into("<I", header, 8, len(payload))
    piece = bytearray(bytes(header) + payload)
    fix_record_crc(piece, 0)
    edited = data[: record.offset] + bytes(piece) + data[record.payload_end :]
    if record.type == RecordType.INDEX:
        return edited
    return reindex(edited) if len(payload) != record.fields["payload_length"] else edited


def split_parts(payload: bytes) -> list[bytes]:
    """The parts of a data payload (3.3)."""
    count = payload[0]
    lengths = struct.unpack_from(f"<{count}I", payload, 1)
    parts, position = [], 1 + 4 * count
    for length in lengths:
        parts.append(payload[position : position + length])
        position += length
    return parts


def join_parts(parts: list[bytes]) -> bytes:
    return bytes([len(parts)]) + struct.pack(f"<{len(parts)}I", *map(len, parts)) + b"".join(parts)


def _reassemble(header: bytes, records: list[bytes], *, footer: bool) -> bytes:
    """A stream from a header and whole records; with `footer`, the index record (if any
    is among `records`) gets a footer pointing at its new place."""
    out = bytearray(header)
    index_offset = None
    for record in records:
        if record[0] == RecordType.INDEX:
            index_offset = len(out)
        out += record
    if footer and index_offset is not None:
        out += Footer(index_offset).pack()
    return bytes(out)


def reindex(data: bytes) -> bytes:
    """`data` with its index and footer rewritten to list its records as they now are
    (after an edit that moved them); a stream without an index keeps none."""
    layout = parse_layout(data)
    if layout.index_record() is None:
        return data
    spans = [r for r in layout.records if r.type != RecordType.INDEX]
    entries, frames, position = [], 0, layout.header_length
    for number, span in enumerate(spans):
        if span.type == RecordType.INTRA:
            entries.append(IndexEntry(span.fields["first_frame"], number, position))
        if span.type in (RecordType.INTRA, RecordType.CHUNK):
            frames += span.fields["num_frames"]
        position += span.payload_end - span.offset
    pieces = [data[r.offset : r.payload_end] for r in spans]
    index = StreamIndex(frames, tuple(entries)).pack_record()
    return _reassemble(data[: layout.header_length], [*pieces, index], footer=True)


# -- mutations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One mutated stream and how to decode it."""

    kind: str
    description: str
    data: bytes
    allow_truncated: bool = False


def _interesting(code: str, current, rng: random.Random):
    """A value worth trying for a field of struct type `code`."""
    if code.endswith("s"):
        size = int(code[:-1])
        return bytes(rng.getrandbits(8) for _ in range(size))
    if code in "fd":
        big = 3e38 if code == "f" else 1e300
        return rng.choice([0.0, -0.0, -1.0, 0.5, 1e-30, big, -big, float("inf"),
                           float("-inf"), float("nan"), current * 2, current / 2,
                           rng.uniform(-100, 100)])
    bits = struct.calcsize(code) * 8
    signed = code.islower()
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    choices = [low, high, 0, 1, 2, 3, 7, 8, 9, 16, 17, 63, 64, 127, 128, 255, 256, 16384,
               16385, 32767, 32768, 65535, 65536, 1 << 31, current - 1, current + 1,
               rng.randint(low, high)]
    return rng.choice([c for c in choices if low <= c <= high])


def mutate_bit_flip(data: bytes, rng: random.Random) -> Case:
    edited = bytearray(data)
    positions = [rng.randrange(len(data) * 8) for _ in range(rng.randint(1, 4))]
    for bit in positions:
        edited[bit // 8] ^= 1 << (bit % 8)
    return Case("bit flip (CRC not fixed)", f"bits {positions}", bytes(edited))


def mutate_truncate(data: bytes, rng: random.Random) -> Case:
    length = rng.randrange(len(data))
    return Case("truncation at any byte", f"cut to {length} bytes", data[:length],
                allow_truncated=rng.random() < 0.5)


def mutate_truncate_at_record(data: bytes, rng: random.Random) -> Case:
    layout = parse_layout(data)
    record = rng.choice(layout.data_records()[1:] or layout.data_records())
    allow = rng.random() < 0.5
    return Case("truncation at a record boundary", f"cut before the record at "
                f"{record.offset}, allow_truncated={allow}", data[: record.offset], allow)


def mutate_header_field(data: bytes, rng: random.Random) -> Case:
    name = rng.choice(SequenceHeader.FIELD_NAMES)
    offset, code = header_field(name)
    current = struct.unpack_from("<" + code, data, offset)[0]
    value = _interesting(code, current, rng)
    return Case("header field (CRC fixed)", f"{name} = {value!r}",
                set_header_field(data, name, value))


def mutate_prefix(data: bytes, rng: random.Random) -> Case:
    edited = bytearray(data)
    position = rng.choice([4, 5, 6])  # version_major, version_minor, header_length
    if position == 6:
        value = _interesting("H", struct.unpack_from("<H", data, 6)[0], rng)
        struct.pack_into("<H", edited, 6, value)
    else:
        value = rng.choice([0, 1, 2, 3, 255])
        edited[position] = value
    fix_header_crc(edited)
    return Case("header prefix (CRC fixed)", f"byte {position} = {value}", bytes(edited))


def mutate_model_id(data: bytes, rng: random.Random) -> Case:
    names = [b"/etc/passwd", b"/proc/self/status", b"../../weights/ufvc-s.ufvm", b"ufvc-s",
             b"dcvc-uf-ld", b"dcvc-uf-hts", b"ufvc-tiny ", b"x" * 255, b"\x1b[2J",
             bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 40))),
             str(Path(__file__).with_name("format.py")).encode()]
    name = rng.choice(names)
    return Case("model id (lengths, CRC fixed)", f"model id {name[:40]!r}",
                set_model_id(data, name))


def mutate_network_mode(data: bytes, rng: random.Random) -> Case:
    value = rng.choice([1, 2, 3, NETWORK_FLAGS_KNOWN + 1, 128, 255])
    return Case("network mode byte (CRC fixed)", f"network mode {value}",
                set_network_mode(data, value))


def mutate_record_field(data: bytes, rng: random.Random) -> Case:
    layout = parse_layout(data)
    record = rng.choice(layout.records)
    name = rng.choice(RecordHeader.FIELD_NAMES[:-1])
    offset, code = record_field(name)
    current = record.fields[name]
    if name == "record_type":
        value = rng.choice([0, 1, 2, 3, 126, 127, 128, 200, 255])
    elif name == "num_frames":
        value = rng.choice([0, 1, 2, 3, 7, 8, 9, 16, 255, current + 1, current - 1]) & 0xFF
    else:
        value = _interesting(code, current, rng)
    return Case("record header field (CRC fixed)",
                f"record at {record.offset}: {name} = {value}",
                set_record_field(data, record, name, value))


def mutate_part_table(data: bytes, rng: random.Random) -> Case:
    layout = parse_layout(data)
    record = rng.choice(layout.data_records())
    payload = bytearray(data[record.payload_start : record.payload_end])
    count = payload[0]
    if rng.random() < 0.4:
        value = rng.choice([0, 1, 2, 4, 5, 64, 255, count + 1, count - 1]) & 0xFF
        payload[0] = value
        what = f"part count {value}"
    else:
        part = rng.randrange(count)
        current = struct.unpack_from("<I", payload, 1 + 4 * part)[0]
        value = _interesting("I", current, rng)
        struct.pack_into("<I", payload, 1 + 4 * part, value)
        what = f"part {part} length {value}"
    return Case("part table (CRC fixed)", f"record at {record.offset}: {what}",
                replace_payload(data, record, bytes(payload)))


def mutate_payload_bytes(data: bytes, rng: random.Random) -> Case:
    layout = parse_layout(data)
    record = rng.choice(layout.data_records())
    payload = bytearray(data[record.payload_start : record.payload_end])
    positions = [rng.randrange(len(payload)) for _ in range(rng.randint(1, 3))]
    for position in positions:
        payload[position] = rng.getrandbits(8)
    return Case("payload bytes (CRC fixed)", f"record at {record.offset}: bytes {positions}",
                replace_payload(data, record, bytes(payload)))


def mutate_entropy_words(data: bytes, rng: random.Random) -> Case:
    """Edit the stream table or the words of a z or y entropy payload (6.1)."""
    layout = parse_layout(data)
    record = rng.choice(layout.data_records())
    parts = split_parts(data[record.payload_start : record.payload_end])
    which = rng.randrange(2)  # 0 = z, 1 = y
    part = bytearray(parts[which])
    operation = rng.choice(["append", "append zeros", "drop", "insert", "stream count",
                            "word count"])
    if operation == "append":
        count = rng.randint(1, 3)
        part += bytes(rng.getrandbits(8) for _ in range(4 * count))
    elif operation == "append zeros":
        count = rng.randint(1, 3)
        part += bytes(4 * count)
    elif operation == "drop":
        count = rng.randint(1, 3)
        part = part[: max(1, len(part) - 4 * count)]
    elif operation == "insert":
        position = 1 + 4 * rng.randrange(max(1, (len(part) - 1) // 4))
        part[position:position] = bytes(rng.getrandbits(8) for _ in range(4))
    elif operation == "stream count":
        part[0] = rng.choice([0, 2, 3, 8, 255, part[0] + 1]) & 0xFF
    elif part[0] > 1:
        struct.pack_into("<I", part, 1, _interesting("I", struct.unpack_from("<I", part, 1)[0],
                                                     rng))
    else:
        part[0] = 2  # a second stream taking all words but the counted ones
    parts[which] = bytes(part)
    return Case("entropy payload words (CRC fixed)",
                f"record at {record.offset}: {'zy'[which]} {operation}",
                replace_payload(data, record, join_parts(parts)))


def mutate_splice(data: bytes, rng: random.Random) -> Case:
    """Repeat, drop, swap or move records; the index stays as it was (footer moved)."""
    layout = parse_layout(data)
    pieces = [data[r.offset : r.payload_end] for r in layout.records]
    data_positions = [i for i, r in enumerate(layout.records) if r.type != RecordType.INDEX]
    end = len(data_positions)  # where the index record (if any) starts
    operation = rng.choice(["repeat", "repeat renumbered at the end", "drop", "swap",
                            "move to the end", "drop the index"])
    i = rng.choice(data_positions)
    if operation == "repeat":
        pieces.insert(i + 1, pieces[i])
    elif operation == "repeat renumbered at the end":
        frames = sum(r.fields["num_frames"] for r in layout.data_records())
        copy = bytearray(pieces[i])
        struct.pack_into("<I", copy, 4, frames)
        fix_record_crc(copy, 0)
        pieces.insert(end, bytes(copy))
    elif operation == "drop":
        del pieces[i]
    elif operation == "swap":
        j = rng.choice(data_positions)
        pieces[i], pieces[j] = pieces[j], pieces[i]
    elif operation == "move to the end":
        pieces.insert(end - 1, pieces.pop(i))
    else:
        pieces = [p for p in pieces if p[0] != RecordType.INDEX]
    kept_footer = layout.footer is not None and operation != "drop the index"
    spliced = _reassemble(data[: layout.header_length], pieces, footer=kept_footer)
    if rng.random() < 0.5:  # an index that agrees with the records: only frame checks left
        return Case("spliced records", f"{operation} record {i}, index rewritten",
                    reindex(spliced))
    return Case("spliced records", f"{operation} record {i}", spliced)


def mutate_index(data: bytes, rng: random.Random) -> Case:
    """Edit the index payload (CRC fixed) or the footer's offset."""
    layout = parse_layout(data)
    record = layout.index_record()
    if record is None:
        return mutate_splice(data, rng)
    payload = bytearray(data[record.payload_start : record.payload_end])
    entries = (len(payload) - StreamIndex.TOTAL.size) // IndexEntry.STRUCT.size
    operation = rng.choice(["total", "entry field", "drop entry", "repeat entry", "footer"])
    if operation == "footer":
        edited = bytearray(data)
        offset = rng.choice([0, record.offset - 16, record.offset + 1, len(data), 1 << 40])
        struct.pack_into("<Q", edited, len(data) - Footer.STRUCT.size, max(0, offset))
        return Case("index and footer (CRC fixed)", f"footer offset {offset}", bytes(edited))
    if operation == "total" or entries == 0:
        value = _interesting("I", struct.unpack_from("<I", payload, 0)[0], rng)
        struct.pack_into("<I", payload, 0, value)
        what = f"total_frames {value}"
    else:
        entry = rng.randrange(entries)
        start = StreamIndex.TOTAL.size + entry * IndexEntry.STRUCT.size
        piece = payload[start : start + IndexEntry.STRUCT.size]
        if operation == "drop entry":
            del payload[start : start + IndexEntry.STRUCT.size]
        elif operation == "repeat entry":
            payload[start:start] = piece
        else:
            column = rng.randrange(3)
            values = list(IndexEntry.STRUCT.unpack(piece))
            values[column] = max(0, values[column] + rng.choice([-16, -1, 1, 16]))
            payload[start : start + IndexEntry.STRUCT.size] = IndexEntry.STRUCT.pack(*values)
        what = f"{operation} {entry}"
    return Case("index and footer (CRC fixed)", what, replace_payload(data, record,
                                                                      bytes(payload)))


MUTATIONS: dict[str, Callable[[bytes, random.Random], Case]] = {
    "bit_flip": mutate_bit_flip,
    "truncate": mutate_truncate,
    "truncate_at_record": mutate_truncate_at_record,
    "header_field": mutate_header_field,
    "prefix": mutate_prefix,
    "model_id": mutate_model_id,
    "network_mode": mutate_network_mode,
    "record_field": mutate_record_field,
    "part_table": mutate_part_table,
    "payload_bytes": mutate_payload_bytes,
    "entropy_words": mutate_entropy_words,
    "splice": mutate_splice,
    "index": mutate_index,
}


def generate_cases(sources: dict[str, bytes], count: int, seed: int) -> list[tuple[str, Case]]:
    """`count` (source name, case) pairs, the same for the same seed and sources."""
    rng = random.Random(seed)
    names = sorted(sources)
    kinds = sorted(MUTATIONS)
    cases = []
    for _ in range(count):
        name = rng.choice(names)
        cases.append((name, MUTATIONS[rng.choice(kinds)](sources[name], rng)))
    return cases


# -- decoding under limits -------------------------------------------------------------------


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # resets VmHWM, the peak resident set (Linux)
    except OSError:
        pass


def _decode_case(path: str, allow_truncated: bool) -> tuple:
    """("error", message) | ("decoded", frame digests, warnings) | ("traceback", text) |
    ("memory", text), decoding as `ufvc decode` does."""
    import hashlib

    from ufvc.codec import decode
    from ufvc.errors import UfvcError, UfvcWarning

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            digests = []
            for frame in decode(path, allow_truncated=allow_truncated):
                digest = hashlib.sha256()
                for plane in frame.planes:
                    digest.update(plane.tobytes())
                digests.append(digest.hexdigest()[:16])
        notes = [str(w.message) for w in caught if issubclass(w.category, UfvcWarning)]
        return ("decoded", digests, notes)
    except UfvcError as error:
        message = str(error)
        if "\n" in message or not message:
            return ("traceback", f"{type(error).__name__} of several lines: {message!r}")
        return ("error", f"{type(error).__name__}: {message}")
    except MemoryError:
        return ("memory", traceback.format_exc(limit=-3))
    except Exception as error:  # noqa: BLE001 - what the fuzzer is looking for
        if "can't allocate memory" in str(error):
            return ("memory", traceback.format_exc(limit=-3))
        return ("traceback", traceback.format_exc(limit=-4))


def _worker(connection, address_space_bytes: int, source_models: tuple[str, ...]) -> None:
    """Decode the cases the parent sends (path, allow_truncated) until it sends None."""
    import ctypes
    import ctypes.util

    import torch

    from ufvc.codec import api

    torch.set_num_threads(1)
    # The sources' models depend on their names only: built once, not once per case. Any
    # other model a case names is built (and measured) each time, as a fresh decoder would.
    build = api.create_model
    kept = {name: build(name) for name in source_models}
    api.create_model = lambda name, **options: (kept[name] if name in kept
                                                 else build(name, **options))
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    warm = connection.recv()  # the clean sources: warm imports and caches before the limit
    results = [_decode_case(path, False) for path in warm]
    limit = _status_kib("VmSize") * 1024 + address_space_bytes
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    connection.send(results)
    while (job := connection.recv()) is not None:
        libc.malloc_trim(0)  # hand the last case's freed memory back, so the peak is this case's
        _reset_peak_rss()
        started = time.perf_counter()
        result = _decode_case(*job)
        connection.send((result, _status_kib("VmHWM") * 1024, time.perf_counter() - started))


class _Worker:
    def __init__(self, sources: list[str], address_space_bytes: int,
                 models: tuple[str, ...]) -> None:
        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_worker, daemon=True,
                                       args=(child, address_space_bytes, models))
        self.process.start()
        child.close()
        self.connection.send(sources)
        self.warm_results = self.connection.recv()

    def run(self, path: str, allow_truncated: bool, timeout_s: float):
        """(result, peak RSS, seconds), or "hang" or "crash"."""
        try:
            self.connection.send((path, allow_truncated))
            if not self.connection.poll(timeout_s):
                return "hang"
            return self.connection.recv()
        except (EOFError, OSError):
            return "crash"

    def stop(self) -> None:
        """Ask the worker to end; kill it if it does not (a hang, say)."""
        try:
            self.connection.send(None)
        except OSError:
            pass
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.connection.close()


# -- running ---------------------------------------------------------------------------------


@dataclass
class FuzzReport:
    """Outcome counts per mutation class, and the failing cases."""

    counts: dict[str, Counter] = field(default_factory=dict)
    failures: list[dict] = field(default_factory=list)
    max_rss_bytes: int = 0
    max_seconds: float = 0.0
    largest_case: str = ""  # the case of max_rss_bytes
    slowest_case: str = ""  # the case of max_seconds
    cases: int = 0

    def add(self, case: Case, source: str, outcome: str, detail: str, rss: int,
            seconds: float) -> None:
        self.counts.setdefault(case.kind, Counter())[outcome] += 1
        self.cases += 1
        where = f"{case.kind} ({source}): {case.description}"
        if rss > self.max_rss_bytes:
            self.max_rss_bytes, self.largest_case = rss, where
        if seconds > self.max_seconds:
            self.max_seconds, self.slowest_case = seconds, where
        if outcome in FAILURES:
            self.failures.append({"kind": case.kind, "source": source,
                                  "description": case.description, "outcome": outcome,
                                  "detail": detail})

    def table(self) -> str:
        """The classes x outcomes table, in Markdown."""
        lines = ["| mutation class | cases | " + " | ".join(OUTCOMES) + " |",
                 "|---|---:|" + "---:|" * len(OUTCOMES)]
        total: Counter = Counter()
        for kind in sorted(self.counts):
            counts = self.counts[kind]
            total.update(counts)
            lines.append(f"| {kind} | {sum(counts.values())} | "
                         + " | ".join(str(counts[o]) for o in OUTCOMES) + " |")
        lines.append(f"| **all** | {sum(total.values())} | "
                     + " | ".join(str(total[o]) for o in OUTCOMES) + " |")
        return "\n".join(lines)


def make_sources(names: tuple[str, ...], folder: Path) -> dict[str, bytes]:
    """Encode each named source clip; returns the stream bytes by name."""
    from ufvc.codec import encode
    from ufvc.io import open_writer
    from ufvc.io.types import VideoInfo
    from ufvc.samples import synthetic_video

    streams = {}
    for name in names:
        spec = SOURCES[name]
        clip = folder / f"{name}.y4m"
        with open_writer(clip, VideoInfo(spec.width, spec.height, Fraction(25),
                                         spec.frames)) as writer:
            for frame in synthetic_video(spec.width, spec.height, spec.frames, seed=1):
                writer.write(frame)
        stream = folder / f"{name}.ufv"
        encode(clip, stream, model=spec.model, quality=30, **spec.options)
        streams[name] = stream.read_bytes()
    return streams


def _classify(result, reference: list[str], memory_limit: int) -> tuple[str, str, int, float]:
    if result in ("hang", "crash"):
        return result, result, 0, 0.0
    (kind, *detail), rss, seconds = result
    if rss > memory_limit:
        return "memory", f"peak RSS {rss / 2**20:.0f} MiB", rss, seconds
    if kind != "decoded":
        return kind, detail[0], rss, seconds
    digests, notes = detail
    if notes and digests == reference[: len(digests)]:
        return "warned", notes[0], rss, seconds
    if digests == reference and not notes:
        return "identical", "", rss, seconds
    return "different", f"{len(digests)} frames, source {len(reference)}", rss, seconds


def run_fuzz(config: FuzzConfig, *, progress: Callable[[int], None] | None = None,
             save_failures: Path | None = None) -> FuzzReport:
    """Generate `config.cases` mutated streams and decode each under the limits."""
    report = FuzzReport()
    with tempfile.TemporaryDirectory(prefix="ufvc-fuzz-") as folder:
        work = Path(folder)
        sources = make_sources(config.sources, work)
        clean = [str(work / f"{name}.ufv") for name in sorted(sources)]
        models = tuple(sorted({SOURCES[name].model for name in config.sources}))
        worker = _Worker(clean, config.memory_limit_bytes, models)
        references = {}
        for name, result in zip(sorted(sources), worker.warm_results, strict=True):
            if result[0] != "decoded" or result[2]:
                raise RuntimeError(f"the clean source {name} does not decode: {result}")
            references[name] = result[1]
        case_path = work / "case.ufv"
        try:
            for number, (source, case) in enumerate(
                    generate_cases(sources, config.cases, config.seed)):
                case_path.write_bytes(case.data)
                result = worker.run(str(case_path), case.allow_truncated, config.timeout_s)
                if result in ("hang", "crash"):
                    worker.stop()
                    worker = _Worker(clean, config.memory_limit_bytes, models)
                outcome, detail, rss, seconds = _classify(result, references[source],
                                                          config.memory_limit_bytes)
                report.add(case, source, outcome, detail, rss, seconds)
                if outcome in FAILURES and save_failures is not None:
                    save_failures.mkdir(parents=True, exist_ok=True)
                    (save_failures / f"case-{number:05d}-{outcome}.ufv").write_bytes(case.data)
                if progress is not None:
                    progress(number + 1)
        finally:
            worker.stop()
    return report


def main(argv: list[str] | None = None) -> int:
    """The fuzz run as a command: prints the table; exit 1 when any case failed."""
    parser = argparse.ArgumentParser(
        prog="python -m ufvc.bitstream.fuzz",
        description="Decode mutated .ufv streams under time and memory limits and count "
        "the outcomes per mutation class (docs/robustness.md).",
    )
    parser.add_argument("--cases", type=int, default=FuzzConfig.cases)
    parser.add_argument("--seed", type=int, default=FuzzConfig.seed)
    parser.add_argument("--timeout", type=float, default=FuzzConfig.timeout_s,
                        help="seconds a case may take (default 10)")
    parser.add_argument("--memory-mib", type=int, default=FuzzConfig.memory_limit_bytes >> 20,
                        help="peak RSS a case may reach (default 1024)")
    parser.add_argument("--sources", default=",".join(FuzzConfig.sources),
                        help=f"source streams, of {', '.join(SOURCES)}")
    parser.add_argument("--save-failures", type=Path, metavar="DIR",
                        help="write each failing stream here")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report")
    args = parser.parse_args(argv)
    config = FuzzConfig(cases=args.cases, seed=args.seed, timeout_s=args.timeout,
                        memory_limit_bytes=args.memory_mib << 20,
                        sources=tuple(args.sources.split(",")))
    started = time.perf_counter()

    def progress(done: int) -> None:
        if done % 100 == 0 or done == config.cases:
            print(f"{done}/{config.cases} cases, {time.perf_counter() - started:.0f} s",
                  file=sys.stderr)

    report = run_fuzz(config, progress=progress, save_failures=args.save_failures)
    seconds = time.perf_counter() - started
    print(report.table())
    print(f"\n{report.cases} cases in {seconds:.0f} s (seed {config.seed}, sources "
          f"{', '.join(config.sources)}); {len(report.failures)} failures\n"
          f"slowest case {report.max_seconds:.2f} s: {report.slowest_case}\n"
          f"largest peak RSS {report.max_rss_bytes / 2**20:.0f} MiB: {report.largest_case}")
    for failure in report.failures[:20]:
        print(f"  {failure['outcome']}: {failure['kind']} ({failure['source']}): "
              f"{failure['description']}: {failure['detail'].strip().splitlines()[-1:]}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "config": {**config.__dict__, "sources": list(config.sources)},
            "seconds": seconds, "max_rss_bytes": report.max_rss_bytes,
            "largest_case": report.largest_case, "max_seconds": report.max_seconds,
            "slowest_case": report.slowest_case,
            "counts": {k: dict(v) for k, v in report.counts.items()},
            "failures": report.failures}, indent=1))
    return 1 if report.failures else 0


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
