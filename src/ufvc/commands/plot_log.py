"""`ufvc plot-log`: draw the loss, bpp and PSNR curves of a training log."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plot-log",
        help="plot a training log (loss, bpp, PSNR)",
        description="Draw the training and validation curves of a train_log.csv.",
    )
    parser.add_argument("log", type=Path, help="train_log.csv written by `ufvc train`")
    parser.add_argument("-o", "--output", type=Path, default=Path("curves.png"),
                        help="image to write (default: curves.png)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ufvc.errors import OutputError
    from ufvc.train.runlog import plot_log

    try:
        plot_log(args.log, args.output)
    except (OSError, ValueError) as error:  # matplotlib: ValueError for an unknown format
        reason = getattr(error, "strerror", None) or error
        raise OutputError(f"cannot write {args.output}: {reason}") from None
    print(f"wrote {args.output}")
    return 0
