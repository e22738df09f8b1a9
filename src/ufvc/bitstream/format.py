"""The records of a `.ufv` file as dataclasses, each with its `struct` layout.

Section numbers refer to docs/bitstream.md. Packing validates values and raises
InputFormatError; unpacking validates bytes and raises CorruptStreamError or
UnsupportedVersionError.
"""

from __future__ import annotations

import itertools
import math
import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from fractions import Fraction
from typing import ClassVar

import numpy as np

from ufvc.entropy.coder import CODER_ID
from ufvc.entropy.tables import DEFAULT_SKIP_THRESHOLD, GaussianTables, check_factorized_range
from ufvc.errors import CorruptStreamError, InputFormatError, UnsupportedVersionError

MAGIC = b"\x89UFV"  # section 2.1
VERSION_MAJOR = 1
VERSION_MINOR = 1  # 1.1 appends the network mode byte (section 2.4)
# Bits of the network mode byte (2.4); a reader rejects a byte with any other bit set.
NETWORK_FLAG_COMPILED = 1
NETWORK_FLAG_GRAPHS = 2
NETWORK_FLAGS_KNOWN = NETWORK_FLAG_COMPILED | NETWORK_FLAG_GRAPHS
FOOTER_MAGIC = b"UFVI"  # section 4
# Largest width and height a stream may state (section 2.2): a decoder allocates frames of
# the header's size, so a damaged or hostile header must not ask for more.
MAX_FRAME_SIDE = 16384
DIGEST_SIZE = 16
KNOWN_CODER_IDS = (CODER_ID,)  # section 2.3


class RecordType(IntEnum):
    """Record type ids (section 3.2). Stable: never renumber."""

    INTRA = 1
    CHUNK = 2
    INDEX = 127


FIRST_ANCILLARY_TYPE = 128  # types from here on may be skipped by readers (section 3.2)
DATA_RECORD_TYPES = (RecordType.INTRA, RecordType.CHUNK)
RESET_FLAG = 0x01  # record flags bit 0 (section 3.1)

CHROMA_FORMAT_IDS = {"420": 1, "444": 3}  # section 2.2, H.265 chroma_format_idc values
CHROMA_BY_ID = {v: k for k, v in CHROMA_FORMAT_IDS.items()}
PRECISION_IDS = {"fp32": 0, "bf16": 1, "fp16": 2, "portable": 3}  # 2.2, compute_precision
PRECISION_BY_ID = {v: k for k, v in PRECISION_IDS.items()}


def crc32(*parts: bytes) -> int:
    """CRC32 of the concatenation of `parts` (section 1)."""
    value = 0
    for part in parts:
        value = zlib.crc32(part, value)
    return value


