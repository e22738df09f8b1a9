"""Command-line options that describe an input video, shared by the sub-commands."""

from __future__ import annotations

import argparse
from typing import Any

from ufvc.io import parse_fps, parse_size
from ufvc.io.planar import SUPPORTED_PIX_FMTS


def add_input_options(parser: argparse.ArgumentParser) -> None:
    """Add --size, --pix-fmt and --fps (needed for raw .yuv, overrides elsewhere)."""
    group = parser.add_argument_group("input format (raw .yuv needs --size)")
    group.add_argument("--size", metavar="WxH", help="frame size of raw .yuv input")
    group.add_argument(
        "--pix-fmt",
        choices=sorted(SUPPORTED_PIX_FMTS),
        help="raw .yuv layout (default yuv420p); for PNG and compressed input, the layout "
        "to convert to",
    )
    group.add_argument("--fps", metavar="RATE", help="frame rate, e.g. 25 or 30000/1001")


def reader_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for `ufvc.io.open_reader` from the options above."""
    return {
        "size": parse_size(args.size) if args.size else None,
        "pix_fmt": args.pix_fmt,
        "fps": parse_fps(args.fps) if args.fps else None,
    }
