"""Training photographs from Debian's packages: fetch, select, de-duplicate, split.

`gather_photos` downloads the packages of `PACKAGES` with `apt-get download` (no
installation, nothing written outside the output folder), unpacks them with
`dpkg-deb -x`, keeps the files each package's rule selects, drops repeats (the same
picture at several resolutions, across packages too), scales every picture so that its
short side is at most `max_short_side` (large wallpapers are JPEGs: scaling down removes
most of their compression noise), and writes PNGs plus two listings that `ufvc train`
reads as `kind = "listing"` sources: `train.json` and `val.json`. The split is decided
by a hash of each picture's family name, so it never changes when packages are added.
`manifest.json` lists every kept picture with its package, original path, licences and
split. Pictures packed in Qt resource files (.rcc) are unpacked first
(`ufvc.train.qt_resources`).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from ufvc.errors import InputFormatError, UfvcError
from ufvc.train.qt_resources import QtResourceFile
from ufvc.train.sources import IMAGE_SUFFIXES as SOURCE_SUFFIXES

# What training reads, plus the netpbm files of libjxl's test data (PIL reads them).
IMAGE_SUFFIXES = (*SOURCE_SUFFIXES, ".ppm", ".pgm")
VAL_PERCENT = 10  # share of picture families held out for validation


@dataclass(frozen=True)
class PackageRule:
    """Which files of one Debian package are training pictures.

    `include` and `exclude` are shell patterns matched against the path inside the
    package; `family` names a picture, so that the copies of one picture at several
    resolutions are one family (the largest copy is kept); `content` is "photo" for
    photographs, "sky" for astronomical photographs, "mixed" for a mix of photographs
    and illustrations. `rcc` names (shell patterns) the package's Qt resource files
    whose members are the pictures: the patterns then see each member at
    `<path of the .rcc file>/<path inside it>`, and its family is the resource file's
    name and the member's stem (family "resource"; within one resource file, as with
    "stem", files of one name in several folders are copies of one picture).
    """

    package: str
    include: tuple[str, ...]
    content: str = "photo"
    exclude: tuple[str, ...] = ()
    family: str = "stem"  # "stem": file name less size suffixes; "parent3": 3 folders up;
    # "resource": the .rcc file's name and the member's stem (goes with `rcc`)
    rcc: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.family == "resource") != bool(self.rcc):
            raise ValueError(f"{self.package}: family 'resource' goes with rcc patterns, "
                             "and only with them")


_SIZE_SUFFIX = re.compile(r"([_-](\d+x\d+|\d{3,4}|[ld]|srgb8|small))+$", re.IGNORECASE)

# Pictures that would overlap what the project evaluates on, or that are test charts.
_OPENCV_EXCLUDE = (
    "*/chessboard*", "*/gradient*", "*/digits*", "*/ellipses*", "*/pic*.png", "*/box*",
    "*/left*", "*/right*", "*/text_*", "*/imageTextN*", "*/imageTextR*", "*/notes*",
    "*/mask*", "*/HappyFish*", "*/ml.png", "*/sudoku*", "*/cards*", "*/board*",
    "*/blox*", "*/detect_blob*", "*/templ*", "*/graf*", "*/stuff*", "*/logo*",
    "*/opencv-logo*", "*/data01*", "*/letter*", "*/npp*", "*/lena_tmpl*",
)

# GCompris's activities with photographs (one .rcc file each) and where, inside the
# activity's resource folder, the photographs lie; "details" also holds Van Gogh's paintings.
_GCOMPRIS_RCC = "usr/share/gcompris-qt/rcc/{}.rcc"
_GCOMPRIS_PHOTOS = {
    "erase": "*.webp", "explore_monuments": "*/*.webp", "explore_world_animals": "animals/*",
    "explore_farm_animals": "animals/*", "explore_world_music": "music/*",
    "clickgame": "sea*.webp", "details": "image/*_background.webp",
    "categorization": "images/*/*",
}

PACKAGES: tuple[PackageRule, ...] = (
    PackageRule("plasma-workspace-wallpapers", ("usr/share/wallpapers/*/contents/images/*",),
                content="mixed", family="parent3"),
    PackageRule("mate-backgrounds", ("usr/share/backgrounds/mate/*/*",), content="mixed"),
    PackageRule("ukui-wallpapers", ("usr/share/backgrounds/*",), content="mixed"),
    PackageRule("lomiri-wallpapers", ("usr/share/backgrounds/*",), content="mixed"),
    PackageRule("lomiri-wallpapers-16.04", ("usr/share/backgrounds/*",)),
    PackageRule("lomiri-wallpapers-20.04", ("usr/share/backgrounds/*",)),
    PackageRule("gnome-backgrounds", ("usr/share/backgrounds/gnome/*",), content="mixed"),
    PackageRule("libjxl-testdata",
                ("usr/share/libjxl-testdata/jxl/flower/flower.png",
                 "usr/share/libjxl-testdata/jxl/hdr_room.png",
                 "usr/share/libjxl-testdata/external/wesaturate/500px/*_srgb8.png",
                 "usr/share/libjxl-testdata/external/raw.pixls/*.png")),
    PackageRule("opencv-doc",
                ("usr/share/doc/opencv-doc/examples/data/*",
                 "usr/share/doc/opencv-doc/examples/text/scenetext0*.jpg"),
                exclude=_OPENCV_EXCLUDE),
    PackageRule("stellarium-data", ("usr/share/stellarium/nebulae/default/*",), content="sky"),
    PackageRule("gcompris-qt-data",
                tuple(f"{_GCOMPRIS_RCC.format(a)}/gcompris/src/activities/{a}/resource/{p}"
                      for a, p in _GCOMPRIS_PHOTOS.items()),
                exclude=("*/details/*Gogh*", "*/details/*PereTanguy*", "*/details/*Auvers*"),
                family="resource", rcc=tuple(_GCOMPRIS_RCC.format(a) for a in _GCOMPRIS_PHOTOS)),
    PackageRule("kphotoalbum", ("usr/share/kphotoalbum/demo/*.jpg",),
                exclude=("*/CategoryImages/*",)),
    PackageRule("tuxpaint-data", ("usr/share/tuxpaint/templates/*.jpg",
                                  "usr/share/tuxpaint/starters/skyline-sf-dusk-back.jpeg",
                                  "usr/share/tuxpaint/starters/reef-back.png")),
    PackageRule("tuxtype-data", ("usr/share/tuxtype/images/kcas*.jpg",
                                 "usr/share/tuxtype/images/hidden.jpg")),
    PackageRule("lxqt-themes", ("usr/share/lxqt/wallpapers/*",),
                exclude=("*/origami*", "*/lxqt-origami*", "*/triangles*", "*/waves*",
                         "*/simple_blue*", "*/plasma*", "*/kde-plasma*")),
    PackageRule("kalzium-data", ("usr/share/kalzium/data/toolpics/*",)),
    PackageRule("gramps", ("usr/share/doc/gramps/example/gramps/*.jpg",),
                exclude=("*/Alimehemet.jpg",)),  # an engraving
    PackageRule("palapeli-data", ("usr/share/palapeli/collection/*.jpg",)),
    PackageRule("scribus-template", tuple(f"usr/share/scribus/templates/{name}.jpg" for name in (
        "br2/nature", "br2/sunset", "cal2/moon", "menu2/pizza"))),
    PackageRule("python3-sklearn",
                ("usr/lib/python3/dist-packages/sklearn/datasets/images/*.jpg",)),
    PackageRule("sddm-theme-maldives", ("usr/share/sddm/themes/maldives/background.jpg",)),
    PackageRule("digikam-data", ("usr/share/digikam/about/images/body-background.jpg",)),
)


@dataclass(frozen=True)
class Picture:
    """One kept picture."""

    family: str
    package: str
    source: str  # path inside the package
    content: str
    width: int
    height: int


def family_name(rule: PackageRule, inner: PurePosixPath) -> str:
    """The name shared by all copies of one picture in a package."""
    if rule.family == "parent3":
        return f"{rule.package}/{inner.parents[2].name}"
    stem = (_SIZE_SUFFIX.sub("", inner.stem) or inner.stem).lower()
    if rule.family == "resource":
        resource = next(p for p in inner.parents
                        if any(fnmatch.fnmatch(p.as_posix(), r) for r in rule.rcc))
        return f"{rule.package}/{resource.stem}/{stem}"
    return f"{rule.package}/{stem}"


def is_validation(family: str) -> bool:
    """Whether a picture family is held out (a fixed hash of its name)."""
    digest = hashlib.sha256(family.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < VAL_PERCENT


def select_files(rule: PackageRule, root: Path) -> list[PurePosixPath]:
    """Paths inside an unpacked package that the rule keeps (before reading them)."""
    selected = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.suffix.lower() not in IMAGE_SUFFIXES:
            continue
        inner = PurePosixPath(path.relative_to(root).as_posix())
        text = inner.as_posix()
        if not any(fnmatch.fnmatch(text, p) for p in rule.include):
            continue
        if any(fnmatch.fnmatch(text, p) for p in rule.exclude):
            continue
        selected.append(inner)
    return selected


def load_rgb(path: Path, min_side: int) -> Image.Image | None:
    """The picture as RGB, or None when it is too small, unreadable or transparent."""
    try:
        with Image.open(path) as image:
            image.load()
            if min(image.size) < min_side:
                return None
            if "A" in image.getbands() or image.info.get("transparency") is not None:
                alpha = np.asarray(image.convert("RGBA"))[..., 3]
                if alpha.min() < 250:
                    return None  # cut-outs: what shows through is not part of the picture
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        return None


def thumbnail_key(image: Image.Image) -> bytes:
    """A coarse fingerprint: equal for one picture at different sizes or encodings."""
    small = np.asarray(image.convert("L").resize((12, 12), Image.Resampling.BOX), np.float32)
    return (np.round(small / 32.0)).astype(np.uint8).tobytes()


def scaled(image: Image.Image, max_short_side: int) -> Image.Image:
    """`image` shrunk so that its short side is at most `max_short_side`."""
    short = min(image.size)
    if short <= max_short_side:
        return image
    factor = max_short_side / short
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def package_licences(root: Path, package: str) -> list[str]:
    """The licence names in a package's Debian copyright file."""
    path = root / "usr/share/doc" / package / "copyright"
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    names = {line.split(":", 1)[1].strip() for line in text.splitlines()
             if line.startswith("License:") and line.split(":", 1)[1].strip()}
    return sorted(names)


