"""Reading Qt resource files (.rcc): files built here byte by byte, then read, damaged, cut."""

from __future__ import annotations

import random
import struct
import tracemalloc
import zlib
from collections.abc import Iterable

import pytest

from ufvc.errors import InputFormatError
from ufvc.train.qt_resources import QtResourceFile


def build_rcc(files: dict[str, bytes], *, compress: Iterable[str] = (), version: int = 3,
              flags: dict[str, int] | None = None) -> bytes:
    """A Qt resource file holding `files` (path: content) laid out as Qt's `rcc --binary`
    lays it out: header, data, names, then the tree (breadth-first, children consecutive).
    The members named in `compress` are stored as `qCompress` stores them; `flags` forces
    a member's node flags."""
    compress, flags = set(compress), flags or {}
    root: dict = {}
    for path in files:
        *folders, name = path.split("/")
        node = root
        for folder in folders:
            node = node.setdefault(folder, {})
        node[name] = path
    nodes: list[tuple[str, dict | str]] = [("", root)]
    first_child: dict[int, int] = {}
    for index, (_, item) in enumerate(nodes):  # grows while it is walked: breadth-first
        if isinstance(item, dict):
            first_child[index] = len(nodes)
            nodes.extend(sorted(item.items()))
    data, names, tree = bytearray(), bytearray(), bytearray()
    for index, (name, item) in enumerate(nodes):
        encoded = name.encode("utf-16-be")
        name_offset = len(names)
        names += struct.pack(">HI", len(encoded) // 2, 0) + encoded  # the hash is not read
        if isinstance(item, dict):
            tree += struct.pack(">IHII", name_offset, 0x02, len(item), first_child[index])
        else:
            stored, flag = files[item], 0
            if item in compress:
                stored, flag = struct.pack(">I", len(stored)) + zlib.compress(stored), 0x01
            tree += struct.pack(">IHHHI", name_offset, flags.get(item, flag), 0, 0, len(data))
            data += struct.pack(">I", len(stored)) + stored
        if version >= 2:
            tree += struct.pack(">Q", 1_700_000_000_000)  # last change
    header_size = 24 if version == 3 else 20
    names_start = header_size + len(data)
    tree_start = names_start + len(names)
    header = b"qres" + struct.pack(">IIII", version, tree_start, header_size, names_start)
    if version == 3:
        header += struct.pack(">I", 0x01 if compress else 0)
    return header + bytes(data) + bytes(names) + bytes(tree)


FILES = {
    "app/resource/photo.webp": b"RIFF....WEBPVP8L" + bytes(range(256)) * 40,
    "app/resource/deep/notes.txt": "Überschrift: zwölf Boxkämpfer".encode(),
    "app/Main.qml": b"import QtQuick 2.12\n" * 50,
    "top.bin": b"",
}


def _read_all(blob: bytes, **kwargs) -> dict[str, bytes]:
    resources = QtResourceFile(blob, "test.rcc", **kwargs)
    return {member.path: resources.read(member) for member in resources.members}


@pytest.mark.parametrize("version", [1, 2, 3])
def test_members_come_back_with_their_paths_and_bytes(version: int):
    compressed = {"app/resource/photo.webp", "app/Main.qml"}
    blob = build_rcc(FILES, compress=compressed, version=version)
    resources = QtResourceFile(blob)
    assert {m.path: m.compression for m in resources.members} == {
        path: "zlib" if path in compressed else "none" for path in FILES}
    assert _read_all(blob) == FILES
    photo = next(m for m in resources.members if m.path.endswith("photo.webp"))
    assert photo.size < len(FILES[photo.path])  # stored compressed


def test_damaged_headers_and_trees_are_clear_errors():
    blob = build_rcc(FILES, compress=["app/Main.qml"])
    for bad, message in [
        (b"", "no 'qres' header"),
        (b"RIFF" + blob[4:], "no 'qres' header"),
        (blob[:4] + struct.pack(">I", 4) + blob[8:], "version 4 is not supported"),
        (blob[:8] + struct.pack(">I", len(blob) + 5) + blob[12:], "tree lies outside"),
    ]:
        with pytest.raises(InputFormatError, match=message):
            _read_all(bad)
    # a root directory that lists itself as its own child: a loop, not a hang
    tree = struct.unpack_from(">I", blob, 8)[0]
    looped = bytearray(blob)
    struct.pack_into(">I", looped, tree + 10, 0)
    with pytest.raises(InputFormatError, match="listed twice"):
        _read_all(bytes(looped))


@pytest.mark.parametrize("name", ["..", ".", "", "a/b"])
def test_names_that_are_not_one_path_component_are_refused(name: str):
    if "/" in name:  # the builder splits paths at "/": rename a folder in place instead
        blob = build_rcc({"xyz/y.png": b"123"}).replace("xyz".encode("utf-16-be"),
                                                         name.encode("utf-16-be"))
    else:
        blob = build_rcc({f"{name}/y.png": b"123"})
    with pytest.raises(InputFormatError, match="is not a file name"):
        _read_all(blob)


def test_every_truncation_is_a_clear_error():
    blob = build_rcc(FILES, compress=["app/resource/photo.webp"])
    for cut in range(len(blob)):
        with pytest.raises(InputFormatError):
            _read_all(blob[:cut])


def test_random_damage_never_escapes_as_another_exception():
    blob = build_rcc(FILES, compress=["app/resource/photo.webp", "app/Main.qml"])
    rng = random.Random(7)
    outcomes = {"read": 0, "refused": 0}
    for _ in range(2000):
        damaged = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            _read_all(bytes(damaged))
            outcomes["read"] += 1
        except InputFormatError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 0 and outcomes["read"] > 0  # both paths were taken


def test_declared_sizes_are_checked_before_anything_is_allocated():
    # a member that claims 4 GiB uncompressed: refused from its header, never inflated
    blob = bytearray(build_rcc({"big.png": b"x" * 100}, compress=["big.png"]))
    length_at = 24 + 4  # data section: entry length, then qCompress's uncompressed length
    struct.pack_into(">I", blob, length_at, 0xFFFF_FFFF)
    with pytest.raises(InputFormatError, match="claims 4294967295 bytes"):
        _read_all(bytes(blob))
    # a zlib bomb: 64 MiB of zeros declared as 100 bytes; inflating stops at 101 bytes
    bomb = bytearray(build_rcc({"bomb.png": bytes(64 << 20)}, compress=["bomb.png"]))
    struct.pack_into(">I", bomb, length_at, 100)
    tracemalloc.start()
    try:
        with pytest.raises(InputFormatError, match="does not hold the 100 bytes"):
            _read_all(bytes(bomb))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20  # the bomb itself is ~64 KiB; nothing near 64 MiB was made
    # a limit of the caller's choosing applies the same way
    small = build_rcc({"a.png": b"y" * 1000}, compress=["a.png"])
    assert _read_all(small, max_size=1000)["a.png"] == b"y" * 1000
    with pytest.raises(InputFormatError, match="more than the limit of 999"):
        _read_all(small, max_size=999)


def test_damaged_zlib_and_zstd_members_are_clear_errors():
    blob = bytearray(build_rcc({"a.png": b"z" * 500}, compress=["a.png"]))
    blob[24 + 8 + 2] ^= 0xFF  # inside the zlib stream, after its two header bytes
    with pytest.raises(InputFormatError, match="a.png"):
        _read_all(bytes(blob))
    zstd = build_rcc({"b.png": b"abc"}, flags={"b.png": 0x04})
    resources = QtResourceFile(zstd)
    assert [(m.path, m.compression) for m in resources.members] == [("b.png", "zstd")]
    with pytest.raises(InputFormatError, match="zstd"):
        resources.read(resources.members[0])
