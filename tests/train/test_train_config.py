"""Training configs: TOML parsing, overrides, errors, and the shipped configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from ufvc.errors import InputFormatError
from ufvc.train.config import apply_override, config_from_table, load_config, read_table

CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("*.toml"))

MINIMAL = """
# a comment
model = "ufvc-tiny"

[[data.sources]]
kind = "video"
path = "clips"
start = 33

[[stages]]
name = "intra"
kind = "intra"
steps = 10
crop = 128          # one number: a square crop

[[stages]]
name = "video"
kind = "video"
steps = 5
chunks = 2
crop = [64, 128]
"""


@pytest.fixture
def minimal(tmp_path: Path) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(MINIMAL)
    return path


def test_minimal_config_fills_defaults(minimal: Path):
    config = load_config(minimal)
    assert config.model.name == "ufvc-tiny" and config.model.init == "recipe"
    assert config.stages[0].crop == (128, 128) and config.stages[1].crop == (64, 128)
    assert config.stages[0].clip_norm == 0.1 and config.stages[1].clip_norm == 0.2
    assert config.stages[1].sequence_length(8) == 17 and config.stages[0].sequence_length(8) == 1
    assert config.stages[1].use_grad_checkpoint() and not config.stages[0].use_grad_checkpoint()
    assert config.data.sources[0].start == 33 and config.data.sources[0].stop is None
    assert config.loss.video_lambda == (1.0, 768.0) and config.loss.image_lambda == (10.0, 2048.0)
    assert config.total_steps == 15


def test_overrides_change_nested_values(minimal: Path):
    config = load_config(minimal, ["stages.1.steps=7", "seed=3", "data.flips=false",
                                   "loss.qp_range=[10, 20]", "model.init=run.ufvm"])
    assert config.stages[1].steps == 7 and config.seed == 3
    assert config.data.flips is False and config.loss.qp_range == (10, 20)
    assert config.model.name == "ufvc-tiny" and config.model.init == "run.ufvm"


def test_override_errors_name_the_key(minimal: Path):
    table = read_table(minimal)
    with pytest.raises(InputFormatError, match="stages.5"):
        apply_override(table, "stages.5.steps=1")
    with pytest.raises(InputFormatError, match="key=value"):
        apply_override(table, "seed")


def test_unknown_key_is_an_error_naming_it(minimal: Path):
    with pytest.raises(InputFormatError, match="'lerning_rate'"):
        load_config(minimal, ["stages.0.lerning_rate=0.1"])


def test_wrong_type_is_an_error_naming_the_key(minimal: Path):
    with pytest.raises(InputFormatError, match=r"stages\[0\].steps"):
        load_config(minimal, ["stages.0.steps='many'"])
    with pytest.raises(InputFormatError, match="kind"):
        load_config(minimal, ["stages.0.kind='audio'"])


def test_crop_must_be_a_multiple_of_64(minimal: Path):
    with pytest.raises(InputFormatError, match="multiples of 64"):
        load_config(minimal, ["stages.0.crop=100"])


@pytest.mark.parametrize("override, message", [
    ("data.sources.0.motion.dim_chance=1.5", r"motion.dim_chance must lie in \[0, 1\]"),
    ("data.sources.0.motion.still_chance=-0.1", r"motion.still_chance must lie in \[0, 1\]"),
    ("data.sources.0.motion.min_dim_level=0", r"motion.min_dim_level must lie in \(0, 1\]"),
])
def test_motion_chances_and_levels_are_checked(minimal: Path, override: str, message: str):
    with pytest.raises(InputFormatError, match=message):
        load_config(minimal, [override])


def test_stage_sources_must_exist(minimal: Path):
    with pytest.raises(InputFormatError, match="no data source named 'images'"):
        load_config(minimal, ["stages.0.sources=['images']"])


def test_bad_toml_is_an_input_error(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("model = \n")
    with pytest.raises(InputFormatError, match="not valid TOML"):
        load_config(path)


def test_missing_model_is_an_error():
    with pytest.raises(InputFormatError, match="model"):
        config_from_table({"stages": []})


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_shipped_configs_parse(path: Path):
    config = load_config(path)
    assert config.stages and config.data.sources


def test_ufvc_s_recipe_keeps_evaluation_frames_out():
    config = load_config(Path(__file__).parents[2] / "configs" / "ufvc-s.toml")
    assert config.model.name == "ufvc-s" and config.device == "auto"
    clips = [s for s in config.data.sources if s.kind == "sample_clips"]
    assert clips and all(s.start >= 33 for s in clips)
    assert all(s.start < 0 for s in config.validation.sources)  # held-out tails only
    assert [s.kind for s in config.stages][0] == "intra"
    assert [s.chunks for s in config.stages[1:]] == sorted(s.chunks for s in config.stages[1:])


@pytest.mark.parametrize("fast", [True, False])
def test_auto_precision_uses_bf16_only_where_the_cpu_has_kernels(monkeypatch, fast: bool):
    import torch

    from ufvc.train import trainer

    monkeypatch.setattr(trainer, "cpu_has_fast_bf16", lambda: fast)
    cpu = torch.device("cpu")
    assert trainer.resolve_precision("auto", cpu) == (torch.bfloat16 if fast else None)
    assert trainer.resolve_precision("bf16", cpu) == torch.bfloat16  # asked for: kept
    assert trainer.resolve_precision("fp32", cpu) is None
