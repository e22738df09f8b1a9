"""Official checkpoints load strictly; .ufvm files round-trip and reject damage."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from ufvc.errors import CheckpointError
from ufvc.models.channel import EstimateChannel
from ufvc.models.checkpoint import (
    config_from_data,
    config_to_data,
    dequantize_int8,
    load_official,
    load_weights,
    quantize_int8,
    read_ufvm,
    save_ufvm,
)
from ufvc.models.intra import INTRA, INTRA_S, INTRA_TINY, IntraCodecConfig
from ufvc.models.registry import UFVC_S_VIDEO, CodecModel, create_model, load_model_file
from ufvc.models.video import HTL, HTS, LD, TINY, ChunkCodecConfig


class NotPlainData:
    """A pickled object that a weights-only load must refuse."""


def outputs(model: CodecModel) -> tuple[torch.Tensor, torch.Tensor]:
    """Intra then one chunk on a fixed input (deterministic)."""
    generator = torch.Generator().manual_seed(3)
    n = model.video.config.frames
    frames = torch.rand(1, 1 + n, 3, 32, 48, generator=generator) - 0.5
    with torch.no_grad():
        intra = model.intra.code_frame(frames[:, 0], torch.tensor([20]), EstimateChannel())
        state = model.video.init_state(intra.x_hat)
        chunk = model.video.code_chunk(frames[:, 1:], torch.tensor([40]), state,
                                       EstimateChannel())
    return intra.x_hat, chunk.x_hat


def scrambled_tiny() -> CodecModel:
    """ufvc-tiny with weights unlike the recipe, so a load must change every tensor."""
    model = create_model("ufvc-tiny")
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(-0.5).add_(0.25)
    return model


def save_official_layout(state: dict[str, torch.Tensor], path: Path, wrapper: str) -> None:
    """As the release's scripts would have saved it: wrapped, with DataParallel prefixes."""
    torch.save({wrapper: {f"module.{key}": value.clone() for key, value in state.items()},
                "epoch": 7}, path)


@pytest.mark.parametrize("wrapper", ["state_dict", "net"])
def test_official_layout_loads_strictly_and_uses_every_key(tmp_path, wrapper):
    source = create_model("ufvc-tiny")
    video_path, intra_path = tmp_path / "video.pth.tar", tmp_path / "image.pth.tar"
    save_official_layout(source.video.state_dict(), video_path, wrapper)
    save_official_layout(source.intra.state_dict(), intra_path, wrapper)

    target = scrambled_tiny()
    load_official(target, video_path=video_path, intra_path=intra_path)
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    for a, b in zip(outputs(source), outputs(target), strict=True):
        assert torch.equal(a, b)

    via_registry = create_model("ufvc-tiny", checkpoint=video_path, intra_checkpoint=intra_path)
    assert via_registry.weights_digest() == source.weights_digest()


def test_official_video_checkpoint_needs_the_image_checkpoint(tmp_path):
    path = tmp_path / "video.pth.tar"
    save_official_layout(create_model("ufvc-tiny").video.state_dict(), path, "state_dict")
    with pytest.raises(CheckpointError, match="image checkpoint"):
        create_model("ufvc-tiny", checkpoint=path)


def test_mismatched_keys_are_named_with_counts():
    model = create_model("ufvc-tiny")
    state = dict(model.intra.state_dict())
    del state["enc.enc_1.adaptor.weight"]
    del state["dec.dec_2.adaptor.bias"]
    state["enc.extra.weight"] = torch.zeros(3)
    state["q_scale_enc"] = torch.zeros(63, 16)
    with pytest.raises(CheckpointError) as error:
        load_weights(model.intra, state, source="test.pth")
    message = str(error.value)
    assert "2 missing (enc.enc_1.adaptor.weight, dec.dec_2.adaptor.bias)" in message
    assert "1 unexpected (enc.extra.weight)" in message
    assert "1 mis-shaped" in message and "q_scale_enc (63, 16) vs (64, 16)" in message
    assert "\n" not in message


def test_many_missing_keys_are_abbreviated():
    model = create_model("ufvc-tiny")
    with pytest.raises(CheckpointError, match=r"\d+ missing \(([^,]+, ){4}[^,]+, \.\.\.\)"):
        load_weights(model.video, {"q_encoder": model.video.q_encoder}, source="x")


