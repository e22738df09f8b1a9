"""BD-rate tables and RD plots of results/heldout, from the result files there.

    python benchmarks/heldout_tables.py                  # results/heldout/bdrate-*.md, plots/

Run it after `heldout_eval.py` adds or relabels a model. The models are the files
`shipped-*.json`, `previous-*.json` and `history/*-*.json`; the anchors of the sample
clips are in results/anchors/. Each table compares the models, and the conventional
codecs of the same content, with one anchor curve.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ufvc.eval.bdrate import compare
from ufvc.eval.plots import plot_rd_curves
from ufvc.eval.results import RateRow, read_rows

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ANCHORS = ROOT / "results" / "anchors"

# table name: (anchor file, anchor curve, other files compared beside the models)
TABLES = {
    "clips-vs-x264-ai": ("x264-ai-clips.json", None,
                         ["svt-av1-ld-clips.json", "x264-ld-clips.json", "x265-ai-clips.json",
                          "x265-ld-clips.json"]),
    "clips-vs-x264-ld": ("x264-ld-clips.json", None, ["x265-ld-clips.json"]),
    "clips-vs-x265-ld": ("x265-ld-clips.json", None, []),
    "clips-vs-svt-av1-ld": ("svt-av1-ld-clips.json", None, []),
    "photos-vs-x264-ai": ("x264-ai-photos.json", None, ["x265-ai-photos.json"]),
    "photos-vs-x265-ai": ("x265-ai-photos.json", None, []),
    "samples-vs-x264-ai": (SAMPLE_ANCHORS / "x264-medium-ai.json", None, []),
    "samples-vs-x264-ld": (SAMPLE_ANCHORS / "x264-medium-ld.json", None,
                           [SAMPLE_ANCHORS / "x265-medium-ld.json"]),
    "samples-vs-x265-ld": (SAMPLE_ANCHORS / "x265-medium-ld.json", None, []),
}
PLOTTED = ("clips-vs-x264-ai", "photos-vs-x264-ai")  # RD plots of every curve of these


def model_files(folder: Path, content: str) -> list[Path]:
    """The models' result files of one kind of content (clips, photos or samples)."""
    found = [folder / f"{label}-{content}.json" for label in ("shipped", "previous")]
    found += sorted((folder / "history").glob(f"*-{content}.json"))
    return [path for path in found if path.is_file()]


def write_table(name: str, anchor: list[RateRow], tests: list[RateRow], folder: Path,
                anchor_curve: str | None = None) -> None:
    """One bdrate-<name>.md."""
    report = compare(anchor, tests, metric="psnr_yuv", method="pchip",
                     anchor_curve=anchor_curve)
    (folder / f"bdrate-{name}.md").write_text(report.to_markdown(), encoding="utf-8")
    print(f"wrote bdrate-{name}.md")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=ROOT / "results" / "heldout")
    args = parser.parse_args()
    folder = args.folder
    for name, (anchor_file, anchor_curve, others) in TABLES.items():
        content = name.split("-vs-")[0]
        models = [row for path in model_files(folder, content) for row in read_rows(path)]
        anchor = read_rows(folder / anchor_file)
        extra = [row for path in others for row in read_rows(folder / path)]
        write_table(name, anchor, models + extra, folder, anchor_curve)
        if name in PLOTTED:
            rows = list({row.key: row for row in anchor + models + extra}.values())
            written, _ = plot_rd_curves(rows, folder / "plots", metric="psnr_yuv")
            print(f"wrote {len(written)} plot(s)")
    for content in ("clips", "photos", "samples"):
        previous = folder / f"previous-{content}.json"
        if previous.is_file():
            others = [p for p in model_files(folder, content) if p != previous]
            write_table(f"vs-previous-{content}", read_rows(previous),
                        [row for path in others for row in read_rows(path)], folder)


if __name__ == "__main__":
    main()
