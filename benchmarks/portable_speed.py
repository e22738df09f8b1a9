"""Frames per second of the portable arithmetic against a float one, alternating in one run.

    python benchmarks/portable_speed.py --model ufvc-s --size 720p --rounds 3 \
        --json results/bench/portable-vs-fp32-ufvc-s-720p.json

Each round times `--reference` (default fp32) and then portable at the same size with
`ufvc.eval.bench.measure_size` (whole chunks after a warm-up chunk), so both see the same
machine state; the ratios portable / reference are reported per round and as medians.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
from pathlib import Path

import torch

from ufvc.codec.options import CodingOptions
from ufvc.eval.bench import measure_size, parse_frame_size
from ufvc.eval.neural import load_codec_model


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="ufvc-s")
    parser.add_argument("--size", default="720p")
    parser.add_argument("--frames", type=int, default=16, help="timed frames per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quality", type=int, default=40)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--reference", default="fp32", choices=["fp32", "bf16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    width, height = parse_frame_size(args.size)
    model = load_codec_model(args.model, device=torch.device(args.device))
    rows = []
    for round_index in range(args.rounds):
        row = {"round": round_index}
        for precision in (args.reference, "portable"):
            options = CodingOptions(quality=args.quality, precision=precision,
                                    pipeline=False, device=args.device, threads=args.threads)
            speed = measure_size(model, width, height, options, frames=args.frames)
            row[precision] = {"encode_fps": speed.encode.fps, "decode_fps": speed.decode.fps,
                              "bpp": speed.bpp}
        row["encode_ratio"] = row["portable"]["encode_fps"] / row[args.reference]["encode_fps"]
        row["decode_ratio"] = row["portable"]["decode_fps"] / row[args.reference]["decode_fps"]
        rows.append(row)
        print(f"round {round_index}: {args.reference} enc {row[args.reference]['encode_fps']:.2f}"
              f" dec {row[args.reference]['decode_fps']:.2f} fps | portable enc "
              f"{row['portable']['encode_fps']:.2f} dec {row['portable']['decode_fps']:.2f} fps"
              f" | ratio enc {row['encode_ratio']:.3f} dec {row['decode_ratio']:.3f}",
              flush=True)
    summary = {
        "model": args.model, "size": [width, height], "frames": args.frames,
        "threads": args.threads, "device": args.device, "cpu": cpu_name(),
        "reference": args.reference, "quality": args.quality, "rounds": rows,
        "median_encode_ratio": statistics.median(r["encode_ratio"] for r in rows),
        "median_decode_ratio": statistics.median(r["decode_ratio"] for r in rows),
        "torch": torch.__version__,
    }
    print(f"median portable/{args.reference}: encode {summary['median_encode_ratio']:.3f}, "
          f"decode {summary['median_decode_ratio']:.3f} ({summary['cpu']}, "
          f"{args.threads} thread(s))")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