def test_non_checkpoints_and_damaged_files_raise_checkpoint_error(tmp_path):
    text = tmp_path / "notes.pth.tar"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a checkpoint or is damaged"):
        create_model("ufvc-tiny", checkpoint=text)

    good = tmp_path / "model.ufvm"
    save_ufvm(create_model("ufvc-tiny"), good)
    truncated = tmp_path / "truncated.ufvm"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError):
        read_ufvm(truncated)

    with pytest.raises(CheckpointError, match="not found"):
        read_ufvm(tmp_path / "missing.ufvm")

    junk = tmp_path / "junk.ufvm"  # the unpickler reads b"junk" as a lookup of a missing memo
    junk.write_bytes(b"junk\n")
    with pytest.raises(CheckpointError, match="not a checkpoint or is damaged"):
        read_ufvm(junk)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "object.pth.tar"
    torch.save({"state_dict": {}, "extra": NotPlainData()}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        load_official(create_model("ufvc-tiny"), video_path=path)


def test_ufvm_round_trip_preserves_weights_digest_and_metadata(tmp_path):
    model = scrambled_tiny()
    path = tmp_path / "tiny.ufvm"
    digest = save_ufvm(model, path, metadata={"steps": 120, "data": ["a", "b"]})
    assert digest == model.weights_digest()

    loaded = create_model("ufvc-tiny", checkpoint=path)
    assert loaded.weights_digest() == digest
    assert loaded.weights_source == str(path)
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    contents = read_ufvm(path)
    assert contents.metadata == {"steps": 120, "data": ["a", "b"]}
    assert (contents.name, contents.model_id) == ("ufvc-tiny", 250)
    payload = torch.load(path, weights_only=True)  # plain types only
    assert payload["format"] == "ufvm" and payload["digest"] == digest.hex()


def test_metadata_must_be_plain_data(tmp_path):
    with pytest.raises(CheckpointError, match=r"metadata.run.when: NotPlainData"):
        save_ufvm(create_model("ufvc-tiny"), tmp_path / "x.ufvm",
                  metadata={"run": {"when": NotPlainData()}})


def test_tampered_ufvm_is_rejected(tmp_path):
    path = tmp_path / "tiny.ufvm"
    save_ufvm(create_model("ufvc-tiny"), path)
    payload = torch.load(path, weights_only=True)
    payload["state"]["video"]["q_decoder"][0, 0] += 1e-6
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="digest"):
        create_model("ufvc-tiny", checkpoint=path)


def test_ufvm_of_another_model_or_structure_is_rejected(tmp_path):
    other = tmp_path / "s.ufvm"
    save_ufvm(create_model("ufvc-s"), other)
    with pytest.raises(CheckpointError, match="holds model 'ufvc-s'"):
        create_model("ufvc-tiny", checkpoint=other)

    wider = CodecModel("ufvc-tiny", 250, dataclasses.replace(INTRA_TINY, decoder_depth=2), TINY)
    wider.load_recipe_weights()
    path = tmp_path / "wider.ufvm"
    save_ufvm(wider, path)
    with pytest.raises(CheckpointError, match="decoder_depth=2"):
        create_model("ufvc-tiny", checkpoint=path)
    rebuilt = load_model_file(path)  # the file's own configuration
    assert rebuilt.intra.config.decoder_depth == 2
    assert rebuilt.weights_digest() == wider.weights_digest()


@pytest.mark.parametrize("config", [INTRA, INTRA_S, INTRA_TINY])
def test_intra_configs_survive_plain_data(config):
    assert config_from_data(IntraCodecConfig, config_to_data(config), source="t") == config


@pytest.mark.parametrize("config", [LD, HTS, HTL, TINY, UFVC_S_VIDEO])
def test_video_configs_survive_plain_data(config):
    data = config_to_data(config)
    assert all(isinstance(v, int | float | str | bool | list) for v in data.values())
    assert config_from_data(ChunkCodecConfig, data, source="t") == config


def test_bad_config_data_raises_checkpoint_error():
    data = config_to_data(TINY)
    with pytest.raises(CheckpointError, match="entropy_mode"):
        config_from_data(ChunkCodecConfig, {**data, "entropy_mode": "zigzag"}, source="t")
    with pytest.raises(CheckpointError, match="unknown ChunkCodecConfig fields: colour"):
        config_from_data(ChunkCodecConfig, {**data, "colour": 1}, source="t")


