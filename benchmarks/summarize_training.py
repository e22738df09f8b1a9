"""Print the validation rows of training logs as a Markdown table.

    python benchmarks/summarize_training.py runs/ufvc-s-cpu runs/ufvc-s-anchors runs/ufvc-s-long

For each run: every validation point (per qp and overall), the stage, the step, and the
run's wall-clock time at that point; docs/training.md quotes its output.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path


def main(runs: list[str]) -> int:
    print("| run | stage | step | split | bpp | PSNR (dB) | loss | time (min) |")
    print("|---|---|---:|---|---:|---:|---:|---:|")
    for run in runs:
        log = Path(run) / "train_log.csv"
        with log.open(newline="") as handle:
            for row in csv.DictReader(handle):
                if not row["split"].startswith("val"):
                    continue
                print(f"| {Path(run).name} | {row['stage']} | {row['step']} | {row['split']} | "
                      f"{float(row['bpp']):.4f} | {float(row['psnr']):.2f} | "
                      f"{float(row['loss']):.3f} | {float(row['time']) / 60:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
