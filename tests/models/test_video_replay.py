"""Decoding (x = None) through a channel that replays the encoder's symbols gives exactly
the encoder's reconstruction and state; streamlined models announce all scales first."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ufvc.models.spatial_prior import EntropyMode
from ufvc.models.video import TINY, ChunkCodec, ReconLayout

CONFIGS = {
    "streamlined-quadtree": TINY,
    "per-step-quadtree": dataclasses.replace(TINY, frames=3,
                                             entropy_mode=EntropyMode.PER_STEP_QUADTREE,
                                             recon_layout=ReconLayout.BRANCHES),
    "streamlined-checkerboard": dataclasses.replace(
        TINY, frames=1, entropy_mode=EntropyMode.STREAMLINED_CHECKERBOARD,
        recon_layout=ReconLayout.SINGLE, q_feature_on_prior=True, encoder_blocks=2,
        encoder_tail_block=True, decoder_output_conv=True),
}
HEIGHT, WIDTH = 50, 66  # not multiples of 16: exercises frame and latent padding
SCHEDULE = [(63, False), (0, False), (31, True), (20, False)]  # (qp, reset) per call


class ScriptedChannel:
    """Encoder side: rounds and records z and each step's symbols.
    Decoder side (`script` given): returns the recorded symbols instead."""

    def __init__(self, script: dict | None = None) -> None:
        self.script = script
        self.sent: dict = {"y": []}
        self.calls: list[tuple] = []

    def exchange_z(self, z, density, qp, shape):
        self.calls.append(("z", tuple(shape)))
        if self.script is not None:
            return self.script["z"]
        assert tuple(z.shape) == tuple(shape)
        self.sent["z"] = torch.round(z)
        return self.sent["z"]

    def begin_y(self, scales, masks):
        self.calls.append(("begin", scales, masks))

    def exchange_y(self, step, residual, scales, mask):
        self.calls.append(("y", step, scales))
        if self.script is not None:
            return self.script["y"][step]
        q = torch.round(residual) * mask
        self.sent["y"].append(q)
        return q


def _model(config) -> ChunkCodec:
    torch.manual_seed(0)
    model = ChunkCodec(config).double().eval()
    with torch.no_grad():  # q rows away from 1 so that qp matters
        for table in (model.q_encoder, model.q_decoder, model.q_feature):
            table.uniform_(0.5, 1.5)
    return model


def _video(frames: int, batch: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(7)
    return torch.rand(batch, frames, 3, HEIGHT, WIDTH, generator=g, dtype=torch.float64) - 0.5


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_decoded_chunks_match_encoder_reconstruction(name):
    config = CONFIGS[name]
    model = _model(config)
    video = _video(1 + config.frames * len(SCHEDULE))
    intra = video[:, 0]
    enc_state = model.init_state(intra)
    dec_state = model.init_state(intra)
    with torch.no_grad():
        for index, (qp_value, reset) in enumerate(SCHEDULE):
            qp = torch.tensor([qp_value, 63 - qp_value])
            chunk = video[:, 1 + index * config.frames: 1 + (index + 1) * config.frames]
            encoder = ScriptedChannel()
            coded = model.code_chunk(chunk, qp, enc_state, encoder, reset=reset)
            decoded = model.code_chunk(None, qp, dec_state, ScriptedChannel(encoder.sent),
                                       reset=reset, frame_size=(HEIGHT, WIDTH))
            assert torch.equal(coded.x_hat, decoded.x_hat)
            assert torch.equal(coded.latent.y_hat, decoded.latent.y_hat)
            assert torch.equal(coded.state.ref_feature, decoded.state.ref_feature)
            assert (coded.state.memory is None) == reset == (decoded.state.memory is None)
            if not reset:
                assert torch.equal(coded.state.memory, decoded.state.memory)
            enc_state, dec_state = coded.state, decoded.state


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_scales_are_announced_before_symbols_when_streamlined(name):
    config = CONFIGS[name]
    model = _model(config)
    video = _video(1 + config.frames, batch=1)
    channel = ScriptedChannel()
    with torch.no_grad():
        model.code_chunk(video[:, 1:], torch.tensor([40]), model.init_state(video[:, 0]),
                         channel)
    kinds = [call[0] for call in channel.calls]
    steps = 2 if config.entropy_mode is EntropyMode.STREAMLINED_CHECKERBOARD else 4
    assert kinds == ["z", "begin"] + ["y"] * steps
    announced = channel.calls[1][1]
    if config.entropy_mode.streamlined:
        assert len(announced) == steps
        for before, call in zip(announced, channel.calls[2:], strict=True):
            assert torch.equal(before, call[2])
    else:
        assert announced is None