def test_files_written_before_a_config_field_existed_load_with_its_default(tmp_path):
    model = CodecModel("ufvc-tiny", 250, INTRA_TINY, TINY)
    model.load_recipe_weights()
    path = tmp_path / "old.ufvm"
    save_ufvm(model, path)
    data = torch.load(path, weights_only=True)
    for part in ("intra", "video"):
        del data["config"][part]["qp_step_range"]
    torch.save(data, path)
    loaded = load_model_file(path)
    assert loaded.video.config.qp_step_range == () and loaded.video.q_step is None
    assert create_model("ufvc-tiny", checkpoint=path).weights_digest() == model.weights_digest()


def test_int8_storage_round_trips_and_is_stable(tmp_path):
    model = scrambled_tiny()
    path, again = tmp_path / "int8.ufvm", tmp_path / "again.ufvm"
    digest = save_ufvm(model, path, storage_dtype=torch.int8)
    payload = torch.load(path, weights_only=True)
    assert payload["version"] == 2
    loaded = create_model("ufvc-tiny", checkpoint=path)
    assert loaded.weights_digest() == digest
    assert read_ufvm(path).storage == "float16+int8"
    original = {**{f"intra.{k}": v for k, v in model.intra.state_dict().items()},
                **{f"video.{k}": v for k, v in model.video.state_dict().items()}}
    integer = 0
    for part in ("intra", "video"):
        for key, stored in payload["state"][part].items():
            value = original[f"{part}.{key}"].float()
            held = getattr(loaded, part).state_dict()[key]
            if stored.dtype == torch.int8:
                integer += 1
                scale = payload["scales"][part][key].float().view(-1, *[1] * (value.dim() - 1))
                assert key.endswith(".weight") and value.dim() == 4
                assert bool(((held - value).abs() <= scale / 2 * (1 + 1e-3)).all()), key
            else:
                assert stored.dtype == torch.float16
                assert torch.equal(held, value.half().float()), key
    assert integer > 0
    # Storing what was loaded gives the same levels, scales and digest.
    assert save_ufvm(loaded, again, storage_dtype=torch.int8) == digest
    # The scrambled weights blow values up, so the rounding is judged relative to them.
    for a, b in zip(outputs(model), outputs(loaded), strict=True):
        assert float((a - b).abs().max()) < 0.02 * float(a.abs().max())


def test_int8_file_is_smaller_than_float16(tmp_path):
    model = create_model("ufvc-tiny")
    save_ufvm(model, tmp_path / "h.ufvm", storage_dtype=torch.float16)
    save_ufvm(model, tmp_path / "i.ufvm", storage_dtype=torch.int8)
    assert (tmp_path / "i.ufvm").stat().st_size < (tmp_path / "h.ufvm").stat().st_size
    assert torch.load(tmp_path / "h.ufvm", weights_only=True)["version"] == 1


def test_int8_values_are_exact_products_and_zero_channels_keep_zero():
    generator = torch.Generator().manual_seed(5)
    magnitudes = torch.logspace(-6, 2, 6).view(-1, 1, 1, 1)
    weight = torch.randn(6, 3, 3, 3, generator=generator) * magnitudes
    weight[2] = 0
    levels, scale = quantize_int8(weight)
    assert levels.dtype == torch.int8 and scale.dtype == torch.float16
    assert int(levels.abs().max()) <= 127 and float(scale[2]) == 1.0
    assert not bool(levels[2].any())
    value = dequantize_int8(levels, scale)
    exact = levels.double() * scale.double().view(-1, 1, 1, 1)
    assert torch.equal(value.double(), exact)
    assert all(torch.equal(a, b) for a, b in zip(quantize_int8(value), (levels, scale),
                                                  strict=True))


@pytest.mark.parametrize("damage, message", [
    (lambda p: p["scales"]["video"].popitem(), "without a scale"),
    (lambda p: p["scales"]["video"].update({k: v[:-1] for k, v in p["scales"]["video"].items()}),
     "bad scale"),
    (lambda p: p["scales"]["video"].update({k: -v for k, v in p["scales"]["video"].items()}),
     "bad scale"),
    (lambda p: p["scales"]["video"].update({"q_decoder": torch.ones(1, dtype=torch.float16)}),
     "not int8"),
])
def test_damaged_int8_storage_is_refused(tmp_path, damage, message):
    path = tmp_path / "int8.ufvm"
    save_ufvm(scrambled_tiny(), path, storage_dtype=torch.int8)
    payload = torch.load(path, weights_only=True)
    damage(payload)
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=message) as error:
        create_model("ufvc-tiny", checkpoint=path)
    assert str(error.value).count("is a damaged .ufvm file") == 1
