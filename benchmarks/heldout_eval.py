"""Rate-distortion of a model on content that training never saw, beside the anchors.

Held-out content (issue 13): OpenCV's three sample videos (Megamind.avi 720x528,
tree.avi 320x240, vtest.avi 768x576; first 33 frames; from the opencv-doc package that
`ufvc gather-photos` unpacks) and the validation photographs of `ufvc gather-photos`
(each a one-frame sequence, centre-cropped to at most 1024x768, coded with
--intra-period 1). Also the sample clips' evaluation frames (test set `samples`).

    python benchmarks/heldout_eval.py --model ufvc-s --label shipped --out results/heldout
    python benchmarks/heldout_eval.py --model runs/x/ufvc-s.ufvm --label candidate \
        --out results/heldout
    python benchmarks/heldout_eval.py --anchors --out results/heldout   # x264/x265/SVT-AV1

Every command skips rows its output file already holds, so a run can be resumed. A model
whose intra codec is ufvc-s's bit for bit (a video-only candidate) gets the shipped photo
rows copied instead of measured again: the photographs are coded intra only.
BD-rate tables: `ufvc bdrate --anchor results/heldout/x264-ai-clips.json --test ...`.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
from PIL import Image

from ufvc.codec.api import ModelSpec, load_model
from ufvc.eval.results import read_rows, write_rows
from ufvc.models.checkpoint import state_digest

PHOTOS = Path("~/.cache/ufvc/photos").expanduser()
ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "results" / "heldout"
OPENCV_DATA = "packages/opencv-doc/usr/share/doc/opencv-doc/examples/data"
CLIPS = ("Megamind.avi", "tree.avi", "vtest.avi")
QUALITIES = ("0", "8", "16", "24", "32", "40", "48", "56", "63")
MAX_PHOTO = (1024, 768)


def write_testsets(photos: Path, out: Path) -> tuple[Path, Path]:
    """The held-out clip and photo test sets (JSON) under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    clips = [{"path": str(photos / OPENCV_DATA / name), "class": "opencv", "frames": 33}
             for name in CLIPS]
    for entry in clips:
        if not Path(entry["path"]).is_file():
            sys.exit(f"{entry['path']} is missing: run `ufvc gather-photos` first")
    clip_set = out / "testset-clips.json"
    clip_set.write_text(json.dumps({"sequences": clips}, indent=1))
    entries = []
    listed = []
    for split in ("val-photo.json", "val-mixed.json"):
        listed += json.loads((photos / split).read_text())
    for item in listed:
        source = photos / item["image"]
        folder = out / "photos" / source.stem
        target = folder / "00000.png"
        if not target.exists():
            with Image.open(source) as image:
                rgb = np.asarray(image.convert("RGB"))
            h = min(rgb.shape[0], MAX_PHOTO[1]) // 16 * 16
            w = min(rgb.shape[1], MAX_PHOTO[0]) // 16 * 16
            top, left = (rgb.shape[0] - h) // 2, (rgb.shape[1] - w) // 2
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rgb[top : top + h, left : left + w]).save(target)
        entries.append({"path": folder.relative_to(out).as_posix(), "name": source.stem,
                        "class": "photos",
                        "fps": 1})
    photo_set = out / "testset-photos.json"
    photo_set.write_text(json.dumps({"sequences": entries}, indent=1))
    return clip_set, photo_set


def carry_photo_rows(model: ModelSpec, label: str, target: Path,
                     shipped_rows: Path = HELDOUT / "shipped-photos.json") -> bool:
    """Copy the shipped model's photo rows to `target` when `model`'s intra codec is
    ufvc-s's bit for bit: the photographs are coded intra only (--intra-period 1), so a
    video-only candidate would spend an hour to measure the same bytes again."""
    if not shipped_rows.is_file() or target.resolve() == shipped_rows.resolve():
        return False
    digests = [state_digest({"intra": load_model(spec).intra.state_dict()})
               for spec in (model, "ufvc-s")]
    if digests[0] != digests[1]:
        return False
    write_rows(target, [replace(row, config=label) for row in read_rows(shipped_rows)])
    print(f"photos: the intra codec is ufvc-s's (digest {digests[0].hex()[:8]}): "
          f"rows copied from {shipped_rows} to {target}", flush=True)
    return True


def ufvc(*args: str) -> None:
    command = [sys.executable, "-m", "ufvc", *args]
    print("+", " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="model name or .ufvm file to evaluate")
    parser.add_argument("--label", help="configuration name in the results")
    parser.add_argument("--anchors", action="store_true", help="run the conventional anchors")
    parser.add_argument("--out", type=Path, default=Path("results/heldout"))
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    parser.add_argument("--threads", default="1")
    parser.add_argument("--precision", default="fp32",
                        help="the networks' arithmetic (default fp32, as the committed "
                        "shipped-*/candidate-* results; portable costs +0.33 %%)")
    parser.add_argument("--mode-decision", default="fixed", choices=["fixed", "rd"],
                        help="the encoder's chunk/intra decision (ufvc encode --mode-decision)")
    parser.add_argument("--skip", nargs="*", default=[], choices=["clips", "photos", "samples"])
    args = parser.parse_args()
    clip_set, photo_set = write_testsets(args.photos, args.out)
    sets = {"clips": clip_set, "photos": photo_set, "samples": "samples"}
    sets = {name: path for name, path in sets.items() if name not in args.skip}
    if args.model:
        label = args.label or Path(args.model).stem
        for name, testset in sets.items():
            output = args.out / f"{label}-{name}.json"
            if name == "photos" and carry_photo_rows(args.model, label, output):
                continue
            extra = ["--intra-period", "1"] if name == "photos" else []
            ufvc("eval", "--model", args.model, "--label", label, "-q", *QUALITIES,
                 "--testset", str(testset), "--threads", args.threads, *extra,
                 "--precision", args.precision, "--mode-decision", args.mode_decision,
                 "-o", str(output))
    if args.anchors:
        for name, testset in sets.items():
            if name == "samples":
                continue  # results/anchors/ holds the sample clips' anchors
            ai_crfs = ["18", "23", "28", "33", "38", "43", "48"]
            runs = [("x264", "ai", ai_crfs), ("x265", "ai", ai_crfs)]
            if name == "clips":
                runs += [("x264", "ld", ["22", "27", "32", "37", "42", "47"]),
                         ("x265", "ld", ["22", "27", "32", "37", "42", "47"]),
                         ("svt-av1", "ld", ["24", "34", "44", "54", "59", "63"])]
            for codec, mode, crfs in runs:
                ufvc("anchor", "--codec", codec, "--mode", mode, "--crf", *crfs,
                     "--testset", str(testset), "--threads", args.threads,
                     "-o", str(args.out / f"{codec}-{mode}-{name}.json"))


if __name__ == "__main__":
    main()
