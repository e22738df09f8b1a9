"""`ufvc bench`: encode and decode frames per second of a model, against the matmul peak."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from ufvc.commands._options import add_threads_option, default_threads, torch_threads
from ufvc.commands.encode import add_graphs_option, add_speed_options
from ufvc.defaults import DEFAULT_BENCH_QUALITY, DEFAULT_MODEL, DEFAULT_SIZES, NAMED_SIZES
from ufvc.errors import OutputError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench",
        help="encode/decode frames per second, network vs entropy time, share of matmul peak",
        description="Code synthetic video at each frame size and time whole chunks after a "
        "warm-up (the intra frame and the first chunk are not timed). Prints fps, the "
        "codec's network and entropy-coding seconds, MACs per frame, achieved MAC/s and its "
        "share of the machine's fp32 matrix-product peak, measured in the same run.",
    )
    parser.add_argument("--model", metavar="NAME|PATH", default=DEFAULT_MODEL,
                        help=f"built-in model name or a .ufvm file (default: {DEFAULT_MODEL})")
    parser.add_argument("--checkpoint", metavar="FILE",
                        help="weights for a built-in model (.ufvm or official video checkpoint)")
    parser.add_argument("--intra-checkpoint", metavar="FILE",
                        help="official image checkpoint for the intra codec")
    parser.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), metavar="SIZE",
                        help=f"frame sizes: {', '.join(NAMED_SIZES)} or WxH "
                        f"(default: {' '.join(DEFAULT_SIZES)})")
    parser.add_argument("--frames", type=int, default=16, metavar="K",
                        help="frames to time per size, rounded up to whole chunks "
                        "(default: 16)")
    parser.add_argument("--warmup-chunks", type=int, default=1, metavar="W",
                        help="chunks coded before timing starts (default: 1)")
    parser.add_argument("-q", "--quality", type=int, default=DEFAULT_BENCH_QUALITY,
                        metavar="0..63", help=f"quality level (default {DEFAULT_BENCH_QUALITY})")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    add_threads_option(parser)
    half = parser.add_mutually_exclusive_group()
    half.add_argument("--fp32", action="store_true",
                      help="run the networks in plain float32 (same-machine streams) "
                      "instead of the portable arithmetic")
    half.add_argument("--bf16", action="store_true",
                      help="run the networks under bfloat16 autocast (same-machine streams)")
    half.add_argument("--fp16", action="store_true",
                      help="run the networks under float16 autocast (CUDA devices only)")
    parser.add_argument("--peak-size", type=int, metavar="N",
                        help="side of the square matrices timed for the peak (default: 2048 "
                        "on CPU, 8192 on CUDA)")
    add_speed_options(parser)
    add_graphs_option(parser)
    parser.add_argument("--pipeline-compare", action="store_true",
                        help="time every size without pipelining, then with it, and report "
                        "the fps ratio (encode and decode)")
    parser.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    parser.set_defaults(func=run)


def command_line(args: argparse.Namespace) -> str:
    """The `ufvc bench` command that repeats this run, every setting spelled out."""
    words = ["ufvc", "bench", "--model", args.model]
    for flag, value in (("--checkpoint", args.checkpoint),
                        ("--intra-checkpoint", args.intra_checkpoint),
                        ("--threads", args.threads), ("--peak-size", args.peak_size),
                        ("--json", args.json)):
        if value is not None:
            words += [flag, str(value)]
    words += ["--sizes", *args.sizes, "--frames", str(args.frames), "--warmup-chunks",
              str(args.warmup_chunks), "--quality", str(args.quality), "--device", args.device]
    for flag, on in (("--fp32", args.fp32), ("--bf16", args.bf16), ("--fp16", args.fp16),
                     ("--pipeline", args.pipeline is True),
                     ("--no-pipeline", args.pipeline is False),
                     ("--pipeline-compare", args.pipeline_compare), ("--compile", args.compile),
                     ("--cuda-graphs", args.cuda_graphs)):
        if on:
            words.append(flag)
    return shlex.join(words)


def run(args: argparse.Namespace) -> int:
    from ufvc.codec.options import CodingOptions
    from ufvc.eval.bench import parse_frame_size, resolve_device, run_bench
    from ufvc.eval.neural import load_codec_model

    sizes = [parse_frame_size(text) for text in args.sizes]
    device = resolve_device(args.device)
    if args.threads is None:
        args.threads = default_threads()  # so that the printed command repeats this run
    with torch_threads(args.threads):
        model = load_codec_model(args.model, checkpoint=args.checkpoint,
                                 intra_checkpoint=args.intra_checkpoint, device=device)
        precision = ("bf16" if args.bf16 else "fp16" if args.fp16 else "fp32" if args.fp32
                     else "portable")
        options = CodingOptions(quality=args.quality, precision=precision,
                                pipeline=args.pipeline, compile=args.compile,
                                cuda_graphs=args.cuda_graphs, device=str(device),
                                threads=args.threads)
        report = run_bench(model, sizes, options, frames=args.frames,
                           warmup_chunks=args.warmup_chunks, peak_size=args.peak_size,
                           pipeline_compare=args.pipeline_compare,
                           progress=lambda what: print(f"bench: {what}", file=sys.stderr))
    report.command = command_line(args)
    print(report.to_table(), end="")
    if args.json:
        path = Path(args.json)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(report.to_dict(), indent=1) + "\n", encoding="utf-8")
        except OSError as error:
            raise OutputError(f"cannot write {path}: {error.strerror or error}") from None
        print(f"wrote {path}")
    return 0
