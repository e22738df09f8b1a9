"""The `.ufv` container: sequence header, records, trailing index (docs/bitstream.md)."""

from ufvc.bitstream.format import (
    FOOTER_MAGIC,
    MAGIC,
    VERSION_MAJOR,
    VERSION_MINOR,
    IndexEntry,
    Record,
    RecordType,
    SequenceHeader,
    StreamIndex,
)
from ufvc.bitstream.stream import StreamReader, StreamWriter

__all__ = [
    "FOOTER_MAGIC",
    "MAGIC",
    "VERSION_MAJOR",
    "VERSION_MINOR",
    "IndexEntry",
    "Record",
    "RecordType",
    "SequenceHeader",
    "StreamIndex",
    "StreamReader",
    "StreamWriter",
]
