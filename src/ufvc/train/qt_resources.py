"""Reading Qt's binary resource files (`.rcc`, written by `rcc --binary`).

No maintained Python library reads .rcc files (Qt's own bindings, PyQt and PySide, can
register one with `QResource`, but are far too heavy a dependency for that), so this is a
small reader of its own, written from the layout that Qt's `rcc` writes and `QResource`
reads (qtbase: src/tools/rcc/rcc.cpp, src/corelib/io/qresource.cpp). All numbers are
big-endian.

* Header: the magic `qres`, then four uint32: format version (1, 2 or 3), the offsets
  in the file of the tree, of the data and of the names; version 3 adds a uint32 of
  overall flags (which compressions occur). Every offset below is relative to the start
  of its section.
* Tree: an array of nodes, 14 bytes each in version 1 and 22 in versions 2 and 3 (an
  extra uint64: last change, milliseconds since 1970). A node is: uint32 offset of its
  name, uint16 flags (1: zlib-compressed, 2: directory, 4: zstd-compressed), then for a
  directory uint32 child count and uint32 index of its first child (the children are
  consecutive nodes), and for a file uint16 territory, uint16 language and uint32 offset
  of its data. Node 0 is the nameless root directory.
* Names: uint16 length in UTF-16 code units, uint32 hash (qt_hash, not checked here),
  then the name in UTF-16 big-endian. A name is one path component.
* Data: uint32 length, then the stored bytes. A zlib-compressed entry stores what
  Qt's `qCompress` writes: a uint32 uncompressed length, then a zlib stream.

Every offset, count and length is checked against the file before it is used, and the
declared uncompressed length against `max_size` before anything is decompressed, so a
damaged or hostile file raises `InputFormatError` rather than allocating what it claims.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from ufvc.errors import InputFormatError

MAGIC = b"qres"
MAX_MEMBER_SIZE = 1 << 28  # 256 MiB: far above any picture, far below what a length can claim

_COMPRESSED_ZLIB = 0x01
_DIRECTORY = 0x02
_COMPRESSED_ZSTD = 0x04


@dataclass(frozen=True)
class ResourceMember:
    """One file inside a resource file: where its stored bytes lie and how they are packed."""

    path: str  # "/"-separated, relative to the resource root
    compression: str  # "none", "zlib" or "zstd"
    offset: int  # of the stored bytes in the resource file
    size: int  # stored (possibly compressed) bytes


class QtResourceFile:
    """The members of one .rcc file, read from its bytes: `members` lists them (in the
    tree's order, depth first), `read` returns one member's content."""

    def __init__(self, data: bytes, name: str = "Qt resource file",
                 max_size: int = MAX_MEMBER_SIZE) -> None:
        self._data = data
        self.name = name
        self.max_size = max_size
        if data[:4] != MAGIC:
            raise self._error("not a Qt resource file (no 'qres' header)")
        version, tree, payload, names = self._unpack(">IIII", 4, "the header")
        if version not in (1, 2, 3):
            raise self._error(f"format version {version} is not supported (1 to 3 are)")
        self._node_size = 14 if version == 1 else 22
        self._tree, self._payload, self._names = tree, payload, names
        self.members = self._walk()

    def read(self, member: ResourceMember) -> bytes:
        """The member's content, decompressed."""
        stored = self._data[member.offset:member.offset + member.size]
        if member.compression == "none":
            return stored
        if member.compression == "zstd":
            raise self._error(f"{member.path} is zstd-compressed, which this reader "
                              "does not read")
        if len(stored) < 4:
            raise self._error(f"{member.path}: compressed entry without its length")
        (expected,) = struct.unpack_from(">I", stored)
        if expected > self.max_size:
            raise self._error(f"{member.path} claims {expected} bytes uncompressed, more "
                              f"than the limit of {self.max_size}")
        inflater = zlib.decompressobj()
        try:
            content = inflater.decompress(stored[4:], expected + 1)
        except zlib.error as exc:
            raise self._error(f"{member.path}: damaged zlib data ({exc})") from None
        if len(content) != expected or not inflater.eof:
            raise self._error(f"{member.path}: zlib data does not hold the {expected} "
                              "bytes it declares")
        return content

    def _error(self, message: str) -> InputFormatError:
        return InputFormatError(f"{self.name}: {message}")

    def _unpack(self, fmt: str, offset: int, what: str) -> tuple[int, ...]:
        if offset < 0 or offset + struct.calcsize(fmt) > len(self._data):
            raise self._error(f"truncated or damaged: {what} lies outside the file")
        return struct.unpack_from(fmt, self._data, offset)

    def _name(self, node_offset: int) -> str:
        (name_offset,) = self._unpack(">I", node_offset, "a node")
        start = self._names + name_offset
        (length,) = self._unpack(">H", start, "a name")
        end = start + 6 + 2 * length
        if end > len(self._data):
            raise self._error("truncated or damaged: a name runs past the end of the file")
        try:
            name = self._data[start + 6:end].decode("utf-16-be")
        except UnicodeDecodeError:
            raise self._error("damaged: a name is not UTF-16") from None
        if name in ("", ".", "..") or "/" in name or "\0" in name:
            raise self._error(f"damaged: {name!r} is not a file name")
        return name

    def _walk(self) -> tuple[ResourceMember, ...]:
        node_count = (len(self._data) - self._tree) // self._node_size
        if self._tree > len(self._data) or node_count < 1:
            raise self._error("truncated or damaged: the tree lies outside the file")
        members: list[ResourceMember] = []
        visited = {0}
        pending: list[tuple[int, str]] = [(0, "")]
        while pending:
            index, parent = pending.pop()
            node = self._tree + index * self._node_size
            path = "/".join(filter(None, (parent, self._name(node) if index else "")))
            (flags,) = self._unpack(">H", node + 4, "a node")
            if index == 0 and not flags & _DIRECTORY:
                raise self._error("damaged: the root of the tree is not a directory")
            if flags & _DIRECTORY:
                count, first = self._unpack(">II", node + 6, "a directory")
                if first + count > node_count:
                    raise self._error("truncated or damaged: a directory's children lie "
                                      "outside the tree")
                children = range(first, first + count)
                if visited.intersection(children):
                    raise self._error("damaged: a node is listed twice in the tree")
                visited.update(children)
                pending.extend((child, path) for child in reversed(children))
                continue
            (data_offset,) = self._unpack(">I", node + 10, "a file node")
            start = self._payload + data_offset
            (size,) = self._unpack(">I", start, "an entry's length")
            if start + 4 + size > len(self._data):
                raise self._error(f"truncated: {path} runs past the end of the file")
            compression = ("zstd" if flags & _COMPRESSED_ZSTD
                           else "zlib" if flags & _COMPRESSED_ZLIB else "none")
            members.append(ResourceMember(path, compression, start + 4, size))
        return tuple(members)
