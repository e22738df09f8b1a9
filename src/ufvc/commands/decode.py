"""`ufvc decode IN.ufv -o OUT`: decode a .ufv file to y4m, yuv, mp4 or PNG frames."""

from __future__ import annotations

import argparse
import sys
import time

from tqdm import tqdm

from ufvc.codec import open_stream
from ufvc.commands.encode import add_model_options, add_speed_options
from ufvc.io import open_writer


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode a .ufv file",
        description="Decode a .ufv file. The output format follows the name: .y4m, .yuv, "
        ".mp4/.mkv (H.264 for viewing), or a folder / frames/%%05d.png pattern for PNGs.",
    )
    parser.add_argument("input", help="the .ufv file")
    parser.add_argument("-o", "--output", required=True, help="decoded video")
    add_model_options(parser)
    add_speed_options(parser)
    parser.add_argument(
        "--allow-truncated", action="store_true",
        help="decode a stream that ends before its header's frame count (a cut file) as "
        "far as it goes, with a warning; without it, such a stream is an error",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    count = 0
    with open_stream(args.input, model=args.model, device=args.device,
                     pipeline=args.pipeline, compile=args.compile,
                     allow_truncated=args.allow_truncated) as stream:
        bar = tqdm(total=stream.info.num_frames, unit="frame", desc="decode",
                   disable=args.quiet, file=sys.stderr, leave=False)
        with bar, open_writer(args.output, stream.info) as writer:
            # The writer stages its file: an error leaves nothing, even mid-pipeline.
            for _ in stream.frames(sink=writer.write):
                count += 1
                bar.update()
    seconds = time.perf_counter() - started
    print(f"{args.output}: {count} frames {stream.info.width}x{stream.info.height}, "
          f"{count / seconds:.2f} frames/s")
    return 0
