"""The training campaign's progress: every shipped `ufvc-s` against the conventional anchors.

    python benchmarks/campaign_progress.py      # docs/plots/campaign-progress.png + a table

Walks the commits that changed `src/ufvc/weights/ufvc-s.ufvm`, reads the held-out rows that
each commit measured for the model it shipped (`results/heldout/shipped-*.json` at that
commit) and the training CPU-hours its README states, and computes, against today's anchor
files, the class BD-rates (PSNR-YUV) that tell how far the campaign got: OpenCV's clips and
the sample clips against x264 low-delay and all-intra, and the photographs (the intra codec)
against x264 all-intra. Nothing is encoded: this reads git history and result files.
"""

from __future__ import annotations

import argparse
import math
import re
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ufvc.errors import InputFormatError  # noqa: E402
from ufvc.eval.bdrate import compare  # noqa: E402
from ufvc.eval.results import RateRow, read_rows  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HELDOUT = ROOT / "results" / "heldout"
ANCHORS = ROOT / "results" / "anchors"
WEIGHTS = "src/ufvc/weights/ufvc-s.ufvm"
# series name: (content, anchor file)
SERIES = {
    "clips vs x264 low-delay": ("clips", HELDOUT / "x264-ld-clips.json"),
    "samples vs x264 low-delay": ("samples", ANCHORS / "x264-medium-ld.json"),
    "clips vs x264 all-intra": ("clips", HELDOUT / "x264-ai-clips.json"),
    "samples vs x264 all-intra": ("samples", ANCHORS / "x264-medium-ai.json"),
    "photos (intra) vs x264 all-intra": ("photos", HELDOUT / "x264-ai-photos.json"),
}
CPU_HOURS = re.compile(r"about ([0-9]+(?:\.[0-9]+)?) CPU-hours")


@dataclass
class Ship:
    """One commit that changed the shipped weights, with what it measured."""

    commit: str
    date: str
    cpu_hours: float | None
    bd: dict[str, float | None] = field(default_factory=dict)


def git(*args: str) -> str:
    """stdout of a git command in the repository."""
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def rows_at(commit: str, content: str) -> list[RateRow] | None:
    """The shipped model's held-out rows of one kind of content at `commit`, if it had any."""
    try:
        text = git("show", f"{commit}:results/heldout/shipped-{content}.json")
    except subprocess.CalledProcessError:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"shipped-{content}.json"
        path.write_text(text, encoding="utf-8")
        return read_rows(path)


def class_bd(anchor: list[RateRow], rows: list[RateRow]) -> float | None:
    """The BD-rate of the rows' (single) class against the anchor's, in per cent; None
    where the rows miss some of the anchor's sequences (the photo set grew in session 9)."""
    if {row.sequence for row in anchor} - {row.sequence for row in rows}:
        return None
    try:
        report = compare(anchor, rows)
    except InputFormatError:
        return None
    values = [value for line in report.lines if line.sequence is None
              for value in line.values.values() if value is not None]
    return values[0] if len(values) == 1 else None


def ships() -> list[Ship]:
    """Every weights commit with held-out rows, oldest first, with its BD-rates."""
    anchors = {name: read_rows(path) for name, (_, path) in SERIES.items()}
    found = []
    for line in git("log", "--format=%h %ad", "--date=short", "--", WEIGHTS).splitlines():
        commit, date = line.split()
        readme = git("show", f"{commit}:README.md")
        match = CPU_HOURS.search(readme)
        ship = Ship(commit, date, float(match.group(1)) if match else None)
        for name, (content, _) in SERIES.items():
            rows = rows_at(commit, content)
            ship.bd[name] = class_bd(anchors[name], rows) if rows else None
        if any(value is not None for value in ship.bd.values()):
            found.append(ship)
    return found[::-1]


def plot(found: list[Ship], path: Path) -> None:
    """Bits relative to the anchor at equal quality (1 + BD-rate) against training
    CPU-hours, one line per series, on a log scale: a constant step per CPU-hour is a
    constant saving in per cent."""
    fig, ax = plt.subplots(figsize=(8, 6))
    for name in SERIES:
        points = [(s.cpu_hours, 1.0 + s.bd[name] / 100.0) for s in found
                  if s.cpu_hours is not None and s.bd[name] is not None]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("training CPU-hours of the shipped model (as its README states)")
    ax.set_ylabel("bits / anchor's bits at equal PSNR-YUV (1 + BD-rate)")
    ax.set_yscale("log")
    ax.set_title("ufvc-s, every shipped model, on held-out content")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def table(found: list[Ship]) -> str:
    """The BD-rates as a Markdown table, one row per ship."""
    header = ["commit", "date", "CPU-hours", *SERIES]
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for s in found:
        cells = ["n/a" if s.bd[name] is None else f"{s.bd[name]:+.1f} %" for name in SERIES]
        hours = "n/a" if s.cpu_hours is None else f"{s.cpu_hours:g}"
        out.append(f"| {s.commit} | {s.date} | {hours} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def pace(found: list[Ship], window: float) -> str:
    """Per series, the change of bits per CPU-hour over the last `window` CPU-hours (a
    least-squares line through log(1 + BD-rate)), and at that pace the CPU-hours to
    reach the anchor."""
    out = []
    for name in SERIES:
        points = [(s.cpu_hours, math.log1p(s.bd[name] / 100.0)) for s in found
                  if s.cpu_hours is not None and s.bd[name] is not None]
        if len(points) < 2:
            continue
        last = points[-1][0]
        recent = [(h, y) for h, y in points if h >= last - window]
        if len(recent) < 2:
            continue
        slope, _ = np.polyfit(*zip(*recent, strict=True), deg=1)
        text = (f"{name}: {math.expm1(slope) * 100:+.2f} % of the bits per CPU-hour over the "
                f"last {window:g} CPU-hours")
        if recent[-1][1] > 0 and slope < -1e-4:
            text += f"; about {recent[-1][1] / -slope:.0f} more CPU-hours to the anchor"
        out.append(text)
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "plots" /
                        "campaign-progress.png")
    parser.add_argument("--window", type=float, default=10.0, metavar="HOURS",
                        help="CPU-hours back from the last ship for the pace (default 10)")
    args = parser.parse_args()
    found = ships()
    plot(found, args.plot)
    print(table(found), end="")
    print(pace(found, args.window), end="")
    print(f"wrote {args.plot}")


if __name__ == "__main__":
    main()
