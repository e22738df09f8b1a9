"""`python -m ufvc.demo` (what `make demo` runs): encode and decode a real clip.

Encodes the first frames of a sample clip with the default model, decodes the file,
checks the decoded frames equal the encoder's reconstruction, and writes the decoded
video plus a PNG comparing a source frame with its reconstruction.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ufvc.codec import DEFAULT_MODEL, decode, encode
from ufvc.errors import UfvcError
from ufvc.io import open_reader, open_writer
from ufvc.io.color import frame_to_rgb8
from ufvc.samples import sample_clip


def _comparison(source, recon, path: Path) -> None:
    """Source | reconstruction side by side, labelled by position (left = source)."""
    left, right = frame_to_rgb8(source), frame_to_rgb8(recon)
    gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
    Image.fromarray(np.concatenate([left, gap, right], axis=1)).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ufvc.demo", description=__doc__)
    parser.add_argument("--clip", default="bigbuckbunny.mp4", help="sample clip name")
    parser.add_argument("--frames", type=int, default=33, help="frames to code")
    parser.add_argument("--quality", type=int, default=40, help="0..63, higher is better")
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--out", default="out/demo", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    try:
        source = sample_clip(args.clip)
        stream, recon = out / "demo.ufv", out / "encoder_recon.y4m"
        summary = encode(source, stream, model=args.model, quality=args.quality,
                         max_frames=args.frames, recon=recon)
        psnr = summary.psnr.mean()
        decoded_path = out / "decoded.mp4"
        with open_reader(recon) as rec_reader:
            info = rec_reader.info
            recon_frames = list(rec_reader)
        started = time.perf_counter()
        decoded = list(decode(stream))
        decode_seconds = time.perf_counter() - started
        identical = len(decoded) == len(recon_frames) and all(
            all(np.array_equal(a, b) for a, b in zip(d.planes, r.planes, strict=True))
            for d, r in zip(decoded, recon_frames, strict=True)
        )
        with open_writer(decoded_path, info) as writer:
            for frame in decoded:
                writer.write(frame)
        with open_reader(source) as src_reader:
            first = next(iter(src_reader))
        _comparison(first, decoded[0], out / "compare_frame0.png")
    except UfvcError as error:
        print(f"demo: error: {error}", file=sys.stderr)
        return 1
    print(f"clip        {args.clip}: {summary.frames} frames {summary.width}x{summary.height}")
    print(f"model       {args.model}, quality {args.quality} (0..63, higher is better)")
    print(f"stream      {stream} ({summary.bytes} bytes)")
    print(f"rate        {summary.kbps:.1f} kbps, {summary.bpp:.4f} bpp")
    print(f"quality     PSNR YUV {psnr.yuv611:.2f} dB (Y {psnr.y:.2f}, U {psnr.u:.2f}, "
          f"V {psnr.v:.2f})")
    print(f"encode      {summary.encode_fps:.2f} frames/s")
    print(f"decode      {len(decoded) / decode_seconds:.2f} frames/s")
    print(f"bit-exact   {'yes' if identical else 'NO'}: decoded frames vs encoder reconstruction")
    print(f"wrote       {decoded_path}, {out / 'compare_frame0.png'} (left source, right decoded)")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
