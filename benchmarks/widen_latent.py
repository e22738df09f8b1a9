"""Widen the intra codec's latent of a trained model, keeping what it has learnt.

    python benchmarks/widen_latent.py results/training/campaign/ufvc-s-campaign.ufvm \
        --latent 256 --prior-width 256 --to runs/wide-init.ufvm

The half-width intra codec of `ufvc-s` has 128 latent channels at 1/16 resolution: half a
value per pixel, so its reconstructions lie on a manifold that block PCA with 128 of 768
dimensions bounds near 36.6 dB on the held-out photographs (docs/training.md). This
writes a model with more latent channels whose trained channels keep their weights and
whose output is at first unchanged (`ufvc.models.widen`).

Training (`ufvc train ... model.intra.latent_channels=256 model.intra.prior_width=256
model.init=<this file>`) then learns to use the new channels.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ufvc.models.checkpoint import read_ufvm, save_ufvm
from ufvc.models.registry import CodecModel, load_model_file
from ufvc.models.widen import widen_intra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help=".ufvm to widen")
    parser.add_argument("--latent", type=int, required=True, help="new latent channels")
    parser.add_argument("--prior-width", type=int, default=0,
                        help="inner width of the prior networks (default: keep the old)")
    parser.add_argument("--to", type=Path, required=True, help="the widened .ufvm")
    args = parser.parse_args(argv)
    model = load_model_file(args.model)
    intra = widen_intra(model.intra, args.latent, args.prior_width)
    widened = CodecModel(model.name, model.model_id, intra.config, model.video.config)
    widened.intra.load_state_dict(intra.state_dict())
    widened.video.load_state_dict(model.video.state_dict())
    metadata = dict(read_ufvm(args.model).metadata)
    metadata["widened_from"] = {"file": Path(args.model).name,
                                "latent_channels": model.intra.config.latent_channels}
    save_ufvm(widened, args.to, metadata=metadata)
    print(f"{args.to}: intra latent {model.intra.config.latent_channels} -> {args.latent}, "
          f"prior width {intra.config.prior_network_width}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
