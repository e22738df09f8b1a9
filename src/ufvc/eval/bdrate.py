"""Bjøntegaard-delta rate between result files: per sequence, per class and overall.

The interpolation and integration are the `bjontegaard` package's (`bd_rate`): it fits the log
rate as a function of quality, PCHIP by default (the JCT-VC/JVET common-test-condition sheets),
Akima on request, and averages the difference over the quality range both curves cover.

The aggregation follows the DCVC papers:
- a class curve is the frame-weighted average of its sequences' curves, rate and quality
  averaged separately at each rate point (points taken in order of rising rate), which needs
  every sequence to have the same number of points;
- the overall figure is the mean of the class figures.

A curve with fewer than 4 points, a rate that is not positive, or a quality that does not rise
with the rate gives no figure; the report says why.
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import bjontegaard
import numpy as np

from ufvc.defaults import BDRATE_METHODS, BDRATE_METRICS
from ufvc.errors import InputFormatError
from ufvc.eval.results import RateRow

METRICS = BDRATE_METRICS
METHODS = BDRATE_METHODS
MIN_POINTS = 4
MIN_OVERLAP = 0.75  # below this share of common quality range the report adds a note


@dataclass(frozen=True)
class RdCurve:
    """Rate-quality points of one curve in order of rising rate, and the frames they cover."""

    rates: tuple[float, ...]
    quality: tuple[float, ...]
    frames: int = 1

    @classmethod
    def from_points(cls, rates: Iterable[float], quality: Iterable[float],
                    frames: int = 1) -> RdCurve:
        """A curve from unordered points (sorted here by rate)."""
        pairs = sorted(zip(rates, quality, strict=True))
        return cls(tuple(float(r) for r, _ in pairs), tuple(float(q) for _, q in pairs),
                   frames)

    def problem(self) -> str | None:
        """Why BD-rate cannot use this curve, or None when it can."""
        if len(self.rates) < MIN_POINTS:
            return f"{len(self.rates)} rate points; BD-rate needs at least {MIN_POINTS}"
        values = np.array(self.rates + self.quality)
        if not np.all(np.isfinite(values)):
            return "a rate or quality value is not finite"
        if self.rates[0] <= 0:
            return "a rate is not positive"
        if any(b <= a for a, b in zip(self.rates, self.rates[1:], strict=False)):
            return "two points have the same rate"
        if any(b <= a for a, b in zip(self.quality, self.quality[1:], strict=False)):
            return "quality does not rise with rate (non-monotone curve)"
        return None


@dataclass(frozen=True)
class BdRate:
    """A BD-rate in percent (negative: the test needs fewer bits), with the package's notes."""

    percent: float
    notes: tuple[str, ...] = ()


def bd_rate(anchor: RdCurve, test: RdCurve, *, method: str = "pchip") -> BdRate:
    """BD-rate of `test` against `anchor`; raises InputFormatError when it cannot be computed."""
    if method not in METHODS:
        raise InputFormatError(f"interpolation must be one of {', '.join(METHODS)}, "
                               f"got {method!r}")
    for role, curve in (("anchor", anchor), ("test", test)):
        problem = curve.problem()
        if problem:
            raise InputFormatError(f"{role} curve: {problem}")
    overlap = quality_overlap(anchor, test)
    if overlap <= 0:
        raise InputFormatError("the quality ranges of the two curves do not overlap")
    notes = []
    if overlap < MIN_OVERLAP:
        notes.append(f"quality ranges overlap by {100 * overlap:.1f} % only (of their union); "
                     "the figure averages over that part")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        percent = bjontegaard.bd_rate(list(anchor.rates), list(anchor.quality),
                                      list(test.rates), list(test.quality), method=method,
                                      require_matching_points=False, min_overlap=0)
    notes += [str(w.message) for w in caught]
    return BdRate(float(percent), tuple(notes))


def quality_overlap(anchor: RdCurve, test: RdCurve) -> float:
    """Length of the quality range both curves cover, as a fraction of their union."""
    low = max(anchor.quality[0], test.quality[0])
    high = min(anchor.quality[-1], test.quality[-1])
    union = max(anchor.quality[-1], test.quality[-1]) - min(anchor.quality[0], test.quality[0])
    return max(high - low, 0.0) / union if union > 0 else 0.0


