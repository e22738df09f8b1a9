"""Writing and reading `.ufv` files (docs/bitstream.md).

`StreamWriter` writes front to back only, so it also works on pipes; `StreamReader`
reads front to back, and with a seekable input also uses the trailing index.
"""

from __future__ import annotations

import bisect
import dataclasses
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from ufvc.bitstream.format import (
    DATA_RECORD_TYPES,
    FIRST_ANCILLARY_TYPE,
    Footer,
    IndexEntry,
    Record,
    RecordHeader,
    RecordType,
    SequenceHeader,
    StreamIndex,
)
from ufvc.errors import (
    BitstreamError,
    CorruptStreamError,
    InputFormatError,
    OutputError,
    StreamWarning,
)
from ufvc.io.base import StagedOutput

_READ_PIECE = 1 << 24  # read large payloads in pieces, so a damaged length cannot exhaust memory


class StreamWriter:
    """Writes a sequence header, then records; `close()` appends the index and footer.

    Given a path, the file is written under a temporary name next to it and moved into
    place when the writer closes without error; if the `with` block raises, nothing is
    left behind. With `overwrite` False an existing file is refused. The path `-` is
    standard output, and an existing device node or FIFO (`/dev/null`) is written in
    place, never replaced. Given a binary file object (a pipe, a BytesIO), the bytes go
    straight to it; after an error the index is not appended, which leaves a valid cut
    stream. A header whose frame count is 0 (unknown, e.g. video from a pipe) gets the
    count written into it at `close()` when the output can seek back to it.
    """

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        header: SequenceHeader,
        *,
        overwrite: bool = True,
    ) -> None:
        self.header = header
        self._path: Path | None = None
        self._output: StagedOutput | None = None
        if isinstance(target, (str, os.PathLike)):
            self._path = Path(target)
            self._output = StagedOutput(self._path, overwrite=overwrite)
            try:
                self._file: BinaryIO = self._output.open_binary()  # closed in close()
            except OSError as error:
                self._output.discard()
                raise OutputError(f"cannot write {self._path}: {error.strerror}") from error
        else:
            self._file = target
        self._closed = False
        self.bytes_written = 0
        self._record_count = 0
        self._frame_count = 0
        self._intra_entries: list[IndexEntry] = []
        self._write(header.pack())

    def write(self, record: Record) -> None:
        """Append one INTRA or CHUNK record; records cover consecutive frames from 0."""
        if self._closed:
            raise OutputError("the stream writer is already closed")
        if record.first_frame != self._frame_count:
            raise InputFormatError(
                f"record starts at frame {record.first_frame}, expected {self._frame_count}"
            )
        if record.type == RecordType.INTRA:
            self._intra_entries.append(
                IndexEntry(record.first_frame, self._record_count, self.bytes_written)
            )
        self._write(record.pack())
        self._record_count += 1
        self._frame_count += record.num_frames

    def close(self) -> None:
        """Append the index and footer and finish the file (move it into place)."""
        if self._closed:
            return
        index_offset = self.bytes_written
        index = StreamIndex(self._frame_count, tuple(self._intra_entries))
        self._write(index.pack_record() + Footer(index_offset).pack())
        self._closed = True
        try:
            self._write_frame_count()
            self._file.flush()
            if self._output is not None:
                if not self._output.direct:
                    os.fsync(self._file.fileno())
                self._file.close()
                self._output.commit()
        except OSError as error:
            self._discard()
            if isinstance(error, OutputError):
                raise
            raise OutputError(f"cannot write {self._path or 'stream'}: {error.strerror}") from error

    def _write_frame_count(self) -> None:
        """Fill in a header frame count of 0 (unknown) once the frames are all written."""
        if self.header.frame_count or not self._frame_count:
            return
        if (self._output is not None and self._output.direct) or not self._file.seekable():
            return
        self.header = dataclasses.replace(self.header, frame_count=self._frame_count)
        end = self._file.tell()
        self._file.seek(end - self.bytes_written)
        self._file.write(self.header.pack())
        self._file.seek(end)

    def _discard(self) -> None:
        """Drop a partial file: close and delete the temporary file (path targets only)."""
        self._closed = True
        if self._output is not None:
            self._file.close()
            self._output.discard()

    def _write(self, data: bytes) -> None:
        try:
            self._file.write(data)
        except OSError as error:
            self._discard()
            raise OutputError(f"cannot write {self._path or 'stream'}: {error.strerror}") from error
        self.bytes_written += len(data)

    def __enter__(self) -> StreamWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif not self._closed:
            self._discard()


