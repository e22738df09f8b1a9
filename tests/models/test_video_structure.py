"""Chunk video codec structure: official layouts, any frame size, any chunk size, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ufvc.errors import InputFormatError
from ufvc.models.channel import EstimateChannel
from ufvc.models.spatial_prior import EntropyMode
from ufvc.models.video import HTL, HTS, LD, TINY, ChunkCodec, ChunkCodecConfig, ReconLayout

MANIFESTS = Path(__file__).parents[1] / "fixtures" / "manifests"
OFFICIAL = {"ld": LD, "hts": HTS, "htl": HTL}
TOTALS = {"ld": 9_650_176, "hts": 81_157_632, "htl": 120_538_368}


def _meta_model(config: ChunkCodecConfig) -> ChunkCodec:
    with torch.device("meta"):
        return ChunkCodec(config)


def _tiny_model(config: ChunkCodecConfig = TINY, seed: int = 0) -> ChunkCodec:
    torch.manual_seed(seed)
    return ChunkCodec(config).eval()


def _frames(batch: int, frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, frames, 3, height, width, generator=g) - 0.5


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_parameter_count_equals_release(name):
    model = _meta_model(OFFICIAL[name])
    assert sum(p.numel() for p in model.parameters()) == TOTALS[name]


@pytest.mark.parametrize("name", sorted(OFFICIAL))
def test_state_dict_matches_official_manifest(name):
    manifest = json.loads((MANIFESTS / f"{name}.json").read_text())
    model = _meta_model(OFFICIAL[name])
    ours = [[key, list(t.shape)] for key, t in model.state_dict().items()]
    assert ours == manifest["state_dict"]  # same keys, same shapes, same order
    assert manifest["total_parameters"] == TOTALS[name]
    assert not list(model.buffers())


@pytest.mark.parametrize(("height", "width"), [(72, 104), (50, 66), (64, 64)])
def test_any_frame_size_comes_back_at_input_size(height, width):
    model = _tiny_model()
    x = _frames(2, TINY.frames, height, width)
    qp = torch.tensor([0, 63])
    intra = _frames(2, 1, height, width, seed=1)[:, 0]
    with torch.no_grad():
        state = model.init_state(intra)
        first = model.code_chunk(x, qp, state, EstimateChannel())
        second = model.code_chunk(x, qp, first.state, EstimateChannel())
    for result in (first, second):
        assert result.x_hat.shape == x.shape
        assert torch.isfinite(result.x_hat).all()
    assert first.state.memory is not None
    assert first.state.ref_feature.shape == state.ref_feature.shape[:1] + (
        TINY.feature_channels,) + state.ref_feature.shape[2:]
    # z positions: y is at 1/16, padded to a multiple of 4.
    assert first.z_hat.shape[-2:] == (-(-height // 64), -(-width // 64))


@pytest.mark.parametrize(
    "config",
    [
        dataclasses.replace(TINY, frames=3),  # odd N: the last shared stage serves one frame
        dataclasses.replace(TINY, frames=1, recon_layout=ReconLayout.SINGLE,
                            entropy_mode=EntropyMode.STREAMLINED_CHECKERBOARD),
        dataclasses.replace(TINY, frames=5, recon_layout=ReconLayout.BRANCHES,
                            entropy_mode=EntropyMode.PER_STEP_QUADTREE, resample_shortcut=True,
                            hyper_up_bias=True, decoder_up_kernel=3, half_main=False),
        # A small model of our own: N = 4, widths 64-128, 1-2 blocks per module.
        ChunkCodecConfig(frames=4, y_channels=64, z_channels=64, feature_channels=128,
                         memory_channels=128, recon_channels=64, encoder_blocks=2,
                         decoder_blocks=2, adaptor_i_blocks=1, adaptor_m_blocks=2,
                         extractor_blocks=1, recon_blocks=1,
                         entropy_mode=EntropyMode.STREAMLINED_QUADTREE, fusion_blocks=1,
                         spatial_prior_blocks=1, half_main=True),
    ],
    ids=["n3-shared", "n1-checkerboard", "n5-per-step", "n4-small"],
)
def test_any_chunk_size_and_structure_codes_a_chunk(config):
    model = _tiny_model(config)
    x = _frames(1, config.frames, 48, 40)
    with torch.no_grad():
        state = model.init_state(_frames(1, 1, 48, 40, seed=2)[:, 0])
        result = model.code_chunk(x, torch.tensor([30]), state, EstimateChannel())
    assert result.x_hat.shape == x.shape
    assert torch.isfinite(result.x_hat).all()


def test_float64_and_float32_agree():
    model = _tiny_model()
    x = _frames(1, TINY.frames, 32, 48)
    intra = _frames(1, 1, 32, 48, seed=3)[:, 0]
    qp = torch.tensor([40])
    with torch.no_grad():
        single = model.code_chunk(x, qp, model.init_state(intra), EstimateChannel())
        model.double()
        double = model.code_chunk(x.double(), qp, model.init_state(intra.double()),
                                  EstimateChannel())
    assert double.x_hat.dtype == torch.float64
    assert torch.equal(single.latent.symbols.double(), double.latent.symbols)
    assert torch.equal(single.z_hat.double(), double.z_hat)
    assert torch.allclose(single.x_hat.double(), double.x_hat, atol=1e-5)


def test_reset_leaves_last_frame_patches_and_clears_memory():
    model = _tiny_model()
    x = _frames(1, TINY.frames, 32, 48)
    with torch.no_grad():
        state = model.init_state(_frames(1, 1, 32, 48, seed=4)[:, 0])
        result = model.code_chunk(x, torch.tensor([10]), state, EstimateChannel(), reset=True)
    assert result.state.memory is None
    # Unshuffling is a permutation, so the reset feature is exactly the last frame's patches.
    assert torch.equal(result.state.ref_feature, F.pixel_unshuffle(result.x_hat[:, -1], 8))


def test_training_step_has_gradients():
    model = _tiny_model().train()
    x = _frames(1, TINY.frames, 32, 32)
    channel = EstimateChannel(noisy_rate=True)
    result = model.code_chunk(x, torch.tensor([5]), model.init_state(x[:, 0]), channel)
    loss = F.mse_loss(result.x_hat, x) + 1e-3 * (channel.bits_y + channel.bits_z).sum()
    loss.backward()
    assert model.encoder.down.weight.grad is not None
    assert model.q_encoder.grad is not None and model.bit_estimator_z.h.grad is not None


def test_bad_inputs_raise_input_format_error():
    model = _tiny_model()
    state = model.init_state(_frames(1, 1, 32, 48)[:, 0])
    qp = torch.tensor([1])
    with pytest.raises(InputFormatError):  # wrong number of frames
        model.code_chunk(_frames(1, 3, 32, 48), qp, state, EstimateChannel())
    with pytest.raises(InputFormatError):  # frame size differs from the reference
        model.code_chunk(_frames(1, 2, 64, 48), qp, state, EstimateChannel())
    with pytest.raises(InputFormatError):  # decoding needs the frame size
        model.code_chunk(None, qp, state, EstimateChannel())
    with pytest.raises(InputFormatError):  # one qp per sample
        model.code_chunk(_frames(1, 2, 32, 48), torch.tensor([1, 2]), state, EstimateChannel())
    with pytest.raises(InputFormatError):
        model.init_state(torch.zeros(1, 1, 32, 48))


def test_invalid_configs_are_rejected():
    with pytest.raises(ValueError):
        dataclasses.replace(TINY, frames=0)
    with pytest.raises(ValueError):
        dataclasses.replace(TINY, recon_layout=ReconLayout.SINGLE)  # needs N = 1
    with pytest.raises(ValueError):
        dataclasses.replace(TINY, y_channels=18)
