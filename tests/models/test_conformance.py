"""`ufvc conformance` passes on the reference fixtures and fails on damaged copies."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from ufvc.cli import main
from ufvc.models.conformance import run_conformance

FIXTURES = Path(__file__).parents[1] / "fixtures"
# The repository's sibling shared/ folder (present for developers and CI, not for users).
SIBLING_REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference"
REFERENCE = Path(os.environ.get("UFVC_REFERENCE_DIR", SIBLING_REFERENCE))


def fixture_path(model: str) -> Path:
    candidates = [REFERENCE / f"fixture_{model}.npz"]
    if model == "intra":  # small enough to ship with the tests
        candidates.insert(0, FIXTURES / "fixture_intra.npz")
    for path in candidates:
        if path.is_file():
            return path
    pytest.skip(f"fixture_{model}.npz not available")


def load(model: str) -> dict[str, np.ndarray]:
    with np.load(fixture_path(model)) as archive:
        return {key: archive[key] for key in archive.files}


def write(tmp_path: Path, data: dict[str, np.ndarray], name: str = "fixture.npz") -> Path:
    path = tmp_path / name
    np.savez(path, **data)
    return path


@pytest.mark.parametrize("model", ["intra", "hts", "htl", "ld"])
def test_reference_fixture_conforms(model, capsys):
    assert main(["conformance", str(fixture_path(model))]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1].startswith("PASS")
    assert "x_hat" in out and "bits_y" in out


def test_damaged_outputs_fail_with_a_one_line_verdict(tmp_path, capsys):
    data = load("intra")
    data["x_hat"] = data["x_hat"].copy()
    data["x_hat"][1, 2, 30, 40] += 1e-3
    data["y_q"] = data["y_q"].copy()
    data["y_q"][0, 5, 3, 4] += 1
    assert main(["conformance", str(write(tmp_path, data))]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in out if line.endswith("FAIL")] == ["x_hat", "y_q"]
    assert out[-1].startswith("FAIL") and out[-1].endswith("x_hat max abs 0.001 > 1e-05 "
                                                          "(and 1 more)")


def test_any_number_of_calls_is_replayed_and_reported_as_json(tmp_path, capsys):
    """The last intra call alone (batch 2, qps 5 and 63) is a valid fixture too."""
    data = load("intra")
    keep = slice(1, 3)
    subset = {key: (value[keep] if value.ndim and value.shape[0] == 3 else value)
              for key, value in data.items()}
    subset["call_batch"] = data["call_batch"][1:]
    subset["y_margin_min"] = data["y_margin_min"][1:]
    path = write(tmp_path, subset)
    assert main(["conformance", str(path), "--json", "--tolerance-scale", "10"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] is True
    (fixture,) = report["fixtures"]
    assert (fixture["model"], fixture["calls"], fixture["frames"]) == ("intra", 1, 2)
    assert fixture["frame_size"] == [128, 192]
    limits = {check["name"]: check["limit"] for check in fixture["checks"]}
    assert limits["x_hat"] == pytest.approx(1e-4) and limits["bits_z"] == pytest.approx(1e-4)
    assert limits["y_q"] == 0 and limits["z_hat"] == 0  # symbols stay exact


def test_shorter_video_schedule_is_replayed(tmp_path):
    data = load("ld")
    calls = 3
    subset = {}
    for key, value in data.items():
        if key == "frames_u8":
            subset[key] = value[: 1 + calls]
        elif value.ndim and value.shape[0] == 16:  # one row per call
            subset[key] = value[:calls]
        else:
            subset[key] = value
    report = run_conformance(write(tmp_path, subset))
    assert report.passed and report.calls == calls


def test_files_that_are_not_fixtures_are_input_errors(tmp_path, capsys):
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    assert main(["conformance", str(text)]) == 2
    no_model = write(tmp_path, {"x_hat": np.zeros(3)}, "plain.npz")
    assert main(["conformance", str(no_model)]) == 2
    other = write(tmp_path, {"model": np.array("xl"), "x_hat": np.zeros(3)}, "other.npz")
    assert main(["conformance", str(other)]) == 2
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(line.startswith("ufvc: error:") for line in errors)
