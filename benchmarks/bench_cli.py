"""Two command-line speeds: start-up, and decoding while another process keeps a core busy.

    PYTHONPATH=src python benchmarks/bench_cli.py [--repeats 5] [--frames 120]

1. `ufvc --version` against `python -c "import torch"`: the sub-commands import torch
   only when they run, so the ratio should be well under 0.5.
2. Decode a 320x240 clip (synthetic, coded with ufvc-s at the default quality) while a
   busy loop occupies one core: default threads against `--threads 1`, as the ratio of
   wall-clock seconds (target at most 1.25); also `--threads 2` with idle OpenMP threads
   sleeping (the command line's setting) and spinning (OMP_WAIT_POLICY=ACTIVE, torch's
   default). Runs alternate so that the machine's other load falls on all alike; the
   medians are compared.
Every time is the wall clock of a whole child process, start-up included.
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

SRC = Path(__file__).resolve().parents[1] / "src"


def _timed(command: list[str], extra_env: dict[str, str] | None = None) -> float:
    env = {**os.environ, "PYTHONPATH": str(SRC), **(extra_env or {})}
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def start_up(repeats: int) -> None:
    version = [_timed([sys.executable, "-m", "ufvc", "--version"]) for _ in range(repeats)]
    torch_import = [_timed([sys.executable, "-c", "import torch"]) for _ in range(repeats)]
    v, t = statistics.median(version), statistics.median(torch_import)
    print(f"ufvc --version        {v:7.3f} s (median of {repeats})")
    print(f"python -c 'import torch' {t:7.3f} s")
    print(f"ratio                 {v / t:7.3f}  (target <= 0.5)")


def busy_decode(repeats: int, frames: int, more_threads: list[int]) -> None:
    from ufvc.codec import encode
    from ufvc.io import open_writer
    from ufvc.io.types import VideoInfo
    from ufvc.samples import synthetic_video

    with tempfile.TemporaryDirectory() as folder:
        source, stream = Path(folder) / "clip.y4m", Path(folder) / "clip.ufv"
        with open_writer(source, VideoInfo(320, 240, Fraction(25), frames)) as writer:
            for frame in synthetic_video(320, 240, frames):
                writer.write(frame)
        encode(source, stream)
        decode = [sys.executable, "-m", "ufvc", "decode", str(stream), "-o", os.devnull,
                  "--quiet"]
        # label -> (command, extra environment)
        variants = {"default threads": (decode, {}),
                    "--threads 1": ([*decode, "--threads", "1"], {})}
        for count in more_threads:
            args = [*decode, "--threads", str(count)]
            variants[f"--threads {count}"] = (args, {})
            # What the command line did before it made idle threads sleep.
            variants[f"--threads {count}, spinning"] = (args, {"OMP_WAIT_POLICY": "ACTIVE"})
        times: dict[str, list[float]] = {label: [] for label in variants}
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            time.sleep(1.0)
            for _ in range(repeats):
                for label, (command, env) in variants.items():
                    times[label].append(_timed(command, env))
        finally:
            busy.kill()
            busy.wait()
    print(f"decode 320x240x{frames}, one core busy, load {os.getloadavg()[0]:.1f} "
          f"(median of {repeats}, ratio to --threads 1):")
    single = statistics.median(times["--threads 1"])
    for label, runs in times.items():
        median = statistics.median(runs)
        print(f"  {label:<26}{median:7.2f} s  {median / single:6.3f}   runs: "
              f"{' '.join(f'{x:.2f}' for x in runs)}")
    print("  target: default threads / --threads 1 <= 1.25")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=120)
    parser.add_argument("--skip-decode", action="store_true")
    parser.add_argument("--more-threads", type=int, nargs="*", default=[2], metavar="N",
                        help="also time --threads N, with idle threads sleeping and spinning")
    args = parser.parse_args()
    start_up(args.repeats)
    if not args.skip_decode:
        busy_decode(args.repeats, args.frames, args.more_threads)


if __name__ == "__main__":
    main()
