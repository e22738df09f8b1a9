"""`python -m ufvc.demo` (what `make demo` runs): encode and decode a real clip.

Encodes the first frames of a sample clip with the default model, decodes the file,
checks the decoded frames equal the encoder's reconstruction, and writes the stream,
the decoded video and a PNG comparing a source frame with its reconstruction (and
nothing else: the reconstruction is compared in a temporary folder). Speeds are given
as wall clock and as steady state after the first chunk, with the settings used.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ufvc.cli import Terminated, sigterm_raises
from ufvc.defaults import DEFAULT_MODEL, DEFAULT_PRECISION, PRECISIONS
from ufvc.errors import UfvcError
from ufvc.io import open_reader, open_writer


def _comparison(source, recon, path: Path) -> None:
    """Source | reconstruction side by side, labelled by position (left = source)."""
    from ufvc.io.color import frame_to_rgb8

    left, right = frame_to_rgb8(source), frame_to_rgb8(recon)
    gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([left, gap, right], axis=1)).save(path)


class _Clock:
    """Times of the frames an encode or decode finished, for steady-state speed."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.marks: list[tuple[int, float]] = []  # (frames done, seconds since start)
        self.frames = 0

    def add(self, count: int = 1) -> None:
        self.frames += count
        self.marks.append((self.frames, time.perf_counter() - self.started))

    def wall_fps(self) -> float:
        return self.frames / self.marks[-1][1]

    def steady(self, chunk: int) -> tuple[float, int] | None:
        """(frames/s, first frame) after the intra frame and the first chunk, None if too few.

        The median of the chunk-to-chunk rates: frames arrive a chunk at a time, and with
        pipelining the last chunk follows the one before almost at once.
        """
        ends = [(n, s) for n, s in self.marks if n > chunk and (n - 1) % chunk == 0]
        rates = [(n1 - n0) / (s1 - s0) for (n0, s0), (n1, s1) in itertools.pairwise(ends)]
        if len(rates) < 3:
            return None
        return statistics.median(rates), ends[0][0]


def _speed(clock: _Clock, chunk: int) -> str:
    text = f"{clock.wall_fps():.2f} frames/s wall clock (with model set-up and warm-up)"
    steady = clock.steady(chunk)
    if steady is None:
        return text + "; too few frames for a steady-state figure (give --frames 33 or more)"
    fps, first = steady
    return text + f", {fps:.2f} frames/s steady state (frames {first}-{clock.frames - 1})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ufvc.demo", description=__doc__)
    parser.add_argument("--clip", default="bigbuckbunny.mp4", help="sample clip name")
    parser.add_argument("--frames", type=int, default=33, help="frames to code")
    parser.add_argument("--quality", type=int, default=40, help="0..63, higher is better")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--precision", choices=PRECISIONS, default=DEFAULT_PRECISION,
                        help="arithmetic of the networks (bf16: faster on CPUs with bf16 units)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: the free cores)")
    parser.add_argument("--out", default="out/demo", help="output folder")
    args = parser.parse_args(argv)
    # Before torch loads: idle OpenMP threads sleep (see README, "Threads").
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import torch

    from ufvc.codec import decode, encode
    from ufvc.codec.core import default_pipeline
    from ufvc.commands._options import default_threads
    from ufvc.models.registry import get_model_spec
    from ufvc.samples import sample_clip

    torch.set_num_threads(args.threads or default_threads())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stream = out / "demo.ufv"
    decoded_path = out / "decoded.mp4"
    compare_path = out / "compare_frame0.png"
    try:
        source = sample_clip(args.clip)
        encode_clock, decode_clock = _Clock(), _Clock()
        # The reconstruction is compared with the decode, then removed with its folder.
        with tempfile.TemporaryDirectory() as scratch:
            recon = Path(scratch) / "encoder_recon.y4m"
            summary = encode(source, stream, model=args.model, quality=args.quality,
                             max_frames=args.frames, recon=recon, precision=args.precision,
                             progress=encode_clock.add)
            with open_reader(recon) as rec_reader:
                info = rec_reader.info
                recon_frames = list(rec_reader)
        decoded = []
        for frame in decode(stream):
            decoded.append(frame)
            decode_clock.add()
        identical = len(decoded) == len(recon_frames) and all(
            all(np.array_equal(a, b) for a, b in zip(d.planes, r.planes, strict=True))
            for d, r in zip(decoded, recon_frames, strict=True)
        )
        with open_writer(decoded_path, info) as writer:
            for frame in decoded:
                writer.write(frame)
        with open_reader(source) as src_reader:
            first = next(iter(src_reader))
        _comparison(first, decoded[0], compare_path)
        chunk = get_model_spec(args.model).video.frames
    except UfvcError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 1
    psnr = summary.psnr.mean()
    pipelined = default_pipeline(torch.device("cpu"))
    print(f"clip        {args.clip}: {summary.frames} frames {summary.width}x{summary.height}")
    print(f"model       {args.model}, quality {args.quality} (0..63, higher is better)")
    print(f"settings    {args.precision}, {torch.get_num_threads()} thread(s), pipelining "
          f"{'on' if pipelined else 'off'}, CPU")
    print(f"stream      {stream} ({summary.bytes} bytes)")
    print(f"rate        {summary.kbps:.1f} kbps, {summary.bpp:.4f} bpp")
    print(f"quality     PSNR YUV {psnr.yuv611:.2f} dB (Y {psnr.y:.2f}, U {psnr.u:.2f}, "
          f"V {psnr.v:.2f})")
    print(f"encode      {_speed(encode_clock, chunk)}")
    print(f"decode      {_speed(decode_clock, chunk)}")
    print(f"bit-exact   {'yes' if identical else 'NO'}: decoded frames vs encoder reconstruction")
    print(f"wrote       {stream}, {decoded_path}, {compare_path} (left source, right decoded)")
    print("speed       steady state excludes start-up and the first chunk; `ufvc bench` "
          "measures it at any size (README, Speed)")
    return 0 if identical else 1


if __name__ == "__main__":
    try:
        with sigterm_raises():
            status = main()
    except Terminated:
        print("demo: terminated", file=sys.stderr)
        status = 143
    sys.exit(status)
