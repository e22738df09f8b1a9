"""What storing a model's convolution weights at fewer bits would cost it.

    python benchmarks/weight_storage.py --bits 8 --to runs/ufvc-s-int8.ufvm
    python benchmarks/heldout_eval.py --model runs/ufvc-s-int8.ufvm --label cand \
        --skip photos --out runs/eval-int8
    python benchmarks/compare_candidate.py runs/eval-int8 --label cand

Every 4-d (convolution) weight is rounded to `--bits` signed levels per output channel
(symmetric, the channel's largest magnitude at the top level); biases, the per-qp tables
and the hyperprior's factorised density keep their float16 values. The rounded model is
written back as float16, so the codec runs it unchanged and the held-out comparison
measures the rounding alone. Prints the size a file storing those weights as integers
(with a float16 scale per channel) would have: the room a smaller file would leave under
the repository's 20 MB limit for a wider network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ufvc.models.checkpoint import read_ufvm, save_ufvm
from ufvc.models.registry import load_model_file

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "ufvc" / "weights" / "ufvc-s.ufvm"


def round_conv_weights(module: torch.nn.Module, bits: int) -> tuple[int, int, int]:
    """Round `module`'s convolution weights in place; return (rounded, channels, all) counts."""
    top = 2 ** (bits - 1) - 1
    rounded = channels = total = 0
    with torch.no_grad():
        for parameter in module.parameters():
            total += parameter.numel()
            if parameter.dim() != 4:
                continue
            weight = parameter.float()
            scale = weight.abs().flatten(1).amax(1).clamp_min(1e-12) / top
            scale = scale.view(-1, 1, 1, 1)
            parameter.copy_(torch.round(weight / scale).clamp(-top, top) * scale)
            rounded += parameter.numel()
            channels += parameter.shape[0]
    return rounded, channels, total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED, help="the .ufvm to round")
    parser.add_argument("--bits", type=int, default=8, help="signed bits per weight (2-12)")
    parser.add_argument("--to", type=Path, required=True, help="the rounded model's .ufvm")
    args = parser.parse_args(argv)
    if not 2 <= args.bits <= 12:
        parser.error("--bits must be 2 to 12")
    if args.to.resolve() == args.model.resolve():
        parser.error("--to must not be the model itself")
    model = load_model_file(args.model)
    rounded = channels = total = 0
    for part in (model.intra, model.video):
        counts = round_conv_weights(part, args.bits)
        rounded, channels, total = (a + b for a, b in zip((rounded, channels, total), counts,
                                                          strict=True))
    metadata = dict(read_ufvm(args.model).metadata)
    metadata["storage"] = f"float16 (convolutions rounded to {args.bits} bits)"
    save_ufvm(model, args.to, metadata=metadata, storage_dtype=torch.float16)
    float16_mb = total * 2 / 1e6
    integer_mb = (rounded * args.bits / 8 + channels * 2 + (total - rounded) * 2) / 1e6
    print(f"{rounded:,} of {total:,} parameters rounded to {args.bits} bits in "
          f"{channels:,} channels; wrote {args.to}")
    print(f"weights as float16: {float16_mb:.1f} MB; stored as {args.bits}-bit integers: "
          f"{integer_mb:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
