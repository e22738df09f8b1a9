"""BD-rates of a candidate model on held-out content: against the shipped model and the anchors.

    python benchmarks/compare_candidate.py runs/eval --label cand

Reads `<label>-clips.json`, `<label>-photos.json` and `<label>-samples.json` from the folder
(written by `heldout_eval.py --label <label>`; missing kinds are skipped) and prints, per kind
of content, the class and per-sequence BD-rates (PSNR-YUV) against `results/heldout/shipped-*`
and every anchor of `heldout_tables.py`, the photographs also split into the first 13 of the
set and the 40 added in session 9, and the top quality level's rate and PSNR. This is the
check a candidate passes before it ships (docs/training.md).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ufvc.eval.bdrate import compare
from ufvc.eval.results import RateRow, read_rows

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "results" / "heldout"
ANCHORS = ROOT / "results" / "anchors"
# The photo set had these 13 pictures until session 9; the figures split them from the rest.
FIRST_13 = frozenset({
    "ColdRipple", "adwaita", "baboon", "blinds", "desert", "dune", "leuvena", "leuvenb",
    "licorice", "picosdeeuropa_by_aitzol_berasategi", "scenetext03", "the-mouse",
    "wine_by_jakkub_mede"})
REFERENCES = {
    "clips": [HELDOUT / "shipped-clips.json", HELDOUT / "x264-ai-clips.json",
              HELDOUT / "x264-ld-clips.json", HELDOUT / "x265-ld-clips.json"],
    "photos": [HELDOUT / "shipped-photos.json", HELDOUT / "x264-ai-photos.json",
               HELDOUT / "x265-ai-photos.json"],
    "samples": [HELDOUT / "shipped-samples.json", ANCHORS / "x264-medium-ai.json",
                ANCHORS / "x264-medium-ld.json", ANCHORS / "x265-medium-ld.json"],
}


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.1f} %"


def report(anchor: list[RateRow], test: list[RateRow], name: str, per_sequence: bool) -> None:
    """One line: the class BD-rate, then each sequence's when asked."""
    result = compare(anchor, test)
    label = result.tests[0]
    classes = [line for line in result.lines if line.sequence is None]
    text = ", ".join(f"{percent(line.values[label])}" for line in classes)
    if per_sequence:
        text += " (" + ", ".join(f"{line.sequence} {percent(line.values[label])}"
                                 for line in result.lines if line.sequence is not None) + ")"
    print(f"  vs {name}: {text}")


def top_points(rows: list[RateRow]) -> None:
    """Rate and PSNR-YUV of the top quality level, per sequence (clips) or as a mean."""
    top = max(row.quality for row in rows)
    at_top = [row for row in rows if row.quality == top]
    if len(at_top) <= 3:
        for row in sorted(at_top, key=lambda r: r.sequence):
            print(f"  q{top:g} {row.sequence}: {row.bpp_actual:.3f} bpp, {row.psnr_yuv:.2f} dB")
    else:
        print(f"  q{top:g} mean of {len(at_top)}: "
              f"{np.mean([r.bpp_actual for r in at_top]):.3f} bpp, "
              f"{np.mean([r.psnr_yuv for r in at_top]):.2f} dB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="folder of the candidate's result files")
    parser.add_argument("--label", default="cand", help="the candidate's file prefix")
    args = parser.parse_args()
    for content, references in REFERENCES.items():
        path = args.folder / f"{args.label}-{content}.json"
        if not path.is_file():
            continue
        test = read_rows(path)
        print(f"{content} ({path}):")
        for reference in references:
            anchor = read_rows(reference)
            report(anchor, test, reference.stem, per_sequence=content != "photos")
            if content == "photos":
                for subset, keep in (("first 13", True), ("new 40", False)):
                    report([r for r in anchor if (r.sequence in FIRST_13) == keep],
                           [r for r in test if (r.sequence in FIRST_13) == keep],
                           f"{reference.stem}, {subset}", per_sequence=False)
        top_points(test)


if __name__ == "__main__":
    main()
