"""Multi-step spatial prior: partitions, channel protocol, decode replay, official shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ufvc.models.channel import EstimateChannel
from ufvc.models.spatial_prior import EntropyMode, build_spatial_prior

LATENT = 8
PARAMS = 24
MODES = list(EntropyMode)


class ScriptedChannel:
    """Records what an encoder sends (z, per-step symbols, calls) and, once given
    `script`, plays the symbols back to a decoder."""

    def __init__(self, script: list[torch.Tensor] | None = None) -> None:
        self.script = script
        self.sent: list[torch.Tensor] = []
        self.calls: list[tuple] = []

    def exchange_z(self, z, density, qp, shape):
        raise AssertionError("the spatial prior never codes z")

    def begin_y(self, scales, masks):
        self.calls.append(("begin", scales, masks))

    def exchange_y(self, step, residual, scales, mask):
        self.calls.append(("y", step, scales, mask))
        if self.script is None:
            q = torch.round(residual) * mask
            self.sent.append(q)
            return q
        return self.script[step]


def _prior(mode: EntropyMode, dtype=torch.float64):
    torch.manual_seed(0)
    host = nn.Module()
    prior = build_spatial_prior(mode, LATENT, PARAMS, blocks=2, half=True)
    prior.attach(host)
    # Larger weights than the default init so the step networks move the means visibly.
    with torch.no_grad():
        for p in host.parameters():
            p.mul_(3.0)
    host.to(dtype)
    return host, prior


def _inputs(dtype=torch.float64):
    g = torch.Generator().manual_seed(1)
    y = 4 * torch.randn(2, LATENT, 6, 10, generator=g, dtype=dtype)
    params = torch.randn(2, PARAMS, 6, 10, generator=g, dtype=dtype)
    scales = torch.rand(2, LATENT, 6, 10, generator=g, dtype=dtype) + 0.05
    means = torch.randn(2, LATENT, 6, 10, generator=g, dtype=dtype)
    return y, params, scales, means


@pytest.mark.parametrize("mode", MODES)
def test_masks_code_every_element_exactly_once(mode):
    _, prior = _prior(mode)
    masks = prior.masks(torch.zeros(1, LATENT, 5, 7))
    assert len(masks) == (2 if mode is EntropyMode.STREAMLINED_CHECKERBOARD else 4)
    total = torch.stack(masks).sum(0)
    assert torch.equal(total, torch.ones_like(total))


@pytest.mark.parametrize("mode", MODES)
def test_decoder_replay_reproduces_encoder_latent(mode):
    _, prior = _prior(mode)
    y, params, scales, means = _inputs()
    encoder = ScriptedChannel()
    with torch.no_grad():
        coded = prior.code(y, params, scales, means, encoder)
        decoded = prior.code(None, params, scales, means, ScriptedChannel(encoder.sent))
    assert torch.equal(coded.y_hat, decoded.y_hat)
    assert torch.equal(coded.symbols, decoded.symbols)
    assert torch.equal(coded.scales, decoded.scales)
    assert decoded.residual is None
    # Rounding error is at most half a step everywhere.
    assert (coded.y_hat - y).abs().max() <= 0.5
    assert torch.equal(coded.symbols, torch.round(coded.residual))


@pytest.mark.parametrize("mode", MODES)
def test_channel_protocol_order(mode):
    _, prior = _prior(mode)
    y, params, scales, means = _inputs()
    channel = ScriptedChannel()
    with torch.no_grad():
        prior.code(y, params, scales, means, channel)
    kinds = [call[0] for call in channel.calls]
    steps = len(kinds) - 1
    assert kinds == ["begin"] + ["y"] * steps
    assert [call[1] for call in channel.calls[1:]] == list(range(steps))
    announced = channel.calls[0][1]
    used = [call[2] for call in channel.calls[1:]]
    if mode.streamlined:
        # Every step's scales are known before the first symbol and are the ones used.
        assert len(announced) == steps
        for before, during in zip(announced, used, strict=True):
            assert torch.equal(before, during)
            assert torch.equal(during, scales)
    else:
        assert announced is None
        assert torch.equal(used[0], scales)
        assert not torch.equal(used[1], scales)  # re-predicted by the step network


@pytest.mark.parametrize("mode", MODES)
def test_quant_step_scales_the_coded_domain(mode):
    _, prior = _prior(mode)
    y, params, scales, means = _inputs()
    step = torch.full_like(y, 2.0)  # a power of two keeps both paths exact
    with torch.no_grad():
        plain = prior.code(y, params, scales, means, EstimateChannel())
        stepped = prior.code(2 * y, params, scales, means, EstimateChannel(), quant_step=step)
    assert torch.equal(stepped.symbols, plain.symbols)
    assert torch.equal(stepped.y_hat, 2 * plain.y_hat)


@pytest.mark.parametrize("mode", MODES)
def test_runs_in_float32_with_gradients(mode):
    host, prior = _prior(mode, torch.float32)
    y, params, scales, means = _inputs(torch.float32)
    y.requires_grad_(True)
    code = prior.code(y, params, scales, means, EstimateChannel(noisy_rate=True))
    code.y_hat.sum().backward()
    assert y.grad is not None and torch.isfinite(y.grad).all()
    assert any(p.grad is not None for p in host.parameters())


@pytest.mark.parametrize(
    ("mode", "latent", "params", "blocks", "half", "expected"),
    [
        # Official sub-module sizes from the reference manifests.
        (EntropyMode.PER_STEP_QUADTREE, 256, 512, 3, False,  # intra
         {"y_spatial_prior_reduction": 131_328, "y_spatial_prior_adaptor_1": 2_106_368,
          "y_spatial_prior_adaptor_2": 2_106_368, "y_spatial_prior_adaptor_3": 2_106_368,
          "y_spatial_prior": 5_793_792}),
        (EntropyMode.STREAMLINED_QUADTREE, 256, 768, 3, False,  # HT-S
         {"y_spatial_prior_reduction": 196_864, "y_spatial_prior_adaptor_1": 2_106_368,
          "y_spatial_prior_adaptor_2": 2_106_368, "y_spatial_prior_adaptor_3": 2_106_368,
          "y_spatial_prior": 5_662_464}),
        (EntropyMode.STREAMLINED_CHECKERBOARD, 128, 384, 2, True,  # LD
         {"y_spatial_prior": 627_840}),
    ],
)
def test_official_submodule_sizes(mode, latent, params, blocks, half, expected):
    host = nn.Module()
    with torch.device("meta"):
        build_spatial_prior(mode, latent, params, blocks=blocks, half=half).attach(host)
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, m in host.named_children()}
    assert sizes == expected


def test_channel_counts_must_split_into_steps():
    with pytest.raises(ValueError):
        build_spatial_prior(EntropyMode.STREAMLINED_QUADTREE, 6, 18)
    with pytest.raises(ValueError):
        build_spatial_prior(EntropyMode.STREAMLINED_CHECKERBOARD, 5, 15)
