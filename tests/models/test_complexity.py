"""MAC counts agree with a measurement of the official code and with the paper's Table 3."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from ufvc.cli import main
from ufvc.models.checkpoint import save_ufvm
from ufvc.models.complexity import model_complexity
from ufvc.models.intra import INTRA_TINY
from ufvc.models.registry import CodecModel
from ufvc.models.video import TINY

MANIFESTS = Path(__file__).parents[1] / "fixtures" / "manifests"

# GMAC per frame of the official training forward at 1280x704, measured on the release's
# own code with FlopCounterMode, convolutions only (shared/docs/cpu-anchors.md).
OFFICIAL_FORWARD_GMAC_1280x704 = {"dcvc-uf-ld": 77.6, "dcvc-uf-hts": 96.3, "dcvc-uf-htl": 156.7}
INTRA_FORWARD_GMAC_1280x704 = 409.4
PAPER_TABLE3_GMAC = {"dcvc-uf-ld": 170, "dcvc-uf-hts": 211, "dcvc-uf-htl": 343}


@pytest.mark.parametrize("name", sorted(OFFICIAL_FORWARD_GMAC_1280x704))
def test_encode_side_macs_match_the_official_forward(name):
    cost = model_complexity(name, (704, 1280))
    assert round(cost.video.encode_macs / 1e9, 1) == OFFICIAL_FORWARD_GMAC_1280x704[name]
    assert round(cost.intra.encode_macs / 1e9, 1) == INTRA_FORWARD_GMAC_1280x704


@pytest.mark.parametrize("name", sorted(PAPER_TABLE3_GMAC))
def test_paper_convention_reproduces_table3(name):
    cost = model_complexity(name, (1080, 1920), convention="paper")
    assert cost.counted_size == (1024, 1920)
    assert round(cost.video.encode_macs / 1e9) == PAPER_TABLE3_GMAC[name]
    # The default convention counts the padded frame without biases: 1/0.944 of the paper.
    ours = model_complexity(name, (1080, 1920))
    assert ours.counted_size == (1088, 1920)
    assert 0.943 < PAPER_TABLE3_GMAC[name] * 1e9 / ours.video.encode_macs < 0.946


def test_parameters_per_module_match_the_manifest():
    manifest = json.loads((MANIFESTS / "intra.json").read_text())
    cost = model_complexity("dcvc-uf-hts", (128, 192))
    assert {m.name: m.parameters for m in cost.intra.modules} == (
        manifest["parameters_per_top_level_submodule"])
    assert cost.intra.parameters == manifest["total_parameters"]


def test_decoder_side_skips_only_the_analysis_transforms():
    cost = model_complexity("dcvc-uf-htl", (256, 448))
    for codec, skipped in ((cost.intra, {"enc", "hyper_enc"}),
                           (cost.video, {"encoder", "hyper_encoder"})):
        for module in codec.modules:
            if module.name in skipped:
                assert module.encode_macs > 0 and module.decode_macs == 0
            else:
                assert module.decode_macs == module.encode_macs, module.name


def test_info_model_json(capsys):
    assert main(["info", "--model", "ufvc-tiny", "--size", "320x240", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["model"] == "ufvc-tiny" and report["model_id"] == 250
    complexity = report["complexity"]
    assert complexity["frame_size"] == [240, 320] and complexity["counted_size"] == [240, 320]
    assert sum(m["encode_macs"] for m in complexity["video"]["modules"]) > 0


def test_info_text_and_bad_arguments(capsys):
    assert main(["info", "--model", "dcvc-uf-ld"]) == 0
    out = capsys.readouterr().out
    assert "counted as 1920x1088" in out and "paper Table 3: 170G" in out
    assert main(["info"]) == 2
    assert main(["info", "--model", "ufvc-s", "--size", "1920"]) == 2
    assert main(["info", "--model", "no-such-model"]) == 2


def test_info_describes_a_model_file_by_its_own_structure(tmp_path, capsys):
    wider = dataclasses.replace(INTRA_TINY, decoder_width=2 * INTRA_TINY.decoder_width)
    path = tmp_path / "wider.ufvm"
    save_ufvm(CodecModel("ufvc-tiny", 250, wider, TINY), path)
    reports = []
    for model in ("ufvc-tiny", str(path)):
        assert main(["info", "--model", model, "--size", "320x240", "--json"]) == 0
        reports.append(json.loads(capsys.readouterr().out)["complexity"])
    registered, from_file = reports
    assert from_file["video"] == registered["video"]
    for key in ("parameters", "decode_macs"):
        def total(cost, key=key):
            return sum(module[key] for module in cost["intra"]["modules"])
        assert total(from_file) > total(registered)
    assert main(["info", "--model", str(path)]) == 0
    assert f"weights: {path} (stored as float32)" in capsys.readouterr().out
