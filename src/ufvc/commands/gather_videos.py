"""`ufvc gather-videos`: camera footage from Debian's packages (docs/training.md)."""

from __future__ import annotations

import argparse

from ufvc.commands._options import add_package_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gather-videos",
        help="fetch training videos from Debian packages",
        description=(
            "Download the packages of docs/training.md that ship camera footage with "
            "`apt-get download` (nothing is installed), keep the videos that decode and "
            "are large and long enough, and write train-video.json / val-video.json "
            "listings for `ufvc train` (kind = \"listing\")."
        ),
    )
    add_package_options(parser, "~/.cache/ufvc/videos")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ufvc.train.videos import gather_videos

    manifest = gather_videos(args.out, debs=args.debs)
    for video in manifest["videos"]:
        width, height = video["size"]
        print(f"{video['split']:5s} {width}x{height} {video['frames']:4d} frames  "
              f"{video['name']}")
    frames = sum(v["frames"] for v in manifest["videos"] if v["split"] == "train")
    print(f"{len(manifest['videos'])} videos ({frames} training frames) in {args.out}")
    return 0
