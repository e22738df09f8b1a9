"""The CSV training log and its plot.

One row per logging interval of training (`split` "train", means over the interval) and
per validation (`split` "val" for the mean over the validation qps, "val_qpNN" for each;
with a weight average, these measure it and "val_live", "val_live_qpNN" the run's own
weights).
`validation_bdrates` ranks the validations by BD-rate over their qps.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from ufvc.errors import InputFormatError
from ufvc.eval.bdrate import RdCurve, bd_rate

LOG_FIELDS = ("step", "stage", "split", "loss", "bpp", "psnr", "lr", "time", "samples_per_s")


class CsvLog:
    """Appends rows to a CSV log, flushed after each row so a crash loses nothing.

    With `resume_step`, rows past that step (written after the checkpoint being resumed)
    are dropped first, so the log matches the resumed run.
    """

    def __init__(self, path: Path, *, resume_step: int | None = None) -> None:
        self.path = path
        rows = read_log(path) if resume_step is not None and path.is_file() else []
        kept = [r for r in rows if int(r["step"]) <= (resume_step or 0)]
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=LOG_FIELDS)
        self._writer.writeheader()
        for row in kept:
            self._writer.writerow({k: row.get(k, "") for k in LOG_FIELDS})
        self._file.flush()

    def write(self, **row: object) -> None:
        values = {}
        for key in LOG_FIELDS:
            value = row.get(key, "")
            values[key] = f"{value:.6g}" if isinstance(value, float) else value
        self._writer.writerow(values)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_log(path: Path) -> list[dict[str, str]]:
    """The rows of a training log."""
    try:
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            if reader.fieldnames is None or not {"step", "split"} <= set(reader.fieldnames):
                raise InputFormatError(f"{path}: not a ufvc training log (no step/split columns)")
            return list(reader)
    except FileNotFoundError:
        raise InputFormatError(f"training log not found: {path}") from None


def validation_bdrates(rows: list[dict[str, str]]) -> dict[tuple[str, int, str], float | None]:
    """BD-rate (percent, PSNR) of every validation against its stage's first one.

    The mean RD loss over the validation qps is dominated by the top qp, whose lambda is
    largest, so it can rise while the curve improves everywhere else; a BD-rate over the
    per-qp points ranks states the way held-out BD-rates do (docs/training.md, session
    38). Keyed by (stage, step, split), split "val" for the weight average (or the weights,
    without one) and "val_live" for the run's own weights, both against the stage's first
    "val" curve; None where a curve cannot be measured.
    """
    curves: dict[tuple[str, int, str], list[tuple[float, float]]] = {}
    for row in rows:
        split, _, qp = row["split"].partition("_qp")
        if qp and split in ("val", "val_live"):
            key = (row["stage"], int(row["step"]), split)
            curves.setdefault(key, []).append((float(row["bpp"]), float(row["psnr"])))
    anchors: dict[str, RdCurve] = {}
    result: dict[tuple[str, int, str], float | None] = {}
    # The average's curve first at each step, so a stage's anchor is its first "val".
    for key, points in sorted(curves.items(), key=lambda item: (item[0][1], item[0][2])):
        curve = RdCurve.from_points(*zip(*points, strict=True))
        anchor = anchors.setdefault(key[0], curve) if key[2] == "val" else anchors.get(key[0])
        try:
            if anchor is None:
                raise InputFormatError("no validation of the average to measure against")
            result[key] = bd_rate(anchor, curve).percent
        except InputFormatError:
            result[key] = None
    return result


def _segments(rows: list[dict[str, str]], split: str, key: str) -> list[tuple[list, list]]:
    """(steps, values) runs of one split; a new run starts where two rows share a step (the
    switch from intra to video validation, whose losses are not comparable)."""
    segments: list[tuple[list, list]] = []
    for row in rows:
        if row["split"] != split or not row.get(key):
            continue
        value = float(row[key])
        if not math.isfinite(value):
            continue
        step = int(row["step"])
        if not segments or (segments[-1][0] and segments[-1][0][-1] == step):
            segments.append(([], []))
        segments[-1][0].append(step)
        segments[-1][1].append(value)
    return segments


def _stage_boundaries(rows: list[dict[str, str]]) -> list[tuple[int, str]]:
    """(step, name of the stage starting there): a stage's last training row is logged at
    its last step."""
    boundaries = []
    previous = None
    for row in rows:
        if row["split"] != "train":
            continue
        if previous is not None and row["stage"] != previous["stage"]:
            boundaries.append((int(previous["step"]), row["stage"]))
        previous = row
    return boundaries


def plot_log(log_path: Path, output: Path) -> None:
    """Draw loss, bpp and PSNR against steps (training and validation) into an image file."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = read_log(log_path)
    if not rows:
        raise InputFormatError(f"{log_path}: the log has no rows yet")
    figure, axes = plt.subplots(3, 1, figsize=(8, 9), sharex=True)
    labels = {"loss": "RD loss (lambda*D + bpp)", "bpp": "bpp", "psnr": "YUV PSNR (dB)"}
    styles = {"train": ("C0", "-"), "val": ("C1", "o-"), "val_live": ("C2", "x--")}
    for axis, key in zip(axes, ("loss", "bpp", "psnr"), strict=True):
        for split, (colour, style) in styles.items():
            for i, (steps, values) in enumerate(_segments(rows, split, key)):
                axis.plot(steps, values, style, color=colour, markersize=3,
                          label=split if i == 0 else None)
        for step, stage in _stage_boundaries(rows):
            axis.axvline(step, color="grey", linestyle=":", linewidth=1)
            if key == "loss":
                axis.annotate(stage, (step, 1.0), xycoords=("data", "axes fraction"),
                              xytext=(3, -12), textcoords="offset points", fontsize=8)
        if key == "loss":
            axis.set_yscale("log")  # losses of different stages differ by orders
        axis.set_ylabel(labels[key])
        axis.grid(alpha=0.3)
    axes[0].legend()
    axes[-1].set_xlabel("step")
    figure.suptitle(log_path.name)
    figure.tight_layout()
    try:
        figure.savefig(output, dpi=110)
    finally:
        plt.close(figure)
