"""Copy a trained `ufvc-s` model into the package, stored as float16 (half the size).

    python benchmarks/ship_weights.py runs/ufvc-s-anchors/ufvc-s.ufvm --levels 0 16 32 48 63
    python benchmarks/ship_weights.py runs/x/ufvc-s.ufvm --levels ... --to campaign.ufvm
    python benchmarks/ship_weights.py runs/video/ufvc-s.ufvm --intra-from runs/intra/ufvc-s.ufvm \
        --levels ... --to campaign.ufvm

`--intra-from` takes the intra codec from another run (a campaign's intra stage goes on
while its video stage trains from an earlier intra state).

`--levels` names the qp levels the run trained (its `loss.qp_choices`): the rows of the
per-qp tables in between are interpolated first (`ufvc.models.qp_tables`). With
`--video-only` only the video codec's tables are: a video stage freezes the intra codec,
whose tables were interpolated when it shipped, and interpolating them again from their
float16 rows would move some rows by a float16 step.
`--stretch-top QP RATIO` then makes the quantisation steps of qps QP..63 geometric from
row QP down to RATIO times it (both codecs), to widen the rate range of the top levels.
The shipped file keeps the training metadata and adds where it came from; its digest is that of the
float16 values, which is what every model loaded from it holds. `--storage int8` stores the
convolution weights as 8-bit integers instead (about half the float16 file; a version-2
`.ufvm`, see `ufvc.models.checkpoint`), as a run trained through that rounding
(`weight_storage = "int8"`) exports them and ships them by default.
"""

from __future__ import annotations

import argparse
import sys
from importlib import resources
from pathlib import Path

import torch

from ufvc.models.checkpoint import read_ufvm, save_ufvm
from ufvc.models.qp_tables import interpolate_qp_rows, stretch_top_steps
from ufvc.models.registry import CodecModel, create_model, load_model_file


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("trained", help="the .ufvm written by `ufvc train`")
    parser.add_argument("--name", default="ufvc-s.ufvm", help="file name in ufvc/weights/")
    parser.add_argument("--levels", type=int, nargs="*", default=[],
                        help="qp levels the run trained; the other rows are interpolated")
    parser.add_argument("--to", type=Path, metavar="FILE",
                        help="write FILE instead of the package's weights (a campaign's "
                             "committed state, a GPU run's output)")
    parser.add_argument("--video-only", action="store_true",
                        help="interpolate only the video codec's tables (a video stage's run)")
    parser.add_argument("--intra-from", metavar="FILE",
                        help="take the intra codec's weights from this .ufvm instead")
    parser.add_argument("--stretch-top", nargs=2, metavar=("QP", "RATIO"),
                        help="steps of qps QP..63 geometric from row QP to RATIO times it")
    parser.add_argument("--storage", choices=["float16", "int8"],
                        help="float16 throughout, or int8 convolution weights (default: int8 "
                             "for a run trained with weight_storage = \"int8\", else float16)")
    args = parser.parse_args(argv)
    model = load_model_file(args.trained)
    trained = read_ufvm(args.trained)
    metadata = dict(trained.metadata)
    if args.storage is None:
        args.storage = "int8" if "int8" in trained.storage else "float16"
    # A file that was shipped before keeps naming the run it came from.
    metadata.setdefault("shipped_from", Path(args.trained).name)
    metadata["storage"] = args.storage
    if args.intra_from:
        # The donor's intra codec may have another structure (a widened campaign stage).
        donor = load_model_file(args.intra_from).intra
        video = model.video
        model = CodecModel(model.name, model.model_id, donor.config, video.config)
        model.intra.load_state_dict(donor.state_dict())
        model.video.load_state_dict(video.state_dict())
        metadata["intra_from"] = Path(args.intra_from).name
    if args.levels:
        interpolate_qp_rows(model.video if args.video_only else model, args.levels)
        metadata["interpolated_between_qp_levels"] = list(args.levels)
    if args.stretch_top:
        start, ratio = int(args.stretch_top[0]), float(args.stretch_top[1])
        stretch_top_steps(model, start, ratio)
        metadata["stretched_top_steps"] = {"from_qp": start, "ratio_at_qp63": ratio}
    target = args.to or Path(str(resources.files("ufvc.weights"))) / args.name
    storage_dtype = torch.int8 if args.storage == "int8" else torch.float16
    digest = save_ufvm(model, target, metadata=metadata, storage_dtype=storage_dtype)
    written = load_model_file(target) if args.to else create_model(model.name)
    if written.weights_digest() != digest:
        print("the shipped weights do not load back as written", file=sys.stderr)
        return 1
    print(f"{target}: {target.stat().st_size / 1e6:.1f} MB, digest {digest.hex()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