def _check_range(name: str, value: int, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise InputFormatError(f"{name} must be an integer in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class SequenceHeader:
    """Everything a decoder needs before the first record (section 2)."""

    PREFIX: ClassVar = struct.Struct("<4sBBH")  # 2.1: magic, major, minor, header_length
    FIELDS: ClassVar = struct.Struct("<16s16sIIIIIHBBfBBHdddHhhBBB")  # 2.2, offsets 8..104
    # The names of FIELDS, in order, as section 2.2 spells them (the fuzzer edits by name).
    FIELD_NAMES: ClassVar = (
        "model_digest", "entropy_digest", "width", "height", "fps_num", "fps_den",
        "frame_count", "chunk_size", "chroma_format", "bit_depth", "skip_threshold",
        "coder_id", "gaussian_precision", "gaussian_num_bins", "gaussian_scale_min",
        "gaussian_scale_max", "gaussian_tail_sigmas", "gaussian_max_range", "z_symbol_min",
        "z_symbol_max", "z_precision", "compute_precision", "model_id_length",
    )
    FIELDS_1_1: ClassVar = struct.Struct("<B")  # 2.4, after the model id
    CRC: ClassVar = struct.Struct("<I")  # 2.2, last field

    model_id: str
    model_digest: bytes
    entropy_digest: bytes
    width: int
    height: int
    fps: Fraction
    chunk_size: int
    frame_count: int = 0  # 0 = unknown (live)
    chroma: str = "420"  # "420" or "444", as in ufvc.io.types.VideoInfo
    bit_depth: int = 8
    skip_threshold: float = DEFAULT_SKIP_THRESHOLD  # stored as float32
    gaussian: GaussianTables = field(default_factory=GaussianTables)  # configuration only
    z_symbol_min: int = -64
    z_symbol_max: int = 63
    z_precision_bits: int = 16
    coder_id: int = CODER_ID
    compute_precision: str = "fp32"  # arithmetic both sides run the networks in (2.2)
    compiled_networks: bool = False  # both sides run torch.compile'd networks (2.4)
    cuda_graphs: bool = False  # both sides replay the networks from CUDA graphs (2.4)

    def __post_init__(self) -> None:
        try:
            encoded_id = self.model_id.encode("ascii")
        except (UnicodeEncodeError, AttributeError):
            raise InputFormatError(f"model id must be ASCII text, got {self.model_id!r}") from None
        if not 1 <= len(encoded_id) <= 255 or not self.model_id.isprintable():
            raise InputFormatError(f"model id must be 1-255 printable characters: {encoded_id!r}")
        for name in ("model_digest", "entropy_digest"):
            value = getattr(self, name)
            if not isinstance(value, bytes) or len(value) != DIGEST_SIZE:
                raise InputFormatError(f"{name} must be {DIGEST_SIZE} bytes")
        _check_range("width", self.width, 1, MAX_FRAME_SIDE)
        _check_range("height", self.height, 1, MAX_FRAME_SIDE)
        fps = Fraction(self.fps)
        if fps <= 0 or fps.numerator >= 2**32 or fps.denominator >= 2**32:
            raise InputFormatError(f"frame rate must be a positive u32 fraction, got {self.fps}")
        object.__setattr__(self, "fps", fps)
        _check_range("chunk_size", self.chunk_size, 1, 2**16 - 1)
        _check_range("frame_count", self.frame_count, 0, 2**32 - 1)
        if self.chroma not in CHROMA_FORMAT_IDS:
            raise InputFormatError(f"chroma must be one of {sorted(CHROMA_FORMAT_IDS)}")
        _check_range("bit_depth", self.bit_depth, 8, 16)
        if not (math.isfinite(self.skip_threshold) and self.skip_threshold >= 0):
            raise InputFormatError(f"skip threshold must be >= 0, got {self.skip_threshold}")
        object.__setattr__(self, "skip_threshold", float(np.float32(self.skip_threshold)))
        check_factorized_range(self.z_symbol_min, self.z_symbol_max, self.z_precision_bits)
        _check_range("coder_id", self.coder_id, 0, 255)
        if self.compute_precision not in PRECISION_IDS:
            raise InputFormatError(f"compute precision must be one of {sorted(PRECISION_IDS)}")

    def pack(self) -> bytes:
        """The header bytes, CRC included (sections 2.1-2.2)."""
        model_id = self.model_id.encode("ascii")
        g = self.gaussian
        fields = self.FIELDS.pack(
            self.model_digest,
            self.entropy_digest,
            self.width,
            self.height,
            self.fps.numerator,
            self.fps.denominator,
            self.frame_count,
            self.chunk_size,
            CHROMA_FORMAT_IDS[self.chroma],
            self.bit_depth,
            self.skip_threshold,
            self.coder_id,
            g.precision_bits,
            g.num_bins,
            g.scale_min,
            g.scale_max,
            g.tail_sigmas,
            g.max_range,
            self.z_symbol_min,
            self.z_symbol_max,
            self.z_precision_bits,
            PRECISION_IDS[self.compute_precision],
            len(model_id),
        )
        added = self.FIELDS_1_1.pack(int(self.compiled_networks)
                                     | NETWORK_FLAG_GRAPHS * int(self.cuda_graphs))
        length = self.PREFIX.size + len(fields) + len(model_id) + len(added) + self.CRC.size
        body = (self.PREFIX.pack(MAGIC, VERSION_MAJOR, VERSION_MINOR, length) + fields
                + model_id + added)
        return body + self.CRC.pack(crc32(body))

    @classmethod
    def header_length(cls, prefix: bytes) -> int:
        """Total header length from the 8-byte prefix; checks the magic (section 2.1)."""
        if len(prefix) < cls.PREFIX.size or prefix[:4] != MAGIC:
            raise CorruptStreamError("not a .ufv file (bad magic)")
        length = cls.PREFIX.unpack(prefix[: cls.PREFIX.size])[3]
        if length < cls.PREFIX.size + cls.FIELDS.size + 1 + cls.CRC.size:
            raise CorruptStreamError(f"sequence header too short ({length} bytes)")
        return length

    @classmethod
    def unpack(cls, data: bytes) -> SequenceHeader:
        """Parse a whole header (`header_length` bytes): CRC, then version, then fields."""
        (stored_crc,) = cls.CRC.unpack(data[-cls.CRC.size :])
        if crc32(data[: -cls.CRC.size]) != stored_crc:
            raise CorruptStreamError("CRC mismatch in sequence header")
        _, major, minor, length = cls.PREFIX.unpack(data[: cls.PREFIX.size])
        if major != VERSION_MAJOR:
            raise UnsupportedVersionError(
                f"stream format version {major}.{minor} is not supported "
                f"(this ufvc reads {VERSION_MAJOR}.x); update ufvc"
            )
        fields = cls.FIELDS.unpack_from(data, cls.PREFIX.size)
        (*values, model_id_length) = fields
        id_start = cls.PREFIX.size + cls.FIELDS.size
        id_end = id_start + model_id_length
        # Minor versions append fields between the model id and the CRC (1.1: one byte).
        known_end = id_end + (cls.FIELDS_1_1.size if minor >= 1 else 0)
        if known_end + cls.CRC.size > length or (
            minor <= VERSION_MINOR and known_end + cls.CRC.size != length
        ):
            raise CorruptStreamError("sequence header length does not match its fields")
        network_mode = cls.FIELDS_1_1.unpack_from(data, id_end)[0] if minor >= 1 else 0
        if network_mode & ~NETWORK_FLAGS_KNOWN:
            raise UnsupportedVersionError(f"network mode {network_mode} is unknown; update ufvc")
        (
            model_digest,
            entropy_digest,
            width,
            height,
            fps_num,
            fps_den,
            frame_count,
            chunk_size,
            chroma_id,
            bit_depth,
            skip_threshold,
            coder_id,
            precision_bits,
            num_bins,
            scale_min,
            scale_max,
            tail_sigmas,
            max_range,
            z_symbol_min,
            z_symbol_max,
            z_precision_bits,
            precision_id,
        ) = values
        if coder_id not in KNOWN_CODER_IDS:
            raise UnsupportedVersionError(f"entropy coder id {coder_id} is unknown; update ufvc")
        if precision_id not in PRECISION_BY_ID:
            raise UnsupportedVersionError(f"compute precision id {precision_id} is unknown; "
                                          "update ufvc")
        if chroma_id not in CHROMA_BY_ID or fps_den == 0:
            raise CorruptStreamError("sequence header has invalid video fields")
        try:
            return cls(
                model_id=data[id_start:id_end].decode("ascii"),
                model_digest=model_digest,
                entropy_digest=entropy_digest,
                width=width,
                height=height,
                fps=Fraction(fps_num, fps_den),
                chunk_size=chunk_size,
                frame_count=frame_count,
                chroma=CHROMA_BY_ID[chroma_id],
                bit_depth=bit_depth,
                skip_threshold=skip_threshold,
                gaussian=GaussianTables(
                    scale_min=scale_min,
                    scale_max=scale_max,
                    num_bins=num_bins,
                    precision_bits=precision_bits,
                    tail_sigmas=tail_sigmas,
                    max_range=max_range,
                ),
                z_symbol_min=z_symbol_min,
                z_symbol_max=z_symbol_max,
                z_precision_bits=z_precision_bits,
                coder_id=coder_id,
                compute_precision=PRECISION_BY_ID[precision_id],
                compiled_networks=bool(network_mode & NETWORK_FLAG_COMPILED),
                cuda_graphs=bool(network_mode & NETWORK_FLAG_GRAPHS),
            )
        except (InputFormatError, UnicodeDecodeError) as error:
            raise CorruptStreamError(f"sequence header has invalid fields: {error}") from None


@dataclass(frozen=True)
class RecordHeader:
    """The 16 bytes before every record payload (section 3.1)."""

    STRUCT: ClassVar = struct.Struct("<BBBBIII")  # type, qp, flags, num_frames, first, len, crc
    FIELD_NAMES: ClassVar = ("record_type", "qp", "flags", "num_frames", "first_frame",
                             "payload_length", "crc32")
    CRC_COVERS: ClassVar = 12  # the CRC covers header bytes [0, 12) and the payload

    record_type: int
    qp: int
    flags: int
    num_frames: int
    first_frame: int
    payload_length: int
    crc: int

    @classmethod
    def for_payload(
        cls, record_type: int, qp: int, flags: int, num_frames: int, first_frame: int, payload
    ) -> RecordHeader:
        """The header of `payload`, CRC computed."""
        _check_range("qp", qp, 0, 255)
        _check_range("num_frames", num_frames, 0, 255)
        _check_range("first_frame", first_frame, 0, 2**32 - 1)
        _check_range("payload length", len(payload), 0, 2**32 - 1)
        covered = cls.STRUCT.pack(record_type, qp, flags, num_frames, first_frame, len(payload), 0)
        crc = crc32(covered[: cls.CRC_COVERS], payload)
        return cls(record_type, qp, flags, num_frames, first_frame, len(payload), crc)

    def pack(self) -> bytes:
        return self.STRUCT.pack(
            self.record_type,
            self.qp,
            self.flags,
            self.num_frames,
            self.first_frame,
            self.payload_length,
            self.crc,
        )

    @classmethod
    def unpack(cls, data: bytes) -> RecordHeader:
        return cls(*cls.STRUCT.unpack(data))

    def payload_crc_matches(self, header_bytes: bytes, payload: bytes) -> bool:
        return crc32(header_bytes[: self.CRC_COVERS], payload) == self.crc


@dataclass(frozen=True)
class Record:
    """One INTRA or CHUNK record: its header fields and its parts (sections 3.1, 3.3)."""

    COUNT: ClassVar = struct.Struct("<B")  # 3.3 part_count
    LENGTH: ClassVar = struct.Struct("<I")  # 3.3 one part length

    type: RecordType
    first_frame: int
    num_frames: int
    qp: int = 0
    reset: bool = False
    parts: tuple[bytes, ...] = ()  # by convention (z payload, y payload)

    def __post_init__(self) -> None:
        if self.type not in DATA_RECORD_TYPES:
            raise InputFormatError(f"record type must be INTRA or CHUNK, got {self.type!r}")
        object.__setattr__(self, "type", RecordType(self.type))
        low = 1
        high = 1 if self.type == RecordType.INTRA else 255
        _check_range(f"{self.type.name} num_frames", self.num_frames, low, high)
        _check_range("qp", self.qp, 0, 63)
        _check_range("parts", len(self.parts), 0, 255)
        object.__setattr__(self, "parts", tuple(bytes(p) for p in self.parts))

    def pack(self) -> bytes:
        """Record header and payload (3.1 + 3.3)."""
        payload = b"".join(
            [self.COUNT.pack(len(self.parts))]
            + [self.LENGTH.pack(len(p)) for p in self.parts]
            + list(self.parts)
        )
        flags = RESET_FLAG if self.reset else 0
        header = RecordHeader.for_payload(
            self.type, self.qp, flags, self.num_frames, self.first_frame, payload
        )
        return header.pack() + payload

    @classmethod
    def from_payload(cls, header: RecordHeader, payload: bytes, where: str) -> Record:
        """Parse a data payload already checked against its CRC."""
        if len(payload) < cls.COUNT.size:
            raise CorruptStreamError(f"empty payload in {where}")
        (count,) = cls.COUNT.unpack_from(payload)
        table_end = cls.COUNT.size + count * cls.LENGTH.size
        if table_end > len(payload):
            raise CorruptStreamError(f"part table of {count} parts overruns the payload in {where}")
        lengths = struct.unpack_from(f"<{count}I", payload, cls.COUNT.size)
        if table_end + sum(lengths) != len(payload):
            raise CorruptStreamError(f"part lengths do not match the payload in {where}")
        bounds = np.cumsum((table_end, *lengths)).tolist()
        parts = tuple(payload[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True))
        try:
            return cls(
                type=RecordType(header.record_type),
                first_frame=header.first_frame,
                num_frames=header.num_frames,
                qp=header.qp,
                reset=bool(header.flags & RESET_FLAG),
                parts=parts,
            )
        except InputFormatError as error:
            raise CorruptStreamError(f"invalid {where}: {error}") from None


@dataclass(frozen=True)
class IndexEntry:
    """Where an INTRA record starts (section 4)."""

    STRUCT: ClassVar = struct.Struct("<IIQ")  # frame_number, record_number, offset

    frame_number: int
    record_number: int
    offset: int


@dataclass(frozen=True)
class StreamIndex:
    """The payload of the index record (section 4)."""

    TOTAL: ClassVar = struct.Struct("<I")  # total_frames

    total_frames: int
    entries: tuple[IndexEntry, ...]

    def pack_record(self) -> bytes:
        payload = self.TOTAL.pack(self.total_frames) + b"".join(
            IndexEntry.STRUCT.pack(e.frame_number, e.record_number, e.offset) for e in self.entries
        )
        header = RecordHeader.for_payload(RecordType.INDEX, 0, 0, 0, 0, payload)
        return header.pack() + payload

    @classmethod
    def from_payload(cls, payload: bytes) -> StreamIndex:
        size = IndexEntry.STRUCT.size
        if len(payload) < cls.TOTAL.size or (len(payload) - cls.TOTAL.size) % size:
            raise CorruptStreamError("index record has a bad length")
        (total,) = cls.TOTAL.unpack_from(payload)
        entries = tuple(
            IndexEntry(*fields)
            for fields in IndexEntry.STRUCT.iter_unpack(payload[cls.TOTAL.size :])
        )
        for earlier, later in itertools.pairwise(entries):
            if not (earlier.frame_number < later.frame_number
                    and earlier.record_number < later.record_number
                    and earlier.offset < later.offset):
                raise CorruptStreamError("index entries are out of order")
        if entries and entries[-1].frame_number >= total:
            raise CorruptStreamError("index entries lie beyond its frame count")
        return cls(total, entries)


@dataclass(frozen=True)
class Footer:
    """The last 12 bytes of an indexed file (section 4)."""

    STRUCT: ClassVar = struct.Struct("<Q4s")  # index_offset, magic

    index_offset: int

    def pack(self) -> bytes:
        return self.STRUCT.pack(self.index_offset, FOOTER_MAGIC)

    @classmethod
    def unpack(cls, data: bytes) -> Footer | None:
        """The footer, or None when `data` does not end in the footer magic."""
        if len(data) != cls.STRUCT.size:
            return None
        offset, magic = cls.STRUCT.unpack(data)
        return cls(offset) if magic == FOOTER_MAGIC else None