class StreamReader:
    """Reads a `.ufv` file: `header`, the records front to back, `index` and `seek_intra`.

    Every read is checked (lengths, CRCs, record order, frame numbers against the header's
    chunk size and frame count, INTRA records against the index); damage raises
    CorruptStreamError, a newer format UnsupportedVersionError. A stream that ends before
    the header's frame count is an error too, unless `allow_truncated`: then its records
    are read as far as they go, and the end gives a StreamWarning.
    """

    def __init__(self, source: str | os.PathLike[str] | BinaryIO, *,
                 allow_truncated: bool = False) -> None:
        self.allow_truncated = allow_truncated
        if isinstance(source, (str, os.PathLike)):
            self.name = str(source)
            self._file: BinaryIO = open(source, "rb")  # closed in close()
            self._owns_file = True
        else:
            self.name = getattr(source, "name", "stream")
            self._file = source
            self._owns_file = False
        try:
            self._seekable = self._file.seekable()
            self._start = self._file.tell() if self._seekable else 0
            self._pos = 0
            self.header = self._read_header()
            self._data_start = self._pos
            self._next_record = 0
            self._next_frame = 0
            self._intra_seen: list[IndexEntry] = []  # INTRA records read since the start
            self._from_start = True  # no seek yet: the whole stream passes through here
            self.index = self._read_index() if self._seekable else None
        except BaseException:
            self.close()
            raise

    # -- public API ---------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Record]:
        """The records from the current position to the end of the stream."""
        while (record := self._read_record()) is not None:
            yield record[1]

    def seek_intra(self, frame_number: int) -> int:
        """Go to the last INTRA record at or before `frame_number`; returns its frame number.

        Uses the trailing index, or scans the file when it has none.
        """
        if not self._seekable:
            raise BitstreamError(f"cannot seek in {self.name}: the input is not seekable")
        if frame_number < 0:
            raise InputFormatError(f"frame number must be >= 0, got {frame_number}")
        entries = self.index.entries if self.index is not None else self._scan_intra_records()
        position = bisect.bisect_right([e.frame_number for e in entries], frame_number)
        if position == 0:
            raise CorruptStreamError(f"no intra record at or before frame {frame_number}")
        entry = entries[position - 1]
        self._go_to(entry.offset)
        self._next_record = entry.record_number
        self._next_frame = entry.frame_number
        self._intra_seen = [e for e in entries if e.record_number < entry.record_number]
        self._from_start = False
        return entry.frame_number

    def close(self) -> None:
        if self._owns_file:
            self._file.close()

    def __enter__(self) -> StreamReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reading ------------------------------------------------------------------------------

    def _read(self, size: int) -> bytes:
        """Up to `size` bytes; fewer only at the end of the input."""
        pieces = []
        while size > 0:
            piece = self._file.read(min(size, _READ_PIECE))
            if not piece:
                break
            pieces.append(piece)
            size -= len(piece)
        data = b"".join(pieces)
        self._pos += len(data)
        return data

    def _go_to(self, pos: int) -> None:
        self._file.seek(self._start + pos)
        self._pos = pos

    def _read_header(self) -> SequenceHeader:
        prefix = self._read(SequenceHeader.PREFIX.size)
        length = SequenceHeader.header_length(prefix)
        rest = self._read(length - len(prefix))
        if len(rest) != length - len(prefix):
            raise CorruptStreamError(f"truncated sequence header at byte {self._pos}")
        return SequenceHeader.unpack(prefix + rest)

    def _read_record(self) -> tuple[int, Record] | None:
        """(offset, record) of the next data record; None at the end of the stream."""
        while True:
            start, number = self._pos, self._next_record
            where = f"record {number} at byte {start}"
            header_bytes = self._read(RecordHeader.STRUCT.size)
            if not header_bytes:
                self._check_complete()  # a stream without index ends after any record
                return None
            if len(header_bytes) < RecordHeader.STRUCT.size:
                return self._cut(where)
            header = RecordHeader.unpack(header_bytes)
            payload = self._read(header.payload_length)
            if len(payload) < header.payload_length:
                return self._cut(where)
            if not header.payload_crc_matches(header_bytes, payload):
                raise CorruptStreamError(f"CRC mismatch in record {number} at byte {start}")
            if header.record_type == RecordType.INDEX:
                if (header.qp, header.flags, header.num_frames, header.first_frame) != (0,) * 4:
                    raise CorruptStreamError(f"the index {where} has nonzero header fields")
                self._check_index_record(payload, start)
                self._expect_footer(start)
                self._check_complete()
                return None
            self._next_record += 1
            if header.record_type >= FIRST_ANCILLARY_TYPE:
                continue
            if header.record_type not in DATA_RECORD_TYPES:
                raise CorruptStreamError(f"unknown type {header.record_type} in {where}")
            record = Record.from_payload(header, payload, where)
            self._check_frames(record, where)
            if record.type == RecordType.INTRA:
                self._check_intra_entry(IndexEntry(record.first_frame, number, start), where)
            self._next_frame += record.num_frames
            return start, record

    def _check_frames(self, record: Record, where: str) -> None:
        """Frame numbers run on from the previous record, within the chunk size and the
        header's frame count."""
        if record.first_frame != self._next_frame:
            raise CorruptStreamError(
                f"{where} starts at frame {record.first_frame}, expected {self._next_frame}"
            )
        if record.num_frames > self.header.chunk_size:
            raise CorruptStreamError(
                f"{where} holds {record.num_frames} frames, more than the chunk size "
                f"{self.header.chunk_size}"
            )
        end = record.first_frame + record.num_frames
        if self.header.frame_count and end > self.header.frame_count:
            raise CorruptStreamError(
                f"{where} reaches frame {end - 1}, beyond the {self.header.frame_count} "
                "frames of the header (extra or repeated records)"
            )

    def _check_intra_entry(self, entry: IndexEntry, where: str) -> None:
        """An INTRA record read must be the index's next entry, when there is an index."""
        self._intra_seen.append(entry)
        if self.index is None:
            return
        position = len(self._intra_seen)
        if self.index.entries[position - 1 : position] != (entry,):
            raise CorruptStreamError(f"{where} contradicts the index (INTRA records differ)")

    def _check_index_record(self, payload: bytes, offset: int) -> None:
        """The index record read front to back lists exactly the INTRA records read."""
        index = self.index
        if index is None:  # a pipe: the index is seen only here
            index = StreamIndex.from_payload(payload)
        if self._from_start and (tuple(self._intra_seen) != index.entries
                                 or index.total_frames != self._next_frame):
            raise CorruptStreamError(f"the index at byte {offset} does not match the records")

    def _cut(self, where: str) -> None:
        """The input ends inside a record: an error, or with `allow_truncated` the end."""
        if not self.allow_truncated:
            raise CorruptStreamError(f"truncated {where}")
        warnings.warn(f"{self.name} is cut inside {where}: decoded the {self._next_frame} "
                      "frames before it", StreamWarning, stacklevel=3)

    def _check_complete(self) -> None:
        """At the end: as many frames as the header says (0: a live stream, any number)."""
        expected = self.header.frame_count
        if not expected or self._next_frame >= expected:
            return
        message = (f"{self.name} ends after {self._next_frame} of the {expected} frames "
                   "its header announces (cut short)")
        if not self.allow_truncated:
            raise CorruptStreamError(f"{message}; --allow-truncated decodes the frames it holds")
        warnings.warn(f"{message}: decoded the {self._next_frame} frames it holds",
                      StreamWarning, stacklevel=2)

    def _expect_footer(self, index_offset: int) -> None:
        """After the index record: exactly the footer, then the end of the input."""
        footer = Footer.unpack(self._read(Footer.STRUCT.size))
        if footer is None or footer.index_offset != index_offset or self._read(1):
            raise CorruptStreamError(f"bad footer after the index at byte {index_offset}")

    def _read_index(self) -> StreamIndex | None:
        """The trailing index, or None when the file does not end in a footer."""
        end = self._file.seek(0, os.SEEK_END) - self._start
        try:
            if end < self._data_start + Footer.STRUCT.size:
                return None
            self._go_to(end - Footer.STRUCT.size)
            footer = Footer.unpack(self._read(Footer.STRUCT.size))
            if footer is None:
                return None
            index_end = end - Footer.STRUCT.size
            if not self._data_start <= footer.index_offset <= index_end - RecordHeader.STRUCT.size:
                raise CorruptStreamError("bad index offset in the footer")
            self._go_to(footer.index_offset)
            header_bytes = self._read(RecordHeader.STRUCT.size)
            header = RecordHeader.unpack(header_bytes)
            payload = self._read(index_end - self._pos)
            if (
                header.record_type != RecordType.INDEX
                or header.payload_length != len(payload)
                or not header.payload_crc_matches(header_bytes, payload)
            ):
                raise CorruptStreamError(f"bad index record at byte {footer.index_offset}")
            index = StreamIndex.from_payload(payload)
            if any(not self._data_start <= e.offset < footer.index_offset for e in index.entries):
                raise CorruptStreamError("index entry points outside the records")
            if self.header.frame_count and index.total_frames != self.header.frame_count:
                raise CorruptStreamError(
                    f"the index counts {index.total_frames} frames, the header "
                    f"{self.header.frame_count}"
                )
            return index
        finally:
            self._go_to(self._data_start)

    def _scan_intra_records(self) -> tuple[IndexEntry, ...]:
        """Index entries of the INTRA records, found by reading the whole stream."""
        self._go_to(self._data_start)
        self._next_record, self._next_frame = 0, 0
        self._intra_seen, self._from_start = [], True
        entries = []
        while (found := self._read_record()) is not None:
            offset, record = found
            if record.type == RecordType.INTRA:
                entries.append(IndexEntry(record.first_frame, self._next_record - 1, offset))
        return tuple(entries)
