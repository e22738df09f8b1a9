"""Widen a trained model (intra latent, encoder, decoder; video feature), keeping what it learnt.

    python benchmarks/widen_model.py src/ufvc/weights/ufvc-s.ufvm \
        --latent 384 --prior-width 384 --to runs/wide-latent.ufvm
    python benchmarks/widen_model.py src/ufvc/weights/ufvc-s.ufvm \
        --encoder-width 256 --to runs/wide-encoder.ufvm
    python benchmarks/widen_model.py src/ufvc/weights/ufvc-s.ufvm \
        --video-feature 256 --to runs/wide-video.ufvm

The half-width intra codec of `ufvc-s` had 128 latent channels at 1/16 resolution: half a
value per pixel, so its reconstructions lay on a manifold that block PCA with 128 of 768
dimensions bounds near 40 dB on the held-out photographs (docs/training.md); session 9
widened it to 256 this way, and that codec shipped in session 10. This
writes a model with more latent channels whose trained channels keep their weights and
whose output is at first unchanged (`ufvc.models.widen`). The encoder and decoder (128
channels, half-width blocks) can be widened the same way.

Training (`ufvc train ... model.intra.latent_channels=384 model.intra.prior_width=384
model.init=<this file>`, or `model.intra.encoder_width=256`: the structure the file was
widened to) then learns to use them. The video codec's decoded feature (128 channels at 1/8
resolution for a whole 8-frame chunk) widens the same way (`model.video.feature_channels`),
and so does its memory, the temporal context through which alone the decoder sees the
reference (`--video-memory`, `model.video.memory_channels`).

`--reference-skip` instead opens a direct path: each decoded frame is blended with the
reference frame by a gate per 8x8 block computed from the decoded feature
(`model.video.reference_skip=true`); the gate starts closed. Session 41 found that the
video codec cannot copy a still scene through its memory; session 42 shipped the gate
(docs/training.md).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ufvc.models.checkpoint import read_ufvm, save_ufvm
from ufvc.models.registry import CodecModel, load_model_file
from ufvc.models.widen import (
    add_reference_skip,
    widen_decoder,
    widen_encoder,
    widen_intra,
    widen_video,
    widen_video_memory,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help=".ufvm to widen")
    parser.add_argument("--latent", type=int, help="new latent channels")
    parser.add_argument("--prior-width", type=int, default=0,
                        help="inner width of the prior networks (default: keep the old)")
    parser.add_argument("--encoder-width", type=int, help="new encoder width")
    parser.add_argument("--decoder-width", type=int, help="new decoder width")
    parser.add_argument("--video-feature", type=int,
                        help="new feature width of the video codec")
    parser.add_argument("--video-memory", type=int,
                        help="new memory (temporal context) width of the video codec")
    parser.add_argument("--reference-skip", action="store_true",
                        help="add the video codec's gated path from the reference frame")
    parser.add_argument("--to", type=Path, required=True, help="the widened .ufvm")
    args = parser.parse_args(argv)
    if not (args.latent or args.encoder_width or args.decoder_width or args.video_feature
            or args.video_memory or args.reference_skip):
        parser.error("give --latent, --encoder-width, --decoder-width, --video-feature, "
                     "--video-memory or --reference-skip")
    model = load_model_file(args.model)
    intra, video = model.intra, model.video
    try:
        if args.latent:
            intra = widen_intra(intra, args.latent, args.prior_width)
        if args.encoder_width:
            intra = widen_encoder(intra, args.encoder_width)
        if args.decoder_width:
            intra = widen_decoder(intra, args.decoder_width)
        if args.video_feature:
            video = widen_video(video, args.video_feature)
        if args.video_memory:
            video = widen_video_memory(video, args.video_memory)
        if args.reference_skip:
            video = add_reference_skip(video)
    except ValueError as error:
        parser.error(str(error))
    widened = CodecModel(model.name, model.model_id, intra.config, video.config)
    widened.intra.load_state_dict(intra.state_dict())
    widened.video.load_state_dict(video.state_dict())
    metadata = dict(read_ufvm(args.model).metadata)
    metadata["widened_from"] = {"file": Path(args.model).name,
                                "latent_channels": model.intra.config.latent_channels,
                                "encoder_width": model.intra.config.encoder_width,
                                "decoder_width": model.intra.config.decoder_width,
                                "video_feature_channels": model.video.config.feature_channels,
                                "video_memory_channels": model.video.config.memory_channels,
                                "reference_skip": model.video.config.reference_skip}
    save_ufvm(widened, args.to, metadata=metadata)
    old = model.intra.config
    print(f"{args.to}: intra latent {old.latent_channels} -> {intra.config.latent_channels} "
          f"(prior width {intra.config.prior_network_width}), encoder width "
          f"{old.encoder_width} -> {intra.config.encoder_width}, decoder width "
          f"{old.decoder_width} -> {intra.config.decoder_width}; video feature "
          f"{model.video.config.feature_channels} -> {video.config.feature_channels}, memory "
          f"{model.video.config.memory_channels} -> {video.config.memory_channels}, reference "
          f"skip {video.config.reference_skip}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
