"""`ufvc encode IN -o OUT.ufv`: compress a video into a .ufv file."""

from __future__ import annotations

import argparse

from ufvc.commands._options import (
    add_input_options,
    add_json_option,
    add_overwrite_options,
    add_progress_options,
    add_range_options,
    add_rate_options,
    add_threads_option,
    check_input_exists,
    check_json_target,
    check_outputs,
    coding_options_from_args,
    emit_summary,
    positive_int,
    progress_bar,
    reader_options,
    torch_threads,
    warn_bit_depth,
)
from ufvc.defaults import (
    DEFAULT_MODEL,
    DEFAULT_PRECISION,
    DEFAULT_QUALITY,
    DEFAULT_RESET_INTERVAL,
    DEFAULT_SKIP_THRESHOLD,
    PRECISIONS,
)


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
        "records whether they ran and decoding follows the stream: decoding a compiled "
        "stream needs --compile (a stream never makes the decoder compile on its own)",
    )


def add_graphs_option(parser: argparse.ArgumentParser) -> None:
    """--cuda-graphs, shared by encode and bench (decoding follows the stream)."""
    parser.add_argument(
        "--cuda-graphs", action="store_true",
        help="replay the networks from CUDA graphs captured at their first call per shape "
        "(--device cuda only; fewer kernel launches). The stream records it and decoding "
        "on a CUDA device follows",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "encode",
        help="compress a video into a .ufv file",
        description="Compress a video (y4m, raw yuv, PNG frames, or anything FFmpeg reads) "
        "into a .ufv file. Quality runs 0..63 and HIGHER IS BETTER; --bitrate asks for an "
        "average bitrate instead. IN and OUT may be - (Y4M from stdin, as "
        "`ffmpeg -f yuv4mpegpipe -` writes it; the .ufv to stdout). An existing OUT is "
        "refused unless -y is given.",
    )
    parser.add_argument("input", help="source video, or - for Y4M on stdin")
    parser.add_argument("-o", "--output", required=True,
                        help="the .ufv file to write, or - for stdout")
    add_overwrite_options(parser)
    parser.add_argument(
        "-q", "--quality", type=int, default=DEFAULT_QUALITY, metavar="0..63",
        help=f"quality level, higher is better (default {DEFAULT_QUALITY})",
    )
    add_rate_options(parser)
    parser.add_argument("--frames", type=positive_int, metavar="K",
                        help="code at most K frames, also with --duration (ffmpeg's -frames:v)")
    add_range_options(parser)
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
        "--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
        help="arithmetic of the networks: portable streams decode to the same bytes on "
        "every machine; fp32, bf16 (faster on CPUs with bf16 units) and fp16 (CUDA) decode "
        "only where the encoder's float kernels are reproduced; the decoder follows the "
        f"stream (default {DEFAULT_PRECISION})",
    )
    parser.add_argument("--recon", metavar="FILE",
                        help="also write the encoder's reconstruction (what decode gives)")
    add_model_options(parser)
    add_threads_option(parser)
    add_speed_options(parser)
    add_graphs_option(parser)
    add_progress_options(parser)
    add_json_option(parser)
    add_input_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ufvc.io.base import is_stdio

    check_input_exists(args.input)
    check_outputs([args.output, args.recon, None if args.json == "-" else args.json],
                  [args.input], overwrite=args.overwrite)
    check_json_target(args, is_stdio(args.output) or is_stdio(args.recon))
    options = reader_options(args)

    from ufvc.codec import encode

    bar = progress_bar(args, "encode")
    coded: dict = {}

    def started(reader) -> None:
        coded["first"] = reader.start
        bar.reset(total=reader.info.num_frames)
        if args.recon:
            warn_bit_depth(args.recon, reader.info.bit_depth)

    with torch_threads(args.threads) as threads, bar:
        summary = encode(
            args.input, args.output, coding_options_from_args(args), model=args.model,
            max_frames=args.frames, recon=args.recon, reader_options=options,
            progress=bar.update, overwrite=args.overwrite, on_start=started,
        )
    first = coded.get("first", 0)
    last = first + summary.frames - 1
    source = "stdin" if is_stdio(args.input) else args.input
    output = "stdout" if is_stdio(args.output) else args.output
    psnr = summary.psnr.mean()
    text = (
        f"{output}: frames {first}-{last} of {source} ({summary.frames} frames "
        f"{summary.width}x{summary.height}), {summary.bytes} bytes, {summary.kbps:.1f} kbps, "
        f"{summary.bpp:.4f} bpp, PSNR YUV {psnr.yuv611:.2f} dB (Y {psnr.y:.2f} U {psnr.u:.2f} "
        f"V {psnr.v:.2f}), {summary.encode_fps:.2f} frames/s, {threads} thread(s), "
        f"{args.precision}"
    )
    if summary.scene_cuts:
        text += f"; scene cuts (intra frames) at frames {', '.join(map(str, summary.scene_cuts))}"
    if summary.intra_chunks:
        text += (f"; chunks coded as intra frames (mode decision) from frames "
                 f"{', '.join(map(str, summary.intra_chunks))}")
    if summary.vbv_overflows:
        text += (f"; the VBV buffer overflowed at {summary.vbv_overflows} record(s), even at "
                 "quality 0")
    emit_summary(args, text, {
        "input": source, "output": output, "first_frame": first, "last_frame": last,
        "frames": summary.frames, "width": summary.width, "height": summary.height,
        "fps": summary.fps, "bytes": summary.bytes, "kbps": summary.kbps, "bpp": summary.bpp,
        "psnr_y": psnr.y, "psnr_u": psnr.u, "psnr_v": psnr.v, "psnr_yuv": psnr.yuv611,
        "seconds": summary.seconds, "frames_per_second": summary.encode_fps,
        "quality": args.quality, "bitrate": summary.options.bitrate,
        "scene_cuts": summary.scene_cuts, "intra_chunks": summary.intra_chunks,
        "vbv_overflows": summary.vbv_overflows,
        "model": args.model or DEFAULT_MODEL, "threads": threads, "precision": args.precision,
    })
    return 0
