"""BD-rate: agreement with the bjontegaard package, closed-form cases, class and overall."""

from __future__ import annotations

import math

import bjontegaard
import numpy as np
import pytest

from ufvc.errors import InputFormatError
from ufvc.eval.bdrate import RdCurve, bd_rate, class_curve, compare
from ufvc.eval.results import RateRow

# The example of the bjontegaard package's README (libx265 measured with ffmpeg at two presets).
README_RATE_ANCHOR = [9487.76, 4593.60, 2486.44, 1358.24]
README_PSNR_ANCHOR = [40.037, 38.615, 36.845, 34.851]
README_RATE_TEST = [9787.80, 4469.00, 2451.52, 1356.24]
README_PSNR_TEST = [40.121, 38.651, 36.970, 34.987]


@pytest.mark.parametrize(
    ("method", "expected"),
    # The README prints no numbers; these are what bjontegaard 1.3.0 returns for its example.
    [("pchip", -4.417485350589045), ("akima", -4.425245156997493)],
)
def test_readme_example_agrees_with_bjontegaard(method: str, expected: float) -> None:
    anchor = RdCurve.from_points(README_RATE_ANCHOR, README_PSNR_ANCHOR)
    test = RdCurve.from_points(README_RATE_TEST, README_PSNR_TEST)
    ours = bd_rate(anchor, test, method=method).percent
    theirs = bjontegaard.bd_rate(README_RATE_ANCHOR, README_PSNR_ANCHOR, README_RATE_TEST,
                                 README_PSNR_TEST, method=method)
    assert ours == pytest.approx(theirs, abs=1e-12)
    assert ours == pytest.approx(expected, abs=1e-9)


def test_readme_example_matches_an_independent_pchip_integration() -> None:
    # Same definition, computed another way: scipy's PCHIP of log10(rate) over PSNR,
    # integrated with a fine trapezoid rule instead of the interpolant's exact integral.
    from scipy.interpolate import PchipInterpolator

    def log_rate(rates: list[float], psnr: list[float]) -> PchipInterpolator:
        order = np.argsort(psnr)
        return PchipInterpolator(np.array(psnr)[order], np.log10(np.array(rates)[order]))

    low = max(min(README_PSNR_ANCHOR), min(README_PSNR_TEST))
    high = min(max(README_PSNR_ANCHOR), max(README_PSNR_TEST))
    grid = np.linspace(low, high, 200_001)
    gap = (log_rate(README_RATE_TEST, README_PSNR_TEST)(grid)
           - log_rate(README_RATE_ANCHOR, README_PSNR_ANCHOR)(grid))
    trapezoid = float(np.sum((gap[1:] + gap[:-1]) / 2 * np.diff(grid))) / (high - low)
    expected = (10**trapezoid - 1) * 100
    anchor = RdCurve.from_points(README_RATE_ANCHOR, README_PSNR_ANCHOR)
    test = RdCurve.from_points(README_RATE_TEST, README_PSNR_TEST)
    assert bd_rate(anchor, test).percent == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("method", ["pchip", "akima"])
def test_every_rate_scaled_by_0_8_gives_minus_20_percent(method: str) -> None:
    rates = [0.031, 0.058, 0.11, 0.23, 0.41]
    psnr = [31.2, 33.9, 36.1, 38.6, 40.2]
    anchor = RdCurve.from_points(rates, psnr)
    test = RdCurve.from_points([0.8 * r for r in rates], psnr)
    assert bd_rate(anchor, test, method=method).percent == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(test, anchor, method=method).percent == pytest.approx(25.0, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "akima"])
def test_psnr_shift_on_a_log_linear_curve_matches_the_closed_form(method: str) -> None:
    # PSNR = a + b log10(rate). Shifting it up by d dB moves log10(rate) by -d/b at every
    # quality, so BD-rate = 10^(-d/b) - 1 over the overlap (both interpolators are exact on
    # straight lines).
    a, b, shift = 45.0, 8.5, 0.6
    rates = np.array([0.02, 0.045, 0.09, 0.17, 0.3])
    anchor = RdCurve.from_points(rates, a + b * np.log10(rates))
    test = RdCurve.from_points(rates, a + shift + b * np.log10(rates))
    expected = (10 ** (-shift / b) - 1) * 100
    assert bd_rate(anchor, test, method=method).percent == pytest.approx(expected, abs=1e-9)
    assert expected == pytest.approx(-15.0, abs=0.1)


