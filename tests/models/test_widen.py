"""Widening the intra latent keeps the trained codec's function, then lets it learn."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ufvc.models.channel import EstimateChannel
from ufvc.models.intra import INTRA_S, IntraCodec
from ufvc.models.qp_tables import step_table
from ufvc.models.recipe import recipe_state_dict
from ufvc.models.registry import UFVC_S_VIDEO
from ufvc.models.video import REFERENCE_GATE_GAIN, ChunkCodec
from ufvc.models.widen import (
    add_reference_skip,
    latent_index,
    widen_decoder,
    widen_encoder,
    widen_intra,
    widen_video,
    widen_video_memory,
)
from ufvc.nn.masks import quadtree_masks

# ufvc-s's structure (half width, learned steps) at a test size.
SMALL = dataclasses.replace(INTRA_S, latent_channels=16, hyper_channels=8, encoder_width=16,
                            decoder_width=16, qp_step_range=(3.0, 0.1))


def small_intra() -> IntraCodec:
    model = IntraCodec(SMALL)
    model.load_state_dict(recipe_state_dict(model))
    # The recipe fills every tensor with noise; the steps need the table's shape.
    model.q_step.data = step_table(SMALL.qp_step_range, SMALL.num_qp).data
    return model.eval()


def code(model: IntraCodec, x: torch.Tensor, qp: int) -> tuple[torch.Tensor, torch.Tensor]:
    channel = EstimateChannel()
    with torch.no_grad():
        result = model.code_frame(x, torch.full((x.shape[0],), qp), channel)
    return result.x_hat, channel.bits_y + channel.bits_z


def assert_codes_alike(coder, old, new, x) -> None:
    """`new` reconstructs and spends exactly what `old` does, at the lowest and top qp."""
    for qp in (0, 63):
        x_old, bits_old = coder(old, x, qp)
        x_new, bits_new = coder(new, x, qp)
        torch.testing.assert_close(x_new, x_old, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(bits_new, bits_old)


def test_latent_index_keeps_each_channel_in_its_quadtree_group():
    old, new = 16, 32
    index = latent_index(old, new)
    old_masks = quadtree_masks(old, 4, 4)
    new_masks = quadtree_masks(new, 4, 4)
    for old_mask, new_mask in zip(old_masks, new_masks, strict=True):
        assert torch.equal(old_mask[0], new_mask[0, index])
    assert len(set(index.tolist())) == old


@pytest.mark.parametrize("qp", [0, 32, 63])
def test_widened_codec_codes_as_before(qp):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 48) - 0.5
    old = small_intra()
    new = widen_intra(old, 32, 0).eval()
    assert new.config.latent_channels == 32
    assert new.config.prior_network_width == old.config.prior_network_width
    x_old, bits_old = code(old, x, qp)
    x_new, bits_new = code(new, x, qp)
    torch.testing.assert_close(x_new, x_old, rtol=1e-5, atol=1e-5)
    # The new channels round to zero and cost almost nothing at their floor scale.
    torch.testing.assert_close(bits_new, bits_old, rtol=2e-3, atol=0.5)


def test_new_channels_receive_gradients():
    torch.manual_seed(1)
    new = widen_intra(small_intra(), 32, 0).train()
    x = torch.rand(2, 3, 64, 64) - 0.5
    channel = EstimateChannel(noisy_rate=True)
    result = new.code_frame(x, torch.tensor([63, 40]), channel)
    loss = (result.x_hat - x).square().mean() * 1000 + (channel.bits_y + channel.bits_z).mean()
    loss.backward()
    fresh = torch.ones(32, dtype=torch.bool)
    fresh[latent_index(16, 32)] = False
    # The encoder's rows learn through the straight-through rounding and the decoder's
    # small new columns; the prior's new scale rows through the rate.
    encoder_rows = new.enc.enc_2[-1].weight.grad[fresh]
    scale_rows = new.y_prior_fusion.conv[-1].weight.grad[:32][fresh]
    assert encoder_rows.abs().sum() > 0
    assert scale_rows.abs().sum() > 0


def test_narrowing_is_refused():
    with pytest.raises(ValueError, match="multiple of 4 above 16"):
        widen_intra(small_intra(), 8, 0)
    old_prior = SMALL.prior_network_width
    with pytest.raises(ValueError, match=f"not shrink below {old_prior}"):
        widen_intra(small_intra(), 32, old_prior // 2)


def test_widened_decoder_codes_as_before_and_every_new_weight_can_learn():
    torch.manual_seed(2)
    x = torch.rand(2, 3, 64, 48) - 0.5
    old = small_intra()
    new = widen_decoder(old, 32)
    assert new.config.decoder_width == 32
    assert_codes_alike(code, old, new, x)
    new.train()
    result = new.code_frame(x, torch.tensor([63, 20]), EstimateChannel(noisy_rate=True))
    (result.x_hat - x).square().mean().backward()
    # The new units' outgoing (zero) columns get a gradient at once.
    assert new.dec.dec_2.adaptor.weight.grad[:, 16:].abs().sum() > 0
    assert new.dec.dec_1[1].dc[3].weight.grad[:16, 8:].abs().sum() > 0


def test_widened_encoder_codes_as_before_and_its_new_units_can_learn():
    torch.manual_seed(3)
    x = torch.rand(2, 3, 64, 48) - 0.5
    old = small_intra()
    new = widen_encoder(old, 32)
    assert new.config.encoder_width == 32
    assert new.q_scale_enc.shape == (SMALL.num_qp, 32)
    assert_codes_alike(code, old, new, x)
    new.train()
    channel = EstimateChannel(noisy_rate=True)
    result = new.code_frame(x, torch.tensor([63, 20]), channel)
    loss = (result.x_hat - x).square().mean() * 1000 + (channel.bits_y + channel.bits_z).mean()
    loss.backward()
    # The last layer's zero columns, which read the new units, get a gradient at once.
    assert new.enc.enc_2[-1].weight.grad[:, 16:].abs().sum() > 0


def test_narrower_transforms_are_refused():
    with pytest.raises(ValueError, match="encoder width must be above 16"):
        widen_encoder(small_intra(), 16)
    with pytest.raises(ValueError, match="decoder width must be above 16"):
        widen_decoder(small_intra(), 8)


# ufvc-s's video structure (half-width blocks, shared recon groups, learned steps), small.
SMALL_VIDEO = dataclasses.replace(UFVC_S_VIDEO, frames=2, y_channels=16, z_channels=8,
                                  feature_channels=16, memory_channels=16, recon_channels=8,
                                  reference_skip=False)


def small_video() -> ChunkCodec:
    model = ChunkCodec(SMALL_VIDEO)
    model.load_state_dict(recipe_state_dict(model))
    model.q_step.data = step_table(SMALL_VIDEO.qp_step_range, SMALL_VIDEO.num_qp).data
    return model.eval()


def code_two_chunks(model: ChunkCodec, video: torch.Tensor, qp: int):
    """Reconstructions and estimated bits of two chunks (the second reads the memory)."""
    state = model.init_state(video[:, 0])
    outputs, bits = [], []
    with torch.no_grad():
        for chunk in (video[:, 1:3], video[:, 3:5]):
            channel = EstimateChannel()
            result = model.code_chunk(chunk, torch.tensor([qp]), state, channel)
            state = result.state
            outputs.append(result.x_hat)
            bits.append(channel.bits_y + channel.bits_z)
    return torch.cat(outputs, 1), torch.stack(bits)


def backprop_two_chunks(model: ChunkCodec, video: torch.Tensor) -> None:
    """Gradients of the second chunk's error (it reads the memory and the reference)."""
    model.train()
    state = model.init_state(video[:, 0])
    first = model.code_chunk(video[:, 1:3], torch.tensor([63]), state, EstimateChannel())
    second = model.code_chunk(video[:, 3:5], torch.tensor([63]), first.state, EstimateChannel())
    (second.x_hat - video[:, 3:5]).square().mean().backward()