def class_curve(curves: Sequence[RdCurve]) -> RdCurve:
    """The frame-weighted average of sequence curves, point by point in order of rising rate."""
    counts = {len(curve.rates) for curve in curves}
    if len(counts) != 1:
        raise InputFormatError("sequences have different numbers of rate points "
                               f"({', '.join(str(c) for c in sorted(counts))}); a class "
                               "curve needs the same number")
    weights = np.array([curve.frames for curve in curves], dtype=np.float64)
    rates = np.array([curve.rates for curve in curves]).T @ weights / weights.sum()
    quality = np.array([curve.quality for curve in curves]).T @ weights / weights.sum()
    return RdCurve(tuple(rates.tolist()), tuple(quality.tolist()), int(weights.sum()))


# ---------------------------------------------------------------------------------------------
# Result files -> curves


def curves_by_sequence(rows: Iterable[RateRow], metric: str = "psnr_yuv"
                       ) -> dict[str, dict[tuple[str, str], RdCurve]]:
    """curve label -> (class, sequence) -> RD curve (rate = bpp_actual)."""
    if metric not in METRICS:
        raise InputFormatError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    grouped: dict[str, dict[tuple[str, str], list[RateRow]]] = defaultdict(
        lambda: defaultdict(list))
    for row in rows:
        grouped[row.curve][(row.class_name, row.sequence)].append(row)
    curves: dict[str, dict[tuple[str, str], RdCurve]] = {}
    for label, sequences in grouped.items():
        curves[label] = {}
        for where, points in sequences.items():
            frames = {row.frames for row in points}
            if len(frames) != 1:
                raise InputFormatError(f"{label} {where[1]}: rows cover different frame "
                                       f"counts ({sorted(frames)})")
            curves[label][where] = RdCurve.from_points(
                [row.bpp_actual for row in points], [getattr(row, metric) for row in points],
                frames.pop())
    return curves


@dataclass
class BdLine:
    """One line of a report: a sequence, or a class (sequence None), against each test curve."""

    class_name: str
    sequence: str | None
    frames: int
    values: dict[str, float | None] = field(default_factory=dict)  # test curve -> percent


@dataclass
class BdReport:
    """BD-rates of one or more test curves against one anchor curve."""

    anchor: str
    tests: list[str]
    metric: str
    method: str
    lines: list[BdLine]  # sequences, each class after its sequences
    overall: dict[str, float | None]
    notes: list[str]

    def to_markdown(self) -> str:
        """The report as a Markdown section with one table."""
        header = ["class", "sequence", "frames", *self.tests]
        out = [
            f"## BD-rate against {self.anchor}",
            "",
            f"Quality {self.metric}, rate bpp from the stream files, {self.method.upper()} "
            "interpolation of log rate. Negative: fewer bits than the anchor for the same "
            "quality. A class is the frame-weighted average curve of its sequences; overall "
            "is the mean over classes.",
            "",
            "| " + " | ".join(header) + " |",
            "|" + "|".join(["---", "---", "---:"] + ["---:"] * len(self.tests)) + "|",
        ]
        for line in self.lines:
            sequence = line.sequence if line.sequence is not None else "*class*"
            cells = [_percent(line.values.get(test)) for test in self.tests]
            if line.sequence is None:
                cells = [f"**{cell}**" for cell in cells]
            out.append(f"| {line.class_name} | {sequence} | {line.frames} | "
                       + " | ".join(cells) + " |")
        classes = sum(1 for line in self.lines if line.sequence is None)
        overall = [f"**{_percent(self.overall.get(test))}**" for test in self.tests]
        out.append(f"| **overall** | mean of {classes} class(es) | | " + " | ".join(overall)
                   + " |")
        if self.notes:
            out += ["", "Notes:", ""] + [f"- {note}" for note in self.notes]
        return "\n".join(out) + "\n"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f} %"


def _select_anchor(curves: dict[str, dict], anchor_curve: str | None) -> str:
    if anchor_curve is not None:
        matches = [label for label in curves
                   if label == anchor_curve or label.split(":")[0] == anchor_curve]
        if len(matches) != 1:
            raise InputFormatError(f"anchor curve {anchor_curve!r} "
                                   f"{'is ambiguous' if matches else 'not found'}; the anchor "
                                   f"file has {', '.join(sorted(curves))}")
        return matches[0]
    if len(curves) != 1:
        raise InputFormatError(f"the anchor file has {len(curves)} curves "
                               f"({', '.join(sorted(curves))}); pick one with --anchor-config")
    return next(iter(curves))


