"""`ufvc decode IN.ufv -o OUT`: decode a .ufv file to y4m, yuv, mp4 or PNG frames."""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import closing

from ufvc.commands._options import (
    add_json_option,
    add_overwrite_options,
    add_progress_options,
    add_range_options,
    add_threads_option,
    check_input_exists,
    check_json_target,
    check_outputs,
    emit_summary,
    progress_bar,
    torch_threads,
    warn_bit_depth,
)
from ufvc.commands.encode import add_model_options, add_speed_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "decode",
        help="decode a .ufv file",
        description="Decode a .ufv file. The output format follows the name: .y4m, .yuv, "
        ".mp4/.mkv (H.264 for viewing), or a folder / frames/%05d.png pattern for PNGs; "
        "- writes Y4M to stdout (for `| ffmpeg -i -`), and an existing device or FIFO "
        "(/dev/null) is written in place. IN may be - (the .ufv on stdin). An existing "
        "OUT is refused unless -y is given.",
    )
    parser.add_argument("input", help="the .ufv file, or - for stdin")
    parser.add_argument("-o", "--output", required=True, help="decoded video, or - for stdout")
    add_overwrite_options(parser)
    add_model_options(parser)
    add_threads_option(parser)
    add_speed_options(parser)
    add_range_options(parser, verb="write")
    add_progress_options(parser)
    add_json_option(parser)
    parser.add_argument(
        "--allow-truncated", action="store_true",
        help="decode a stream that ends before its header's frame count (a cut file) as "
        "far as it goes, with a warning; without it, such a stream is an error",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ufvc.io.base import is_stdio

    check_input_exists(args.input)
    check_outputs([args.output, None if args.json == "-" else args.json], [args.input],
                  overwrite=args.overwrite)
    check_json_target(args, is_stdio(args.output))
    from ufvc.codec import open_stream
    from ufvc.errors import InputFormatError
    from ufvc.io import FramePosition, open_writer

    start = FramePosition.parse(args.start if args.start is not None else 0)
    duration = None if args.duration is None else FramePosition.parse(args.duration)
    started = time.perf_counter()
    decoded = written = 0
    source = sys.stdin.buffer if is_stdio(args.input) else args.input
    with torch_threads(args.threads) as threads, open_stream(
        source, model=args.model, device=args.device, pipeline=args.pipeline,
        compile=args.compile, allow_truncated=args.allow_truncated,
    ) as stream:
        info = stream.info
        first = start.frames(info.fps)
        end = None if duration is None else first + duration.frames(info.fps)
        if end is not None and end <= first:
            raise InputFormatError(f"duration {duration} is less than one frame")
        if info.num_frames is not None and first >= info.num_frames:
            raise InputFormatError(f"start frame {first} is past the end of {args.input} "
                                   f"({info.num_frames} frames)")
        total = info.num_frames if info.num_frames is not None else end
        if total is not None:
            total = min(total, end or total) - first
        index = 0

        def keep(frame) -> None:
            # Runs in frame order (on the worker thread when pipelining).
            nonlocal index, written
            if index >= first and (end is None or index < end):
                writer.write(frame)
                written += 1
            index += 1

        bar = progress_bar(args, "decode", total)
        with bar, open_writer(args.output, info, overwrite=args.overwrite) as writer:
            warn_bit_depth(args.output, info.bit_depth)
            # The writer stages its file: an error leaves nothing, even mid-pipeline.
            # Closed inside the writer's block: a worker still finishing a record writes
            # through `keep` before the output is published.
            with closing(stream.frames(sink=keep)) as frames:
                for _ in frames:
                    decoded += 1
                    if decoded > first:
                        bar.update()
                    if end is not None and decoded >= end:
                        break  # every frame before `end` is decoded
            if decoded <= first:
                raise InputFormatError(f"start frame {first} is past the end of {args.input} "
                                       f"({decoded} frames)")
    seconds = time.perf_counter() - started
    source_name = "stdin" if is_stdio(args.input) else args.input
    output = "stdout" if is_stdio(args.output) else args.output
    fps = decoded / seconds if seconds > 0 else float("inf")
    last = first + written - 1
    text = (f"{output}: frames {first}-{last} of {source_name} ({written} frames "
            f"{info.width}x{info.height} {info.bit_depth}-bit), {fps:.2f} frames/s decoded, "
            f"{threads} thread(s)")
    emit_summary(args, text, {
        "input": source_name, "output": output, "first_frame": first, "last_frame": last,
        "frames": written, "width": info.width,
        "height": info.height, "fps": float(info.fps), "bit_depth": info.bit_depth,
        "chroma": info.chroma, "seconds": seconds, "frames_per_second": fps,
        "threads": threads,
    })
    return 0
