"""`ufvc probe FILE`: describe a video as ufvc reads it."""

from __future__ import annotations

import argparse
import json
from fractions import Fraction
from typing import Any

from ufvc.commands._options import add_input_options, reader_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "probe",
        help="show format, size, frame rate and frame count of a video",
        description="Show how ufvc reads a video: format, size, frame rate, frames "
        "(counted by decoding when the container does not say), bit depth, chroma, duration.",
    )
    parser.add_argument("file", help="video file, PNG folder or pattern like frames/%%05d.png")
    add_input_options(parser)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=run)


def describe(path: str, **options: Any) -> dict[str, Any]:
    """What `ufvc probe` reports, as a dict."""
    from ufvc.io import open_reader

    with open_reader(path, **options) as reader:
        info = reader.info
        counted = info.num_frames is None
        frames = reader.count_frames()
        return {
            "file": path,
            "format": info.format_name,
            "codec": reader.codec_name,
            "width": info.width,
            "height": info.height,
            "fps": f"{info.fps.numerator}/{info.fps.denominator}",
            "frames": frames,
            "frames_counted": counted,
            "bit_depth": info.bit_depth,
            "chroma": info.chroma,
            "duration_s": round(float(frames / info.fps), 6),
        }


def _text(report: dict[str, Any]) -> str:
    fps = float(Fraction(report["fps"]))
    chroma = {"420": "4:2:0", "444": "4:4:4"}[report["chroma"]]
    fmt = report["format"] + (f" ({report['codec']})" if report["codec"] else "")
    frames = f"{report['frames']}" + (" (counted by decoding)" if report["frames_counted"] else "")
    rows = [
        ("file", report["file"]),
        ("format", fmt),
        ("size", f"{report['width']}x{report['height']}"),
        ("fps", f"{fps:.6g} ({report['fps']})"),
        ("frames", frames),
        ("bit depth", str(report["bit_depth"])),
        ("chroma", chroma),
        ("duration", f"{report['duration_s']:.3f} s"),
    ]
    return "\n".join(f"{name + ':':<11}{value}" for name, value in rows)


def run(args: argparse.Namespace) -> int:
    report = describe(args.file, **reader_options(args))
    print(json.dumps(report) if args.json else _text(report))
    return 0