def compare(anchor_rows: Sequence[RateRow], test_rows: Sequence[RateRow], *,
            metric: str = "psnr_yuv", method: str = "pchip",
            anchor_curve: str | None = None) -> BdReport:
    """BD-rates of every curve in `test_rows` against the anchor curve in `anchor_rows`."""
    if method not in METHODS:
        raise InputFormatError(f"interpolation must be one of {', '.join(METHODS)}, "
                               f"got {method!r}")
    anchor_curves = curves_by_sequence(anchor_rows, metric)
    if not anchor_curves:
        raise InputFormatError("the anchor file has no rows")
    anchor_label = _select_anchor(anchor_curves, anchor_curve)
    anchor = anchor_curves[anchor_label]
    test_curves = curves_by_sequence(test_rows, metric)
    if not test_curves:
        raise InputFormatError("the test file(s) have no rows")
    tests = sorted(test_curves)
    notes: list[str] = []
    lines: list[BdLine] = []
    class_values: dict[str, list[float]] = defaultdict(list)
    classes = sorted({class_name for class_name, _ in anchor})
    for class_name in classes:
        members = sorted(seq for cls, seq in anchor if cls == class_name)
        class_line = BdLine(class_name, None, sum(anchor[(class_name, s)].frames
                                                  for s in members))
        for sequence in members:
            where = (class_name, sequence)
            line = BdLine(class_name, sequence, anchor[where].frames)
            for test in tests:
                line.values[test] = _sequence_value(anchor[where], test_curves[test].get(where),
                                                    test, where, method, notes)
            lines.append(line)
        for test in tests:
            value = _class_value(anchor, test_curves[test], class_name, members, test, method,
                                 notes)
            class_line.values[test] = value
            if value is not None:
                class_values[test].append(value)
        lines.append(class_line)
    overall: dict[str, float | None] = {}
    for test in tests:
        values = class_values.get(test, [])
        overall[test] = float(np.mean(values)) if values else None
        if values and len(values) < len(classes):
            notes.append(f"{test}: overall is the mean of {len(values)} of {len(classes)} "
                         "classes")
    for (class_name, sequence) in sorted({w for t in tests for w in test_curves[t]}):
        if (class_name, sequence) not in anchor:
            notes.append(f"{class_name}/{sequence} is in the test results but not in the "
                         "anchor's; left out")
    return BdReport(anchor_label, tests, metric, method, lines, overall, notes)


def _sequence_value(anchor: RdCurve, test: RdCurve | None, test_label: str,
                    where: tuple[str, str], method: str, notes: list[str]) -> float | None:
    if test is None:
        notes.append(f"{test_label} has no results for {where[0]}/{where[1]}")
        return None
    try:
        result = bd_rate(anchor, test, method=method)
    except InputFormatError as error:
        notes.append(f"{test_label} on {where[0]}/{where[1]}: skipped, {error}")
        return None
    notes += [f"{test_label} on {where[0]}/{where[1]}: {note}" for note in result.notes]
    return result.percent


def _class_value(anchor: dict[tuple[str, str], RdCurve], test: dict[tuple[str, str], RdCurve],
                 class_name: str, members: Sequence[str], test_label: str, method: str,
                 notes: list[str]) -> float | None:
    shared = [s for s in members if (class_name, s) in test]
    if not shared:
        return None
    if len(shared) < len(members):
        notes.append(f"{test_label}: class {class_name} averages the {len(shared)} of "
                     f"{len(members)} sequences it has results for")
    try:
        anchor_class = class_curve([anchor[(class_name, s)] for s in shared])
        test_class = class_curve([test[(class_name, s)] for s in shared])
        result = bd_rate(anchor_class, test_class, method=method)
    except InputFormatError as error:
        notes.append(f"{test_label} on class {class_name}: skipped, {error}")
        return None
    notes += [f"{test_label} on class {class_name}: {note}" for note in result.notes]
    return result.percent
