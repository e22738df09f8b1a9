"""Store a model with its convolution weights as 8-bit integers, and print what that saves.

    python benchmarks/weight_storage.py --to runs/ufvc-s-int8.ufvm
    python benchmarks/heldout_eval.py --model runs/ufvc-s-int8.ufvm --label cand \
        --skip photos --out runs/eval-int8
    python benchmarks/compare_candidate.py runs/eval-int8 --label cand

Every convolution weight becomes a signed 8-bit level per weight with a float16 scale per
output channel (`save_ufvm(..., storage_dtype=torch.int8)`, a version-2 `.ufvm` that the
codec loads like any other); biases, the per-qp tables and the hyperprior's factorised
density stay float16. The held-out comparison then measures the rounding alone, and the
sizes printed are the room a smaller file would leave under the repository's 20 MB limit
for a wider network.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ufvc.models.checkpoint import read_ufvm, save_ufvm
from ufvc.models.registry import load_model_file

SHIPPED = Path(__file__).resolve().parents[1] / "src" / "ufvc" / "weights" / "ufvc-s.ufvm"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=SHIPPED, help="the .ufvm to store")
    parser.add_argument("--to", type=Path, required=True, help="the int8 model's .ufvm")
    args = parser.parse_args(argv)
    if args.to.resolve() == args.model.resolve():
        parser.error("--to must not be the model itself")
    source = read_ufvm(args.model)
    model = load_model_file(args.model)
    metadata = {**source.metadata, "storage": "int8 convolution weights, float16 otherwise"}
    save_ufvm(model, args.to, metadata=metadata, storage_dtype=torch.int8)
    stored = read_ufvm(args.to)
    worst = 0.0
    for before, after in ((source.intra_state, stored.intra_state),
                          (source.video_state, stored.video_state)):
        for key, value in before.items():
            if value.dim() == 4:
                peak = value.float().abs().flatten(1).amax(1).clamp_min(1e-30)
                change = (after[key] - value.float()).abs().flatten(1).amax(1) / peak
                worst = max(worst, float(change.max()))
    print(f"{args.model} ({source.storage}): {args.model.stat().st_size / 1e6:.1f} MB; "
          f"{args.to} ({stored.storage}): {args.to.stat().st_size / 1e6:.1f} MB")
    print(f"largest change of a weight: {worst:.2e} of its channel's peak (a level is "
          f"{1 / 127:.2e})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