def test_a_curve_with_three_points_is_refused() -> None:
    anchor = RdCurve.from_points([0.1, 0.2, 0.4], [30.0, 32.0, 34.0])
    test = RdCurve.from_points([0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0])
    with pytest.raises(InputFormatError, match="3 rate points; BD-rate needs at least 4"):
        bd_rate(anchor, test)


def test_a_non_monotone_curve_is_refused() -> None:
    anchor = RdCurve.from_points([0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 31.5, 36.0])
    test = RdCurve.from_points([0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0])
    with pytest.raises(InputFormatError, match="non-monotone"):
        bd_rate(anchor, test)


def test_curves_without_common_quality_range_are_refused() -> None:
    anchor = RdCurve.from_points([0.1, 0.2, 0.4, 0.8], [30.0, 31.0, 32.0, 33.0])
    test = RdCurve.from_points([0.1, 0.2, 0.4, 0.8], [40.0, 41.0, 42.0, 43.0])
    with pytest.raises(InputFormatError, match="do not overlap"):
        bd_rate(anchor, test)


def test_partly_overlapping_curves_get_a_note() -> None:
    anchor = RdCurve.from_points([0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0])
    test = RdCurve.from_points([0.1, 0.2, 0.4, 0.8], [33.0, 35.0, 37.0, 39.0])
    result = bd_rate(anchor, test)
    assert result.percent < 0
    assert result.notes == ("quality ranges overlap by 33.3 % only (of their union); the "
                            "figure averages over that part",)
    assert bd_rate(anchor, anchor).notes == ()


def test_class_curve_is_the_frame_weighted_average_point_by_point() -> None:
    short = RdCurve.from_points([0.4, 0.1, 0.2, 0.8], [36.0, 30.0, 33.0, 39.0], frames=10)
    long = RdCurve.from_points([0.05, 0.1, 0.2, 0.4], [32.0, 34.0, 36.0, 38.0], frames=30)
    merged = class_curve([short, long])
    assert merged.frames == 40
    assert merged.rates == pytest.approx([(0.1 + 3 * 0.05) / 4, (0.2 + 3 * 0.1) / 4,
                                          (0.4 + 3 * 0.2) / 4, (0.8 + 3 * 0.4) / 4])
    assert merged.quality == pytest.approx([(30 + 3 * 32) / 4, (33 + 3 * 34) / 4,
                                            (36 + 3 * 36) / 4, (39 + 3 * 38) / 4])


def test_class_curve_needs_equal_point_counts() -> None:
    four = RdCurve.from_points([0.1, 0.2, 0.4, 0.8], [30.0, 32.0, 34.0, 36.0])
    five = RdCurve.from_points([0.1, 0.2, 0.4, 0.8, 1.6], [30.0, 32.0, 34.0, 36.0, 38.0])
    with pytest.raises(InputFormatError, match="different numbers of rate points"):
        class_curve([four, five])


def _rows(config: str, class_name: str, sequence: str, frames: int, rates, psnrs) -> list[RateRow]:
    return [
        RateRow(codec=config.split("-")[0], config=config, sequence=sequence,
                class_name=class_name, rate_control="crf", quality=40 - 5 * i, frames=frames,
                width=64, height=64, fps=30.0, bits=int(rate * frames * 64 * 64),
                bpp_actual=rate, kbps=rate * 64 * 64 * 30 / 1000, psnr_y=psnr, psnr_u=psnr + 2,
                psnr_v=psnr + 3, psnr_yuv=psnr + 0.5, encode_fps=10.0, decode_fps=100.0)
        for i, (rate, psnr) in enumerate(zip(rates, psnrs, strict=True))
    ]


