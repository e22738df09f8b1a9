"""Gathering training photographs from Debian packages (here: packages built on the spot)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from PIL import Image

from tests.train.test_qt_resources import build_rcc
from ufvc.errors import InputFormatError
from ufvc.train.photos import (
    PackageRule,
    family_name,
    gather_photos,
    is_validation,
    scaled,
    select_files,
)
from ufvc.train.sources import read_listing


def _photo(path: Path, size: tuple[int, int], seed: int, alpha: bool = False) -> None:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BILINEAR)
    if alpha:
        rgba = np.dstack([np.asarray(image), np.zeros(size[::-1], np.uint8)])
        image = Image.fromarray(rgba, "RGBA")
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def _build_deb(tree: Path, name: str, debs: Path) -> None:
    """`tree` (the package's files) as debs/<name>_1.0_all.deb, with a control and a
    machine-readable copyright file."""
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN/control").write_text(
        f"Package: {name}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\n"
        "Description: test pictures\n")
    doc = tree / "usr/share/doc" / name
    doc.mkdir(parents=True)
    (doc / "copyright").write_text("Files: *\nLicense: CC-BY-SA-4.0\n")
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(tree), str(debs / f"{name}_1.0_all.deb")],
                   check=True, capture_output=True)


def test_family_names_join_the_sizes_of_one_picture():
    rule = PackageRule("pkg", ("*",))
    assert family_name(rule, PurePosixPath("a/Dune_3840x2160.jpg")) == "pkg/dune"
    assert family_name(rule, PurePosixPath("a/dune-1920x1080.png")) == "pkg/dune"
    folder = PackageRule("pkg", ("*",), family="parent3")
    inner = PurePosixPath("usr/share/wallpapers/Altai/contents/images/5120x2880.png")
    assert family_name(folder, inner) == "pkg/Altai"
    packed = PackageRule("pkg", ("*",), family="resource", rcc=("usr/share/app/rcc/*.rcc",))
    member = PurePosixPath("usr/share/app/rcc/zoo.rcc/app/zoo/resource/Giraffe_1920x1080.webp")
    assert family_name(packed, member) == "pkg/zoo/giraffe"
    with pytest.raises(ValueError, match="resource"):
        PackageRule("pkg", ("*",), family="resource")
    with pytest.raises(ValueError, match="resource"):
        PackageRule("pkg", ("*",), rcc=("*.rcc",))


def test_selection_split_and_scaling(tmp_path: Path):
    root = tmp_path / "pkg"
    _photo(root / "usr/share/bg/keep.png", (300, 280), 1)
    _photo(root / "usr/share/bg/skip_me.png", (300, 280), 2)
    (root / "usr/share/bg/readme.txt").write_text("not a picture")
    rule = PackageRule("pkg", ("usr/share/bg/*",), exclude=("*/skip_*",))
    assert select_files(rule, root) == [PurePosixPath("usr/share/bg/keep.png")]
    held_out = [f"pkg/{i}" for i in range(1000) if is_validation(f"pkg/{i}")]
    assert 60 < len(held_out) < 140  # about 10 %
    assert is_validation(held_out[0])  # fixed, not drawn
    image = Image.new("RGB", (4000, 2000))
    assert scaled(image, 1080).size == (2160, 1080)
    assert scaled(image, 4000) is image


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_gather_photos_from_built_packages(tmp_path: Path):
    debs = tmp_path / "debs"
    debs.mkdir()
    for name, pictures in {
        "walls": [("usr/share/backgrounds/sea_1920x1080.png", (640, 360), 1),
                  ("usr/share/backgrounds/sea_1280x720.png", (320, 180), 1),  # same, smaller
                  ("usr/share/backgrounds/hill.png", (500, 400), 2),
                  ("usr/share/backgrounds/tiny.png", (100, 100), 3),  # below min_side
                  ("usr/share/backgrounds/cutout.png", (400, 400), 4)],  # transparent
        "tests": [("usr/share/t/hill_copy.png", (500, 400), 2),  # in "walls" already
                  ("usr/share/t/field.png", (1200, 900), 5)],
    }.items():
        tree = tmp_path / "build" / name
        for inner, size, seed in pictures:
            _photo(tree / inner, size, seed, alpha="cutout" in inner)
        _build_deb(tree, name, debs)
    rules = (PackageRule("walls", ("usr/share/backgrounds/*",)),
             PackageRule("tests", ("usr/share/t/*",)))
    out = tmp_path / "photos"
    manifest = gather_photos(out, rules, debs=debs, max_short_side=300, log=lambda _: None)
    families = sorted(p["family"] for p in manifest["pictures"])
    assert families == ["tests/field", "walls/hill", "walls/sea"]
    sea = next(p for p in manifest["pictures"] if p["family"] == "walls/sea")
    assert sea["original_size"] == [640, 360]  # the largest copy is kept
    assert manifest["licences"]["walls"] == ["CC-BY-SA-4.0"]
    field = next(p for p in manifest["pictures"] if p["family"] == "tests/field")
    with Image.open(out / field["image"]) as image:
        assert image.size == (400, 300)
    listed = [entry["image"] for split in ("train", "val")
              for entry in json.loads((out / f"{split}.json").read_text())]
    assert sorted(listed) == sorted(p["image"] for p in manifest["pictures"])
    clips = read_listing(out / "train.json")
    assert all(clip.still and clip.images[0].is_file() for clip in clips)

    with pytest.raises(InputFormatError, match="no pictures"):
        gather_photos(tmp_path / "none", (PackageRule("tests", ("nothing/*",)),), debs=debs,
                      log=lambda _: None)


def _encoded(size: tuple[int, int], seed: int, fmt: str) -> bytes:
    rng = np.random.default_rng(seed)
    small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    small.resize(size, Image.Resampling.BILINEAR).save(buffer, fmt, lossless=True)
    return buffer.getvalue()


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_gather_photos_from_qt_resource_files(tmp_path: Path):
    debs = tmp_path / "debs"
    debs.mkdir()
    tree = tmp_path / "build"
    rcc = tree / "usr/share/edu/rcc"
    rcc.mkdir(parents=True)
    fox = _encoded((400, 300), 1, "WEBP")
    (rcc / "zoo.rcc").write_bytes(build_rcc({
        "edu/zoo/resource/fox.webp": fox,
        "edu/zoo/resource/owl.png": _encoded((300, 300), 2, "PNG"),
        "edu/zoo/resource/icon.png": _encoded((64, 64), 3, "PNG"),  # below min_side
        "edu/zoo/resource/small/fox.webp": _encoded((320, 256), 1, "WEBP"),  # a smaller copy
        "edu/zoo/Main.qml": b"import QtQuick 2.12\n",
    }, compress=["edu/zoo/resource/owl.png", "edu/zoo/Main.qml"]))
    (rcc / "farm.rcc").write_bytes(build_rcc({  # not named by the rule
        "edu/farm/resource/cow.webp": _encoded((400, 300), 5, "WEBP")}))
    _build_deb(tree, "edu", debs)
    rule = PackageRule("edu", ("usr/share/edu/rcc/zoo.rcc/*/resource/*",),
                       family="resource", rcc=("usr/share/edu/rcc/zoo.rcc",))
    out = tmp_path / "photos"
    manifest = gather_photos(out, (rule,), debs=debs, log=lambda _: None)
    pictures = {p["source"]: p for p in manifest["pictures"]}
    assert sorted(pictures) == [
        "usr/share/edu/rcc/zoo.rcc/edu/zoo/resource/fox.webp",
        "usr/share/edu/rcc/zoo.rcc/edu/zoo/resource/owl.png"]
    fox_entry = pictures["usr/share/edu/rcc/zoo.rcc/edu/zoo/resource/fox.webp"]
    assert fox_entry["family"] == "edu/zoo/fox" and fox_entry["original_size"] == [400, 300]
    with Image.open(out / fox_entry["image"]) as image:  # decoded from the WebP member
        assert image.size == (400, 300)
        assert np.array_equal(np.asarray(image.convert("RGB")),
                              np.asarray(Image.open(io.BytesIO(fox)).convert("RGB")))
    assert manifest["licences"]["edu"] == ["CC-BY-SA-4.0"]
    unpacked = out / "packages/edu.rcc/usr/share/edu/rcc"
    assert not (unpacked / "farm.rcc").exists()
    assert not (unpacked / "zoo.rcc/edu/zoo/Main.qml").exists()  # pictures only
    extracted = unpacked / "zoo.rcc/edu/zoo/resource/fox.webp"
    assert extracted.read_bytes() == fox
    written = extracted.stat().st_mtime_ns
    again = gather_photos(out, (rule,), debs=debs, log=lambda _: None)
    assert again["pictures"] == manifest["pictures"]
    assert extracted.stat().st_mtime_ns == written  # unpacked once, not on every run
