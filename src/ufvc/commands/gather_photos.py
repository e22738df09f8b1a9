"""`ufvc gather-photos`: training photographs from Debian's packages (docs/training.md)."""

from __future__ import annotations

import argparse

from ufvc.commands._options import add_package_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gather-photos",
        help="fetch training photographs from Debian packages",
        description=(
            "Download the wallpaper and test-image packages of docs/training.md with "
            "`apt-get download` (nothing is installed), keep one copy of each picture, "
            "scale it to a short side of at most --max-short-side, and write PNGs with "
            "train.json / val.json listings for `ufvc train` (kind = \"listing\")."
        ),
    )
    add_package_options(parser, "~/.cache/ufvc/photos")
    parser.add_argument("--max-short-side", type=int, default=1080, metavar="PX")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from collections import Counter

    from ufvc.errors import InputFormatError
    from ufvc.train.photos import gather_photos

    if args.max_short_side < 256:
        raise InputFormatError(f"--max-short-side must be >= 256, got {args.max_short_side}")
    manifest = gather_photos(args.out, debs=args.debs, max_short_side=args.max_short_side)
    counts = Counter((p["content"], p["split"]) for p in manifest["pictures"])
    for (content, split), n in sorted(counts.items()):
        print(f"{content:6s} {split:5s} {n}")
    print(f"{len(manifest['pictures'])} pictures in {args.out}")
    return 0
