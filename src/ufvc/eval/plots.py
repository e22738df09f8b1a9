"""Rate-distortion plots: bpp against quality, one PNG per sequence and one per class.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so plotting neither needs a
display nor changes the process-wide backend.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ufvc.errors import InputFormatError, OutputError
from ufvc.eval.bdrate import RdCurve, class_curve, curves_by_sequence
from ufvc.eval.results import RateRow

_METRIC_LABELS = {"psnr_yuv": "PSNR-YUV 6:1:1 (dB)", "psnr_y": "PSNR-Y (dB)",
                  "psnr_u": "PSNR-U (dB)", "psnr_v": "PSNR-V (dB)"}


def _file_stem(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "plot"


def _draw(curves: dict[str, RdCurve], title: str, metric: str, path: Path) -> None:
    figure = Figure(figsize=(6.4, 4.6), dpi=120, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for label in sorted(curves):
        curve = curves[label]
        axes.plot(curve.rates, curve.quality, marker="o", markersize=4, linewidth=1.5,
                  label=label)
    axes.set_title(title)
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel(_METRIC_LABELS.get(metric, metric))
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="lower right")
    try:
        figure.savefig(path, format="png")
    except OSError as error:
        raise OutputError(f"cannot write {path}: {error.strerror or error}") from None


def plot_rd_curves(rows: Iterable[RateRow], out_dir: str | Path, *,
                   metric: str = "psnr_yuv") -> tuple[list[Path], list[str]]:
    """Write one PNG per sequence and one per class; returns (files written, notes).

    Every curve in `rows` (configuration and rate-control parameter) is one line. A class plot
    shows the frame-weighted average curve of each configuration that has results for every
    sequence of the class with the same number of points.
    """
    curves = curves_by_sequence(rows, metric)
    if not curves:
        raise InputFormatError("no result rows to plot")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {out_dir}: {error.strerror or error}") from None
    written: list[Path] = []
    notes: list[str] = []
    places = sorted({where for by_sequence in curves.values() for where in by_sequence})
    for class_name, sequence in places:
        lines = {label: by_sequence[(class_name, sequence)]
                 for label, by_sequence in curves.items() if (class_name, sequence) in by_sequence}
        path = out_dir / f"seq_{_file_stem(class_name)}_{_file_stem(sequence)}.png"
        _draw(lines, f"{sequence} ({class_name})", metric, path)
        written.append(path)
    for class_name in sorted({cls for cls, _ in places}):
        members = sorted(seq for cls, seq in places if cls == class_name)
        lines = {}
        for label, by_sequence in curves.items():
            available = [by_sequence[(class_name, s)] for s in members
                         if (class_name, s) in by_sequence]
            if len(available) < len(members):
                notes.append(f"class {class_name} plot leaves out {label}: results for "
                             f"{len(available)} of {len(members)} sequences")
                continue
            try:
                lines[label] = class_curve(available)
            except InputFormatError as error:
                notes.append(f"class {class_name} plot leaves out {label}: {error}")
        if lines:
            path = out_dir / f"class_{_file_stem(class_name)}.png"
            title = f"class {class_name}: {_count(members)}, frame-weighted"
            _draw(lines, title, metric, path)
            written.append(path)
    return written, notes


def _count(members: Sequence[str]) -> str:
    return f"{len(members)} sequence" + ("" if len(members) == 1 else "s")
