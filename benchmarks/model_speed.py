"""Whole-file encode and decode time of two models, alternating in one run.

    python benchmarks/model_speed.py --models old.ufvm ufvc-s --size 1280x720 --frames 33

`ufvc bench` times video chunks only; this times what a user runs: `ufvc encode` and
`ufvc decode` of a synthetic clip as child processes (start-up, the intra frames and the
entropy coding included), one model after the other in every round, so that the
machine's other load falls on both alike. Prints the medians and the ratios to the
first model.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

from ufvc.io import open_writer
from ufvc.io.types import VideoInfo
from ufvc.samples import synthetic_video


def timed(command: list[str]) -> float:
    """Wall-clock seconds of one child process."""
    started = time.perf_counter()
    done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command)} failed: {done.stderr.strip()}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs=2, required=True, metavar="NAME|PATH")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--frames", type=int, default=33)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="2")
    parser.add_argument("--quality", default="40")
    args = parser.parse_args()
    width, height = (int(x) for x in args.size.split("x"))
    ufvc = [sys.executable, "-m", "ufvc"]
    times = {(model, step): [] for model in args.models for step in ("encode", "decode")}
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "clip.y4m"
        with open_writer(source, VideoInfo(width, height, Fraction(25), args.frames)) as out:
            for frame in synthetic_video(width, height, args.frames):
                out.write(frame)
        for _ in range(args.rounds):
            for index, model in enumerate(args.models):
                stream = Path(folder) / f"{index}.ufv"
                common = ["--model", model, "--threads", args.threads, "--quiet"]
                times[model, "encode"].append(timed(
                    [*ufvc, "encode", str(source), "-o", str(stream), "-y",
                     "-q", args.quality, *common]))
                times[model, "decode"].append(timed(
                    [*ufvc, "decode", str(stream), "-o", os.devnull, "-y", *common]))
    first = args.models[0]
    print(f"{args.size}, {args.frames} frames, quality {args.quality}, "
          f"{args.threads} threads, medians of {args.rounds} alternating rounds")
    for model in args.models:
        cells = []
        for step in ("encode", "decode"):
            median = statistics.median(times[model, step])
            ratio = median / statistics.median(times[first, step])
            cells.append(f"{step} {median:6.2f} s ({args.frames / median:5.2f} fps, "
                         f"x{ratio:.3f})")
        print(f"  {model:<40} " + "   ".join(cells))


if __name__ == "__main__":
    main()
