"""`ufvc bdrate`: BD-rate of result files against an anchor, as a Markdown table and plots."""

from __future__ import annotations

import argparse
from pathlib import Path

from ufvc.defaults import BDRATE_METHODS, BDRATE_METRICS
from ufvc.errors import OutputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bdrate",
        help="BD-rate of result files against an anchor, per sequence, class and overall",
        description="Compare every curve of the test result file(s) with the anchor curve: "
        "BD-rate per sequence, per class (frame-weighted average curve) and overall (mean "
        "over classes), printed as a Markdown table.",
    )
    parser.add_argument("--anchor", required=True, help="anchor result file (.json or .csv)")
    parser.add_argument("--test", required=True, nargs="+", help="test result file(s)")
    parser.add_argument("--anchor-config",
                        help="the anchor curve, when the anchor file holds several "
                        "(a config such as x264-medium-ld, or config:rate_control)")
    parser.add_argument("--metric", choices=BDRATE_METRICS, default="psnr_yuv")
    parser.add_argument("--method", choices=BDRATE_METHODS, default="pchip",
                        help="interpolation of log rate over quality (default: pchip)")
    parser.add_argument("--plots", metavar="DIR", help="also write RD-curve PNGs here")
    parser.add_argument("--md", metavar="FILE", help="also write the Markdown table here")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ufvc.eval.bdrate import compare
    from ufvc.eval.plots import plot_rd_curves
    from ufvc.eval.results import read_rows

    anchor_rows = read_rows(args.anchor)
    test_rows = [row for path in args.test for row in read_rows(path)]
    report = compare(anchor_rows, test_rows, metric=args.metric, method=args.method,
                     anchor_curve=args.anchor_config)
    markdown = report.to_markdown()
    print(markdown, end="")
    if args.md:
        try:
            Path(args.md).write_text(markdown, encoding="utf-8")
        except OSError as error:
            raise OutputError(f"cannot write {args.md}: {error.strerror or error}") from None
    if args.plots:
        # A curve in both files is drawn once.
        rows = list({row.key: row for row in anchor_rows + test_rows}.values())
        written, notes = plot_rd_curves(rows, args.plots, metric=args.metric)
        for note in notes:
            print(f"plot note: {note}")
        print(f"wrote {len(written)} plot(s) to {args.plots}")
    return 0