def _run(command: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(command, cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise UfvcError(f"{command[0]} not found: gathering photos needs Debian's apt-get "
                        "and dpkg-deb (or --debs with downloaded .deb files)") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no message"])[-1]
        raise UfvcError(f"{' '.join(command[:2])} failed: {last}")


def fetch_package(package: str, debs: Path) -> Path:
    """The package's .deb in `debs`, downloaded with `apt-get download` when missing."""
    found = sorted(debs.glob(f"{package}_*.deb"))
    if not found:
        _run(["apt-get", "download", package], cwd=debs)
        found = sorted(debs.glob(f"{package}_*.deb"))
        if not found:
            raise UfvcError(f"apt-get download {package} wrote no .deb")
    return found[-1]


def unpack(deb: Path, into: Path) -> Path:
    """`deb` unpacked (once) into `into`/<package>."""
    target = into / deb.name.split("_", 1)[0]
    done = target / ".unpacked"
    if not done.exists():
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        _run(["dpkg-deb", "-x", str(deb), str(target)], cwd=into)
        done.write_text(deb.name)
    return target


def unpack_resources(rule: PackageRule, root: Path, into: Path) -> Path:
    """The pictures inside the rule's Qt resource files of the unpacked package `root`,
    written (once per unpacked package) to `into`/<package>.rcc/<.rcc path>/<member path>;
    returns that folder, which then stands for the package."""
    target = into / f"{rule.package}.rcc"
    done = target / ".unpacked"
    stamp = f"{(root / '.unpacked').read_text()} {' '.join(rule.rcc)}"
    if done.exists() and done.read_text() == stamp:
        return target
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for path in sorted(root.rglob("*.rcc")):
        inner = path.relative_to(root).as_posix()
        if not path.is_file() or not any(fnmatch.fnmatch(inner, p) for p in rule.rcc):
            continue
        resources = QtResourceFile(path.read_bytes(), name=inner)
        for member in resources.members:
            if PurePosixPath(member.path).suffix.lower() in IMAGE_SUFFIXES:
                file = target / inner / member.path
                file.parent.mkdir(parents=True, exist_ok=True)
                file.write_bytes(resources.read(member))
    done.write_text(stamp)
    return target


def collect(rule: PackageRule, root: Path, min_side: int,
            seen: dict[bytes, str]) -> dict[str, tuple[Picture, Path]]:
    """The largest copy of each new picture family of one unpacked package."""
    best: dict[str, tuple[Picture, Path]] = {}
    for inner in select_files(rule, root):
        image = load_rgb(root / inner, min_side)
        if image is None:
            continue
        family = family_name(rule, inner)
        key = thumbnail_key(image)
        if seen.get(key, family) != family:
            continue  # the same picture under another name (another package or folder)
        seen[key] = family
        picture = Picture(family, rule.package, inner.as_posix(), rule.content,
                          image.width, image.height)
        current = best.get(family)
        if current is None or image.width * image.height > current[0].width * current[0].height:
            best[family] = (picture, root / inner)
    return best


def gather_photos(
    out: Path,
    packages: tuple[PackageRule, ...] = PACKAGES,
    *,
    debs: Path | None = None,
    min_side: int = 256,
    max_short_side: int = 1080,
    log: Callable[[str], None] = print,
) -> dict:
    """Fetch, select and convert the pictures of `packages` into `out`; returns the
    manifest (also written to out/manifest.json)."""
    out = Path(os.path.expanduser(str(out)))
    debs = debs or out / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    unpacked = out / "packages"
    images = out / "images"
    seen: dict[bytes, str] = {}
    entries: list[dict] = []
    licences: dict[str, list[str]] = {}
    for rule in packages:
        root = unpack(fetch_package(rule.package, debs), unpacked)
        licences[rule.package] = package_licences(root, rule.package)
        if rule.rcc:
            root = unpack_resources(rule, root, unpacked)
        kept = collect(rule, root, min_side, seen)
        for family, (picture, path) in sorted(kept.items()):
            name = re.sub(r"[^A-Za-z0-9._-]+", "_", family.split("/", 1)[1]) + ".png"
            target = images / rule.package / name
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(".tmp.png")
                image = load_rgb(path, min_side)
                if image is None:  # pragma: no cover - it was readable a moment ago
                    continue
                scaled(image, max_short_side).save(tmp, optimize=False)
                os.replace(tmp, target)
            entries.append({
                "image": target.relative_to(out).as_posix(), "family": family,
                "package": rule.package, "source": picture.source, "content": picture.content,
                "original_size": [picture.width, picture.height],
                "split": "val" if is_validation(family) else "train",
            })
        log(f"{rule.package}: {len(kept)} pictures")
    if not entries:
        raise InputFormatError("no pictures were found in the packages")
    manifest = {"pictures": entries, "licences": licences,
                "max_short_side": max_short_side, "min_side": min_side}
    write_listings(out, entries)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def write_listings(out: Path, entries: list[dict]) -> None:
    """`train.json`, `val.json` and per-content `train-<content>.json`, `val-<content>.json`
    (so that a config can weight photographs and sky pictures apart)."""
    groups: dict[str, list[dict]] = {"train": [], "val": []}
    for entry in entries:
        for name in (entry["split"], f"{entry['split']}-{entry['content']}"):
            groups.setdefault(name, []).append({"image": entry["image"]})
    for name, listing in groups.items():
        (out / f"{name}.json").write_text(json.dumps(listing, indent=1))
