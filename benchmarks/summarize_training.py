"""Print the validation rows of training logs as a Markdown table.

    python benchmarks/summarize_training.py runs/ufvc-s-cpu runs/ufvc-s-anchors runs/ufvc-s-long

For each run: every validation point (per qp and overall), the stage, the step, the
run's wall-clock time at that point and, on each overall row (the average's and the own
weights'), the BD-rate of that validation's per-qp curve against the stage's first
validation (the mean loss is dominated by the top qp and can rank states backwards);
docs/training.md quotes its output.
"""

from __future__ import annotations

import sys
from pathlib import Path

from ufvc.train.runlog import read_log, validation_bdrates


def main(runs: list[str]) -> int:
    print("| run | stage | step | split | bpp | PSNR (dB) | loss | BD-rate | time (min) |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|")
    for run in runs:
        rows = read_log(Path(run) / "train_log.csv")
        bdrates = validation_bdrates(rows)
        for row in rows:
            if not row["split"].startswith("val"):
                continue
            bdrate = bdrates.get((row["stage"], int(row["step"]), row["split"]))
            shown = "" if bdrate is None else f"{bdrate:+.2f} %"
            print(f"| {Path(run).name} | {row['stage']} | {row['step']} | {row['split']} | "
                  f"{float(row['bpp']):.4f} | {float(row['psnr']):.2f} | "
                  f"{float(row['loss']):.3f} | {shown} | {float(row['time']) / 60:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
