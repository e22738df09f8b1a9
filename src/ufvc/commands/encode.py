"""`ufvc encode IN -o OUT.ufv`: compress a video into a .ufv file."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from ufvc.codec import DEFAULT_MODEL, DEFAULT_QUALITY, DEFAULT_RESET_INTERVAL, encode
from ufvc.codec.options import DEFAULT_SCENECUT, PRECISIONS, CodingOptions
from ufvc.entropy.tables import DEFAULT_SKIP_THRESHOLD
from ufvc.io.cli_options import add_input_options, reader_options


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """--model and --device, shared by encode and decode."""
    parser.add_argument(
        "--model",
        metavar="NAME|PATH",
        help=f"built-in model name or a .ufvm file (default: {DEFAULT_MODEL} when encoding, "
        "the stream's own model when decoding)",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")


def add_speed_options(parser: argparse.ArgumentParser) -> None:
    """--pipeline/--no-pipeline and --compile, shared by encode, decode and bench."""
    pipelining = parser.add_mutually_exclusive_group()
    pipelining.add_argument(
        "--pipeline", dest="pipeline", action="store_true", default=None,
        help="overlap one chunk's arithmetic coding (and frame conversion) with the next "
        "chunk's networks on a worker thread (default: when a CPU core is left beside "
        "--threads, or on a GPU); the output is the same either way",
    )
    pipelining.add_argument("--no-pipeline", dest="pipeline", action="store_false",
                            help="never pipeline")
    parser.add_argument(
        "--compile", action="store_true",
        help="run the networks through torch.compile (needs a C compiler; the first run "
        "per size compiles, later runs use the cache in $UFVC_COMPILE_CACHE, default "
        "~/.cache/ufvc/torch-compile). Compiled networks round differently, so a stream "
        "records whether they ran and decoding always follows the stream",
    )


def add_graphs_option(parser: argparse.ArgumentParser) -> None:
    """--cuda-graphs, shared by encode and bench (decoding follows the stream)."""
    parser.add_argument(
        "--cuda-graphs", action="store_true",
        help="replay the networks from CUDA graphs captured at their first call per shape "
        "(--device cuda only; fewer kernel launches). The stream records it and decoding "
        "on a CUDA device follows",
    )


def add_rate_options(parser: argparse.ArgumentParser, *, sweep: bool = False) -> None:
    """--maxrate/--bufsize and --scenecut/--no-scenecut (and --bitrate unless `sweep`:
    eval takes several bitrates), shared by encode and eval."""
    if not sweep:
        parser.add_argument(
            "-b", "--bitrate", metavar="RATE",
            help="average bitrate to aim for, bits/s with k/M suffixes (e.g. 800k, 1.5M): "
            "a rate controller picks each record's quality instead of --quality",
        )
    parser.add_argument("--maxrate", metavar="RATE",
                        help="leaky-bucket (VBV) drain rate, bits/s (with --bufsize)")
    parser.add_argument("--bufsize", metavar="BITS",
                        help="leaky-bucket (VBV) size, bits (k/M suffixes); no record may "
                        "overflow it")
    cuts = parser.add_mutually_exclusive_group()
    cuts.add_argument(
        "--scenecut", type=float, default=DEFAULT_SCENECUT, metavar="T",
        help="start an intra frame where the mean luma change from the previous frame "
        f"reaches T %% of the sample range (default {DEFAULT_SCENECUT:g})",
    )
    cuts.add_argument("--no-scenecut", dest="scenecut", action="store_const", const=None,
                      help="no scene-cut detection")


def coding_options_from_args(args: argparse.Namespace) -> CodingOptions:
    """The `CodingOptions` of a command's arguments (fields it lacks keep their default)."""
    fields = {name: getattr(args, name) for name in CodingOptions.__dataclass_fields__
              if hasattr(args, name)}
    return CodingOptions(**{name: value for name, value in fields.items()
                            if value is not None or name in ("scenecut", "pipeline")})


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "encode",
        help="compress a video into a .ufv file",
        description="Compress a video (y4m, raw yuv, PNG frames, or anything FFmpeg reads) "
        "into a .ufv file. Quality runs 0..63 and HIGHER IS BETTER; --bitrate asks for an "
        "average bitrate instead.",
    )
    parser.add_argument("input", help="source video")
    parser.add_argument("-o", "--output", required=True, help="the .ufv file to write")
    parser.add_argument(
        "-q", "--quality", type=int, default=DEFAULT_QUALITY, metavar="0..63",
        help=f"quality level, higher is better (default {DEFAULT_QUALITY})",
    )
    add_rate_options(parser)
    parser.add_argument("--frames", type=int, metavar="K", help="code only the first K frames")
    parser.add_argument(
        "--reset-interval", type=int, default=DEFAULT_RESET_INTERVAL, metavar="R",
        help=f"rebuild the temporal memory every R frames, 0 = never (default "
        f"{DEFAULT_RESET_INTERVAL})",
    )
    parser.add_argument(
        "--intra-period", type=int, default=0, metavar="P",
        help="intra-code the frame P frames after the last intra frame, 0 = only the "
        "first and scene cuts (default 0)",
    )
    parser.add_argument(
        "--skip-threshold", type=float, default=DEFAULT_SKIP_THRESHOLD, metavar="S",
        help=f"leave latent symbols with predicted scale <= S uncoded (default "
        f"{DEFAULT_SKIP_THRESHOLD})",
    )
    parser.add_argument(
        "--precision", choices=PRECISIONS, default="fp32",
        help="arithmetic of the networks; bf16 is faster on CPUs with bf16 units, fp16 is "
        "for CUDA devices; the decoder follows the stream (default fp32)",
    )
    parser.add_argument("--recon", metavar="FILE", help="also write the encoder's reconstruction")
    add_model_options(parser)
    add_speed_options(parser)
    add_graphs_option(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_input_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    bar = tqdm(unit="frame", desc="encode", disable=args.quiet, file=sys.stderr, leave=False)
    with bar:
        summary = encode(
            args.input, args.output, coding_options_from_args(args), model=args.model,
            max_frames=args.frames, recon=args.recon, reader_options=reader_options(args),
            progress=bar.update,
        )
    psnr = summary.psnr.mean()
    print(
        f"{args.output}: {summary.frames} frames {summary.width}x{summary.height}, "
        f"{summary.bytes} bytes, {summary.kbps:.1f} kbps, {summary.bpp:.4f} bpp, "
        f"PSNR YUV {psnr.yuv611:.2f} dB (Y {psnr.y:.2f} U {psnr.u:.2f} V {psnr.v:.2f}), "
        f"{summary.encode_fps:.2f} frames/s"
    )
    if summary.scene_cuts:
        print(f"scene cuts (intra frames) at frames {', '.join(map(str, summary.scene_cuts))}")
    if summary.vbv_overflows:
        print(f"VBV buffer overflowed at {summary.vbv_overflows} record(s), even at quality 0")
    return 0
