"""How much fidelity an intra codec's latent can hold, on the held-out photographs.

    python benchmarks/latent_ceiling.py ufvc-s runs/previous.ufvm runs/candidate/ufvc-s.ufvm

Prints two bounds on 256x256 centre crops of the validation photographs of
`ufvc gather-photos` (YCbCr 4:4:4, mean PSNR-YUV 6:1:1):

- block PCA: each 16x16 block (768 values) kept to its first k principal components
  (basis pooled over the crops). A latent of C channels at 1/16 resolution holds C values
  per such block, so a linear transform with C = k does this well; a nonlinear
  transform with overlapping support does somewhat better;
- each model's autoencoder at quality 63 with y not quantised: what its transforms can
  reconstruct at any rate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ufvc.codec.api import load_model
from ufvc.io.color import rgb_to_frame
from ufvc.models.registry import load_model_file

PLANE_WEIGHTS = torch.tensor([6.0, 1.0, 1.0]) / 8
BLOCK = 16


def held_out_crops(photos: Path, size: int) -> torch.Tensor:
    """The validation photographs' centre crops, YCbCr 4:4:4 in [-0.5, 0.5], [N, 3, s, s]."""
    items = []
    for listing in ("val-photo.json", "val-mixed.json"):
        items += json.loads((photos / listing).read_text())
    crops = []
    for item in items:
        rgb = np.array(Image.open(photos / item["image"]).convert("RGB"))
        top, left = (rgb.shape[0] - size) // 2, (rgb.shape[1] - size) // 2
        frame = rgb_to_frame(rgb[top:top + size, left:left + size], chroma="444")
        planes = np.stack([np.asarray(p) for p in frame.planes])
        crops.append(torch.from_numpy(planes).float() / 255 - 0.5)
    return torch.stack(crops)


def mean_psnr_yuv(mse: torch.Tensor) -> float:
    """Mean over pictures of PSNR-YUV, from per-picture per-plane MSE [N, 3]."""
    return float((10 * torch.log10(1 / mse) * PLANE_WEIGHTS.to(mse)).sum(1).mean())


def block_pca_psnr(x: torch.Tensor, components: int) -> float:
    """PSNR-YUV of every 16x16 block kept to its first `components` principal components."""
    blocks = x.unfold(2, BLOCK, BLOCK).unfold(3, BLOCK, BLOCK)  # N, 3, h, w, 16, 16
    blocks = blocks.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3 * BLOCK * BLOCK).double()
    mean = blocks.mean(0)
    _, _, basis = torch.linalg.svd(blocks - mean, full_matrices=False)
    kept = basis[:components]
    rebuilt = (blocks - mean) @ kept.T @ kept + mean
    error = (rebuilt - blocks).reshape(len(x), -1, 3, BLOCK * BLOCK)
    return mean_psnr_yuv(error.square().mean(dim=(1, 3)))


def unquantised_psnr(model_name: str, x: torch.Tensor, qp: int = 63) -> float:
    """PSNR-YUV of the intra codec's transforms at `qp` with y passed on unrounded."""
    path = Path(model_name)
    model = load_model_file(path) if path.suffix == ".ufvm" else load_model(model_name)
    intra = model.intra.eval()
    q = torch.tensor([qp])
    with torch.no_grad():
        y = intra.enc(x, intra.q_scale_enc[q].expand(len(x), -1))
        scale = (intra.q_scale_y_enc[q] * intra.q_scale_y_dec[q])[:, :, None, None]
        x_hat = intra.dec(y * scale, intra.q_scale_dec[q].expand(len(x), -1))
    return mean_psnr_yuv((x_hat.clamp(-0.5, 0.5) - x).square().mean(dim=(2, 3)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help="model names or .ufvm files")
    parser.add_argument("--photos", type=Path, default=Path("~/.cache/ufvc/photos"),
                        help="folder of `ufvc gather-photos`")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    x = held_out_crops(args.photos.expanduser(), args.size)
    print(f"{len(x)} held-out photographs, {args.size}x{args.size} centre crops")
    for components in (64, 128, 192, 256, 384):
        print(f"block PCA, {components:3d} of 768 values per 16x16 block: "
              f"{block_pca_psnr(x, components):.2f} dB")
    for name in args.models:
        print(f"{name}: transforms at quality 63, y unquantised: "
              f"{unquantised_psnr(name, x):.2f} dB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