def test_compare_reports_sequences_classes_and_the_mean_over_classes() -> None:
    rates = [0.02, 0.05, 0.1, 0.2]
    psnr_a, psnr_b, psnr_c = [30.0, 32.5, 34.6, 36.9], [33.0, 35.0, 36.5, 38.5], [28, 31, 33, 35]
    anchor = (_rows("x264-medium-ld", "B", "one", 10, rates, psnr_a)
              + _rows("x264-medium-ld", "B", "two", 30, rates, psnr_b)
              + _rows("x264-medium-ld", "C", "three", 20, rates, psnr_c))
    test = (_rows("x265-medium-ld", "B", "one", 10, [0.9 * r for r in rates], psnr_a)
            + _rows("x265-medium-ld", "B", "two", 30, [0.7 * r for r in rates], psnr_b)
            + _rows("x265-medium-ld", "C", "three", 20, rates[:3], psnr_c[:3]))
    report = compare(anchor, test)
    assert report.anchor == "x264-medium-ld:crf"
    assert report.tests == ["x265-medium-ld:crf"]
    values = {(line.class_name, line.sequence): line.values["x265-medium-ld:crf"]
              for line in report.lines}
    assert values[("B", "one")] == pytest.approx(-10.0, abs=1e-9)
    assert values[("B", "two")] == pytest.approx(-30.0, abs=1e-9)
    assert values[("C", "three")] is None  # three points only
    assert values[("C", None)] is None
    weighted_anchor = class_curve([RdCurve.from_points(rates, psnr_a, 10),
                                   RdCurve.from_points(rates, psnr_b, 30)])
    weighted_test = class_curve([RdCurve.from_points([0.9 * r for r in rates], psnr_a, 10),
                                 RdCurve.from_points([0.7 * r for r in rates], psnr_b, 30)])
    class_b = bd_rate(weighted_anchor, weighted_test).percent
    assert values[("B", None)] == pytest.approx(class_b, abs=1e-12)
    # Class B is a frame-weighted mix, so it lies between its two sequences.
    assert -30.0 < class_b < -10.0
    assert report.overall["x265-medium-ld:crf"] == pytest.approx(class_b, abs=1e-12)
    assert any("C/three: skipped, test curve: 3 rate points" in note for note in report.notes)
    assert any("mean of 1 of 2 classes" in note for note in report.notes)
    markdown = report.to_markdown()
    assert "| B | one | 10 | -10.00 % |" in markdown
    assert "| C | three | 20 | n/a |" in markdown
    assert f"**{class_b:+.2f} %**" in markdown


def test_overall_is_the_plain_mean_of_class_values() -> None:
    rates = [0.02, 0.05, 0.1, 0.2]
    psnr = [30.0, 32.5, 34.6, 36.9]
    anchor = (_rows("a-x-ld", "B", "one", 10, rates, psnr)
              + _rows("a-x-ld", "C", "two", 1000, rates, psnr))
    test = (_rows("t-x-ld", "B", "one", 10, [0.5 * r for r in rates], psnr)
            + _rows("t-x-ld", "C", "two", 1000, [0.9 * r for r in rates], psnr))
    report = compare(anchor, test)
    # Classes count equally, whatever their frame counts.
    assert report.overall["t-x-ld:crf"] == pytest.approx((-50.0 - 10.0) / 2, abs=1e-9)


def test_anchor_file_with_several_curves_needs_a_choice() -> None:
    rates, psnr = [0.02, 0.05, 0.1, 0.2], [30.0, 32.5, 34.6, 36.9]
    anchor = _rows("x264-medium-ld", "B", "one", 10, rates, psnr) + _rows(
        "x264-medium-ai", "B", "one", 10, [2 * r for r in rates], psnr)
    test = _rows("x265-medium-ld", "B", "one", 10, rates, psnr)
    with pytest.raises(InputFormatError, match="--anchor-config"):
        compare(anchor, test)
    report = compare(anchor, test, anchor_curve="x264-medium-ai")
    assert report.overall["x265-medium-ld:crf"] == pytest.approx(-50.0, abs=1e-9)
    assert math.isclose(compare(anchor, test, anchor_curve="x264-medium-ld:crf")
                        .overall["x265-medium-ld:crf"], 0.0, abs_tol=1e-9)
