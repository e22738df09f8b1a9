"""What caps a model's top quality on video: the quantiser, or the transforms?

    python benchmarks/video_ceiling.py ufvc-s --clips bigbuckbunny.mp4 carphone_pristine.mp4 \
        ~/.cache/ufvc/photos/packages/opencv-doc/usr/share/doc/opencv-doc/examples/data/tree.avi

For each clip's first 33 frames (one intra frame, four 8-frame chunks, as `ufvc encode`
codes them with the default reset interval), at the given quality, this prints the mean
PSNR-YUV (6:1:1, on the YCbCr 4:4:4 frames the networks see) and the estimated bpp of
the P frames:

- coded: the latents rounded as in a stream (rates estimated from the entropy model);
- y unquantised: the intra and video latents y passed on unrounded (z still rounded),
  what the transforms can reconstruct at any rate;
- intra only: every frame coded by the intra codec, for comparison.

When "y unquantised" is barely above "coded", finer quantisation cannot raise the top:
the networks' width or training must.

`--still` codes each clip's first frame 33 times instead: a still scene, where a video
codec should copy its reference for almost no bits, so the P frames should come close to
the intra frame ("intra only" is then the intra frame's own PSNR).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ufvc.codec.api import load_model
from ufvc.io import open_reader
from ufvc.io.color import frame_to_tensor
from ufvc.models.channel import EstimateChannel
from ufvc.models.registry import CodecModel, load_model_file
from ufvc.samples import sample_clip
from ufvc.train.losses import plane_mse, yuv_psnr

FRAMES = 33


class UnquantisedChannel(EstimateChannel):
    """Passes y on unrounded (rates still counted on the rounded values)."""

    def exchange_y(self, step, residual, scales, mask):
        super().exchange_y(step, residual, scales, mask)
        return residual * mask


def read_clip(name: str, frames: int) -> torch.Tensor:
    """The first `frames` frames of a clip, [T, 3, H, W] YCbCr 4:4:4 in [-0.5, 0.5]."""
    path = Path(name).expanduser()
    if not path.exists():
        path = sample_clip(name)
    with open_reader(path) as reader:
        tensors = []
        for frame in reader:
            tensors.append(frame_to_tensor(frame))
            if len(tensors) == frames:
                break
    return torch.stack(tensors)


def code_sequence(model: CodecModel, x: torch.Tensor, qp: int, *,
                  unquantised: bool) -> tuple[float, float]:
    """Mean PSNR-YUV and bpp of the P frames of `x` [T, 3, H, W] (intra, then chunks)."""
    make_channel = UnquantisedChannel if unquantised else EstimateChannel
    q = torch.tensor([qp])
    chunk = model.video.config.frames
    intra_recon = model.intra.code_frame(x[:1], q, make_channel()).x_hat
    state = model.video.init_state(intra_recon)
    mse, bits = [], 0.0
    for start in range(1, len(x) - chunk + 1, chunk):
        channel = make_channel()
        result = model.video.code_chunk(x[None, start:start + chunk], q, state, channel)
        state = result.state
        mse.append(plane_mse(result.x_hat.clamp(-0.5, 0.5)[0], x[start:start + chunk]))
        bits += float(channel.bits_y + channel.bits_z)
    mse_all = torch.cat(mse)
    pixels = mse_all.shape[0] * x.shape[-1] * x.shape[-2]
    return float(yuv_psnr(mse_all).mean()), bits / pixels


def intra_only(model: CodecModel, x: torch.Tensor, qp: int) -> tuple[float, float]:
    """Mean PSNR-YUV and bpp of frames 1.. of `x` coded one by one by the intra codec."""
    q = torch.tensor([qp])
    psnr, bits = [], 0.0
    for frame in x[1:]:
        channel = EstimateChannel()
        x_hat = model.intra.code_frame(frame[None], q, channel).x_hat.clamp(-0.5, 0.5)
        psnr.append(float(yuv_psnr(plane_mse(x_hat[0], frame))))
        bits += float(channel.bits_y + channel.bits_z)
    return sum(psnr) / len(psnr), bits / ((len(x) - 1) * x.shape[-1] * x.shape[-2])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="model name or .ufvm file")
    parser.add_argument("--clips", nargs="+", required=True,
                        help="sample clip names or video files")
    parser.add_argument("--quality", type=int, nargs="+", default=[63])
    parser.add_argument("--still", action="store_true",
                        help="code the first frame repeated: can the networks copy?")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    path = Path(args.model)
    model = load_model_file(path) if path.suffix == ".ufvm" else load_model(args.model)
    model = model.eval()
    print("| clip | quality | coded: dB / bpp | y unquantised: dB | intra only: dB / bpp |")
    print("|---|---:|---|---:|---|")
    with torch.no_grad():
        for name in args.clips:
            x = read_clip(name, 1 if args.still else FRAMES)
            x = x[:1].expand(FRAMES, -1, -1, -1) if args.still else x
            for qp in args.quality:
                coded = code_sequence(model, x, qp, unquantised=False)
                ceiling = code_sequence(model, x, qp, unquantised=True)
                intra = intra_only(model, x, qp)
                print(f"| {Path(name).stem} | {qp} | {coded[0]:.2f} / {coded[1]:.3f} | "
                      f"{ceiling[0]:.2f} | {intra[0]:.2f} / {intra[1]:.3f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