def test_widened_video_codes_as_before_and_its_new_units_can_learn():
    torch.manual_seed(4)
    video = torch.rand(1, 5, 3, 32, 48) - 0.5
    old = small_video()
    new = widen_video(old, 32)
    assert new.config.feature_channels == 32
    assert_codes_alike(code_two_chunks, old, new, video)
    new.train()
    state = new.init_state(video[:, 0])
    result = new.code_chunk(video[:, 1:3], torch.tensor([63]), state, EstimateChannel())
    (result.x_hat - video[:, 1:3]).square().mean().backward()
    # The recon head's zero columns, which read the new feature channels, learn at once.
    assert new.recon_head.conv2[0][0].adaptor.weight.grad[:, 16:].abs().sum() > 0
    with pytest.raises(ValueError, match="feature width must be above 16"):
        widen_video(old, 16)


def test_widened_video_memory_codes_as_before_and_its_new_units_can_learn():
    torch.manual_seed(5)
    video = torch.rand(1, 5, 3, 32, 48) - 0.5
    old = small_video()
    m = old.config.memory_channels
    new = widen_video_memory(old, 2 * m)
    assert new.config.memory_channels == 2 * m
    assert_codes_alike(code_two_chunks, old, new, video)
    backprop_two_chunks(new, video)
    # The decoder's zero columns, which read the new context channels, learn at once.
    weight = new.decoder.conv1[0].adaptor.weight
    assert weight.grad[:, new.config.feature_channels + m:].abs().sum() > 0
    with pytest.raises(ValueError, match=f"memory width must be above {m}"):
        widen_video_memory(old, m)


def test_reference_skip_codes_as_before_and_its_gate_learns():
    torch.manual_seed(6)
    video = torch.rand(1, 5, 3, 32, 48) - 0.5
    old = small_video()
    new = add_reference_skip(old)
    assert new.config.reference_skip
    assert_codes_alike(code_two_chunks, old, new, video)
    backprop_two_chunks(new, video)
    assert new.reference_gate.weight.grad.abs().sum() > 0
    assert new.reference_gate.bias.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="already has the reference skip"):
        add_reference_skip(new)


def test_open_reference_gate_copies_a_still_scene():
    """With the gate fully open, every frame is the reference, whatever the head makes."""
    new = add_reference_skip(small_video())
    with torch.no_grad():
        new.reference_gate.bias.fill_(1.0 / REFERENCE_GATE_GAIN)
    frame = torch.rand(1, 3, 32, 48) - 0.5
    still = frame[:, None].expand(1, 5, 3, 32, 48)
    x_hat, _ = code_two_chunks(new, still, 0)
    torch.testing.assert_close(x_hat, still[:, 1:], rtol=0, atol=0)
