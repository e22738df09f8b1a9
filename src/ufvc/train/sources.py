"""Training clips: where frames come from, and the on-disk cache of decoded frames.

Every source (video files, PNG sequences, a JSON listing, still images) becomes a list of
`Clip`s. A clip yields YCbCr 4:4:4 uint8 frames [3, H, W]: video planes are taken as
decoded (4:2:0 chroma upsampled by nearest neighbour, 10-bit scaled to 8), RGB images are
converted with BT.709 full range (`ufvc.io.color`).

Decoding a compressed video at a random frame means decoding from the previous key frame,
so videos are decoded once into `FrameCache` (uint8 .npy segments, memory-mapped when
read); PNG sequences and images are cheap to decode and are cached only when asked.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import secrets
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ufvc.errors import InputFormatError
from ufvc.io import open_reader
from ufvc.io.color import rgb_to_frame, upsample_420_to_444
from ufvc.io.png import list_frame_files
from ufvc.io.types import Frame
from ufvc.samples import sample_clip
from ufvc.train.config import SourceConfig

CACHE_VERSION = 1  # bump when the cached layout or conversion changes
SEGMENT_FRAMES = 16  # frames per cached .npy file
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".mov", ".avi", ".webm", ".y4m", ".m4v", ".ts", ".mpg",
                  ".mpeg", ".ogv")


def frame_to_u8_444(frame: Frame) -> np.ndarray:
    """A decoded frame as uint8 YCbCr 4:4:4 [3, H, W]."""
    planes = []
    for plane in frame.planes:
        if frame.bit_depth > 8:
            shift = frame.bit_depth - 8
            plane = np.minimum((plane.astype(np.uint32) + (1 << (shift - 1))) >> shift, 255)
        plane = plane.astype(np.uint8)
        if plane.shape != frame.y.shape:
            plane = upsample_420_to_444(plane)
        planes.append(plane)
    return np.stack(planes)


def load_image(path: Path) -> np.ndarray:
    """An image file as uint8 YCbCr 4:4:4 [3, H, W] (greyscale gets neutral chroma)."""
    try:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError) as error:
        raise InputFormatError(f"{path}: cannot read image ({error})") from None
    return frame_to_u8_444(rgb_to_frame(rgb, chroma="444"))


def _file_identity(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


@dataclass
class Clip:
    """One clip of a source: a video file, a list of image files, or one still image.

    `start`/`stop` select the frames that may be used (negative values count from the
    end; `stop` None is the end). `still` clips are single images that become moving
    sequences by synthetic motion.
    """

    label: str
    video: Path | None = None
    images: list[Path] = field(default_factory=list)
    still: bool = False
    start: int = 0
    stop: int | None = None
    cache: bool = True

    def cache_key(self) -> str:
        if self.video is not None:
            identity = _file_identity(self.video)
        else:
            identity = f"{len(self.images)}|" + "|".join(
                _file_identity(p) for p in (self.images[0], self.images[-1])
            )
        text = f"ufvc-frames-v{CACHE_VERSION}|{identity}"
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def known_length(self) -> int | None:
        """The number of frames without decoding, where the files tell."""
        return None if self.video is not None else len(self.images)

    def decode(self) -> Iterator[np.ndarray]:
        """All frames in order, decoded (uint8 [3, H, W])."""
        if self.video is not None:
            with open_reader(self.video) as reader:
                for frame in reader:
                    yield frame_to_u8_444(frame)
        else:
            for path in self.images:
                yield load_image(path)

    def frame_range(self, num_frames: int) -> tuple[int, int]:
        """The usable [first, end) frames of a clip of `num_frames` frames."""
        first, end, _ = slice(self.start, self.stop).indices(num_frames)
        return first, max(first, end)


class CachedFrames:
    """Read access to one clip's decoded frames, from the cache or straight from images."""

    def __init__(self, clip: Clip, folder: Path | None, meta: dict) -> None:
        self.clip = clip
        self.folder = folder
        self.num_frames = int(meta["frames"])
        self.height = int(meta["height"])
        self.width = int(meta["width"])
        self.segment = int(meta.get("segment", SEGMENT_FRAMES))
        self._open: OrderedDict[int, np.ndarray] = OrderedDict()

    def _segment(self, index: int) -> np.ndarray:
        if index in self._open:
            self._open.move_to_end(index)
            return self._open[index]
        array = np.load(self.folder / f"seg_{index:05d}.npy", mmap_mode="r")
        self._open[index] = array
        if len(self._open) > 8:
            self._open.popitem(last=False)
        return array

    def read(
        self, indices: list[int], window: tuple[int, int, int, int] | None = None
    ) -> np.ndarray:
        """Frames `indices` as uint8 [T, 3, h, w], cut to `window` = (top, left, h, w)."""
        top, left, h, w = window or (0, 0, self.height, self.width)
        out = np.empty((len(indices), 3, h, w), dtype=np.uint8)
        for i, index in enumerate(indices):
            if not 0 <= index < self.num_frames:
                raise IndexError(f"frame {index} of {self.clip.label} ({self.num_frames})")
            if self.folder is not None:
                segment = self._segment(index // self.segment)
                out[i] = segment[index % self.segment, :, top : top + h, left : left + w]
            else:
                frame = load_image(self.clip.images[index])
                out[i] = frame[:, top : top + h, left : left + w]
        return out


class FrameCache:
    """Decoded frames on disk: one folder per clip of uint8 .npy segments and a meta.json.

    Folders are named by a hash of the source file's path, size and modification time, so
    a changed file is decoded again. Every file is written aside and renamed into place,
    and meta.json is written last, so a reader never sees a half-written clip and two
    processes filling the same clip at once only repeat work.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(os.path.expanduser(str(root)))

    def folder(self, clip: Clip) -> Path:
        return self.root / clip.cache_key()

    def _read_meta(self, clip: Clip) -> dict | None:
        path = self.folder(clip) / "meta.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return None

    def fill(self, clip: Clip) -> dict:
        """Decode `clip` into the cache unless it is there; return its meta data."""
        meta = self._read_meta(clip)
        if meta is not None:
            return meta
        folder = self.folder(clip)
        folder.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        pending: list[np.ndarray] = []
        count = segments = 0
        shape = None

        def flush() -> None:
            nonlocal segments
            tmp = folder / f".seg_{segments:05d}.{token}.npy"
            np.save(tmp, np.stack(pending))
            os.replace(tmp, folder / f"seg_{segments:05d}.npy")
            segments += 1
            pending.clear()

        for frame in clip.decode():
            if shape is None:
                shape = frame.shape
            elif frame.shape != shape:
                raise InputFormatError(f"{clip.label}: frame {count} changes size")
            pending.append(frame)
            count += 1
            if len(pending) == SEGMENT_FRAMES:
                flush()
        if pending:
            flush()
        if shape is None:
            raise InputFormatError(f"{clip.label}: no frames")
        meta = {
            "frames": count,
            "height": int(shape[1]),
            "width": int(shape[2]),
            "segment": SEGMENT_FRAMES,
            "source": clip.label,
        }
        tmp = folder / f".meta.{token}.json"
        tmp.write_text(json.dumps(meta))
        os.replace(tmp, folder / "meta.json")
        return meta

    def open(self, clip: Clip) -> CachedFrames:
        """Frame access for `clip`, decoding it into the cache first where needed."""
        if clip.cache or clip.video is not None:
            return CachedFrames(clip, self.folder(clip), self.fill(clip))
        first = load_image(clip.images[0])
        meta = {"frames": len(clip.images), "height": first.shape[1], "width": first.shape[2]}
        return CachedFrames(clip, None, meta)


def skimage_data_folder() -> Path:
    """The folder of sample images installed with scikit-image (located, not imported)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise InputFormatError(
            "images with skimage = true need scikit-image: pip install scikit-image"
        )
    for location in spec.submodule_search_locations:
        folder = Path(location) / "data"
        if folder.is_dir():
            return folder
    raise InputFormatError("scikit-image is installed but has no data folder")


def _range_for(cfg: SourceConfig, name: str) -> tuple[int, int | None]:
    return cfg.ranges.get(name, (cfg.start, cfg.stop))


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() or base is None else base / p


def _video_clips(cfg: SourceConfig, base: Path | None) -> list[Clip]:
    root = _resolve(cfg.path, base)
    if cfg.kind == "video_folder" and not root.is_dir():
        raise InputFormatError(f"source {cfg.label!r}: {root} is not a folder")
    if root.is_dir():
        if cfg.files:
            paths = [root / name for name in cfg.files]
        else:
            found = root.rglob("*") if cfg.kind == "video_folder" else root.iterdir()
            paths = sorted(p for p in found
                           if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)
    elif root.is_file():
        paths = [root]
    else:
        raise InputFormatError(f"source {cfg.label!r}: {root} not found")
    clips = []
    for path in paths:
        if not path.is_file():
            raise InputFormatError(f"source {cfg.label!r}: {path} not found")
        start, stop = _range_for(cfg, path.name)
        clips.append(Clip(label=str(path), video=path, start=start, stop=stop))
    return clips


def _image_clips(cfg: SourceConfig, base: Path | None) -> list[Clip]:
    if cfg.skimage:
        root = skimage_data_folder()
    else:
        root = _resolve(cfg.path, base)
    if root.is_dir():
        if cfg.files:
            paths = [root / name for name in cfg.files]
        else:
            paths = sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    elif root.is_file():
        paths = [root]
    else:
        raise InputFormatError(f"source {cfg.label!r}: {root} not found")
    clips = []
    for path in paths:
        if not path.is_file():
            raise InputFormatError(f"source {cfg.label!r}: {path} not found")
        try:
            with Image.open(path) as image:
                width, height = image.size
        except (UnidentifiedImageError, OSError):
            continue  # the folder may hold other files (scikit-image's holds .npy, .xml)
        if min(width, height) < cfg.min_size:
            continue
        clips.append(Clip(label=str(path), images=[path], still=True, cache=cfg.cache))
    return clips


def _image_files(folder: Path) -> list[Path]:
    return list_frame_files(folder) if folder.is_dir() else []


def _png_sequence_clips(cfg: SourceConfig, base: Path | None) -> list[Clip]:
    root = _resolve(cfg.path, base)
    if not root.is_dir():
        raise InputFormatError(f"source {cfg.label!r}: {root} is not a folder")
    if cfg.list_file:
        # Vimeo-90k: the list names "xxxxx/yyyy" folders under sequences/.
        list_path = _resolve(cfg.list_file, root)
        try:
            names = [line.strip() for line in list_path.read_text().splitlines()]
        except OSError as error:
            raise InputFormatError(f"source {cfg.label!r}: cannot read {list_path}: "
                                   f"{error.strerror}") from None
        seq_root = root / "sequences" if (root / "sequences").is_dir() else root
        folders = [seq_root / name for name in names if name]
    else:
        folders = sorted({p.parent for p in root.rglob("*.png")})
    clips = []
    for folder in folders:
        if not folder.is_dir():
            raise InputFormatError(f"source {cfg.label!r}: {folder} not found")
        files = _image_files(folder)
        start, stop = _range_for(cfg, folder.name)
        clips.append(
            Clip(label=str(folder), images=files, start=start, stop=stop, cache=cfg.cache)
        )
    return clips


def read_listing(path: Path, *, cache: bool = True, min_size: int = 0) -> list[Clip]:
    """Clips listed in a JSON file (paths relative to the file's folder).

    The file holds a list of entries, or {"sequences": [...]}; each entry has one of
    "video" (a video file), "frames" (a folder of PNGs or a pattern like a/%05d.png) or
    "image" (a still image), and optionally "start" and "stop" (frame range, stop
    exclusive, negative from the end). `cache` applies to image files; videos are
    always cached. Still images whose shorter side is under `min_size` are left out.
    """
    try:
        data = json.loads(path.read_text())
    except OSError as error:
        raise InputFormatError(f"cannot read listing {path}: {error.strerror}") from None
    except ValueError as error:
        raise InputFormatError(f"{path}: not valid JSON ({error})") from None
    entries = data.get("sequences") if isinstance(data, dict) else data
    if not isinstance(entries, list):
        raise InputFormatError(f"{path}: expected a list of sequences")
    base = path.parent
    clips = []
    for i, entry in enumerate(entries):
        keys = [k for k in ("video", "frames", "image") if isinstance(entry, dict) and k in entry]
        if len(keys) != 1:
            raise InputFormatError(
                f"{path}: entry {i} needs exactly one of 'video', 'frames', 'image'"
            )
        start, stop = entry.get("start", 0), entry.get("stop")
        if not isinstance(start, int) or not (stop is None or isinstance(stop, int)):
            raise InputFormatError(f"{path}: entry {i}: start and stop must be integers")
        target = _resolve(str(entry[keys[0]]), base)
        if keys[0] == "video":
            if not target.is_file():
                raise InputFormatError(f"{path}: entry {i}: {target} not found")
            clips.append(Clip(label=str(target), video=target, start=start, stop=stop))
        elif keys[0] == "frames":
            files = list_frame_files(target)
            clips.append(Clip(label=str(target), images=files, start=start, stop=stop,
                              cache=cache))
        else:
            if not target.is_file():
                raise InputFormatError(f"{path}: entry {i}: {target} not found")
            if min_size and min(_image_size(target, f"{path}: entry {i}")) < min_size:
                continue
            clips.append(Clip(label=str(target), images=[target], still=True, cache=cache))
    return clips


def _image_size(path: Path, where: str) -> tuple[int, int]:
    try:
        with Image.open(path) as image:
            return image.size
    except (UnidentifiedImageError, OSError):
        raise InputFormatError(f"{where}: {path} is not a readable image") from None


def build_clips(cfg: SourceConfig, base: Path | None = None) -> list[Clip]:
    """The clips of one configured source; relative paths are taken from `base`."""
    if cfg.kind in ("video", "video_folder"):
        clips = _video_clips(cfg, base)
    elif cfg.kind == "sample_clips":
        clips = []
        for name in cfg.names:
            path = sample_clip(name)
            start, stop = _range_for(cfg, name)
            clips.append(Clip(label=name, video=path, start=start, stop=stop))
    elif cfg.kind == "png_sequences":
        clips = _png_sequence_clips(cfg, base)
    elif cfg.kind == "listing":
        clips = read_listing(_resolve(cfg.path, base), cache=cfg.cache, min_size=cfg.min_size)
    elif cfg.kind == "images":
        clips = _image_clips(cfg, base)
    else:
        raise InputFormatError(f"unknown source kind {cfg.kind!r}")
    if not clips:
        raise InputFormatError(f"source {cfg.label!r} holds no usable clip")
    return clips
